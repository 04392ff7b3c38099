// The page's Service Worker: serves downloads that the browser decrypts itself.
//
// The page opens a file (its Worker checks the password or the link's key), then offers the
// Service Worker {token, id, readKey, name, ...} over a message and points the browser at
// /stream/TOKEN. The request never reaches the node: this worker answers it with a stream it
// fills chunk by chunk (fetched from the node's object API, checked, opened with WebCrypto),
// so the browser's download manager writes the file to disk as it arrives and the whole file
// is never held in memory. A collection comes down as a tar archive built here. Audio and video
// players read the same URL with Range requests (206). A "once" file is deleted everywhere by
// this worker after its first complete download, with the delete key its manifest carries.
//
// Bounds: at most MAX_OFFERS offers are kept, each for OFFER_TTL; one response holds at most
// WINDOW chunks (client.js) plus what the browser has not yet written.

import { Api, ApiError, ClientError, openFile, plaintexts, readAll, tarHeaders, tarLength } from '/assets/client.js';

const MAX_OFFERS = 64;
const OFFER_TTL = 30 * 60 * 1000;
/** The most a collection's listing may take (voldisefs-crypto's MAX_COLLECTION_LEN). */
const MAX_LISTING = 16 << 20;

const offers = new Map();

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('message', (e) => {
  const m = e.data || {};
  if (m.op !== 'offer' || typeof m.token !== 'string') return;
  const now = Date.now();
  for (const [token, offer] of offers) if (now - offer.at > OFFER_TTL) offers.delete(token);
  while (offers.size >= MAX_OFFERS) offers.delete(offers.keys().next().value);
  offers.set(m.token, {
    id: m.id, readKey: m.readKey, apiToken: m.apiToken || '', name: m.name, port: e.ports[0] || null, at: now,
  });
  if (e.ports[0]) e.ports[0].postMessage({ offered: m.token });
});

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith('/stream/')) return;
  e.respondWith(serve(url, e.request));
});

function tell(offer, message) {
  if (offer.port) offer.port.postMessage(message);
}

function failure(status, text) {
  return new Response(text, { status, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
}

function disposition(kind, name) {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

function describe(err) {
  return { code: err.code || 'client', status: err.status || 0, message: String(err.message || err) };
}

async function serve(url, request) {
  const token = url.pathname.slice('/stream/'.length).split('/')[0];
  const offer = offers.get(token);
  if (!offer) return failure(404, 'This download has expired: press Download again on the page.');
  const api = new Api(offer.apiToken);
  let file;
  try {
    file = await openFile(api, offer.id, { readKey: offer.readKey });
  } catch (err) {
    tell(offer, { error: describe(err) });
    return failure(err instanceof ApiError && err.status === 404 ? 404 : 502, String(err.message || err));
  }
  const attachment = url.searchParams.has('download');
  if (file.is_collection()) return archive(api, offer, file);
  const size = file.size();
  const range = /^bytes=(\d*)-(\d*)$/.exec(request.headers.get('range') || '');
  let start = 0;
  let end = size; // exclusive
  if (range && !attachment && (range[1] || range[2])) {
    if (range[1]) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(size, Number(range[2]) + 1);
    } else {
      start = Math.max(0, size - Number(range[2]));
    }
    if (start >= end) {
      file.free();
      return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${size}` } });
    }
  }
  const headers = {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(end - start),
    'Content-Disposition': disposition(attachment ? 'attachment' : 'inline', file.name()),
    'Accept-Ranges': 'bytes',
    'Cache-Control': 'no-store',
  };
  const partial = !!range && !attachment;
  if (partial) headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
  const chunkSize = file.chunk_size();
  const first = Math.floor(start / chunkSize);
  const last = size === 0 ? 1 : Math.ceil(end / chunkSize);
  const pieces = plaintexts(api, file, first, last);
  let at = first * chunkSize;
  let sent = 0;
  const whole = !partial && start === 0 && end === size;
  const body = new ReadableStream({
    async pull(controller) {
      try {
        const { value, done } = await pieces.next();
        if (done) {
          controller.close();
          await finished(api, offer, file, whole);
          return;
        }
        const from = Math.max(0, start - at);
        const to = Math.min(value.length, end - at);
        at += value.length;
        if (to > from) controller.enqueue(value.subarray(from, to));
        sent += Math.max(0, to - from);
        if (whole) tell(offer, { progress: { done: sent, total: size } });
      } catch (err) {
        tell(offer, { error: describe(err) });
        controller.error(err);
        file.free();
      }
    },
    cancel() {
      pieces.return();
      file.free();
    },
  }, { highWaterMark: 1 });
  return new Response(body, { status: partial ? 206 : 200, headers });
}

/** After a whole file went out: burns a "once" file, then tells the page. */
async function finished(api, offer, file, whole) {
  let burned = false;
  try {
    if (whole && file.once()) {
      const key = file.delete_key();
      if (key) {
        await api.remove(key, [offer.id], true, 0);
        const chunks = [];
        for (let i = 0; i < file.chunk_count(); i++) chunks.push(file.chunk_id(i));
        await api.remove(key, chunks, false, file.spread());
        burned = true;
      }
    }
    if (whole) tell(offer, { done: { size: file.size(), burned } });
  } catch (err) {
    tell(offer, { error: describe(err) });
  } finally {
    file.free();
  }
}

/** A collection as one tar archive, file after file, each opened with the key its listing holds. */
async function archive(api, offer, collection) {
  let entries;
  try {
    const listing = collection.listing(await readAll(api, collection, MAX_LISTING));
    entries = [];
    for (let i = 0; i < listing.len(); i++) {
      entries.push({ path: listing.path(i), size: listing.size(i), id: listing.id(i), readKey: listing.read_key(i) });
    }
    listing.free();
  } catch (err) {
    collection.free();
    tell(offer, { error: describe(err) });
    return failure(502, String(err.message || err));
  }
  const mtime = collection.created();
  const name = collection.name();
  collection.free();
  const total = tarLength(entries, mtime);
  let index = 0;
  let current = null; // {file, pieces, left}
  let sent = 0;
  const body = new ReadableStream({
    async pull(controller) {
      try {
        for (;;) {
          if (current) {
            const { value, done } = await current.pieces.next();
            if (!done) {
              controller.enqueue(value);
              sent += value.length;
              tell(offer, { progress: { done: sent, total } });
              return;
            }
            const pad = (512 - (current.size % 512)) % 512;
            current.file.free();
            current = null;
            if (pad) controller.enqueue(new Uint8Array(pad));
            sent += pad;
            continue;
          }
          if (index === entries.length) {
            controller.enqueue(new Uint8Array(1024));
            controller.close();
            tell(offer, { done: { size: total, burned: false } });
            return;
          }
          const e = entries[index++];
          for (const h of tarHeaders(e.path, e.size, mtime)) {
            controller.enqueue(h);
            sent += h.length;
          }
          const file = await openFile(api, e.id, { readKey: e.readKey });
          if (file.size() !== e.size) throw new ClientError('corrupt', `${e.path} is not the size its listing says`);
          current = { file, size: e.size, pieces: plaintexts(api, file, 0, e.size === 0 ? 0 : file.chunk_count()) };
          return;
        }
      } catch (err) {
        tell(offer, { error: describe(err) });
        controller.error(err);
      }
    },
    cancel() {
      if (current) current.file.free();
    },
  }, { highWaterMark: 1 });
  return new Response(body, {
    status: 200,
    headers: {
      'Content-Type': 'application/x-tar',
      'Content-Length': String(total),
      'Content-Disposition': disposition('attachment', `${name}.tar`),
      'Cache-Control': 'no-store',
    },
  });
}

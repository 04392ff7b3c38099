// The page's client: seals and opens files in the browser and talks to the node's object API
// only, so the node sees sealed objects and nothing else (no password, name, key or plaintext).
//
// Shared by the upload Worker (worker.js), the Service Worker that serves downloads (sw.js)
// and the page. The format (Argon2id, key schedule, records, manifests, collections, stripes,
// nonces, associated data, trailers, BLAKE3 ids) is the Rust of voldisefs-crypto compiled to
// WebAssembly (voldisefs_crypto.js); only the bulk AES-256-GCM of chunks runs in WebCrypto,
// which uses the CPU's AES instructions where WebAssembly cannot (BENCHMARKS.md).
//
// Memory: a transfer holds at most WINDOW chunks in flight (plaintext and sealed), whatever the
// file's size.

import init, * as wasm from './voldisefs_crypto.js';

/** Chunks sealed, stored, fetched or opened at once per transfer. */
export const WINDOW = 4;
/** The longest object a node stores (a record at most): 16 MiB plus tag and trailer. */
const MAX_OBJECT = (16 << 20) + 56;
/** What sealing adds to a chunk: the GCM tag and the trailer (expiry, delete check). */
const OVERHEAD = 16 + 40;
/** Times a request answered "busy" (503) is tried again, one second apart at least. */
const BUSY_RETRIES = 8;

let loaded = null;
/** Loads the WebAssembly once per context; resolves to its bindings. */
export function load() {
  if (!loaded) {
    loaded = init({ module_or_path: new URL('./voldisefs_crypto_bg.wasm', import.meta.url) }).then(() => wasm);
  }
  return loaded;
}

/** Whether this context has what sealing and opening need. */
export function missingFeatures() {
  const missing = [];
  if (!globalThis.isSecureContext) missing.push('a secure context (HTTPS, or the node on localhost)');
  if (!globalThis.crypto || !crypto.subtle) missing.push('WebCrypto');
  if (typeof WebAssembly !== 'object') missing.push('WebAssembly');
  return missing;
}

/** An error the node answered, with its stable code (`voldisefs_node::api::ApiErrorCode`). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `the node answered ${status}`);
    this.status = status;
    this.code = code || '';
  }
}

/** An error of the client itself, with a code the page turns into a sentence. */
export class ClientError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** What a WebAssembly call threw, as a ClientError with a code. */
export function fromWasm(err) {
  const text = String((err && err.message) || err);
  if (text.startsWith('wrong password')) return new ClientError('wrong_password', text);
  if (text.includes('does not match the requested file id')) return new ClientError('corrupt', text);
  if (text.includes('does not match its id') || text.startsWith('invalid chunk')) return new ClientError('corrupt', text);
  if (text.includes('too expensive')) return new ClientError('kdf_too_expensive', text);
  return new ClientError('client', text);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The node's object API, with the page's API token when it has one. */
export class Api {
  constructor(token, base) {
    this.token = token || '';
    this.base = base || '';
  }

  headers(extra) {
    const h = Object.assign({}, extra);
    if (this.token) h.Authorization = 'Bearer ' + this.token;
    return h;
  }

  async call(method, path, body, accept404) {
    for (let attempt = 0; ; attempt++) {
      let res;
      try {
        res = await fetch(this.base + path, {
          method,
          body,
          headers: this.headers(body ? { 'Content-Type': (body instanceof Blob && body.type) || 'application/octet-stream' } : {}),
          credentials: 'omit',
          cache: 'no-store',
        });
      } catch (err) {
        throw new ApiError(0, 'unreachable', 'cannot reach the node');
      }
      if (res.ok || (accept404 && res.status === 404)) return res;
      let j = null;
      try { j = await res.json(); } catch (_) { /* not JSON */ }
      if (res.status === 503 && j && j.error === 'busy' && attempt < BUSY_RETRIES) {
        await sleep(1000 * Math.max(1, Number(res.headers.get('retry-after')) || 1));
        continue;
      }
      throw new ApiError(res.status, j && j.error, j && j.message);
    }
  }

  async info() {
    return (await this.call('GET', '/api/v1/info')).json();
  }

  /**
   * An object's bytes (`kind`: objects or stripes), or null when the node holds none. A node
   * may lie: an answer longer than `limit` bytes (the most the object can be) is refused as
   * soon as it says so or sends that much, never read whole.
   *
   * With `into` (an ArrayBuffer longer than `limit`) the body is read straight into it where
   * the browser can (a BYOB reader) and the result is a view of it: a download then reuses a
   * few buffers instead of leaving one behind per chunk for the garbage collector, which lets
   * them pile up (BENCHMARKS.md: a plain fetch of 1 GiB grew a renderer by 448 MiB, BYOB by 42).
   */
  async get(id, kind, limit, into) {
    const res = await this.call('GET', `/api/v1/${kind || 'objects'}/${id}`, undefined, true);
    if (res.status === 404) return null;
    const tooLong = () => new ClientError('corrupt', `the node sent more for object ${id} than it can hold`);
    const announced = res.headers.get('content-length');
    if (announced !== null && Number(announced) > limit) {
      // The browser holds the body to its announced length.
      res.body.cancel().catch(() => {});
      throw tooLong();
    }
    const byob = into && into.byteLength > limit ? byobReader(res.body) : null;
    if (byob) {
      let buf = into;
      let at = 0;
      for (;;) {
        // Room is left: `at` never passes `limit`, and the buffer is longer.
        const { value, done } = await byob.read(new Uint8Array(buf, at, buf.byteLength - at));
        if (value) buf = value.buffer;
        if (done) break;
        at += value.length;
        if (at > limit) {
          byob.cancel().catch(() => {});
          throw tooLong();
        }
      }
      return new Uint8Array(buf, 0, at);
    }
    if (announced !== null) return new Uint8Array(await res.arrayBuffer());
    const reader = res.body.getReader();
    const pieces = [];
    let len = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      len += value.length;
      if (len > limit) {
        reader.cancel().catch(() => {});
        throw tooLong();
      }
      pieces.push(value);
    }
    if (pieces.length === 1) return pieces[0];
    const out = new Uint8Array(len);
    let at = 0;
    for (const p of pieces) { out.set(p, at); at += p.length; }
    return out;
  }

  /** Stores an object given as its parts (a sealed chunk and its trailer, or a record). */
  async put(id, parts) {
    // A Blob body: Chromium uploads it several times faster than an ArrayBuffer body.
    await this.call('PUT', `/api/v1/objects/${id}`, new Blob(parts));
  }

  async putStripe(id, body) {
    await this.call('PUT', `/api/v1/stripes/${id}`, new Blob([body]));
  }

  /** Deletes `ids` with a delete key: everywhere (records) or on their holders (`spread`). */
  async remove(deleteKey, ids, everywhere, spread) {
    const body = JSON.stringify({ delete_key: deleteKey, ids, everywhere, spread: spread || 0 });
    await this.call('POST', '/api/v1/objects/delete', new Blob([body], { type: 'application/json' }));
  }
}

/** A BYOB reader of `body`, or null where the browser's fetch bodies are not byte streams. */
function byobReader(body) {
  try {
    return body.getReader({ mode: 'byob' });
  } catch (_) {
    return null;
  }
}

async function aesKey(raw, usage) {
  try {
    return await crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, [usage]);
  } finally {
    raw.fill(0);
  }
}

/**
 * Reads `blob` front to back: each call returns the next `len` bytes as a new array. One
 * stream, not a slice per chunk: Chromium reads a chosen file about twice as fast that way
 * (BENCHMARKS.md). Pieces are wiped once copied out.
 */
export function chunkReader(blob) {
  const reader = blob.stream().getReader();
  let piece = new Uint8Array(0);
  let at = 0;
  const read = async (len) => {
    const out = new Uint8Array(len);
    let filled = 0;
    while (filled < len) {
      if (at === piece.length) {
        piece.fill(0);
        const { value, done } = await reader.read();
        if (done) throw new ClientError('client', 'the file got shorter while it was being read');
        piece = value;
        at = 0;
      }
      const n = Math.min(len - filled, piece.length - at);
      out.set(piece.subarray(at, at + n), filled);
      filled += n;
      at += n;
    }
    return out;
  };
  read.close = () => { piece.fill(0); reader.cancel().catch(() => {}); };
  return read;
}

/** Derives a password's key (Argon2id, 64 MiB, 3 passes): once per upload. */
export async function deriveKey(password) {
  const w = await load();
  try { return w.Key.derive(password); } catch (err) { throw fromWasm(err); }
}

/**
 * Seals `blob` chunk by chunk and stores it; returns {id, readKey, deleteKey, size, chunks}.
 * `opts`: {chunkSize, expires, once, redundancy, name, created, collection}; `progress(bytes)`
 * is called as chunks are stored.
 */
export async function sealFile(api, key, blob, opts, progress) {
  const w = await load();
  let up;
  try {
    up = new w.Upload(key, opts.chunkSize, blob.size, opts.expires || 0, !!opts.once, opts.redundancy);
  } catch (err) { throw fromWasm(err); }
  try {
    const aes = await aesKey(up.chunk_key(), 'encrypt');
    const trailer = up.trailer();
    const count = up.chunk_count();
    const striped = up.striped();
    const read = chunkReader(blob);
    const sealOne = async (i, plain) => {
      const len = plain.length;
      let sealed;
      try {
        sealed = new Uint8Array(await crypto.subtle.encrypt(
          { name: 'AES-GCM', iv: up.nonce(i), additionalData: up.aad(i), tagLength: 128 }, aes, plain));
      } finally {
        plain.fill(0);
      }
      if (striped) {
        let stripe;
        try { stripe = up.add_stripe(i, sealed); } catch (err) { throw fromWasm(err); }
        const id = stripe.id;
        const body = stripe.bytes;
        stripe.free();
        await api.putStripe(id, body);
      } else {
        let id;
        try { id = up.add_chunk(i, sealed); } catch (err) { throw fromWasm(err); }
        await api.put(id, [sealed, trailer]);
      }
      if (progress) progress(len);
    };
    // Read in order, WINDOW chunks sealed and stored at once; the first failure stops it.
    const running = new Set();
    let failed = null;
    try {
      for (let i = 0; i < count && !failed; i++) {
        const job = sealOne(i, await read(up.chunk_len(i))).catch((err) => { failed = failed || err; });
        running.add(job);
        job.finally(() => running.delete(job));
        if (running.size >= WINDOW) await Promise.race(running);
      }
      await Promise.all(running);
    } finally {
      read.close();
    }
    if (failed) throw failed;
    let record;
    try { record = up.finish(opts.name, opts.created, !!opts.collection); } catch (err) { throw fromWasm(err); }
    const id = record.id;
    const bytes = record.bytes;
    record.free();
    await api.put(id, [bytes]);
    return { id, readKey: up.read_key(), deleteKey: up.delete_key(), size: blob.size, chunks: count };
  } finally {
    up.free();
  }
}

/**
 * Seals several files as one collection under one key: each file, then the listing (a file of
 * its own, `name`). `items`: [{file, path}]. Returns what sealFile returns, plus `files`.
 */
export async function sealCollection(api, key, items, opts, progress) {
  const w = await load();
  const listing = new w.ListingBuilder();
  try {
    for (const item of items) {
      const stored = await sealFile(api, key, item.file,
        Object.assign({}, opts, { once: false, collection: false, name: item.path }), progress);
      try { listing.add(item.path, item.file.size, stored.id, stored.readKey); } catch (err) { throw fromWasm(err); }
    }
    let content;
    try { content = listing.encode(); } catch (err) { throw fromWasm(err); }
    const total = items.reduce((n, i) => n + i.file.size, 0);
    const stored = await sealFile(api, key, new Blob([content]), Object.assign({}, opts, { collection: true }));
    content.fill(0);
    return Object.assign(stored, { size: total, files: items.length });
  } finally {
    listing.free();
  }
}

/** Fetches and opens file `id` with {password} or {readKey}; the caller frees the result. */
export async function openFile(api, id, access) {
  const w = await load();
  const record = await api.get(id, 'objects', MAX_OBJECT);
  if (!record) throw new ApiError(404, 'not_found', 'no such file');
  try {
    return access.password != null
      ? w.Download.with_password(id, record, access.password)
      : w.Download.with_read_key(id, record, access.readKey);
  } catch (err) {
    throw fromWasm(err);
  }
}

/**
 * Yields the plaintext of chunks `from` to `to` (exclusive) of an opened file, in order, each
 * fetched, checked (id, length, trailer) and opened; WINDOW are fetched ahead.
 */
export async function* plaintexts(api, file, from, to) {
  const kind = file.striped() ? 'stripes' : 'objects';
  const aes = await aesKey(file.chunk_key(), 'decrypt');
  // Sealed chunks are read into these (at most WINDOW at once), each given back once opened.
  const pool = [];
  const room = file.chunk_size() + OVERHEAD + 1;
  const open = async (i) => {
    const id = file.chunk_id(i);
    // Exactly this long when honest: the checks below refuse any other length.
    const bytes = await api.get(id, kind, file.chunk_len(i) + OVERHEAD, pool.pop() || new ArrayBuffer(room));
    if (!bytes) throw new ApiError(503, 'unavailable', `chunk ${i} is held by no reachable node`);
    try {
      let sealedLen;
      try { sealedLen = file.verify(i, bytes); } catch (err) { throw fromWasm(err); }
      try {
        return new Uint8Array(await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: file.nonce(i), additionalData: file.aad(i), tagLength: 128 },
          aes, bytes.subarray(0, sealedLen)));
      } catch (err) {
        throw new ClientError('corrupt', `chunk ${i} failed its authentication`);
      }
    } finally {
      if (bytes.buffer.byteLength === room && pool.length < WINDOW) pool.push(bytes.buffer);
    }
  };
  const ahead = [];
  let next = from;
  while (ahead.length || next < to) {
    while (next < to && ahead.length < WINDOW) {
      const p = open(next++);
      p.catch(() => {}); // awaited in order below
      ahead.push(p);
    }
    yield await ahead.shift();
  }
}

/** Reads a whole small file (a collection's listing) into memory. */
export async function readAll(api, file, limit) {
  if (file.size() > limit) throw new ClientError('corrupt', 'too large to read whole');
  const out = new Uint8Array(file.size());
  let at = 0;
  for await (const piece of plaintexts(api, file, 0, file.chunk_count())) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

// ---- tar (ustar, with a PAX header for long paths), built in the browser ----

const enc = new TextEncoder();

function octal(value, width) {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name, size, mtime, type) {
  const h = new Uint8Array(512);
  const put = (text, at) => h.set(enc.encode(text), at);
  const nameBytes = enc.encode(name);
  h.set(nameBytes.subarray(0, 100), 0);
  put(octal(0o644, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  put(octal(size, 12), 124);
  put(octal(mtime, 12), 136);
  put('        ', 148);
  put(type, 156);
  put('ustar\0', 257);
  put('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  put(octal(sum, 7) + ' ', 148);
  return h;
}

function paxRecord(key, value) {
  const body = ` ${key}=${value}\n`;
  let len = enc.encode(body).length;
  let digits = String(len).length;
  while (String(len + digits).length !== digits) digits++;
  return `${len + digits}${body}`;
}

function padded(n) {
  return Math.ceil(n / 512) * 512;
}

/** The header blocks of one archive entry (a PAX header first when the path is long). */
export function tarHeaders(path, size, mtime) {
  if (enc.encode(path).length <= 100) return [header(path, size, mtime, '0')];
  const pax = enc.encode(paxRecord('path', path));
  const block = new Uint8Array(padded(pax.length));
  block.set(pax);
  return [header('PaxHeader', pax.length, mtime, 'x'), block, header(path.slice(0, 90), size, mtime, '0')];
}

/** The archive's length for entries [{path, size}]: headers, padded contents, two end blocks. */
export function tarLength(entries, mtime) {
  let n = 1024;
  for (const e of entries) {
    for (const h of tarHeaders(e.path, e.size, mtime)) n += h.length;
    n += padded(e.size);
  }
  return n;
}

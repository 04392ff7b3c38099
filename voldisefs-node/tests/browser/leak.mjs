// No secret reaches a node: headless Chromium uses two nodes' pages through recording proxies
// written here, and every byte that crosses either proxy (request lines, headers, bodies, both
// ways) is searched for the secrets afterwards.
//
// Started by tests/browser/main.rs; inputs from the environment:
//   VOLDISEFS_NODE_A, VOLDISEFS_NODE_B  two nodes of one network (behind the proxies here)
//   VOLDISEFS_INPUT_FILE                a file to upload (its name and bytes are secrets)
//   VOLDISEFS_INPUT_DIR                 a folder to upload as a collection (names, bytes)
//   VOLDISEFS_PASSWORD                  the password
//   VOLDISEFS_SCREENSHOTS               where to save a screenshot per step
//   VOLDISEFS_CHROMIUM                  the browser
// Flow: on A's page, upload the file and the folder with the password and read both share
// links off the page; on B's page (proxied too), download the file through its link and
// through the password, and the folder through its link and the password. Every download must
// give the uploaded bytes. Last, a node that lies about a chunk's length (an endless body, or a
// 1 GiB Content-Length) is refused without the page reading it whole. Then: none of the password, the file and folder names, the links'
// keys or any 32-byte piece of any plaintext crossed either proxy, in any of the encodings a
// page could send them in (raw, hex, base64, URL-encoded), while the proxies did carry the
// sealed objects (so the search had something to search).

import { chromium } from 'playwright-core';
import http from 'node:http';
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const A = env('VOLDISEFS_NODE_A');
const B = env('VOLDISEFS_NODE_B');
const INPUT = env('VOLDISEFS_INPUT_FILE');
const INPUT_DIR = env('VOLDISEFS_INPUT_DIR');
const PASSWORD = env('VOLDISEFS_PASSWORD');
const SHOTS = env('VOLDISEFS_SCREENSHOTS');
const EXE = process.env.VOLDISEFS_CHROMIUM || '/usr/bin/chromium';
const WAIT = 30_000;

setTimeout(() => {
  console.error('FAIL - the leak test took longer than 150 s');
  process.exit(1);
}, 150_000).unref();

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

/** A proxy in front of `target` that records every byte both ways; resolves to {url, log, close}. */
function recordingProxy(target) {
  const upstream = new URL(target);
  const log = [];
  const server = http.createServer((req, res) => {
    const head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n` +
      req.rawHeaders.map((v, i) => (i % 2 ? `${v}\r\n` : `${v}: `)).join('');
    log.push(Buffer.from(head, 'latin1'));
    const out = http.request({
      host: upstream.hostname, port: upstream.port, method: req.method, path: req.url,
      // The client's Host stays, as a reverse proxy passes it on (the node's origin check
      // compares it with the page's Origin).
      headers: req.headers,
    }, (answer) => {
      log.push(Buffer.from(`HTTP ${answer.statusCode}\r\n` +
        answer.rawHeaders.map((v, i) => (i % 2 ? `${v}\r\n` : `${v}: `)).join(''), 'latin1'));
      res.writeHead(answer.statusCode, answer.rawHeaders);
      answer.on('data', (d) => { log.push(Buffer.from(d)); res.write(d); });
      answer.on('end', () => res.end());
    });
    out.on('error', () => { res.destroy(); });
    req.on('data', (d) => { log.push(Buffer.from(d)); out.write(d); });
    req.on('end', () => out.end());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    resolve({ url: `http://127.0.0.1:${server.address().port}/`, log, close: () => server.close() });
  }));
}

/**
 * A node that lies, in front of `target`: the file's record comes through, but every other
 * object is answered with an endless body (`mode` 'endless': chunked, 1 MiB pieces, stopped
 * at 256 MiB) or a claimed length of 1 GiB ('huge'). Resolves to {url, sent() bytes of lies}.
 */
function lyingProxy(target, recordId, mode) {
  const upstream = new URL(target);
  let lies = 0;
  const server = http.createServer((req, res) => {
    const m = /^\/api\/v1\/(objects|stripes)\/([0-9a-f]{64})$/.exec(req.url);
    if (req.method === 'GET' && m && m[2] !== recordId) {
      if (mode === 'huge') {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(1 << 30) });
        res.write(Buffer.alloc(1 << 16));
        lies += 1 << 16;
        return; // never ends; the client must give up
      }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      const piece = Buffer.alloc(1 << 20, 7);
      const more = () => {
        while (lies < 256 << 20) {
          lies += piece.length;
          if (!res.write(piece)) { res.once('drain', more); return; }
        }
        res.end();
      };
      res.on('close', () => res.removeAllListeners('drain'));
      more();
      return;
    }
    const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => { res.writeHead(answer.statusCode, answer.rawHeaders); answer.pipe(res); });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    resolve({ url: `http://127.0.0.1:${server.address().port}/`, sent: () => lies, close: () => { server.closeAllConnections(); server.close(); } });
  }));
}

/** Every file under `dir`, as {path (relative to dir's parent), bytes}. */
async function walk(dir, root = dir) {
  const out = [];
  for (const name of await readdir(dir)) {
    const full = join(dir, name);
    if ((await stat(full)).isDirectory()) out.push(...await walk(full, root));
    else out.push({ path: join(basename(root), relative(root, full)), bytes: await readFile(full) });
  }
  return out;
}

/** The forms a secret could travel in. */
function forms(secret) {
  const raw = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
  const out = [raw, Buffer.from(raw.toString('hex')), Buffer.from(raw.toString('hex').toUpperCase()),
    Buffer.from(raw.toString('base64')), Buffer.from(raw.toString('base64url'))];
  if (!Buffer.isBuffer(secret)) out.push(Buffer.from(encodeURIComponent(secret)), Buffer.from(secret, 'latin1'));
  return out;
}

function leaks(log, secrets) {
  const all = Buffer.concat(log);
  const found = [];
  for (const [what, secret] of secrets) {
    for (const form of forms(secret)) if (form.length >= 4 && all.includes(form)) found.push(what);
  }
  return [...new Set(found)];
}

const browser = await chromium.launch({
  headless: true,
  executablePath: EXE,
  timeout: WAIT,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const pa = await recordingProxy(A);
const pb = await recordingProxy(B);
let n = 0;
async function page(url) {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const p = await context.newPage();
  p.setDefaultTimeout(WAIT);
  p.on('pageerror', (e) => { console.error(`page error: ${e.message}`); process.exitCode = 1; });
  await p.goto(url);
  return p;
}
async function shot(p, name) {
  n += 1;
  await p.screenshot({ path: join(SHOTS, `leak-${String(n).padStart(2, '0')}-${name}.png`), fullPage: true });
}
async function download(p, id, password) {
  if (id) await p.fill('#down-id', id);
  if (password != null) await p.fill('#down-pw', password);
  const [d] = await Promise.all([p.waitForEvent('download', { timeout: WAIT }), p.click('#down-btn')]);
  const bytes = await readFile(await d.path());
  return { bytes, name: d.suggestedFilename() };
}
/** The files of a tar archive (ustar and PAX paths), as a Map of path to bytes. */
function untar(buf) {
  const files = new Map();
  let at = 0;
  let paxPath = null;
  while (at + 512 <= buf.length) {
    const h = buf.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    const type = String.fromCharCode(h[156]);
    const body = buf.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') { paxPath = /\d+ path=(.*)\n/.exec(body.toString('utf8'))[1]; continue; }
    files.set(paxPath || name, Buffer.from(body));
    paxPath = null;
  }
  return files;
}

try {
  const original = await readFile(INPUT);
  const folder = await walk(INPUT_DIR);

  // On A's page: the file, then the folder, each with the password; read the share links.
  const a = await page(pa.url);
  await a.setInputFiles('#up-file', INPUT);
  await a.fill('#up-pw', PASSWORD);
  await a.click('#up-btn');
  await a.locator('#up-result').waitFor({ state: 'visible' });
  const id = (await a.locator('#up-id').textContent()).trim();
  const link = (await a.locator('#up-link').textContent()).trim();
  await a.setInputFiles('#up-folder', INPUT_DIR);
  await a.click('#up-btn');
  await a.waitForFunction((prev) => document.querySelector('#up-id').textContent.trim() !== prev, id);
  const folderId = (await a.locator('#up-id').textContent()).trim();
  const folderLink = (await a.locator('#up-link').textContent()).trim();
  await shot(a, 'uploaded-through-proxy');
  const key = new URL(link).hash.split('key=')[1];
  const folderKey = new URL(folderLink).hash.split('key=')[1];
  check(/^[0-9a-f]{64}$/.test(key) && /^[0-9a-f]{64}$/.test(folderKey), 'both share links carry a key');

  // On B's page (proxied too): the links, then the password.
  const viaLink = await download(await page(pb.url + new URL(link).hash));
  check(viaLink.bytes.equals(original) && viaLink.name === basename(INPUT), 'the file comes back through its link on B');
  const b = await page(pb.url);
  const viaPassword = await download(b, id, PASSWORD);
  check(viaPassword.bytes.equals(original), 'the file comes back through the password on B');
  const tarViaLink = await download(await page(pb.url + new URL(folderLink).hash));
  const tarViaPassword = await download(b, folderId, PASSWORD);
  check(tarViaLink.bytes.equals(tarViaPassword.bytes), 'the folder\u2019s archive is the same through its link and its password');
  const files = untar(tarViaPassword.bytes);
  check(folder.length === files.size && folder.every((f) => files.get(f.path) && files.get(f.path).equals(f.bytes)),
    `the archive holds the folder byte for byte (${[...files.keys()].join(', ')})`);
  await shot(b, 'downloaded-through-proxy');

  // What crossed the proxies.
  const secrets = [
    ['the password', PASSWORD],
    ['the file name', basename(INPUT)],
    ['the folder name', basename(INPUT_DIR)],
    ['the file\u2019s link key', key],
    ['the folder\u2019s link key', folderKey],
  ];
  for (const f of folder) {
    secrets.push([`the name ${f.path}`, basename(f.path)]);
  }
  for (const [what, bytes] of [['the file', original], ...folder.map((f) => [f.path, f.bytes])]) {
    for (let at = 0; at + 32 <= bytes.length; at += Math.max(32, Math.floor(bytes.length / 64))) {
      secrets.push([`plaintext of ${what} at ${at}`, Buffer.from(bytes.subarray(at, at + 32))]);
    }
  }
  // The search finds what is there: a probe holding the password is caught.
  check(leaks([Buffer.from('x'), Buffer.from(encodeURIComponent(PASSWORD)), Buffer.from('y')], secrets).includes('the password'),
    'the search finds a secret when one is there');
  const sent = (log) => log.filter((b) => /^(PUT|POST) \/api\/v1\/(objects|stripes)/.test(b.toString('latin1', 0, 40))).length;
  const fetched = (log) => log.filter((b) => /^GET \/api\/v1\/(objects|stripes)\//.test(b.toString('latin1', 0, 40))).length;
  const bytesA = pa.log.reduce((s, b) => s + b.length, 0);
  const bytesB = pb.log.reduce((s, b) => s + b.length, 0);
  check(sent(pa.log) > 3 && bytesA > original.length, `proxy A carried the uploads (${sent(pa.log)} object requests, ${bytesA} bytes)`);
  check(fetched(pb.log) > 3 && bytesB > original.length, `proxy B carried the downloads (${fetched(pb.log)} object requests, ${bytesB} bytes)`);
  const leakedA = leaks(pa.log, secrets);
  const leakedB = leaks(pb.log, secrets);
  check(leakedA.length === 0, `nothing secret crossed proxy A (${secrets.length} secrets searched${leakedA.length ? '; found ' + leakedA.join(', ') : ''})`);
  check(leakedB.length === 0, `nothing secret crossed proxy B${leakedB.length ? ' (found ' + leakedB.join(', ') + ')' : ''}`);

  // A node that lies about a chunk's length: the page refuses it, without reading it whole,
  // says so, and keeps working.
  for (const mode of ['endless', 'huge']) {
    const liar = await lyingProxy(B, id, mode);
    const l = await page(liar.url + new URL(link).hash);
    await l.click('#down-btn');
    await l.waitForFunction(() => /failed/.test(document.querySelector('#down-msg').textContent), null, { timeout: WAIT });
    const said = await l.locator('#down-msg').textContent();
    check(/integrity|damaged|tampered/.test(said), `a node that sends ${mode === 'huge' ? 'a 1 GiB length' : 'an endless body'} for a chunk is refused: "${said}"`);
    check(liar.sent() <= 64 << 20, `and the page stopped reading it (${(liar.sent() / 2 ** 20).toFixed(0)} MiB sent of ${mode === 'huge' ? '1024' : '256'})`);
    await shot(l, `lying-node-${mode}`);
    liar.close();
  }
} catch (e) {
  console.error(`FAIL - ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  pa.close();
  pb.close();
}

// The page's own client in headless Chromium, against a running node (see page.sh):
//   node page.mjs http://NODE/ FILE PASSWORD_FILE [ID_OF_A_BIG_FILE]
// In the node's page (its real scripts and WebAssembly, under its CSP), one after the other:
//   - Argon2id at the page's parameters (64 MiB, 3 passes), three runs;
//   - reading the file and WebCrypto AES-256-GCM alone, 1 MiB pieces: the floor sealing cannot
//     beat (read as one stream, as sealFile reads, and a slice per piece, for comparison);
//   - seal: client.js sealFile over FILE (read from disk as the page reads a chosen file) into
//     memory (no network), then
//     open: client.js plaintexts over the sealed objects (ids, trailers, tags all checked);
//   - upload: sealFile to the node's object API (network, the node storing).
// With ID_OF_A_BIG_FILE: downloads it through the page (password, Worker, Service Worker, the
// browser's download manager) while sampling the RSS of every Chromium process every 100 ms.
import { chromium } from 'playwright-core';
import { readFileSync, readdirSync, statSync } from 'node:fs';

const [url, input, pwFile, bigId] = process.argv.slice(2);
const MIB = Math.round(statSync(input).size / 2 ** 20);
const PASSWORD = readFileSync(pwFile, 'utf8').trim();

const browser = await chromium.launch({
  headless: true, executablePath: process.env.VOLDISEFS_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
console.log(`Chromium ${browser.version()}, ${MIB} MiB in 1 MiB chunks`);
const context = await browser.newContext({ acceptDownloads: true });
const page = await context.newPage();
page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
await page.goto(url);
await page.setInputFiles('#up-file', input);

const result = await page.evaluate(async ({ MIB, PASSWORD }) => {
  const client = await import('/assets/client.js');
  await client.load();
  const mbps = (bytes, ms) => (bytes / 1e6 / (ms / 1000)).toFixed(0);
  const out = {};
  // Argon2id, three runs.
  const kdf = [];
  let key;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    if (key) key.free();
    key = await client.deriveKey(PASSWORD);
    kdf.push(((performance.now() - t) / 1000).toFixed(2));
  }
  out.argon2id_s = kdf.join(', ');
  // The file, as the page's file picker hands it over.
  const blob = document.querySelector('#up-file').files[0];
  const bytes = blob.size;
  // The floor: reading the file as sealFile reads it, and AES-256-GCM alone, 4 in flight.
  const aes = await crypto.subtle.importKey('raw', crypto.getRandomValues(new Uint8Array(32)), 'AES-GCM', false, ['encrypt']);
  let t = performance.now();
  const read = client.chunkReader(blob);
  const running = new Set();
  for (let i = 0; i < MIB; i++) {
    const plain = await read(Math.min(1 << 20, bytes - i * (1 << 20)));
    const job = crypto.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12).fill(i % 256), additionalData: new Uint8Array(31) }, aes, plain);
    running.add(job);
    job.finally(() => running.delete(job));
    if (running.size >= 4) await Promise.race(running);
  }
  await Promise.all(running);
  read.close();
  out.aes_gcm_alone_MBps = mbps(bytes, performance.now() - t);
  // The same, reading the file a slice per chunk (how sealFile read it before: the comparison).
  t = performance.now();
  for (let i = 0; i < MIB; i += 4) {
    await Promise.all([0, 1, 2, 3].filter((k) => i + k < MIB).map(async (k) => {
      const plain = new Uint8Array(await blob.slice((i + k) << 20, (i + k + 1) << 20).arrayBuffer());
      await crypto.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12).fill(k + 1), additionalData: new Uint8Array(31) }, aes, plain);
    }));
  }
  out.aes_gcm_alone_slices_MBps = mbps(bytes, performance.now() - t);
  // Seal into memory, then open from it.
  const objects = new Map();
  const memory = {
    put: async (id, parts) => {
      const object = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) { object.set(p, at); at += p.length; }
      objects.set(id, object);
    },
    putStripe: async (id, body) => { objects.set(id, body); },
    get: async (id) => objects.get(id) || null,
  };
  t = performance.now();
  const sealed = await client.sealFile(memory, key, blob, {
    chunkSize: 1 << 20, expires: 0, once: false, redundancy: 'replicas:1', name: 'bench.bin', created: 1700000000,
  });
  out.seal_MBps = mbps(bytes, performance.now() - t);
  t = performance.now();
  const file = await client.openFile(memory, sealed.id, { readKey: sealed.readKey });
  let opened = 0;
  for await (const p of client.plaintexts(memory, file, 0, file.chunk_count())) opened += p.length;
  out.open_MBps = mbps(opened, performance.now() - t);
  if (opened !== bytes) throw new Error(`opened ${opened} of ${bytes} bytes`);
  file.free();
  objects.clear();
  // Upload through the node's object API.
  const api = new client.Api('');
  const info = await api.info();
  t = performance.now();
  await client.sealFile(api, key, blob, {
    chunkSize: info.chunk_size, expires: 0, once: false, redundancy: info.redundancy, name: 'bench.bin', created: 1700000000,
  });
  out.upload_to_node_MBps = mbps(bytes, performance.now() - t);
  key.free();
  return out;
}, { MIB, PASSWORD });
for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(22)} ${v}`);

await browser.close();

if (bigId) {
  // A browser of its own, so nothing of the benchmark above is counted.
  const fresh = await chromium.launch({
    headless: true, executablePath: process.env.VOLDISEFS_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu'],
  });
  const root = process.pid;
  const tree = (pid) => {
    const kids = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const st = readFileSync(`/proc/${p}/stat`, 'utf8');
        if (Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === pid) kids.push(Number(p));
      } catch (_) { /* gone */ }
    }
    return [pid, ...kids.flatMap(tree)];
  };
  // RSS in MiB of every Chromium process, and of its renderers alone (the page, its Worker and
  // its Service Worker run there; the browser, network and storage processes are the rest).
  const rss = () => {
    let all = 0;
    let renderers = 0;
    for (const p of tree(root).filter((p) => p !== root)) {
      try {
        const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
        if (!m) continue;
        all += Number(m[1]) / 1024;
        if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('--type=renderer')) renderers += Number(m[1]) / 1024;
      } catch (_) { /* gone */ }
    }
    return { all, renderers };
  };
  const page = await (await fresh.newContext({ acceptDownloads: true })).newPage();
  await page.goto(url);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30000 });
  await page.fill('#down-id', bigId);
  await page.fill('#down-pw', PASSWORD);
  const base = rss();
  const peak = { all: base.all, renderers: base.renderers };
  const started = Date.now();
  const timer = setInterval(() => {
    const now = rss();
    peak.all = Math.max(peak.all, now.all);
    peak.renderers = Math.max(peak.renderers, now.renderers);
  }, 100);
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), page.click('#down-btn')]);
  const path = await dl.path();
  await page.waitForFunction(() => document.querySelector('#down-bar').getAttribute('aria-valuenow') === '100', null, { timeout: 600000 });
  clearInterval(timer);
  const secs = (Date.now() - started) / 1000;
  const size = statSync(path).size;
  console.log(`download ${(size / 2 ** 20).toFixed(0)} MiB through the page in ${secs.toFixed(1)} s ` +
    `(${(size / 1e6 / secs).toFixed(0)} MB/s, Argon2id included)`);
  console.log(`  renderers (page, Worker, Service Worker): ${base.renderers.toFixed(0)} MiB before, peak ${peak.renderers.toFixed(0)} MiB`);
  console.log(`  all Chromium processes: ${base.all.toFixed(0)} MiB before, peak ${peak.all.toFixed(0)} MiB`);

  await page.context().close();
  // The same sealed objects fetched by a plain page script (no Service Worker, no checks, no
  // decryption; bodies read and dropped, 4 in flight): what Chromium's fetch alone costs.
  const plain = await (await fresh.newContext()).newPage();
  await plain.goto(url);
  const ids = await plain.evaluate(async ({ id, password }) => {
    const c = await import('/assets/client.js');
    const f = await c.openFile(new c.Api(''), id, { password });
    const out = [];
    for (let i = 0; i < f.chunk_count(); i++) out.push(f.chunk_id(i));
    f.free();
    return out;
  }, { id: bigId, password: PASSWORD });
  const before = rss();
  let top = before.renderers;
  const sampler = setInterval(() => { top = Math.max(top, rss().renderers); }, 100);
  const fetchSecs = await plain.evaluate(async (ids) => {
    const t = performance.now();
    let next = 0;
    await Promise.all([0, 1, 2, 3].map(async () => {
      while (next < ids.length) {
        const res = await fetch('/api/v1/objects/' + ids[next++], { cache: 'no-store' });
        await res.arrayBuffer();
      }
    }));
    return (performance.now() - t) / 1000;
  }, ids);
  clearInterval(sampler);
  console.log(`plain fetch of the same ${ids.length} objects in a page (no Service Worker, no crypto): ` +
    `${(ids.length * 1.048576 / fetchSecs).toFixed(0)} MB/s; renderers ${before.renderers.toFixed(0)} MiB before, peak ${top.toFixed(0)} MiB`);
  await fresh.close();
}

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
// browser's download manager) while sampling the private footprint of every Chromium process
// every 100 ms, with Chromium driven over raw CDP (cdp.mjs says why), beside a plain fetch of
// the same objects and the same download driven by Playwright.
import { chromium } from 'playwright-core';
import { readFileSync, statSync } from 'node:fs';
import { launch, sampler } from './cdp.mjs';

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
  const exe = process.env.VOLDISEFS_CHROMIUM || '/usr/bin/chromium';
  const mib = (v) => v.toFixed(0).padStart(4);
  const report = (label, secs, bytes, mem) => {
    console.log(`${label}: ${(bytes / 2 ** 20).toFixed(0)} MiB in ${secs.toFixed(1)} s (${(bytes / 1e6 / secs).toFixed(0)} MB/s)`);
    console.log(`  private footprint, peak: biggest renderer ${mib(mem.top)} MiB, renderers together ${mib(mem.renderers)} MiB`);
    for (const r of mem.rows) if (r.peak >= 20) console.log(`    ${r.process.padEnd(24)} ${mib(r.before)} -> ${mib(r.peak)} MiB`);
  };
  // The page's own download: the password typed, Argon2id in its Worker, the Service Worker
  // streaming to the browser's download manager. Chromium over raw CDP (cdp.mjs), twice.
  for (let run = 1; run <= 2; run++) {
    const c = await launch(exe);
    await c.goto(url);
    await c.until(`document.readyState === 'complete' && navigator.serviceWorker.controller !== null`, 30000);
    const m = sampler(c.pid);
    const started = Date.now();
    const finished = c.download();
    await c.evaluate(`(() => {
      for (const [sel, v] of [['#down-id', ${JSON.stringify(bigId)}], ['#down-pw', ${JSON.stringify(PASSWORD)}]]) {
        const e = document.querySelector(sel); e.value = v; e.dispatchEvent(new Event('input', { bubbles: true }));
      }
      document.querySelector('#down-btn').click();
      return true;
    })()`);
    const d = await finished;
    if (d.state !== 'completed') throw new Error(`the download ended ${d.state}`);
    await c.until(`document.querySelector('#down-bar').getAttribute('aria-valuenow') === '100'`, 600000);
    report(`page download ${run} (Argon2id included)`, (Date.now() - started) / 1000, d.receivedBytes, m.stop());
    await c.close();
  }
  // The same sealed objects fetched by a plain page script (no Service Worker, no checks, no
  // decryption, 4 in flight, bodies dropped): what Chromium's fetch alone costs, read whole
  // (arrayBuffer) and read into 4 reused buffers (a BYOB reader, as client.js reads).
  for (const mode of ['arrayBuffer', 'byob']) {
    const c = await launch(exe);
    await c.goto(url);
    await c.until(`document.readyState === 'complete'`, 30000);
    const count = await c.evaluate(`(async () => {
      const client = await import('/assets/client.js');
      const f = await client.openFile(new client.Api(''), ${JSON.stringify(bigId)}, { password: ${JSON.stringify(PASSWORD)} });
      window.ids = [];
      for (let i = 0; i < f.chunk_count(); i++) ids.push(f.chunk_id(i));
      f.free();
      return ids.length;
    })()`);
    const m = sampler(c.pid);
    const started = Date.now();
    const bytes = await c.evaluate(`(async () => {
      let next = 0;
      let total = 0;
      await Promise.all([0, 1, 2, 3].map(async () => {
        let buf = new ArrayBuffer((1 << 20) + 4096);
        while (next < ids.length) {
          const res = await fetch('/api/v1/objects/' + ids[next++], { cache: 'no-store' });
          if (${JSON.stringify(mode)} === 'arrayBuffer') { const whole = await res.arrayBuffer(); total += whole.byteLength; continue; }
          const r = res.body.getReader({ mode: 'byob' });
          let at = 0;
          for (;;) {
            const { value, done } = await r.read(new Uint8Array(buf, at, buf.byteLength - at));
            if (value) buf = value.buffer;
            if (done) break;
            at += value.length;
          }
          total += at;
        }
      }));
      return total;
    })()`);
    report(`plain fetch of the same ${count} objects, ${mode}`, (Date.now() - started) / 1000, bytes, m.stop());
    await c.close();
  }
  // The page's download again, driven by Playwright: DevTools' Network domain is on, and the
  // renderer keeps bodies for it. Shown so that measurements taken this way can be read.
  const fresh = await chromium.launch({ headless: true, executablePath: exe, args: ['--no-sandbox', '--disable-gpu'] });
  const page = await (await fresh.newContext({ acceptDownloads: true })).newPage();
  await page.goto(url);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30000 });
  await page.fill('#down-id', bigId);
  await page.fill('#down-pw', PASSWORD);
  const m = sampler(process.pid);
  const started = Date.now();
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), page.click('#down-btn')]);
  const path = await dl.path();
  await page.waitForFunction(() => document.querySelector('#down-bar').getAttribute('aria-valuenow') === '100', null, { timeout: 600000 });
  report('page download under Playwright (DevTools recording bodies)', (Date.now() - started) / 1000, statSync(path).size, m.stop());
  await fresh.close();
}

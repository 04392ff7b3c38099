// Sealing and opening in headless Chromium (see run.sh): the project's Rust as WebAssembly
// against WebCrypto + hash-wasm, on the same file, in the same browser, one after the other.
// Usage: node crypto.mjs PKG_DIR MIB
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { dirname, join, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const [pkg, mibArg] = process.argv.slice(2);
const MIB = Number(mibArg || 256);
const hashWasm = join(here, 'node_modules', 'hash-wasm', 'dist');
const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
const PAGE = '<!doctype html><meta charset="utf-8"><title>crypto bench</title>';

// Serves the page, the wasm-bindgen output (/pkg/) and hash-wasm's bundles (/hash-wasm/).
const server = createServer(async (req, res) => {
  try {
    const path = new URL(req.url, 'http://x').pathname;
    let file;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end(PAGE);
    } else if (path.startsWith('/pkg/')) {
      file = join(pkg, path.slice(5));
    } else if (path.startsWith('/hash-wasm/')) {
      file = join(hashWasm, path.slice(11));
    } else {
      res.writeHead(404);
      return res.end();
    }
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const base = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  await page.goto(base + '/');
  // Each bundle sets `hashwasm` anew: keep the first one's before loading the second.
  await page.addScriptTag({ url: '/hash-wasm/argon2.umd.min.js' });
  await page.evaluate(() => { self.hashArgon2 = self.hashwasm; });
  await page.addScriptTag({ url: '/hash-wasm/blake3.umd.min.js' });
  const result = await page.evaluate(async (mib) => {
    const now = () => performance.now();
    const out = {};
    // --- the project's Rust as WebAssembly ---
    let t = now();
    const wasm = await import('/pkg/voldisefs_crypto.js');
    await wasm.default();
    out.wasm_load_ms = now() - t;
    t = now();
    wasm.check_format_vector();
    out.wasm_vector_ms = now() - t;
    t = now();
    wasm.argon2id(65536, 3, 1);
    out.wasm_argon2id_ms = now() - t;
    t = now();
    const sealed = wasm.seal(mib);
    out.wasm_seal_ms = now() - t;
    t = now();
    const opened = sealed.open();
    out.wasm_open_ms = now() - t;
    sealed.free();
    if (opened !== mib * 1048576) throw new Error(`wasm opened ${opened} bytes`);

    // --- WebCrypto AES-256-GCM + hash-wasm BLAKE3 and Argon2id ---
    const { argon2id } = self.hashArgon2;
    const { createBLAKE3 } = self.hashwasm;
    t = now();
    await argon2id({
      password: 'a password', salt: new Uint8Array(16), parallelism: 1, iterations: 3,
      memorySize: 65536, hashLength: 32, outputType: 'binary',
    });
    out.js_argon2id_ms = now() - t;
    const key = await crypto.subtle.importKey(
      'raw', crypto.getRandomValues(new Uint8Array(32)), 'AES-GCM', false, ['encrypt', 'decrypt']);
    const piece = new Uint8Array(1048576).map((_, i) => i % 251);
    const blake3 = await createBLAKE3();
    const chunks = [];
    t = now();
    for (let i = 0; i < mib; i++) {
      const iv = new Uint8Array(12);
      new DataView(iv.buffer).setUint32(8, i);
      const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, piece));
      blake3.init();
      blake3.update(ct);
      chunks.push([iv, ct, blake3.digest('binary')]);
    }
    out.js_seal_ms = now() - t;
    t = now();
    let total = 0;
    for (const [iv, ct, id] of chunks) {
      blake3.init();
      blake3.update(ct);
      const again = blake3.digest('binary');
      if (again.some((b, i) => b !== id[i])) throw new Error('id mismatch');
      total += (await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, ct)).byteLength;
    }
    out.js_open_ms = now() - t;
    if (total !== mib * 1048576) throw new Error(`js opened ${total} bytes`);
    return out;
  }, MIB);

  const size = async (path) => {
    const bytes = await readFile(path);
    return { bytes: (await stat(path)).size, gzip: gzipSync(bytes).length };
  };
  const wasmFiles = [join(pkg, 'voldisefs_crypto_bg.wasm'), join(pkg, 'voldisefs_crypto.js')];
  const jsFiles = [join(hashWasm, 'argon2.umd.min.js'), join(hashWasm, 'blake3.umd.min.js')];
  const sum = async (files) => {
    const all = await Promise.all(files.map(size));
    return all.reduce((a, b) => ({ bytes: a.bytes + b.bytes, gzip: a.gzip + b.gzip }));
  };
  const mbps = (ms) => ((MIB * 1048576) / 1e6 / (ms / 1000)).toFixed(0);
  const w = await sum(wasmFiles);
  const j = await sum(jsFiles);
  console.log(`browser crypto bench: ${MIB} MiB in 1 MiB chunks, Chromium ${browser.version()}`);
  console.log(`FORMAT.md file vector opened in wasm: ok (${result.wasm_vector_ms.toFixed(0)} ms, one Argon2id run)`);
  console.log('| way | seal MB/s | open MB/s | Argon2id 64 MiB, 3 passes | page loads (gzip) |');
  console.log('|---|---:|---:|---:|---:|');
  console.log(`| Rust as WebAssembly (ring AES-GCM, blake3, argon2) | ${mbps(result.wasm_seal_ms)} | ${mbps(result.wasm_open_ms)} | ${(result.wasm_argon2id_ms / 1000).toFixed(2)} s | ${(w.bytes / 1024).toFixed(0)} KiB (${(w.gzip / 1024).toFixed(0)} KiB) |`);
  console.log(`| WebCrypto AES-GCM + hash-wasm BLAKE3, Argon2id | ${mbps(result.js_seal_ms)} | ${mbps(result.js_open_ms)} | ${(result.js_argon2id_ms / 1000).toFixed(2)} s | ${(j.bytes / 1024).toFixed(0)} KiB (${(j.gzip / 1024).toFixed(0)} KiB) |`);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  server.close();
}

// Chromium driven over the DevTools protocol directly, for memory measurements.
//
// Playwright enables DevTools' Network domain in every page and worker it attaches to, and
// Chromium then keeps copies of response bodies in the renderer (up to about 200 MB) so that
// DevTools could show them: a renderer's memory measured under Playwright counts that buffer
// (BENCHMARKS.md shows both side by side). This driver sends only Target, Page, Runtime and
// Browser commands, so nothing is recorded.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Starts headless Chromium with one blank page; resolves to a small driver. */
export async function launch(executable) {
  const dir = mkdtempSync(join(tmpdir(), 'voldisefs-cdp-'));
  const chrome = spawn(executable, [
    '--headless', '--no-sandbox', '--disable-gpu', '--remote-debugging-port=0',
    `--user-data-dir=${join(dir, 'profile')}`, 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const wsUrl = await new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`Chromium did not start: ${err}`)), 30000);
    chrome.stderr.on('data', (d) => {
      err += d;
      const m = /DevTools listening on (ws:\S+)/.exec(err);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
  const ws = new WebSocket(wsUrl);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  let seq = 0;
  const waiting = new Map();
  const listeners = [];
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    const w = msg.id && waiting.get(msg.id);
    if (!w) { for (const l of listeners) l(msg); return; }
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(`${w.method}: ${msg.error.message}`)); else w.resolve(msg.result);
  };
  const send = (method, params = {}, sessionId = undefined) => new Promise((resolve, reject) => {
    const id = ++seq;
    waiting.set(id, { resolve, reject, method });
    ws.send(JSON.stringify({ id, method, params, sessionId }));
  });
  const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
  await send('Browser.setDownloadBehavior', { behavior: 'allowAndName', downloadPath: dir, eventsEnabled: true });

  /** Evaluates `expr` in the page (awaiting a promise); resolves to its JSON value. */
  const evaluate = async (expr) => {
    const r = await send('Runtime.evaluate', { expression: expr, awaitPromise: true, returnByValue: true }, sessionId);
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text}`);
    return r.result.value;
  };
  /** Polls `expr` every 100 ms until it is true, for at most `ms`. */
  const until = async (expr, ms) => {
    const start = Date.now();
    while (!(await evaluate(expr))) {
      if (Date.now() - start > ms) throw new Error(`timed out waiting for ${expr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  /** Resolves with the next finished download's progress event (state completed or canceled). */
  const download = () => new Promise((resolve) => {
    const l = (m) => {
      if (m.method !== 'Browser.downloadProgress' || m.params.state === 'inProgress') return;
      listeners.splice(listeners.indexOf(l), 1);
      resolve(m.params);
    };
    listeners.push(l);
  });
  const close = () => {
    ws.close();
    chrome.kill();
    return new Promise((resolve) => chrome.once('exit', () => { rmSync(dir, { recursive: true, force: true }); resolve(); }));
  };
  return {
    pid: chrome.pid, evaluate, until, download, close,
    goto: (url) => send('Page.navigate', { url }, sessionId),
  };
}

/** The process tree below `pid` (itself included). */
function tree(pid) {
  const kids = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const st = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === pid) kids.push(Number(p));
    } catch (_) { /* gone */ }
  }
  return [pid, ...kids.flatMap(tree)];
}

/**
 * Private memory in MiB (anonymous plus shared-memory pages resident: what Chromium's task
 * manager calls the memory footprint, without the code pages every process maps) of each
 * Chromium process below `pid`, keyed "PID type".
 */
export function footprints(pid) {
  const out = {};
  for (const p of tree(pid)) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (!cmd.includes('chrom')) continue;
      const st = readFileSync(`/proc/${p}/status`, 'utf8');
      const kb = (field) => Number((new RegExp(`${field}:\\s+(\\d+)`).exec(st) || [0, 0])[1]);
      const type = (/--type=([\w-]+)/.exec(cmd) || [0, 'browser'])[1];
      out[`${p} ${type}`] = (kb('RssAnon') + kb('RssShmem')) / 1024;
    } catch (_) { /* gone */ }
  }
  return out;
}

/**
 * Samples footprints(pid) every 100 ms until stop() is called; stop() returns, per process,
 * the footprint at the start and the peak, plus the peak of all renderers summed.
 */
export function sampler(pid) {
  const base = footprints(pid);
  const peak = { ...base };
  let renderers = 0;
  const take = () => {
    const now = footprints(pid);
    let sum = 0;
    for (const [k, v] of Object.entries(now)) {
      peak[k] = Math.max(peak[k] || 0, v);
      if (k.endsWith('renderer')) sum += v;
    }
    renderers = Math.max(renderers, sum);
  };
  take();
  const timer = setInterval(take, 100);
  return {
    stop() {
      clearInterval(timer);
      take();
      const rows = Object.keys(peak).map((k) => ({ process: k, before: base[k] || 0, peak: peak[k] }));
      return { rows, renderers, top: Math.max(...rows.filter((r) => r.process.endsWith('renderer')).map((r) => r.peak)) };
    },
  };
}

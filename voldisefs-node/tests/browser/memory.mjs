// Browser memory while the page downloads files (issue 13, point 5), for BENCHMARKS.md:
//   node memory.mjs http://NODE/ PASSWORD ID...   (run in this directory after `npm ci`)
// Downloads each file through the page (ticket, then the browser's download manager) and
// prints the RSS of all Chromium processes before and at peak, sampled every 100 ms.
import { chromium } from 'playwright-core';
import { readFileSync, readdirSync } from 'node:fs';
const [url, pw, ...ids] = process.argv.slice(2);
const browser = await chromium.launch({ headless: true, executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
const root = process.pid; // Chromium runs as descendants of this script.
function tree(pid) {
  const kids = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try { const st = readFileSync(`/proc/${p}/stat`, 'utf8'); const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]); if (ppid === pid) kids.push(Number(p)); } catch (_) {}
  }
  return [pid, ...kids.flatMap(tree)];
}
function rssMiB() {
  let kib = 0;
  for (const p of tree(root).filter((p) => p !== root)) { try { const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8')); if (m) kib += Number(m[1]); } catch (_) {} }
  return kib / 1024;
}
const context = await browser.newContext({ acceptDownloads: true });
const page = await context.newPage();
await page.goto(url);
for (const id of ids) {
  await page.fill('#down-id', id); await page.fill('#down-pw', pw);
  const base = rssMiB(); let peak = base; const started = Date.now();
  const timer = setInterval(() => { peak = Math.max(peak, rssMiB()); }, 100);
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#down-btn')]);
  const path = await dl.path();
  clearInterval(timer); peak = Math.max(peak, rssMiB());
  const size = readFileSync(path).length; // after the fact: not during the sampling
  console.log(`${id.slice(0, 8)} ${(size / 2 ** 20).toFixed(0)} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s: browser RSS before ${base.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB, growth ${(peak - base).toFixed(0)} MiB`);
}
await browser.close();

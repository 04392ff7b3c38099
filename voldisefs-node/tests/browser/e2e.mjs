// End-to-end test of the node's web page in headless Chromium, driven by playwright-core.
//
// Started by tests/browser/main.rs against a real local network of in-process nodes; every
// input comes from the environment:
//   VOLDISEFS_NODE_A, VOLDISEFS_NODE_B  pages of two nodes of one network
//   VOLDISEFS_NODE_FULL                 page of a lone node too small for VOLDISEFS_BIG_SIZE bytes
//   VOLDISEFS_INPUT_FILE                the file to upload through the page (compared on download)
//   VOLDISEFS_INPUT_DIR                 a folder to upload through the page as one collection
//   VOLDISEFS_ARCHIVE_OUT               where to save the collection's archive downloaded on node B
//   VOLDISEFS_PASSWORD                  its password (non-ASCII on purpose)
//   VOLDISEFS_SCREENSHOTS               directory for one PNG per step
//   VOLDISEFS_CHROMIUM                  the browser (default /usr/bin/chromium)
//   VOLDISEFS_CLI_FILE_ID, _FILE        a file sealed by the CLI's client (its id, its bytes)
// Prints `ok - ...` per check, `RESULT {json}` at the end, and exits non-zero on any failure.
import { chromium } from 'playwright-core';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const A = env('VOLDISEFS_NODE_A');
const B = env('VOLDISEFS_NODE_B');
const FULL = env('VOLDISEFS_NODE_FULL');
const INPUT = env('VOLDISEFS_INPUT_FILE');
const PASSWORD = env('VOLDISEFS_PASSWORD');
const INPUT_DIR = env('VOLDISEFS_INPUT_DIR');
const ARCHIVE_OUT = env('VOLDISEFS_ARCHIVE_OUT');
const BIG = Number(env('VOLDISEFS_BIG_SIZE'));
const SHOTS = env('VOLDISEFS_SCREENSHOTS');
const CLI_ID = env('VOLDISEFS_CLI_FILE_ID');
const CLI_FILE = env('VOLDISEFS_CLI_FILE');
const EXE = process.env.VOLDISEFS_CHROMIUM || '/usr/bin/chromium';
const TOKEN = 'test-token-0123456789';
const WAIT = 20_000; // ms: the bound on any single wait

// The whole run is bounded too, whatever hangs.
setTimeout(() => {
  console.error('FAIL - the browser test took longer than 150 s');
  process.exit(1);
}, 150_000).unref();

let step = 0;
const pages = [];
async function shot(page, name) {
  step += 1;
  const path = join(SHOTS, `${String(step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
}
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}
async function text(page, sel) {
  return (await page.locator(sel).textContent()) ?? '';
}
async function noHorizontalScroll(page) {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
}
/** Waits until `sel` has non-empty text and returns it. */
async function waitText(page, sel) {
  await page.waitForFunction((s) => (document.querySelector(s)?.textContent ?? '').trim() !== '', sel, { timeout: WAIT });
  return text(page, sel);
}
async function newPage(browser, url, options = {}) {
  const context = await browser.newContext({ acceptDownloads: true, ...options });
  const page = await context.newPage();
  pages.push(page);
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => {
    console.error(`page error on ${url}: ${e.message}`);
    process.exitCode = 1;
  });
  return { context, page };
}

await mkdir(SHOTS, { recursive: true });
const browser = await chromium.launch({
  headless: true,
  executablePath: EXE,
  timeout: WAIT,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const result = {};
try {
  const original = await readFile(INPUT);

  // 1. Node A's page shows the network: the two other nodes, alive.
  const { context: ctxA, page: a } = await newPage(browser, A, { viewport: { width: 1280, height: 900 } });
  await ctxA.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: A });
  await a.goto(A);
  await a.waitForFunction(() => document.querySelectorAll('#peers .badge.alive').length === 2, null, { timeout: WAIT });
  check((await text(a, '#st-peers')).trim() === '2 / 2', 'node A lists its 2 peers as alive');
  check(/of 64 MiB/.test(await text(a, '#store-text')), 'node A shows its store against its capacity');
  check(await a.locator('#token-box').isHidden(), 'the API token field stays hidden when no token is needed');
  await shot(a, 'home');

  // 2. Password helpers: strength hint, show/hide, generate.
  await a.fill('#up-pw', 'abc');
  check((await text(a, '#pw-hint')).startsWith('Weak'), 'a short password is called weak');
  await a.click('#gen');
  const generated = await a.inputValue('#up-pw');
  check(/^([a-z2-9]{5}-){4}[a-z2-9]{5}$/.test(generated), `generate makes a random password (${generated})`);
  check((await a.getAttribute('#up-pw', 'type')) === 'text', 'a generated password is shown');
  await a.click('[data-for=up-pw]');
  check((await a.getAttribute('#up-pw', 'type')) === 'password', 'hide masks the password again');
  await a.fill('#up-pw', PASSWORD);
  check((await text(a, '#pw-hint')).length > 0, `strength hint for the test password: ${await text(a, '#pw-hint')}`);

  // 3. Upload through the file picker; the id appears with a copy button.
  await a.setInputFiles('#up-file', INPUT);
  check((await text(a, '#drop-text')).includes(basename(INPUT)), 'the chosen file is named in the drop zone');
  await a.click('#up-btn');
  await a.locator('#up-result').waitFor({ state: 'visible', timeout: WAIT });
  const id = (await text(a, '#up-id')).trim();
  check(/^[0-9a-f]{64}$/.test(id), `the page shows the file id ${id}`);
  check((await a.getAttribute('#up-bar', 'aria-valuenow')) === '100', 'the upload progress bar ends at 100%');
  await a.click('#copy');
  await a.waitForFunction(() => document.querySelector('#copy-msg').textContent !== '', null, { timeout: WAIT });
  const clip = await a.evaluate(() => navigator.clipboard.readText().catch((e) => `unreadable: ${e}`));
  check(clip === id, 'copy puts the id on the clipboard');
  await a.waitForFunction((i) => document.querySelector('#files').textContent.includes(i), id, { timeout: WAIT });
  check(true, 'the new file is listed under "Your uploads" (kept in this browser)');
  check((await text(a, '#files')).includes(basename(INPUT)), 'the list names the file');
  await shot(a, 'uploaded');
  // Its Download button asks for the password first, then downloads.
  const listed = a.locator('#files li', { hasText: id }).locator('button');
  await a.fill('#down-pw', '');
  await listed.click();
  check((await a.inputValue('#down-id')) === id && (await text(a, '#down-msg')).includes('password'), 'the list\u2019s Download asks for the password');
  await a.fill('#down-pw', PASSWORD);
  const [fromList] = await Promise.all([a.waitForEvent('download', { timeout: WAIT }), listed.click()]);
  check(fromList.suggestedFilename() === basename(INPUT), 'the list\u2019s Download downloads the file under its name');
  await a.fill('#down-pw', '');
  result.id = id;

  // 3a. The share link: a fresh page (no password, nothing stored) downloads the same bytes;
  // a tampered link fails closed.
  const link = (await text(a, '#up-link')).trim();
  check(link.startsWith(`${new URL(A).origin}/#id=${id}&key=`), `the page shows a share link (${link.slice(0, 60)}...)`);
  const { page: s } = await newPage(browser, A, { viewport: { width: 1280, height: 900 } });
  await s.goto(link);
  check((await text(s, '#shared-msg')).includes('shared with you'), 'the link opens the page in shared mode');
  check(!(await s.evaluate(() => location.hash)), 'the key is taken out of the address bar');
  const [viaLink] = await Promise.all([s.waitForEvent('download', { timeout: WAIT }), s.click('#down-btn')]);
  check((await readFile(await viaLink.path())).equals(original), 'the link downloads the same bytes without the password');
  await shot(s, 'share-link');
  const last = link.slice(-1);
  const tampered = link.slice(0, -1) + (last === '0' ? '1' : '0');
  const { page: x } = await newPage(browser, A, { viewport: { width: 1280, height: 900 } });
  await x.goto(tampered);
  await x.click('#down-btn');
  check((await waitText(x, '#down-msg.err')).includes('does not open the file'), 'a tampered link fails closed');

  // 3b. A whole folder through the folder picker: one collection.
  await a.setInputFiles('#up-folder', INPUT_DIR);
  const folderName = basename(INPUT_DIR);
  check((await text(a, '#drop-text')).includes(`${folderName}: `), `the chosen folder is named in the drop zone (${await text(a, '#drop-text')})`);
  await a.click('#up-btn');
  await a.waitForFunction(() => !document.querySelector('#up-result').hidden
    && document.querySelector('#up-result-kind').textContent.startsWith('Collection'), null, { timeout: WAIT });
  const collection = (await text(a, '#up-id')).trim();
  check(/^[0-9a-f]{64}$/.test(collection) && collection !== id, `the page shows the collection id ${collection}`);
  const folderLink = (await text(a, '#up-link')).trim();
  check(folderLink.includes(`#id=${collection}&key=`), 'the collection has a share link too');
  await a.waitForFunction((n) => document.querySelector('#files').textContent.includes(n + '/'), folderName, { timeout: WAIT });
  check(true, 'the collection is listed as a folder');
  await shot(a, 'folder-uploaded');
  result.collection = collection;

  // 4. Download it through node B's page; the bytes and the name must be the original's.
  const { page: b } = await newPage(browser, B, { viewport: { width: 1280, height: 900 } });
  await b.goto(B);
  await b.fill('#down-id', id);
  await b.fill('#down-pw', PASSWORD);
  const [download] = await Promise.all([b.waitForEvent('download', { timeout: WAIT }), b.click('#down-btn')]);
  const got = await readFile(await download.path());
  check(got.equals(original), `downloaded bytes equal the uploaded ones (${got.length} bytes)`);
  check(download.suggestedFilename() === basename(INPUT), `the download keeps the name ${download.suggestedFilename()}`);
  check(/\/stream\/[0-9a-f]{32}\?download$/.test(download.url()), `the browser's download manager takes the stream the Service Worker decrypts (${download.url()}; nothing held in page memory)`);
  await b.locator('#down-msg.ok').waitFor({ timeout: WAIT });
  await b.waitForFunction(() => document.querySelector('#down-bar').getAttribute('aria-valuenow') === '100', null, { timeout: WAIT });
  check(true, 'the download progress bar ends at 100%');
  await shot(b, 'downloaded-on-b');

  // 4a. FORMAT.md's vectors hold in this browser: the WebAssembly the page runs opens the
  // file, collection and erasure-coded file vectors and encodes the stripe vector.
  const vectors = await b.evaluate(async () => {
    const m = await import('/assets/voldisefs_crypto.js');
    await m.default({ module_or_path: '/assets/voldisefs_crypto_bg.wasm' });
    try { m.check_format_vector(); return 'ok'; } catch (e) { return String(e.message || e); }
  });
  check(vectors === 'ok', `FORMAT.md's vectors hold in Chromium (${vectors})`);
  // A file the CLI sealed opens in the page.
  await b.fill('#down-id', CLI_ID);
  await b.fill('#down-pw', PASSWORD);
  const [fromCli] = await Promise.all([b.waitForEvent('download', { timeout: WAIT }), b.click('#down-btn')]);
  check((await readFile(await fromCli.path())).equals(await readFile(CLI_FILE)) && fromCli.suggestedFilename() === basename(CLI_FILE),
    `a file sealed by the CLI opens in the page (${fromCli.suggestedFilename()})`);

  // 4b. The collection through node B's page: one .tar archive of every file.
  await b.fill('#down-id', collection);
  const [archive] = await Promise.all([b.waitForEvent('download', { timeout: WAIT }), b.click('#down-btn')]);
  check(archive.suggestedFilename() === `${folderName}.tar`, `the collection downloads as ${archive.suggestedFilename()}`);
  await archive.saveAs(ARCHIVE_OUT);
  await b.locator('#down-msg.ok').waitFor({ timeout: WAIT });
  check(true, 'the archive download reports success');
  const { page: fl } = await newPage(browser, A, { viewport: { width: 1280, height: 900 } });
  await fl.goto(folderLink);
  const [linkedTar] = await Promise.all([fl.waitForEvent('download', { timeout: WAIT }), fl.click('#down-btn')]);
  const viaLinkTar = await readFile(await linkedTar.path());
  check(viaLinkTar.equals(await readFile(ARCHIVE_OUT)), 'the collection link downloads the same archive without the password');

  // 5. Errors as readable messages: wrong password, unknown id, malformed id.
  await b.fill('#down-pw', PASSWORD + 'x');
  await b.click('#down-btn');
  check((await waitText(b, '#down-msg.err')).includes('Wrong password'), 'a wrong password says so');
  await shot(b, 'wrong-password');
  await b.fill('#down-pw', PASSWORD);
  await b.fill('#down-id', randomBytes(32).toString('hex'));
  await b.click('#down-btn');
  check((await waitText(b, '#down-msg.err')).includes('No file with this id'), 'an unknown id says not found');
  await shot(b, 'unknown-id');
  await b.fill('#down-id', id.slice(0, 40));
  await b.click('#down-btn');
  check((await waitText(b, '#down-msg.err')).includes('64 hexadecimal'), 'a truncated id is caught on the page');

  // 5b. Expiry and burn after reading from the page: the first download works, then the file
  // is gone ("not found" through any node).
  const { page: o } = await newPage(browser, A, { viewport: { width: 1280, height: 900 } });
  await o.goto(A);
  const secret = randomBytes(5000);
  await o.setInputFiles('#up-file', { name: 'secret.bin', mimeType: 'application/octet-stream', buffer: secret });
  await o.fill('#up-pw', PASSWORD);
  await o.selectOption('#up-expires', '3600');
  await o.check('#up-once');
  await o.click('#up-btn');
  await o.locator('#up-result').waitFor({ state: 'visible', timeout: WAIT });
  const meta = await text(o, '#up-result-meta');
  check(meta.includes('deleted everywhere at') && meta.includes('after the first download'), `the page says when it goes (${meta})`);
  const onceId = (await text(o, '#up-id')).trim();
  await b.fill('#down-id', onceId);
  await b.fill('#down-pw', PASSWORD);
  const [first] = await Promise.all([b.waitForEvent('download', { timeout: WAIT }), b.click('#down-btn')]);
  check((await readFile(await first.path())).equals(secret), 'a burn-after-reading file downloads once');
  let burnt = false;
  for (let i = 0; i < 20 && !burnt; i++) {
    await b.evaluate(() => { document.querySelector('#down-msg').textContent = ''; });
    await b.click('#down-btn');
    const said = await waitText(b, '#down-msg');
    burnt = said.includes('No file with this id');
    if (!burnt) await b.waitForTimeout(250);
  }
  check(burnt, 'and is not found after that');

  // 5c. Erasure coding from the page: "Keep as rs:2+1" on the three-node network stores
  // Reed-Solomon shards (the answer says so) and downloads back byte for byte; rs:4+2 needs
  // six nodes and says so.
  const { page: e } = await newPage(browser, A, { viewport: { width: 1280, height: 900 } });
  await e.goto(A);
  const striped = randomBytes(300_000);
  await e.setInputFiles('#up-file', { name: 'striped.bin', mimeType: 'application/octet-stream', buffer: striped });
  await e.fill('#up-pw', PASSWORD);
  await e.selectOption('#up-redundancy', 'rs:2+1');
  await e.click('#up-btn');
  await e.locator('#up-result').waitFor({ state: 'visible', timeout: WAIT });
  const kept = await text(e, '#up-result-meta');
  check(kept.includes('kept as rs:2+1'), `the page says how the file is kept (${kept})`);
  const stripedId = (await text(e, '#up-id')).trim();
  await b.fill('#down-id', stripedId);
  await b.fill('#down-pw', PASSWORD);
  const [shards] = await Promise.all([b.waitForEvent('download', { timeout: WAIT }), b.click('#down-btn')]);
  check((await readFile(await shards.path())).equals(striped), 'an rs:2+1 file downloads byte for byte');
  await e.setInputFiles('#up-file', { name: 'wide.bin', mimeType: 'application/octet-stream', buffer: randomBytes(1000) });
  await e.fill('#up-pw', PASSWORD);
  await e.selectOption('#up-redundancy', 'rs:4+2');
  await e.click('#up-btn');
  check((await waitText(e, '#up-msg.err')).includes('needs 6 live nodes'), 'too few nodes for rs:4+2 says so');
  await shot(e, 'too-few-nodes');

  // 5d. Audio plays in the page and seeks (through Range requests on the download ticket):
  // a 4 s WAV tone uploaded on A, opened on B, sought to 3 s.
  const rate = 8000, seconds = 4, samples = rate * seconds;
  const wav = Buffer.alloc(44 + 2 * samples);
  wav.write('RIFF', 0); wav.writeUInt32LE(36 + 2 * samples, 4); wav.write('WAVE', 8);
  wav.write('fmt ', 12); wav.writeUInt32LE(16, 16); wav.writeUInt16LE(1, 20); wav.writeUInt16LE(1, 22);
  wav.writeUInt32LE(rate, 24); wav.writeUInt32LE(2 * rate, 28); wav.writeUInt16LE(2, 32); wav.writeUInt16LE(16, 34);
  wav.write('data', 36); wav.writeUInt32LE(2 * samples, 40);
  for (let i = 0; i < samples; i++) wav.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * 440 * i / rate)), 44 + 2 * i);
  const { page: m } = await newPage(browser, A, { viewport: { width: 1280, height: 900 } });
  await m.goto(A);
  await m.setInputFiles('#up-file', { name: 'tone.wav', mimeType: 'audio/wav', buffer: wav });
  await m.fill('#up-pw', PASSWORD);
  await m.click('#up-btn');
  await m.locator('#up-result').waitFor({ state: 'visible', timeout: WAIT });
  const toneId = (await text(m, '#up-id')).trim();
  const ranges = [];
  b.on('request', (r) => { if (r.url().includes('/stream/') && r.headers().range) ranges.push(r.headers().range); });
  await b.fill('#down-id', toneId);
  await b.fill('#down-pw', PASSWORD);
  const [tone] = await Promise.all([b.waitForEvent('download', { timeout: WAIT }), b.click('#down-btn')]);
  check((await readFile(await tone.path())).equals(wav), 'an audio file downloads byte for byte');
  await b.locator('#player audio').waitFor({ state: 'attached', timeout: WAIT });
  await b.waitForFunction(() => document.querySelector('#player audio').readyState >= 1, null, { timeout: WAIT });
  const duration = await b.evaluate(() => document.querySelector('#player audio').duration);
  check(Math.abs(duration - seconds) < 0.1, `the page plays it: an audio player with its duration (${duration} s)`);
  const sought = await b.evaluate(() => new Promise((resolve, reject) => {
    const audio = document.querySelector('#player audio');
    audio.addEventListener('seeked', () => resolve(audio.currentTime), { once: true });
    audio.addEventListener('error', () => reject(new Error(`media error ${audio.error && audio.error.code}`)), { once: true });
    audio.currentTime = 3;
  }));
  check(Math.abs(sought - 3) < 0.1 && (await b.evaluate(() => document.querySelector('#player audio').error)) === null,
    `it seeks to ${sought} s without an error`);
  check(ranges.length > 0, `the player reads the Service Worker's stream with Range requests (${ranges.slice(0, 3).join(', ')})`);
  await shot(b, 'audio-player');

  // 6. A network without room: the upload fails with "full", not a broken connection.
  const { page: f } = await newPage(browser, FULL, { viewport: { width: 1280, height: 900 } });
  await f.goto(FULL);
  await f.fill('#up-pw', PASSWORD);
  await f.setInputFiles('#up-file', { name: 'too-big.bin', mimeType: 'application/octet-stream', buffer: randomBytes(BIG) });
  await f.click('#up-btn');
  check((await waitText(f, '#up-msg.err')).includes('network is full'), 'a full network says so');
  await shot(f, 'network-full');

  // 7. API token: when the API answers 401 token_required / bad_token, the page asks for a
  // token, keeps it for the tab and sends it on every call (the node here is open, so a route
  // in front of it plays a node configured with a token).
  const { context: ctxT, page: t } = await newPage(browser, A, { viewport: { width: 1280, height: 900 } });
  let unauthorized = 0;
  await ctxT.route('**/api/**', (route) => {
    const auth = route.request().headers().authorization;
    if (auth === `Bearer ${TOKEN}`) return route.continue();
    unauthorized += 1;
    return route.fulfill({
      status: 401,
      contentType: 'application/json',
      body: JSON.stringify(auth ? { error: 'bad_token', message: 'bad API token' }
        : { error: 'token_required', message: 'this node requires an API token' }),
    });
  });
  await t.goto(A);
  await t.locator('#token-box').waitFor({ state: 'visible', timeout: WAIT });
  check((await waitText(t, '#token-msg')).includes('requires an API token'), 'token_required reveals the token field');
  await t.fill('#token', 'wrong');
  await t.click('#token-save');
  await t.waitForFunction(() => document.querySelector('#token-msg').textContent.includes('refused'), null, { timeout: WAIT });
  check(true, 'a bad token is reported as refused');
  await t.fill('#token', TOKEN);
  await t.click('#token-save');
  await t.waitForFunction(() => document.querySelectorAll('#peers .badge.alive').length === 2, null, { timeout: WAIT });
  check(await t.evaluate(() => sessionStorage.getItem('voldisefs.apiToken')) === TOKEN, 'the token is kept in sessionStorage');
  const before = unauthorized;
  // Drag and drop a file, and upload it with the token (the XHR path).
  const dt = await t.evaluateHandle(() => {
    const d = new DataTransfer();
    d.items.add(new File(['dropped onto the page\n'], 'dropped.txt', { type: 'text/plain' }));
    return d;
  });
  await t.dispatchEvent('#drop', 'drop', { dataTransfer: dt });
  check((await text(t, '#drop-text')).includes('dropped.txt'), 'a dropped file is chosen');
  await t.fill('#up-pw', PASSWORD);
  await t.click('#up-btn');
  await t.locator('#up-result').waitFor({ state: 'visible', timeout: WAIT });
  check(/^[0-9a-f]{64}$/.test((await text(t, '#up-id')).trim()), 'the dropped file uploads with the token');
  await t.reload();
  await t.waitForFunction(() => document.querySelectorAll('#peers .badge.alive').length === 2, null, { timeout: WAIT });
  check(unauthorized === before, 'every call after saving the token carries it, across a reload');
  await shot(t, 'api-token');

  // 8. Phone-sized screen (in the dark scheme): nothing wider than the viewport, before and after long ids and errors.
  const { page: p } = await newPage(browser, A, {
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: 'dark',
  });
  await p.goto(A);
  await p.waitForFunction(() => document.querySelectorAll('#peers .badge').length === 2, null, { timeout: WAIT });
  check(await noHorizontalScroll(p), 'the phone layout has no horizontal scroll');
  await shot(p, 'phone');
  const photo = randomBytes(100_000);
  await p.setInputFiles('#up-file', { name: 'a photo with a rather long file name from a phone camera.jpg', mimeType: 'image/jpeg', buffer: photo });
  await p.fill('#up-pw', PASSWORD);
  await p.click('#up-btn');
  await p.locator('#up-result').waitFor({ state: 'visible', timeout: WAIT });
  // The whole flow on the phone: its share link opens on another phone, sealed and opened in
  // the browsers, and downloads the same bytes.
  const phoneLink = (await text(p, '#up-link')).trim();
  const { page: p2 } = await newPage(browser, A, {
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  await p2.goto(phoneLink);
  await shot(p2, 'phone-shared-link');
  const [onPhone] = await Promise.all([p2.waitForEvent('download', { timeout: WAIT }), p2.click('#down-btn')]);
  check((await readFile(await onPhone.path())).equals(photo), 'on a phone, a shared link downloads the same bytes');
  check(await noHorizontalScroll(p2), 'the phone layout has no horizontal scroll on a shared link');
  await shot(p2, 'phone-downloaded');
  await p.fill('#down-id', randomBytes(32).toString('hex'));
  await p.fill('#down-pw', PASSWORD);
  await p.click('#down-btn');
  await waitText(p, '#down-msg.err');
  check(await noHorizontalScroll(p), 'the phone layout has no horizontal scroll with an id and an error shown');
  await shot(p, 'phone-after-upload');

  console.log(`RESULT ${JSON.stringify(result)}`);
} catch (e) {
  // Show what each page looked like when it went wrong, then fail.
  for (const [i, page] of pages.entries()) {
    await page.screenshot({ path: join(SHOTS, `FAILED-page${i + 1}.png`), fullPage: true }).catch(() => {});
  }
  console.error(`FAIL - ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

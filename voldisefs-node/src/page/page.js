// The node's web page. It seals and opens files in this browser (client.js, in a Worker and
// the Service Worker sw.js) and hands the node sealed objects only: the password, file names,
// share-link keys and plaintext never leave the browser.
import { missingFeatures } from './client.js';
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'voldisefs.apiToken';
const ID_RE = /^[0-9a-f]{64}$/;

function fmtBytes(n) {
  if (!Number.isFinite(n)) return '?';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + u[i];
}
function say(el, text, kind) { el.textContent = text; el.className = 'msg ' + (text ? kind : ''); }
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }
function setBar(bar, pct, busy) {
  bar.classList.toggle('busy', !!busy);
  const p = Math.max(0, Math.min(100, pct || 0));
  bar.firstElementChild.style.width = p + '%';
  if (busy) bar.removeAttribute('aria-valuenow'); else bar.setAttribute('aria-valuenow', Math.round(p));
}

// --- API token (only when the node asks for one) ---
function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }
function authHeaders(h) { const t = token(); if (t) h['Authorization'] = 'Bearer ' + t; return h; }
function askToken(code) {
  $('token-box').hidden = false;
  say($('token-msg'), code === 'bad_token' ? 'The saved API token was refused. Enter the right one.'
    : 'This node requires an API token. Enter it to continue.', 'err');
  if (document.activeElement === document.body) $('token').focus();
}
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('token').value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  say($('token-msg'), t ? 'Token saved for this tab.' : 'Token cleared.', 'ok');
  refreshAll();
});
if (token()) { $('token-box').hidden = false; $('token').value = token(); }

// --- errors: map the API's stable codes to readable sentences ---
const MESSAGES = {
  wrong_password: 'Wrong password: this is not the password the file was uploaded with.',
  password_required: 'Enter the file\u2019s password.',
  not_found: 'No file with this id exists on the network. Check the id (it may also have expired or been deleted).',
  corrupt: 'The file failed its integrity check: it was damaged or tampered with.',
  kdf_too_expensive: 'This file asks for a key derivation costlier than this page allows: it was not sealed by a Voldisefs client.',
  too_few_nodes: '',
  full: 'The network is full: not enough nodes have room to store this file.',
  unavailable: 'The file is unavailable right now: too many nodes holding its chunks are unreachable. Try again later.',
  corrupt: 'The file failed its integrity check: it was damaged or tampered with.',
  token_required: 'This node requires an API token.',
  bad_token: 'The API token was refused.',
};
function explain(status, body) {
  let j = null;
  try { j = typeof body === 'string' ? JSON.parse(body) : body; } catch (_) { /* not JSON */ }
  const code = j && j.error;
  if (status === 401 && (code === 'token_required' || code === 'bad_token')) askToken(code);
  if (code && MESSAGES[code]) return MESSAGES[code];
  if (code === 'bad_request') return 'Invalid request: ' + (j.message || 'rejected by the node') + '.';
  if (status === 0) return 'Cannot reach the node. Is it running?';
  return 'The node answered ' + status + (j && j.message ? ': ' + j.message : '') + '.';
}
async function api(path, opts) {
  opts = opts || {};
  const res = await fetch(path, Object.assign({}, opts, { headers: authHeaders(Object.assign({}, opts.headers)) }));
  if (!res.ok) { const text = await res.text().catch(() => ''); throw new Error(explain(res.status, text)); }
  return res;
}

// --- password fields ---
for (const b of document.querySelectorAll('button.toggle')) {
  b.addEventListener('click', () => {
    const input = $(b.dataset.for); const show = input.type === 'password';
    input.type = show ? 'text' : 'password';
    b.textContent = show ? 'Hide' : 'Show';
    b.setAttribute('aria-pressed', String(show));
    b.setAttribute('aria-label', show ? 'Hide password' : 'Show password');
  });
}
function strength(pw) {
  if (!pw) return [0, 'Use a long passphrase: nobody can reset it for you.'];
  let pool = 0;
  if (/[a-z]/.test(pw)) pool += 26; if (/[A-Z]/.test(pw)) pool += 26;
  if (/[0-9]/.test(pw)) pool += 10; if (/[^a-zA-Z0-9]/.test(pw)) pool += 33;
  const distinct = new Set(pw).size;
  const bits = Math.min(pw.length, distinct * 2) * Math.log2(Math.max(pool, 2));
  if (pw.length < 8 || bits < 36) return [10 + bits / 2, 'Weak: easy to guess. Make it longer.'];
  if (bits < 60) return [40 + bits / 3, 'Fair: a few more words or characters would help.'];
  if (bits < 90) return [75, 'Strong.'];
  return [100, 'Very strong.'];
}
function updateStrength() {
  const [score, text] = strength($('up-pw').value);
  const m = $('pw-meter');
  m.style.width = Math.min(100, score) + '%';
  m.style.background = score < 40 ? 'var(--err)' : score < 75 ? 'var(--warn)' : 'var(--ok)';
  $('pw-hint').textContent = text;
}
$('up-pw').addEventListener('input', updateStrength);
$('gen').addEventListener('click', () => {
  const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789'; // 32 symbols, no look-alikes: 5 bits each
  const bytes = crypto.getRandomValues(new Uint8Array(25));
  const chars = Array.from(bytes, (b) => alphabet[b & 31]).join('');
  const pw = chars.match(/.{5}/g).join('-');
  const input = $('up-pw'); input.value = pw;
  if (input.type === 'password') document.querySelector('[data-for=up-pw]').click();
  updateStrength();
  $('pw-hint').textContent = 'Very strong (125 random bits). Write it down: it cannot be recovered.';
});

// --- upload: file picker, folder picker or drag and drop ---
// `chosen` lists {file, path}: one plain file goes up as a file, anything else as a collection
// (one password, one key derivation). The Worker seals and stores; this page only shows progress.
let chosen = [];
let chosenName = '';
function choose(items, name) {
  chosen = items || [];
  chosenName = name || '';
  $('drop-text').replaceChildren();
  if (!chosen.length) { $('drop-text').append(el('strong', null, 'Choose files'), ' or drop files or a folder here'); return; }
  const total = chosen.reduce((n, c) => n + c.file.size, 0);
  const label = chosen.length === 1 && !chosenName ? chosen[0].file.name : (chosenName ? chosenName + ': ' : '') + chosen.length + ' file' + (chosen.length === 1 ? '' : 's');
  $('drop-text').append(el('strong', null, label), ' \u00b7 ' + fmtBytes(total) + ' \u2014 click to change');
}
function plainFiles(list) { return Array.from(list, (file) => ({ file, path: file.name })); }
// The folder's own name when every path starts with it.
function commonFolder(items) {
  const first = (items[0] && items[0].path.split('/')[0]) || '';
  return items.length && items.every((c) => c.path.startsWith(first + '/')) ? first : '';
}
$('up-file').addEventListener('change', () => choose(plainFiles($('up-file').files)));
$('up-folder-btn').addEventListener('click', () => $('up-folder').click());
$('up-folder').addEventListener('change', () => {
  const items = Array.from($('up-folder').files, (file) => ({ file, path: file.webkitRelativePath || file.name }));
  choose(items, commonFolder(items));
});
// Walks a dropped folder (bounded by what the browser hands over) into {file, path} items.
async function walkEntry(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((ok, fail) => entry.file(ok, fail));
    out.push({ file, path: entry.fullPath.replace(/^\/+/, '') });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (!batch.length) break;
      for (const child of batch) await walkEntry(child, out);
    }
  }
}
const drop = $('drop');
for (const ev of ['dragenter', 'dragover']) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
drop.addEventListener('drop', async (e) => {
  e.preventDefault();
  const entries = Array.from(e.dataTransfer.items || [], (i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (entries.some((en) => en.isDirectory)) {
    const items = [];
    try { for (const en of entries) await walkEntry(en, items); }
    catch (_) { say($('up-msg'), 'The dropped folder could not be read.', 'err'); return; }
    choose(items, commonFolder(items));
  } else if (e.dataTransfer.files.length) choose(plainFiles(e.dataTransfer.files));
});
// A file dropped anywhere else must not make the browser navigate away.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

// --- what this browser can do: sealing needs WebCrypto (a secure context), downloads the Service Worker ---
const missing = missingFeatures();
let swReady = null;
function serviceWorker() {
  if (!swReady) {
    swReady = (async () => {
      if (!('serviceWorker' in navigator)) throw new Error('this browser offers no Service Worker, which streams downloads to disk');
      await navigator.serviceWorker.register('/sw.js', { type: 'module', scope: '/' });
      const reg = await navigator.serviceWorker.ready;
      if (!navigator.serviceWorker.controller) {
        await new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('the Service Worker did not take control of this page; reload it')), 10000);
          navigator.serviceWorker.addEventListener('controllerchange', () => { clearTimeout(t); resolve(); }, { once: true });
        });
      }
      return reg.active;
    })();
    swReady.catch(() => { swReady = null; });
  }
  return swReady;
}
if (missing.length) {
  say($('support-msg'), 'This page cannot encrypt or decrypt here: the browser withholds ' + missing.join(' and ') +
    '. Open the node over HTTPS or on localhost, or use the voldisefs command.', 'err');
  $('up-btn').disabled = true; $('down-btn').disabled = true;
} else {
  serviceWorker().catch((err) => say($('support-msg'), 'Downloads cannot stream to disk in this browser: ' + err.message +
    '. Use a current Chrome, Edge or Firefox (not a private window), or the voldisefs command.', 'err'));
}

/** Runs one operation in a fresh Worker (its memory, 64 MiB of Argon2id included, goes with it). */
function inWorker(message, onProgress) {
  return new Promise((resolve, reject) => {
    const w = new Worker('/assets/worker.js', { type: 'module' });
    w.onmessage = (e) => {
      const m = e.data;
      if (m.progress) { if (onProgress) onProgress(m.progress); return; }
      w.terminate();
      if (m.error) reject(Object.assign(new Error(m.error.message), m.error)); else resolve(m.result);
    };
    w.onerror = (e) => { w.terminate(); reject(new Error('the page\u2019s worker failed: ' + (e.message || 'unknown error'))); };
    w.postMessage(message);
  });
}
function explainError(err) {
  if (err.code === 'too_few_nodes' || err.code === 'client') return err.message.charAt(0).toUpperCase() + err.message.slice(1) + '.';
  if (err.code === 'unreachable') return explain(0);
  if (MESSAGES[err.code]) return MESSAGES[err.code];
  return explain(err.status || 0, { error: err.code, message: err.message });
}

// --- your uploads: kept in this browser (the node knows no names) ---
const UPLOADS_KEY = 'voldisefs.uploads';
const MAX_UPLOADS = 200;
function uploads() { try { return JSON.parse(localStorage.getItem(UPLOADS_KEY) || '[]'); } catch (_) { return []; } }
function remember(entry) {
  const list = uploads().filter((u) => u.id !== entry.id);
  list.unshift(entry);
  localStorage.setItem(UPLOADS_KEY, JSON.stringify(list.slice(0, MAX_UPLOADS)));
}

$('up').addEventListener('submit', async (e) => {
  e.preventDefault();
  const msg = $('up-msg'), pw = $('up-pw').value;
  if (!chosen.length) { say(msg, 'Choose a file (or several, or a folder) to upload first.', 'err'); return; }
  if (!pw) { say(msg, 'Enter a password: the file is encrypted with it.', 'err'); $('up-pw').focus(); return; }
  const items = chosen, name = chosenName, bar = $('up-bar'), text = $('up-prog-text'), btn = $('up-btn');
  const single = items.length === 1 && !name;
  const label = single ? items[0].file.name : (name || items.length + ' files');
  const once = $('up-once').checked;
  if (once && !single) { say(msg, 'Burn after reading works for single files: a collection\u2019s files are read one by one.', 'err'); return; }
  say(msg, '', ''); $('up-result').hidden = true; $('up-prog').hidden = false; btn.disabled = true;
  setBar(bar, 0, true); text.textContent = 'Deriving the key from your password\u2026';
  const started = performance.now();
  let dataStarted = 0;
  try {
    const r = await inWorker({
      op: 'upload', token: token(), items, single, name: label, password: pw, once,
      expires: Number($('up-expires').value) || 0, redundancy: $('up-redundancy').value,
    }, (p) => {
      if (p.phase !== 'data') return;
      if (!dataStarted) dataStarted = performance.now();
      setBar(bar, p.total ? 100 * p.done / p.total : 100);
      const secs = (performance.now() - dataStarted) / 1000;
      text.textContent = 'Encrypted and stored ' + fmtBytes(p.done) + ' of ' + fmtBytes(p.total) + (secs > 0.5 ? ' \u00b7 ' + fmtBytes(p.done / secs) + '/s' : '');
    });
    setBar(bar, 100); text.textContent = 'Done in ' + ((performance.now() - started) / 1000).toFixed(1) + ' s.';
    $('up-id').textContent = r.id; $('copy-msg').textContent = '';
    $('up-result-meta').textContent = single
      ? label + ', ' + fmtBytes(r.size) + ' in ' + r.chunks + ' chunk' + (r.chunks === 1 ? '' : 's')
      : 'the collection ' + label + ': ' + r.files + ' file' + (r.files === 1 ? '' : 's') + ', ' + fmtBytes(r.size);
    if (r.expires) $('up-result-meta').textContent += '; deleted everywhere at ' + new Date(r.expires * 1000).toLocaleString();
    if (r.once) $('up-result-meta').textContent += '; deleted after the first download';
    if (r.redundancy) $('up-result-meta').textContent += '; kept as ' + r.redundancy;
    $('up-result-kind').textContent = single ? 'File id' : 'Collection id (download it whole as a .tar archive)';
    $('up-link-box').hidden = false; $('copy-link-msg').textContent = '';
    $('up-link').textContent = location.origin + '/#id=' + r.id + '&key=' + r.readKey;
    $('up-result').hidden = false;
    remember({ id: r.id, name: label, size: r.size, collection: !single, files: r.files || 1, created: Math.floor(Date.now() / 1000), expires: r.expires || 0, once: r.once });
    refreshFiles();
  } catch (err) {
    $('up-prog').hidden = true;
    say(msg, 'Upload failed. ' + explainError(err), 'err');
  } finally { btn.disabled = false; }
});
async function copyText(text, node) {
  let ok = false;
  try { if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(text); ok = true; } } catch (_) { /* fall back */ }
  if (!ok) {
    const ta = el('textarea'); ta.value = text; ta.setAttribute('readonly', ''); ta.style.position = 'fixed'; ta.style.opacity = '0';
    document.body.append(ta); ta.select();
    try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
    ta.remove();
  }
  if (!ok) { const r = document.createRange(); r.selectNodeContents(node); getSelection().removeAllRanges(); getSelection().addRange(r); }
  return ok ? 'Copied.' : 'Selected: press Ctrl+C (or \u2318C) to copy.';
}
$('copy').addEventListener('click', async () => { $('copy-msg').textContent = await copyText($('up-id').textContent, $('up-id')); });
$('copy-link').addEventListener('click', async () => { $('copy-link-msg').textContent = await copyText($('up-link').textContent, $('up-link')); });

// --- a share link (#id=...&key=...): the key stays in this browser, never sent to a node ---
let shared = null;
// Read at load, and whenever a link is pasted into this tab's address bar (no reload then).
window.addEventListener('hashchange', readLink);
readLink();
function readLink() {
  const m = /^#id=([0-9a-fA-F]{64})&key=([0-9a-fA-F]{64})$/.exec(location.hash);
  if (m) {
    shared = { id: m[1].toLowerCase(), key: m[2].toLowerCase() };
    // Out of the address bar and the history: the key opens the file.
    history.replaceState(null, '', location.pathname + location.search);
    $('down-id').value = shared.id;
    $('down-pw-row').hidden = true; $('down-pw-label').hidden = true;
    $('shared-msg').hidden = false;
    $('shared-msg').textContent = 'A file was shared with you: press \u201cDownload and decrypt\u201d. No password needed.';
  } else if (location.hash.startsWith('#id=')) {
    history.replaceState(null, '', location.pathname + location.search);
    say($('down-msg'), 'This share link is damaged: it needs an id and a key of 64 hexadecimal characters each. Ask for the link again.', 'err');
  }
}
$('down-id').addEventListener('input', () => {
  // Another id: the link's key does not open it.
  const linked = shared && $('down-id').value.trim().toLowerCase() === shared.id;
  $('down-pw-row').hidden = !!linked; $('down-pw-label').hidden = !!linked; $('shared-msg').hidden = !linked;
});

// --- download: the Worker opens the record (Argon2id for a password), then the Service Worker
// streams the decrypted file to the browser's download manager (never held in this page) ---
// A download's hidden frame stays a minute after its stream ended: removed at once, it could
// cancel a small download before the browser's download manager has taken it over.
const frames = new Map();
function dropFrame(streamToken) {
  setTimeout(() => { const f = frames.get(streamToken); if (f) { f.remove(); frames.delete(streamToken); } }, 60000);
}
function randomToken() { return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(''); }
function offer(sw, details, onMessage) {
  return new Promise((resolve, reject) => {
    const channel = new MessageChannel();
    const t = setTimeout(() => reject(new Error('the Service Worker did not answer')), 10000);
    channel.port1.onmessage = (e) => {
      if (e.data.offered) { clearTimeout(t); resolve(); return; }
      onMessage(e.data);
    };
    sw.postMessage(Object.assign({ op: 'offer' }, details), [channel.port2]);
  });
}
$('down').addEventListener('submit', async (e) => {
  e.preventDefault();
  const msg = $('down-msg'), id = $('down-id').value.trim().toLowerCase(), pw = $('down-pw').value;
  if (!ID_RE.test(id)) { say(msg, 'A file id is 64 hexadecimal characters (0-9, a-f). Check that it was copied whole.', 'err'); return; }
  const viaLink = shared && shared.id === id;
  if (!viaLink && !pw) { say(msg, 'Enter the file\u2019s password.', 'err'); $('down-pw').focus(); return; }
  const bar = $('down-bar'), text = $('down-prog-text'), btn = $('down-btn');
  say(msg, '', ''); btn.disabled = true; $('down-prog').hidden = false; setBar(bar, 0, true);
  text.textContent = viaLink ? 'Opening the shared file\u2026' : 'Checking the password\u2026';
  $('player').replaceChildren();
  try {
    const sw = await serviceWorker();
    let f;
    try {
      f = await inWorker(viaLink ? { op: 'open', token: token(), id, readKey: shared.key } : { op: 'open', token: token(), id, password: pw });
    } catch (err) {
      if (viaLink && err.code === 'wrong_password') throw new Error('This share link does not open the file: it is damaged or incomplete. Ask for the link again.');
      throw err;
    }
    const streamToken = randomToken();
    const shown = f.collection ? f.name + '.tar' : f.name;
    await offer(sw, { token: streamToken, id, readKey: f.readKey, apiToken: token(), name: f.name }, (m) => {
      if (m.progress) {
        setBar(bar, m.progress.total ? 100 * m.progress.done / m.progress.total : 100);
        text.textContent = 'Decrypted ' + fmtBytes(m.progress.done) + ' of ' + fmtBytes(m.progress.total);
      } else if (m.done) {
        dropFrame(streamToken);
        setBar(bar, 100);
        text.textContent = 'Done: every chunk checked and decrypted in this browser.';
        if (m.done.burned) say(msg, 'Downloaded ' + shown + '. It was burn after reading: it is now deleted everywhere.', 'ok');
      } else if (m.error) {
        dropFrame(streamToken);
        $('down-prog').hidden = true;
        say(msg, 'Download failed. ' + explainError(m.error), 'err');
      }
    });
    // A navigation (not an <a download>, which Chromium sends past Service Workers) in a
    // hidden frame: the Service Worker answers it as an attachment, so the browser's download
    // manager takes the stream; the frame goes once the download is done or failed.
    const frame = el('iframe'); frame.hidden = true; frame.title = 'download';
    frame.src = '/stream/' + streamToken + '?download';
    document.body.append(frame);
    frames.set(streamToken, frame);
    setBar(bar, f.size ? 0 : 100, !f.size);
    text.textContent = 'Handed to your browser\u2019s downloads.';
    say(msg, 'Downloading ' + shown + (f.collection ? ' (all the collection\u2019s files, as one .tar archive)' : '') +
      ': see your browser\u2019s downloads. Every chunk is checked and decrypted in this browser' +
      (f.once ? '; burn after reading: it is deleted everywhere once the download completes.' : '.'), 'ok');
    // Audio and video play here too, seeking through Range requests the Service Worker answers.
    const media = /\.(mp4|m4v|webm|ogv|mov)$/i.test(f.name) ? 'video' : /\.(mp3|m4a|ogg|oga|opus|wav|flac)$/i.test(f.name) ? 'audio' : '';
    if (media && !f.collection && !f.once) {
      const player = el(media); player.controls = true; player.preload = 'metadata'; player.src = '/stream/' + streamToken;
      player.style.width = '100%'; player.style.marginTop = '.6rem';
      $('player').append(player);
    }
  } catch (err) {
    $('down-prog').hidden = true;
    say(msg, 'Download failed. ' + (err.code ? explainError(err) : err.message), 'err');
  } finally { btn.disabled = false; }
});

// --- your uploads and the network ---
function refreshFiles() {
  const list = $('files');
  const now = Date.now() / 1000;
  const files = uploads().filter((f) => !f.expires || f.expires > now);
  if (!files.length) { list.replaceChildren(el('li', 'empty', 'No uploads from this browser yet.')); return; }
  list.replaceChildren(...files.map((f) => {
    const li = el('li');
    const label = (f.name || f.id.slice(0, 12)) + (f.collection ? '/' : '');
    const what = el('span', 'grow');
    const id = el('span', 'mono hint', f.id); id.title = f.id;
    what.append(el('strong', 'fname', label), el('br'), id);
    const when = f.created ? new Date(f.created * 1000).toLocaleString() : '';
    const use = el('button', 'small', 'Download'); use.type = 'button';
    use.setAttribute('aria-label', 'Download ' + label);
    // Downloads at once when a password is typed, else asks for it first.
    use.addEventListener('click', () => {
      $('down-id').value = f.id;
      $('down-id').dispatchEvent(new Event('input'));
      if ($('down-pw').value) { $('down').requestSubmit(); return; }
      say($('down-msg'), 'Enter the password of ' + label + ', then press Enter or \u201cDownload and decrypt\u201d.', 'info');
      $('down-pw').focus();
    });
    const parts = f.collection ? f.files + ' file' + (f.files === 1 ? '' : 's') : (f.once ? 'burns after reading' : '');
    li.append(what, el('span', 'meta', fmtBytes(f.size) + (parts ? ' \u00b7 ' + parts : '') + (when ? ' \u00b7 ' + when : '')), use);
    return li;
  }));
}
function storeBar(bar, s) {
  const pct = s.capacity ? 100 * s.bytes / s.capacity : 0;
  setBar(bar, pct); bar.classList.toggle('high', pct >= 75 && pct < 95); bar.classList.toggle('full', pct >= 95);
  return fmtBytes(s.bytes) + ' of ' + fmtBytes(s.capacity) + ' (' + pct.toFixed(pct < 10 ? 1 : 0) + '%)';
}
async function refreshNetwork() {
  try {
    const n = await (await api('/api/v1/network')).json();
    $('me-id').textContent = n.node.id; $('me-url').textContent = location.origin; $('me-addr').textContent = n.node.addr;
    const peers = n.peers || [];
    $('st-peers').textContent = peers.filter((p) => p.state === 'alive').length + ' / ' + peers.length;
    $('st-chunks').textContent = n.store ? n.store.chunks : '–';
    $('st-backlog').textContent = n.repair ? n.repair.backlog : '–';
    $('st-pushed').textContent = n.repair ? n.repair.pushed : '–';
    if (n.store) $('store-text').textContent = 'This node stores ' + storeBar($('store-bar'), n.store);
    if (!peers.length) $('peers').replaceChildren(el('li', 'empty', 'No peers yet: this node is alone.'));
    else $('peers').replaceChildren(...peers.map((p) => {
      const li = el('li');
      const id = el('span', 'grow mono', p.id); id.title = p.id;
      li.append(el('span', 'badge ' + p.state, p.state), id, el('span', 'meta mono', p.addr));
      if (typeof p.stored_bytes === 'number') li.append(el('span', 'meta', 'stores ' + fmtBytes(p.stored_bytes)));
      if (p.store && p.store.capacity) {
        const wrap = el('div', 'peerbar'), bar = el('div', 'bar'); bar.append(el('div'));
        bar.setAttribute('role', 'progressbar'); bar.setAttribute('aria-label', 'Store of peer ' + p.id);
        const t = el('div', 'hint'); t.textContent = storeBar(bar, p.store);
        wrap.append(bar, t); li.append(wrap);
      }
      return li;
    }));
    say($('net-msg'), '', '');
  } catch (err) { say($('net-msg'), err instanceof TypeError ? explain(0) : err.message, 'err'); }
}
function refreshAll() { refreshFiles(); refreshNetwork(); }
$('files-refresh').addEventListener('click', refreshFiles);
$('net-refresh').addEventListener('click', refreshNetwork);
refreshAll();
setInterval(() => { if (!document.hidden) refreshNetwork(); }, 5000);


// The page's Worker: what takes CPU time runs here, so the page stays responsive and shows
// progress. It derives password keys (Argon2id), seals and uploads files and collections, and
// opens records for downloads (client.js). Messages in: {op: 'upload' | 'open', ...};
// messages out: {progress: {phase, done, total}}, then {result} or {error: {code, status, message}}.

import { Api, deriveKey, load, openFile, sealCollection, sealFile } from './client.js';

const describe = (err) => ({
  code: (err && err.code) || 'client',
  status: (err && err.status) || 0,
  message: String((err && err.message) || err),
});

async function upload(m) {
  const api = new Api(m.token);
  await load();
  const info = await api.info();
  const now = Math.floor(Date.now() / 1000);
  // Expiry: the chosen one, else the node's default; never past the node's maximum.
  let expires = m.expires ? now + m.expires : info.default_expiry ? now + info.default_expiry : 0;
  if (info.max_expiry && (!expires || expires > now + info.max_expiry)) expires = now + info.max_expiry;
  const redundancy = m.redundancy || info.redundancy;
  const rs = /^rs:(\d+)\+(\d+)$/.exec(redundancy);
  if (rs && Number(rs[1]) + Number(rs[2]) > info.live_nodes) {
    const err = new Error(`keeping a file as ${redundancy} needs ${Number(rs[1]) + Number(rs[2])} live nodes; this network has ${info.live_nodes}`);
    err.code = 'too_few_nodes';
    throw err;
  }
  const total = m.items.reduce((n, i) => n + i.file.size, 0);
  postMessage({ progress: { phase: 'key', done: 0, total } });
  const key = await deriveKey(m.password);
  let done = 0;
  const progress = (n) => { done += n; postMessage({ progress: { phase: 'data', done, total } }); };
  const opts = { chunkSize: info.chunk_size, expires, once: m.once, redundancy, name: m.name, created: now };
  try {
    const stored = m.single
      ? await sealFile(new Api(m.token), key, m.items[0].file, opts, progress)
      : await sealCollection(api, key, m.items, opts, progress);
    return Object.assign(stored, { expires, redundancy, once: !!m.once, name: m.name, collection: !m.single });
  } finally {
    key.free();
  }
}

async function open(m) {
  const api = new Api(m.token);
  const file = await openFile(api, m.id, m.password != null ? { password: m.password } : { readKey: m.readKey });
  try {
    return {
      name: file.name(),
      size: file.size(),
      collection: file.is_collection(),
      once: file.once(),
      expires: file.expires(),
      readKey: file.read_key(),
    };
  } finally {
    file.free();
  }
}

onmessage = async (e) => {
  const m = e.data;
  try {
    const result = m.op === 'upload' ? await upload(m) : await open(m);
    postMessage({ result });
  } catch (err) {
    postMessage({ error: describe(err) });
  }
};

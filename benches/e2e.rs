//! End-to-end benchmark: a real local network of node *processes*, driven over HTTP.
//!
//! The program re-executes itself (`VOLDISEFS_E2E_NODE=1`) to run each node in its own OS
//! process on `127.0.0.1` (OS-assigned ports, default Argon2id parameters), so each node's
//! memory can be read from `/proc/<pid>/status`. For every scenario (3 nodes and 5 nodes, 3
//! replicas) and file size it:
//!
//! 1. PUTs a file through node 0, the body generated on the fly (slices of one random block,
//!    never the whole file) and hashed (BLAKE3; `--verify`) while it is sent;
//! 2. GETs it through node 0 and through node 1, streaming, hashing and comparing;
//! 3. deletes it again, so the next size starts with empty stores.
//!
//! It prints throughput (MB = 10^6 bytes; each operation includes its Argon2id KDF, 0.1-0.3 s),
//! the time to first byte of each GET, every node's peak RSS (VmHWM, reset per size through
//! `/proc/<pid>/clear_refs`), how much the gateway's RSS grew during each GET, with and without
//! the KDF's work memory (target: < 128 MiB for a 1 GiB file), and the CPU time every process
//! spent per operation. The client shares the CPU with the nodes: `--verify bytes` checks
//! downloads byte by byte against the generator instead of hashing both ways, which leaves
//! more of the machine to the nodes.
//!
//! ```sh
//! cargo bench --bench e2e                          # 3 and 5 nodes, 1 MiB .. 1 GiB
//! cargo bench --bench e2e -- --quick               # sizes 1 MiB and 256 MiB only
//! cargo bench --bench e2e -- --scenario 3 --sizes 16M,1G --verify bytes
//! cargo bench --bench e2e -- --sizes 256M --repeat 3   # CPU per GiB by role, best of 3
//! ```
//!
//! Last, it prints the CPU each role spends per GiB (gateway put and get, receiving and
//! serving peers) next to what the role cannot avoid, measured in the same run: AES-256-GCM
//! and the content-id hash (BLAKE3 since format version 4) on one core, and the kernel's cost
//! of loopback TCP and of fresh memory for what a role stores (issue 15). The end-to-end rates are set against one core of AES-256-GCM +
//! SHA-256, the reference issue 15 fixed (what `openssl speed` gives for the old format's
//! primitives).
//! Without `--bench` (as `cargo test --benches` runs it) it does a one-size smoke run.
//! Linux only (it reads `/proc`).
//!
//! Its node processes zero every heap block they free, like the `voldisefs` binary; build with
//! `RUSTFLAGS="--cfg voldisefs_no_wipe"` to measure them without (the cost of the wiping).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The `voldisefs` binary's allocator: every heap block is zeroed before it is freed.
#[cfg(not(voldisefs_no_wipe))]
#[global_allocator]
static ALLOC: zeroizing_alloc::ZeroAlloc<tikv_jemallocator::Jemalloc> =
    zeroizing_alloc::ZeroAlloc(tikv_jemallocator::Jemalloc);

mod support;

use bytes::Bytes;
use futures_util::StreamExt;
use ring::digest::{Context, SHA256};
use serde_json::Value;
use voldisefs::node::{FILENAME_HEADER, Node, NodeConfig, PASSWORD_HEADER};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Set (to `1`) in the environment of a node child process.
const NODE_ENV: &str = "VOLDISEFS_E2E_NODE";
/// First word of the line a node child prints once it serves.
const READY: &str = "VOLDISEFS_E2E_READY";
/// Environment variable carrying the network key to node children (`--keyed`).
const KEY_ENV: &str = "VOLDISEFS_E2E_NETWORK_KEY";
/// The network key of this run, when `--keyed` was given.
static NETWORK_KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
const PASSWORD: &str = "e2e benchmark password";
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Store capacity of every node: room for a 1 GiB file on every node, and then some.
const CAPACITY: u64 = 4 * GIB;
const REPLICAS: usize = 3;
/// Upload body pieces.
const PIECE: usize = 256 * 1024;
/// Gateway memory growth allowed during a 1 GiB GET.
const GROWTH_TARGET: u64 = 128 * MIB;

fn main() {
    let result = if std::env::var_os(NODE_ENV).is_some() {
        node_child()
    } else {
        run_benchmark()
    };
    if let Err(e) = result {
        eprintln!("e2e: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Child: one node.

/// Runs one node with `--listen`, `--http`, `--replicas`, `--capacity` and `--bootstrap` from
/// the command line, prints its addresses, and serves until stdin closes.
fn node_child() -> Result<(), Error> {
    let mut config = NodeConfig::ephemeral();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => config.listen = value.parse()?,
            "--http" => config.http = Some(value.parse()?),
            "--bootstrap" => config.bootstrap.push(value.parse()?),
            "--replicas" => config.replicas = value.parse()?,
            "--capacity" => config.capacity = value.parse()?,
            other => return Err(format!("node child: unknown option {other}").into()),
        }
    }
    if let Ok(key) = std::env::var(KEY_ENV) {
        config.net.network_key = Some(voldisefs::net::NetworkKey::from_hex(&key)?);
    }
    // The runtime the `voldisefs` binary runs nodes on (its workers wipe their stacks when
    // idle), so what is measured is what users run.
    let runtime = voldisefs::node::runtime_builder().build()?;
    runtime.block_on(async move {
        let node = Node::start(config).await?;
        let http = node.http_addr().ok_or("node has no HTTP API")?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY} {} {http}", node.peer_addr())?;
        out.flush()?;
        drop(out);
        // Serve until the parent closes our stdin (or dies, which closes it too).
        let _ = tokio::task::spawn_blocking(|| {
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
        })
        .await;
        node.shutdown().await;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Parent: the node processes.

/// One node child process.
struct NodeProc {
    child: Child,
    pid: u32,
    peer: SocketAddr,
    url: String,
}

/// The node processes of one scenario; dropping it stops them all (killing any that linger).
struct LocalNetwork {
    nodes: Vec<NodeProc>,
}

impl Drop for LocalNetwork {
    fn drop(&mut self) {
        // Closing stdin asks for a graceful shutdown; whoever is still there after that is killed.
        support::stop_children(
            self.nodes.iter_mut().map(|n| &mut n.child),
            Duration::from_secs(5),
        );
    }
}

impl LocalNetwork {
    /// Starts `count` node processes, all joining through the first, and waits until every
    /// node sees every other one as alive.
    async fn start(count: usize, client: &reqwest::Client) -> Result<LocalNetwork, Error> {
        let mut network = LocalNetwork { nodes: Vec::new() };
        for _ in 0..count {
            let bootstrap = network.nodes.first().map(|n| n.peer);
            network.spawn(bootstrap)?;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &network.nodes {
            loop {
                let status = get_json(client, &format!("{}/api/v1/network", node.url)).await?;
                let alive = status["peers"]
                    .as_array()
                    .map_or(0, |p| p.iter().filter(|p| p["state"] == "alive").count());
                if alive + 1 == count {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "node {} sees {alive} live peers, not {}",
                        node.url,
                        count - 1
                    )
                    .into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(network)
    }

    fn spawn(&mut self, bootstrap: Option<SocketAddr>) -> Result<(), Error> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env(NODE_ENV, "1")
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--replicas", &REPLICAS.to_string()])
            .args(["--capacity", &CAPACITY.to_string()]);
        if let Some(seed) = bootstrap {
            command.args(["--bootstrap", &seed.to_string()]);
        }
        if let Some(key) = NETWORK_KEY.get() {
            command.env(KEY_ENV, key);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id();
        let stdout = child.stdout.take();
        // Owned by `self` from here on, so it is stopped on every exit path.
        self.nodes.push(NodeProc {
            child,
            pid,
            peer: SocketAddr::from(([127, 0, 0, 1], 0)),
            url: String::new(),
        });
        let stdout = stdout.ok_or("node child has no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(format!("node child {pid} exited before it served").into()),
            Err(_) => return Err(format!("node child {pid} did not start within 30 s").into()),
        };
        let mut words = line.split_whitespace();
        let (Some(READY), Some(peer), Some(http)) = (words.next(), words.next(), words.next())
        else {
            return Err(format!("node child {pid} printed {line:?}").into());
        };
        if let Some(node) = self.nodes.last_mut() {
            node.peer = peer.parse()?;
            node.url = format!("http://{http}");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings.

/// A `kB` field (`VmRSS`, `VmHWM`) of `/proc/<pid>/status`, in bytes.
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Resets the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0).
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU seconds of every node and of this process, to attribute an operation's work.
#[derive(Clone)]
struct CpuSnapshot {
    nodes: Vec<f64>,
    client: f64,
}

impl CpuSnapshot {
    fn take(network: &LocalNetwork) -> Self {
        Self {
            nodes: network
                .nodes
                .iter()
                .map(|n| support::cpu_seconds(Some(n.pid)))
                .collect(),
            client: support::cpu_seconds(None),
        }
    }

    /// CPU used since `self`: (the gateway's, the other nodes' together, this process's).
    fn since(&self, network: &LocalNetwork, gateway: usize) -> (f64, f64, f64) {
        let now = Self::take(network);
        let mut others = 0.0;
        let mut gw = 0.0;
        for (i, (a, b)) in self.nodes.iter().zip(&now.nodes).enumerate() {
            if i == gateway {
                gw = b - a;
            } else {
                others += b - a;
            }
        }
        (gw, others, now.client - self.client)
    }
}

/// Samples a process's VmRSS every 50 ms until dropped; keeps the maximum seen.
struct RssPoller {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPoller {
    fn start(pid: u32) -> Self {
        let max = Arc::new(AtomicU64::new(proc_status(pid, "VmRSS").unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (max, stop) = (max.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = proc_status(pid, "VmRSS") {
                        max.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Self {
            max,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop_thread();
        self.max.load(Ordering::Relaxed)
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RssPoller {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Each node's peak RSS over a period, folded from VmHWM readings around its resets.
struct Peaks {
    peak: Vec<u64>,
    resettable: bool,
}

impl Peaks {
    /// Starts a period: every node's peak is reset to its current RSS.
    fn start(network: &LocalNetwork) -> Self {
        let mut resettable = true;
        let peak = network
            .nodes
            .iter()
            .map(|n| {
                resettable &= reset_peak(n.pid);
                proc_status(n.pid, "VmRSS").unwrap_or(0)
            })
            .collect();
        Self { peak, resettable }
    }

    /// Folds node `i`'s VmHWM (and an extra sample) into its peak.
    fn observe(&mut self, network: &LocalNetwork, i: usize, extra: u64) {
        let hwm = proc_status(network.nodes[i].pid, "VmHWM").unwrap_or(0);
        self.peak[i] = self.peak[i].max(hwm).max(extra);
    }

    fn observe_all(&mut self, network: &LocalNetwork) {
        for i in 0..network.nodes.len() {
            self.observe(network, i, 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: transfers.

/// A streaming upload body: `size` pseudo-random bytes cut from a shared random block (no
/// per-byte generation work, nothing allocated per piece), hashed as they are handed out.
fn upload_body(
    size: u64,
    block: Bytes,
    verify: Verify,
    digest: Arc<Mutex<Option<Vec<u8>>>>,
) -> reqwest::Body {
    struct State {
        block: Bytes,
        at: usize,
        left: u64,
        hash: Option<ClientHash>,
        digest: Arc<Mutex<Option<Vec<u8>>>>,
    }
    let state = State {
        block,
        at: 0,
        left: size,
        hash: ClientHash::new(verify),
        digest,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if s.left == 0 {
            if let Some(hash) = s.hash.take() {
                *s.digest.lock().unwrap_or_else(PoisonError::into_inner) = Some(hash.finish());
            }
            return None;
        }
        if s.at == s.block.len() {
            s.at = 0;
        }
        let n = PIECE
            .min(s.block.len() - s.at)
            .min(usize::try_from(s.left).unwrap_or(PIECE));
        let piece = s.block.slice(s.at..s.at + n);
        s.at += n;
        s.left -= n as u64;
        if let Some(hash) = s.hash.as_mut() {
            hash.update(&piece);
        }
        Some((Ok::<Bytes, std::io::Error>(piece), s))
    });
    reqwest::Body::wrap_stream(stream)
}

/// A random block whose length is no multiple of the chunk size, so chunks differ.
fn random_block() -> Bytes {
    let len = 4 * MIB as usize + 4093;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, Error> {
    Ok(client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// A file the benchmark uploaded.
struct Uploaded {
    id: String,
    size: u64,
    /// How downloads of it are checked.
    verify: Verify,
    /// The client's hash of its bytes (none with [`Verify::Bytes`]).
    digest: Option<Vec<u8>>,
    /// How long the PUT took.
    elapsed: Duration,
}

/// PUTs `size` generated bytes through `node`.
async fn put(
    client: &reqwest::Client,
    node: &NodeProc,
    size: u64,
    block: &Bytes,
    verify: Verify,
) -> Result<Uploaded, Error> {
    let digest = Arc::new(Mutex::new(None));
    let started = Instant::now();
    let response = client
        .post(format!("{}/api/v1/files", node.url))
        .header(PASSWORD_HEADER, PASSWORD)
        .header(FILENAME_HEADER, format!("e2e-{size}.bin"))
        .body(upload_body(size, block.clone(), verify, digest.clone()))
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    let elapsed = started.elapsed();
    if status != reqwest::StatusCode::CREATED {
        return Err(format!("PUT of {size} bytes answered {status}: {answer}").into());
    }
    if answer["size"].as_u64() != Some(size) {
        return Err(format!("PUT of {size} bytes stored {}", answer["size"]).into());
    }
    let id = answer["id"]
        .as_str()
        .ok_or("PUT answer has no id")?
        .to_string();
    let digest = digest.lock().unwrap_or_else(PoisonError::into_inner).take();
    if verify != Verify::Bytes && digest.is_none() {
        return Err("upload body was not read to its end".into());
    }
    Ok(Uploaded {
        id,
        size,
        verify,
        digest,
        elapsed,
    })
}

/// What one GET measured.
struct GetResult {
    elapsed: Duration,
    first_byte: Duration,
    /// Gateway RSS growth (peak during the GET minus RSS before it).
    growth: u64,
    /// The same once the body streams (after the KDF), if the peak could be reset.
    stream_growth: Option<u64>,
    /// Gateway store bytes during the GET.
    store: u64,
}

/// GETs `file` through node `g`, streaming and checking it (against its hash, else byte by
/// byte against `block`), and watches the gateway's memory.
async fn get(
    client: &reqwest::Client,
    network: &LocalNetwork,
    peaks: &mut Peaks,
    g: usize,
    file: &Uploaded,
    block: &Bytes,
) -> Result<GetResult, Error> {
    let (id, size, expected) = (&file.id, file.size, file.digest.as_ref());
    let node = &network.nodes[g];
    let store = get_json(client, &format!("{}/api/v1/network", node.url)).await?["store"]["bytes"]
        .as_u64()
        .unwrap_or(0);
    peaks.observe(network, g, 0);
    let reset = reset_peak(node.pid);
    let before = proc_status(node.pid, "VmRSS").unwrap_or(0);
    let poller = RssPoller::start(node.pid);

    let started = Instant::now();
    let response = client
        .get(format!("{}/api/v1/files/{id}", node.url))
        .header(PASSWORD_HEADER, PASSWORD)
        .send()
        .await?;
    let first_byte = started.elapsed();
    // The headers come once the record is opened: the peak so far is the KDF's work memory
    // (Argon2id, 64 MiB by default). Restart the peak for the streaming part.
    let kdf_peak = proc_status(node.pid, "VmHWM").unwrap_or(0);
    let stream_reset = reset && reset_peak(node.pid);
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(format!("GET through node {g} answered {status}: {text}").into());
    }
    let mut hash = expected.and_then(|_| ClientHash::new(file.verify));
    let mut same = true;
    let mut got = 0u64;
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece?;
        match hash.as_mut() {
            Some(hash) => hash.update(&piece),
            None => same &= matches_block(block, got, &piece),
        }
        got += piece.len() as u64;
    }
    let elapsed = started.elapsed();

    let polled = poller.finish();
    let stream_peak = proc_status(node.pid, "VmHWM").unwrap_or(0);
    let peak = if reset {
        kdf_peak.max(stream_peak).max(polled)
    } else {
        polled
    };
    peaks.observe(network, g, peak);
    if let (Some(hash), Some(expected)) = (hash, expected) {
        same = hash.finish() == *expected;
    }
    if got != size || !same {
        return Err(
            format!("GET through node {g}: {got} bytes that differ from the upload").into(),
        );
    }
    Ok(GetResult {
        elapsed,
        first_byte,
        growth: peak.saturating_sub(before),
        stream_growth: stream_reset.then(|| stream_peak.saturating_sub(before)),
        store,
    })
}

/// Whether `piece`, found at `offset` in the file, is what [`upload_body`] sent there.
fn matches_block(block: &Bytes, offset: u64, mut piece: &[u8]) -> bool {
    let mut at = usize::try_from(offset % block.len() as u64).unwrap_or(0);
    while !piece.is_empty() {
        let n = piece.len().min(block.len() - at);
        if piece[..n] != block[at..at + n] {
            return false;
        }
        piece = &piece[n..];
        at = 0;
    }
    true
}

/// Peer bytes `(in, out)` node `node` has moved so far (its `/metrics`).
async fn peer_bytes(client: &reqwest::Client, node: &NodeProc) -> Result<(u64, u64), Error> {
    let text = client
        .get(format!("{}/metrics", node.url))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let read = |direction: &str| {
        let prefix = format!("voldisefs_peer_traffic_bytes_total{{direction=\"{direction}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    Ok((read("in"), read("out")))
}

/// What the data path cannot avoid, measured in this process on one core, in CPU seconds per
/// GiB: AES-256-GCM sealing of 16 KiB blocks (as `openssl speed` measures it), the content id
/// of 1 MiB chunks as the nodes compute it ([`voldisefs::crypto::content_id`], BLAKE3), one
/// Argon2id run with the nodes' default parameters (seconds, not per GiB), and the kernel's
/// cost of moving a GiB through a loopback TCP connection (sender and receiver together, 1 MiB
/// writes and reads): what every byte a node sends or receives costs it. SHA-256 of 16 KiB
/// blocks too: issue 15's reference rate, and the id hash of format versions up to 3. And
/// what the kernel charges to put a GiB into RAM the process has not touched before (page
/// faults, zeroed pages), beyond writing it into memory already touched: what every byte a
/// node stores costs it, in a store that lives in RAM.
struct Primitives {
    aes: f64,
    id: f64,
    sha: f64,
    kdf: f64,
    tcp: f64,
    fresh: f64,
}

impl Primitives {
    fn measure() -> Result<Self, Error> {
        use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        const ROUNDS: usize = 64 * 1024; // 1 GiB of 16 KiB blocks
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &[7; 32]).map_err(|_| "AES key refused")?,
        );
        let mut block = vec![0x5au8; 16 * 1024];
        let started = support::cpu_seconds(None);
        for i in 0..ROUNDS {
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    &mut block,
                )
                .map_err(|_| "AES-GCM seal failed")?;
            let _ = std::hint::black_box(tag);
        }
        let aes = support::cpu_seconds(None) - started;
        let started = support::cpu_seconds(None);
        for _ in 0..ROUNDS {
            std::hint::black_box(ring::digest::digest(&SHA256, &block));
        }
        let sha = support::cpu_seconds(None) - started;
        let chunk = vec![0x5au8; MIB as usize];
        let started = support::cpu_seconds(None);
        for _ in 0..(GIB / MIB) {
            std::hint::black_box(voldisefs::crypto::content_id(&chunk));
        }
        let id = support::cpu_seconds(None) - started;
        let started = support::cpu_seconds(None);
        let password = voldisefs::crypto::Password::new("e2e kdf");
        let params = NodeConfig::default().kdf;
        std::hint::black_box(voldisefs::crypto::PasswordKey::derive(&password, params)?);
        let kdf = support::cpu_seconds(None) - started;
        let tcp = Self::tcp()?;
        let fresh = Self::fresh_memory(&chunk);
        Ok(Self {
            aes,
            id,
            sha,
            kdf,
            tcp,
            fresh,
        })
    }

    /// CPU seconds to write 1 GiB of `chunk`-sized buffers into fresh memory, minus the same
    /// writes into the same buffers once touched.
    fn fresh_memory(chunk: &[u8]) -> f64 {
        let count = (GIB / chunk.len() as u64) as usize;
        let started = support::cpu_seconds(None);
        let mut held: Vec<Vec<u8>> = (0..count).map(|_| chunk.to_vec()).collect();
        let fresh = support::cpu_seconds(None) - started;
        let started = support::cpu_seconds(None);
        for buf in &mut held {
            buf.copy_from_slice(chunk);
        }
        std::hint::black_box(&held);
        let warm = support::cpu_seconds(None) - started;
        (fresh - warm).max(0.0)
    }

    /// CPU seconds (both ends) to move 1 GiB through a loopback TCP connection.
    fn tcp() -> Result<f64, Error> {
        use std::io::Read as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mut sender = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (mut receiver, _) = listener.accept()?;
        let started = support::cpu_seconds(None);
        let reader = std::thread::spawn(move || -> std::io::Result<u64> {
            let mut buf = vec![0u8; MIB as usize];
            let mut total = 0u64;
            loop {
                match receiver.read(&mut buf)? {
                    0 => return Ok(total),
                    n => total += n as u64,
                }
            }
        });
        let block = vec![0x5au8; MIB as usize];
        for _ in 0..(GIB / MIB) {
            sender.write_all(&block)?;
        }
        drop(sender);
        let received = reader.join().map_err(|_| "the TCP reader panicked")??;
        if received != GIB {
            return Err(format!("loopback TCP moved {received} bytes, not 1 GiB").into());
        }
        Ok(support::cpu_seconds(None) - started)
    }
}

async fn delete(client: &reqwest::Client, node: &NodeProc, id: &str) -> Result<(), Error> {
    client
        .delete(format!("{}/api/v1/files/{id}", node.url))
        .header(PASSWORD_HEADER, PASSWORD)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parent: scenarios and report.

/// How a download is checked against its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// BLAKE3 of the upload (computed while sending) against BLAKE3 of the download (the
    /// default: the client shares the two cores with the nodes, and its check is not the
    /// system's work; BLAKE3 costs it a fifth of SHA-256).
    Blake3,
    /// The same with SHA-256 (this bench's default before format version 4).
    Sha256,
    /// Byte by byte against the generator: cheaper still for the client.
    Bytes,
}

/// The client's running hash of an upload or a download.
enum ClientHash {
    Blake3(Box<blake3::Hasher>),
    Sha256(Box<Context>),
}

impl ClientHash {
    fn new(verify: Verify) -> Option<Self> {
        match verify {
            Verify::Blake3 => Some(Self::Blake3(Box::default())),
            Verify::Sha256 => Some(Self::Sha256(Box::new(Context::new(&SHA256)))),
            Verify::Bytes => None,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Blake3(h) => {
                h.update(bytes);
            }
            Self::Sha256(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Blake3(h) => h.finalize().as_bytes().to_vec(),
            Self::Sha256(h) => h.finish().as_ref().to_vec(),
        }
    }
}

/// What to run.
struct Plan {
    scenarios: Vec<usize>,
    sizes: Vec<u64>,
    verify: Verify,
    /// Runs of every size (the CPU-per-role table keeps the best of them).
    repeat: usize,
}

fn parse_size(text: &str) -> Result<u64, Error> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let factor = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => MIB,
        "G" => GIB,
        _ => return Err(format!("bad size {text:?} (use e.g. 1M, 256M, 1G)").into()),
    };
    Ok(digits.parse::<u64>()? * factor)
}

fn parse_plan() -> Result<Plan, Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let mut plan = Plan {
        scenarios: vec![3, 5],
        sizes: vec![MIB, 16 * MIB, 256 * MIB, GIB],
        verify: Verify::Blake3,
        repeat: 1,
    };
    if !bench {
        println!("e2e: no --bench argument (cargo test): smoke run, 3 nodes, 1 MiB");
        plan.scenarios = vec![3];
        plan.sizes = vec![MIB];
    }
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--quick" => plan.sizes = vec![MIB, 256 * MIB],
            "--keyed" => {
                let key = voldisefs::net::NetworkKey::generate()?;
                let _ = NETWORK_KEY.set(key.to_hex().to_string());
                println!("e2e: keyed mode (Noise-encrypted peer links)");
            }
            "--sizes" => {
                let list = it.next().ok_or("--sizes needs a list, e.g. 1M,256M")?;
                plan.sizes = list.split(',').map(parse_size).collect::<Result<_, _>>()?;
            }
            "--scenario" => {
                let nodes = it.next().ok_or("--scenario needs a node count (3 or 5)")?;
                let nodes: usize = nodes.parse()?;
                if nodes < 2 {
                    return Err("--scenario needs at least 2 nodes".into());
                }
                plan.scenarios = vec![nodes];
            }
            "--repeat" => {
                let n = it.next().ok_or("--repeat needs a count")?;
                plan.repeat = n.parse::<usize>()?.max(1);
            }
            "--verify" => {
                plan.verify = match it.next().map(String::as_str) {
                    Some("blake3") => Verify::Blake3,
                    Some("sha256") => Verify::Sha256,
                    Some("bytes") => Verify::Bytes,
                    _ => return Err("--verify takes blake3, sha256 or bytes".into()),
                };
            }
            "-h" | "--help" => {
                println!(
                    "usage: e2e [--quick] [--keyed] [--sizes 1M,16M,256M,1G] [--scenario N] [--repeat N] [--verify blake3|sha256|bytes]"
                );
                std::process::exit(0);
            }
            // Filters and flags cargo may pass to every bench binary.
            _ => {}
        }
    }
    Ok(plan)
}

/// One measured (scenario, size).
struct Row {
    nodes: usize,
    size: u64,
    put: Duration,
    gets: Vec<(usize, GetResult)>,
    peaks: Vec<u64>,
    cpu: Vec<(String, f64, (f64, f64, f64))>,
    /// Peer bytes the gateway sent during the put and received during each get.
    moved: Vec<u64>,
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

fn human(bytes: u64) -> String {
    if bytes >= GIB && bytes % GIB == 0 {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} B")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / MIB as f64)
}

async fn run_scenario(
    client: &reqwest::Client,
    nodes: usize,
    sizes: &[u64],
    block: &Bytes,
    verify: Verify,
) -> Result<Vec<Row>, Error> {
    let network = LocalNetwork::start(nodes, client).await?;
    let pids: Vec<String> = network.nodes.iter().map(|n| n.pid.to_string()).collect();
    println!(
        "\n== {nodes} nodes, {REPLICAS} replicas (pids {})",
        pids.join(", ")
    );
    // Warm-up and fixed cost: an empty file (KDF on PUT and on GET, one record round trip).
    let empty = put(client, &network.nodes[0], 0, block, verify).await?;
    let mut peaks = Peaks::start(&network);
    let get0 = get(client, &network, &mut peaks, 0, &empty, block).await?;
    delete(client, &network.nodes[0], &empty.id).await?;
    println!(
        "   empty file: PUT {:.0} ms, GET {:.0} ms (KDF, record, connection set-up)",
        empty.elapsed.as_secs_f64() * 1e3,
        get0.elapsed.as_secs_f64() * 1e3
    );
    let other = 1.min(nodes - 1);
    let mut rows = Vec::new();
    for &size in sizes {
        let mut peaks = Peaks::start(&network);
        let mut cpu = Vec::new();
        let mut moved = Vec::new();
        let before = CpuSnapshot::take(&network);
        let (_, out_before) = peer_bytes(client, &network.nodes[0]).await?;
        let file = put(client, &network.nodes[0], size, block, verify).await?;
        moved.push(peer_bytes(client, &network.nodes[0]).await?.1 - out_before);
        cpu.push((
            "put n0".to_string(),
            file.elapsed.as_secs_f64(),
            before.since(&network, 0),
        ));
        let mut gets = Vec::new();
        for g in [0, other] {
            let before = CpuSnapshot::take(&network);
            let (in_before, _) = peer_bytes(client, &network.nodes[g]).await?;
            let result = get(client, &network, &mut peaks, g, &file, block).await?;
            moved.push(peer_bytes(client, &network.nodes[g]).await?.0 - in_before);
            cpu.push((
                format!("get n{g}"),
                result.elapsed.as_secs_f64(),
                before.since(&network, g),
            ));
            gets.push((g, result));
        }
        delete(client, &network.nodes[0], &file.id).await?;
        peaks.observe_all(&network);
        if !peaks.resettable {
            println!("   (clear_refs refused: peak RSS is the lifetime peak, growth is polled)");
        }
        let row = Row {
            nodes,
            size,
            put: file.elapsed,
            gets,
            peaks: peaks.peak,
            cpu,
            moved,
        };
        print_row(&row);
        rows.push(row);
    }
    Ok(rows)
}

fn print_row(row: &Row) {
    let gets: Vec<String> = row
        .gets
        .iter()
        .map(|(g, r)| {
            format!(
                "get n{g} {:.0} MB/s (first byte {:.0} ms, RSS +{} MiB, store {} MiB)",
                mb_per_s(row.size, r.elapsed),
                r.first_byte.as_secs_f64() * 1e3,
                growth_text(r),
                mib(r.store)
            )
        })
        .collect();
    println!(
        "   {:>8}: put {:.0} MB/s ({:.2} s); {}",
        human(row.size),
        mb_per_s(row.size, row.put),
        row.put.as_secs_f64(),
        gets.join("; ")
    );
}

/// "all / after KDF" growth of a GET, in MiB.
fn growth_text(r: &GetResult) -> String {
    let stream = r.stream_growth.map_or("-".into(), mib);
    format!("{} / {stream}", mib(r.growth))
}

/// CPU seconds per GiB by role, next to the primitives measured in the same run, and the
/// end-to-end rates against the one-core AES-256-GCM + SHA-256 rate (issue 15's reference) and
/// the one-core rate of the primitives the format uses (AES-256-GCM + BLAKE3).
fn print_roles(rows: &[Row], p: &Primitives) {
    let gib = GIB as f64;
    println!(
        "\n## CPU per GiB by role (same run: AES-256-GCM {:.2} s/GiB, content id (BLAKE3) {:.2} s/GiB, SHA-256 {:.2} s/GiB, one Argon2id run {:.2} s, subtracted from each gateway operation; loopback TCP {:.2} s/GiB, sender and receiver together; fresh memory {:.2} s/GiB)\n",
        p.aes, p.id, p.sha, p.kdf, p.tcp, p.fresh
    );
    println!(
        "Unavoidable: the role's primitives (gateway put: AES + id; receiving peer: id; gateway get: id + AES). With TCP and RAM: plus half the loopback cost for every byte the role receives or sends, and the fresh-memory cost for every byte it stores. Each row is the best of the repeats.\n"
    );
    println!(
        "| nodes | size | role | CPU s/GiB | unavoidable s/GiB | ratio (target <= 1.5) | with TCP and RAM s/GiB | ratio to that |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    // (nodes, size, role) -> (best cost, unavoidable, with TCP), in first-seen order.
    type Key = (usize, u64, String);
    let mut best: Vec<(Key, (f64, f64, f64))> = Vec::new();
    let mut note = |key: (usize, u64, String), cost: f64, need: f64, with_tcp: f64| match best
        .iter_mut()
        .find(|(k, _)| *k == key)
    {
        Some((_, v)) if cost < v.0 => *v = (cost, need, with_tcp),
        Some(_) => {}
        None => best.push((key, (cost, need, with_tcp))),
    };
    for row in rows.iter().filter(|r| r.size >= 256 * MIB) {
        let size = row.size as f64 / gib;
        for (i, (op, _, (gw, others, _))) in row.cpu.iter().enumerate() {
            let moved = row.moved.get(i).copied().unwrap_or(0) as f64 / gib;
            let half = p.tcp / 2.0;
            // The gateway receives the body and sends the copies (put), or receives the
            // peers' chunks and sends the body (get): per GiB of file. On a put it stores the
            // copies it does not send.
            let gw_need = p.aes + p.id;
            let stored = if op.starts_with("put") {
                (REPLICAS as f64 - moved / size).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let gw_tcp = gw_need + half * (1.0 + moved / size) + p.fresh * stored;
            let gw_cost = (gw - p.kdf).max(0.0) / size;
            note(
                (row.nodes, row.size, format!("gateway {op}")),
                gw_cost,
                gw_need,
                gw_tcp,
            );
            // Peers' share only when they moved chunks (not just a few probes).
            if moved > size / 100.0 {
                let (role, need, keep) = if op.starts_with("put") {
                    ("receiving peers", p.id, p.fresh)
                } else {
                    ("serving peers", 0.0, 0.0)
                };
                note(
                    (row.nodes, row.size, format!("{role} ({op}, per GiB moved)")),
                    others / moved,
                    need,
                    need + half + keep,
                );
            }
        }
    }
    for ((nodes, size, role), (cost, need, with_tcp)) in &best {
        let ratio = if *need > 0.0 {
            format!("{:.2}", cost / need)
        } else {
            "-".into()
        };
        println!(
            "| {nodes} | {} | {role} | {cost:.2} | {need:.2} | {ratio} | {with_tcp:.2} | {:.2} |",
            human(*size),
            cost / with_tcp
        );
    }
    let one_core = 1e-6 * gib / (p.aes + p.sha);
    let own = 1e-6 * gib / (p.aes + p.id);
    println!(
        "\none core of AES-256-GCM + SHA-256 (same run): {one_core:.0} MB/s; targets: PUT >= 0.30x, GET >= 0.45x (3 nodes, 256 MiB); one core of AES-256-GCM + BLAKE3 (the format's primitives): {own:.0} MB/s"
    );
    // One operation's rate against both references, and whether it meets its target.
    let target = |what: String, size: u64, took: Duration, at_least: f64| {
        let rate = mb_per_s(size, took);
        let ratio = rate / one_core;
        let verdict = if ratio >= at_least { "ok" } else { "MISSED" };
        println!(
            "target: {what} {ratio:.2}x of one core: {verdict} ({:.2}x of AES + BLAKE3)",
            rate / own
        );
    };
    for row in rows.iter().filter(|r| r.nodes == 3 && r.size == 256 * MIB) {
        target("PUT".into(), row.size, row.put, 0.30);
        for (g, r) in &row.gets {
            target(format!("GET via n{g}"), row.size, r.elapsed, 0.45);
        }
    }
}

fn print_report(rows: &[Row]) {
    println!("\n## Throughput and memory (MB = 10^6 bytes; times include the per-operation KDF)\n");
    println!(
        "| nodes | size | PUT via n0 MB/s | GET via n0 MB/s | GET via n1 MB/s | n0 RSS growth in GET MiB: all / after KDF | n1 RSS growth in GET MiB: all / after KDF | peak RSS per node MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        let get = |i: usize| row.gets.get(i).map(|(_, r)| r);
        let rate = |i: usize| {
            get(i).map_or("-".into(), |r| {
                format!("{:.0}", mb_per_s(row.size, r.elapsed))
            })
        };
        let growth = |i: usize| {
            get(i).map_or("-".into(), |r| {
                format!("{} (store {})", growth_text(r), mib(r.store))
            })
        };
        let peaks: Vec<String> = row.peaks.iter().map(|p| mib(*p)).collect();
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            row.nodes,
            human(row.size),
            mb_per_s(row.size, row.put),
            rate(0),
            rate(1),
            growth(0),
            growth(1),
            peaks.join(" / ")
        );
    }
    println!("\n## CPU seconds per operation (wall, gateway, other nodes together, client)\n");
    println!(
        "| nodes | size | op | wall s | gateway CPU s | other nodes CPU s | client CPU s | cores busy |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        for (op, wall, (gw, others, client)) in &row.cpu {
            println!(
                "| {} | {} | {op} | {wall:.2} | {gw:.2} | {others:.2} | {client:.2} | {:.2} |",
                row.nodes,
                human(row.size),
                (gw + others + client) / wall.max(1e-9)
            );
        }
    }
    println!();
    for row in rows.iter().filter(|r| r.size >= GIB) {
        for (g, r) in &row.gets {
            let verdict = if r.growth < GROWTH_TARGET {
                "ok"
            } else {
                "MISSED"
            };
            println!(
                "target: {} nodes, {} GET via n{g}: gateway RSS grew {} MiB, KDF included (< {} MiB): {verdict}",
                row.nodes,
                human(row.size),
                growth_text(r),
                mib(GROWTH_TARGET)
            );
        }
    }
    for row in rows.iter().filter(|r| r.nodes == 3 && r.size == 256 * MIB) {
        let put = mb_per_s(row.size, row.put);
        println!(
            "target: 3 nodes, 256 MiB PUT {put:.0} MB/s (>= 250): {}",
            if put >= 250.0 { "ok" } else { "MISSED" }
        );
        for (g, r) in &row.gets {
            let rate = mb_per_s(row.size, r.elapsed);
            println!(
                "target: 3 nodes, 256 MiB GET via n{g} {rate:.0} MB/s (>= 400): {}",
                if rate >= 400.0 { "ok" } else { "MISSED" }
            );
        }
    }
}

fn run_benchmark() -> Result<(), Error> {
    let plan = parse_plan()?;
    // The client side is light (slicing a shared block, hashing): one thread leaves the cores
    // to the nodes.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(600))
            .build()?;
        let block = random_block();
        println!("e2e: downloads checked by {:?}", plan.verify);
        let mut rows = Vec::new();
        for &nodes in &plan.scenarios {
            let sizes: Vec<u64> = plan
                .sizes
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, plan.repeat))
                .collect();
            rows.extend(run_scenario(&client, nodes, &sizes, &block, plan.verify).await?);
        }
        print_report(&rows);
        print_roles(&rows, &Primitives::measure()?);
        Ok(())
    })
}

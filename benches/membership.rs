//! Membership at scale, measured on real node processes on loopback (issue 11).
//!
//! For each network size the bench starts that many `Node` processes one after the other, every
//! one bootstrapping from the first once the one before serves (or, with `--random-bootstrap`,
//! all at once, each joining as soon as it serves through a random earlier one that may still
//! be joining itself, as an operator's script starts them), and reports:
//!
//! 1. **convergence**: time from the last node's start until every node sees every other alive;
//! 2. **idle cost**: CPU of all node processes together (cores) and, per node and second,
//!    membership datagrams and TCP frames sent (with their bytes) over a quiet window that
//!    starts 20 s after convergence (once the connections the joins opened have closed);
//! 3. **detection**: time from a `SIGKILL` of one node until every survivor has marked it dead;
//! 4. **false deaths**: how often a node reported fewer live peers than there were, while idle.
//!
//! Each child prints its membership counts whenever its live set changes and its traffic
//! counters when asked on stdin, so timing needs no polling of the nodes.
//!
//! Run with `cargo bench --bench membership` (sizes 25, 50, 100, 200); options:
//! `-- --nodes 25,50` to choose sizes, `--idle S` for the idle window (default 20 s),
//! `--classic` to measure the all-to-all ping detector (`NetConfig::gossip = None`) instead,
//! `--random-bootstrap` (seeded: `--seed N`, default 1) for joins through random members,
//! `--open` for open mode (no network key; keyed mode, as the README's network runs, is the
//! default). `VOLDISEFS_MEMBERSHIP_LOG=info` makes every node log to stderr;
//! `VOLDISEFS_MEMBERSHIP_REACHED=1` prints when every 20th node (by convergence) saw all others.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use voldisefs::net::PeerState;
use voldisefs::node::{Node, NodeConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Set in a child's environment: run one node instead of the benchmark.
const NODE_ENV: &str = "VOLDISEFS_MEMBERSHIP_NODE";
/// First line a child prints once its node serves: `READY <peer addr>`.
const READY: &str = "READY";
/// Pause between convergence and the idle window: longer than the 15 s idle timeout of peer
/// connections, so the links the joins opened have closed.
const SETTLE: Duration = Duration::from_secs(20);
/// How long each phase may take before the bench reports it as not reached.
const PHASE_LIMIT: Duration = Duration::from_secs(90);

fn main() {
    let result = if std::env::var_os(NODE_ENV).is_some() {
        node_child()
    } else {
        run_benchmark()
    };
    if let Err(e) = result {
        eprintln!("membership: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Child: one node.

/// Membership counts of one node: `[alive, suspect, dead, left, unverified]`.
type Counts = [usize; 5];

fn counts(node: &Node) -> Counts {
    let mut c = [0; 5];
    for entry in node.network().membership().snapshot() {
        let slot = match entry.state {
            PeerState::Alive => 0,
            PeerState::Suspect => 1,
            PeerState::Dead => 2,
            PeerState::Left => 3,
            PeerState::Unverified => 4,
        };
        c[slot] += 1;
    }
    c
}

fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs one node (`--listen`, `--bootstrap`, `--classic`), prints `READY <addr>`, then
/// `M <alive> <suspect> <dead> <left> <unverified>` whenever its live set changes and
/// `S <datagrams> <datagram bytes> <frames> <frame bytes>` (sent so far) for every `stats`
/// line on stdin, joins through ADDR on a `join ADDR` line; shuts down gracefully when stdin
/// closes.
fn node_child() -> Result<(), Error> {
    let mut config = NodeConfig {
        http: None,
        capacity: 64 << 20,
        ..NodeConfig::ephemeral()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--classic" => config.net.gossip = None,
            "--network-key-file" => {
                let path = args.next().ok_or("missing key file")?;
                let hex = std::fs::read_to_string(path)?;
                config.net.network_key = Some(voldisefs::net::NetworkKey::from_hex(hex.trim())?);
            }
            "--listen" | "--bootstrap" => {
                let value: SocketAddr = args.next().ok_or("missing address")?.parse()?;
                if flag == "--listen" {
                    config.listen = value;
                } else {
                    config.bootstrap.push(value);
                }
            }
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            other => return Err(format!("node child: unknown option {other}").into()),
        }
    }
    // `VOLDISEFS_MEMBERSHIP_LOG=info` (or a filter): each node logs to stderr, prefixed with
    // its address in every line's fields.
    if let Ok(filter) = std::env::var("VOLDISEFS_MEMBERSHIP_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let node = Node::start(config).await?;
        say(format_args!("{READY} {}", node.peer_addr()));
        let watcher = node.clone();
        tokio::spawn(async move {
            let mut changes = watcher.network().membership().subscribe();
            let mut last = None;
            loop {
                let now = counts(&watcher);
                if last != Some(now) {
                    let [a, s, d, l, u] = now;
                    say(format_args!("M {a} {s} {d} {l} {u}"));
                    last = Some(now);
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
        let reporter = node.clone();
        let handle = tokio::runtime::Handle::current();
        let _ = tokio::task::spawn_blocking(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if let Some(seed) = line.trim().strip_prefix("join ") {
                    // Joins through `seed` in the background (see `Cluster::spawn_burst`).
                    let Ok(seed) = seed.parse::<SocketAddr>() else {
                        continue;
                    };
                    let net = reporter.network().clone();
                    handle.spawn(async move { net.join(&[seed]).await });
                } else if let Some(addr) = line.trim().strip_prefix("peer ") {
                    // What this node believes about the member at `addr` (for stragglers).
                    let state = reporter
                        .network()
                        .membership()
                        .snapshot()
                        .into_iter()
                        .find(|e| e.info.addr.to_string() == addr)
                        .map_or("unknown", |e| e.state.as_str());
                    say(format_args!("P {addr} {state}"));
                } else if line.trim() == "stats" {
                    let t = reporter.network().traffic();
                    say(format_args!(
                        "S {} {} {} {}",
                        t.datagrams_out, t.datagram_bytes_out, t.frames_out, t.bytes_out
                    ));
                }
            }
        })
        .await;
        node.shutdown().await;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Parent.

/// One node child process.
struct NodeProc {
    child: Child,
    pid: u32,
    peer: SocketAddr,
    killed: bool,
}

/// A fresh network key in a file of its own (removed on drop), for keyed mode.
struct KeyFile(std::path::PathBuf);

impl KeyFile {
    fn new() -> Result<Self, Error> {
        let key = voldisefs::net::NetworkKey::generate()?;
        let path = std::env::temp_dir().join(format!(
            "voldisefs-membership-{}-{}.key",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::write(&path, key.to_hex().as_bytes())?;
        Ok(Self(path))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A line one child printed, with when the parent read it.
struct Event {
    node: usize,
    at: Instant,
    line: String,
}

/// Traffic counters a child reported: datagrams, datagram bytes, frames, frame bytes sent.
type Traffic = [u64; 4];

/// The node processes of one size and what they last reported.
struct Cluster {
    nodes: Vec<NodeProc>,
    counts: Vec<Counts>,
    traffic: Vec<Option<Traffic>>,
    events: mpsc::Receiver<Event>,
    sender: mpsc::Sender<Event>,
    classic: bool,
    /// Keyed mode (the default): the network key every child reads.
    key_file: Option<KeyFile>,
    /// Times a node reported fewer live peers than it reported before, while nothing died.
    drops: usize,
    watching_drops: bool,
    /// The live-peer count being waited for, and when each node first reported it.
    target: usize,
    reached: Vec<Option<Instant>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        support::stop_children(
            self.nodes.iter_mut().map(|n| &mut n.child),
            Duration::from_secs(10),
        );
    }
}

impl Cluster {
    fn new(classic: bool, keyed: bool) -> Result<Self, Error> {
        let (sender, events) = mpsc::channel();
        Ok(Self {
            nodes: Vec::new(),
            counts: Vec::new(),
            traffic: Vec::new(),
            events,
            sender,
            classic,
            key_file: if keyed { Some(KeyFile::new()?) } else { None },
            drops: 0,
            watching_drops: false,
            target: usize::MAX,
            reached: Vec::new(),
        })
    }

    /// Starts one node (bootstrapping from the first one) and waits for its `READY`.
    fn spawn(&mut self) -> Result<(), Error> {
        let seed = self.nodes.first().map(|n| n.peer);
        let ready = self.launch("127.0.0.1:0".parse()?, seed)?;
        self.await_ready(self.nodes.len() - 1, ready)
    }

    /// `--random-bootstrap`: starts `n` nodes at once, as an operator's script does, then has
    /// each join through a random earlier one the moment it serves (a `join ADDR` line on its
    /// stdin, sent as its `READY` arrives), so most join through a member that is still joining
    /// itself. Returns when the last join was sent (the "last start").
    fn spawn_burst(&mut self, n: usize, state: &mut u64) -> Result<Instant, Error> {
        let ready = (0..n)
            .map(|_| self.launch("127.0.0.1:0".parse()?, None))
            .collect::<Result<Vec<_>, _>>()?;
        let mut last_start = Instant::now();
        for (i, ready) in ready.into_iter().enumerate() {
            self.await_ready(i, ready)?;
            if i > 0 {
                let seed = self.nodes[(splitmix64(state) % i as u64) as usize].peer;
                let stdin = self.nodes[i].child.stdin.as_mut().ok_or("no stdin")?;
                writeln!(stdin, "join {seed}")?;
                stdin.flush()?;
                last_start = Instant::now();
            }
        }
        Ok(last_start)
    }

    /// Spawns a node child listening on `listen` and bootstrapping through `seed`; returns
    /// where its first line (`READY <addr>`) arrives.
    fn launch(
        &mut self,
        listen: SocketAddr,
        seed: Option<SocketAddr>,
    ) -> Result<mpsc::Receiver<Option<std::io::Result<String>>>, Error> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env(NODE_ENV, "1")
            .args(["--listen", &listen.to_string()]);
        if let Some(seed) = seed {
            command.args(["--bootstrap", &seed.to_string()]);
        }
        if self.classic {
            command.arg("--classic");
        }
        if let Some(key) = &self.key_file {
            command.arg("--network-key-file").arg(key.path());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id();
        let stdout = child.stdout.take();
        let index = self.nodes.len();
        self.nodes.push(NodeProc {
            child,
            pid,
            peer: listen,
            killed: false,
        });
        self.counts.push([0; 5]);
        self.traffic.push(None);
        self.reached.push(None);
        let stdout = stdout.ok_or("node child has no stdout")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let events = self.sender.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = ready_tx.send(lines.next());
            for line in lines {
                let Ok(line) = line else { return };
                let event = Event {
                    node: index,
                    at: Instant::now(),
                    line,
                };
                if events.send(event).is_err() {
                    return;
                }
            }
        });
        Ok(ready_rx)
    }

    /// Waits (at most 30 s) for node `index`'s `READY` line and records its address.
    fn await_ready(
        &mut self,
        index: usize,
        ready: mpsc::Receiver<Option<std::io::Result<String>>>,
    ) -> Result<(), Error> {
        let pid = self.nodes[index].pid;
        let line = match ready.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(format!("node child {pid} exited before it served").into()),
            Err(_) => return Err(format!("node child {pid} did not start within 30 s").into()),
        };
        let addr = line
            .strip_prefix(READY)
            .ok_or_else(|| format!("node child {pid} printed {line:?}"))?;
        self.nodes[index].peer = addr.trim().parse()?;
        Ok(())
    }

    fn record(&mut self, event: Event) {
        let mut words = event.line.split_whitespace();
        let tag = words.next();
        let numbers: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
        match (tag, numbers.as_slice()) {
            (Some("M"), &[a, s, d, l, u]) => {
                let new = [a, s, d, l, u].map(|x| x as usize);
                let old = self.counts[event.node];
                if self.watching_drops && new[0] + new[1] < old[0] + old[1] {
                    self.drops += 1;
                }
                self.counts[event.node] = new;
                if new[0] + new[1] == self.target && self.reached[event.node].is_none() {
                    self.reached[event.node] = Some(event.at);
                }
            }
            (Some("S"), &[a, b, c, d]) => self.traffic[event.node] = Some([a, b, c, d]),
            (Some("P"), _) => eprintln!("node {}: {}", event.node, event.line),
            _ => eprintln!("node {}: {}", event.node, event.line),
        }
    }

    /// Reads events until `done` holds for the reports so far; returns when (by the time of
    /// the event that made it hold), or `None` after `limit`.
    fn wait_for(&mut self, limit: Duration, done: impl Fn(&Cluster) -> bool) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        if done(self) {
            return Some(Instant::now());
        }
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let event = self.events.recv_timeout(left).ok()?;
            let at = event.at;
            self.record(event);
            if done(self) {
                return Some(at);
            }
        }
    }

    /// Handles the events already there without waiting.
    fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.record(event);
        }
    }

    fn survivors(&self) -> impl Iterator<Item = (usize, &NodeProc)> {
        self.nodes.iter().enumerate().filter(|(_, n)| !n.killed)
    }

    /// Every survivor sees `live` live peers.
    fn all_see(&self, live: usize) -> bool {
        self.survivors()
            .all(|(i, _)| self.counts[i][0] + self.counts[i][1] == live)
    }

    /// From now on, records when each node first sees `live` live peers.
    fn expect(&mut self, live: usize) {
        self.target = live;
        for (i, r) in self.reached.iter_mut().enumerate() {
            let now = self.counts[i][0] + self.counts[i][1];
            *r = (now == live).then(Instant::now);
        }
    }

    /// The median survivor's time to reach the expected count, counted from `since`.
    fn median_reached(&self, since: Instant) -> Option<Duration> {
        let mut times: Vec<Duration> = self
            .survivors()
            .filter_map(|(i, _)| self.reached[i])
            .map(|at| at.saturating_duration_since(since))
            .collect();
        times.sort();
        times.get(times.len() / 2).copied()
    }

    /// Asks every survivor for its counters and waits for all answers (sums them).
    fn traffic_sum(&mut self) -> Result<Traffic, Error> {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            self.traffic[i] = None;
            if node.killed {
                continue;
            }
            if let Some(stdin) = node.child.stdin.as_mut() {
                writeln!(stdin, "stats")?;
                stdin.flush()?;
            }
        }
        let done = |c: &Cluster| c.survivors().all(|(i, _)| c.traffic[i].is_some());
        self.wait_for(Duration::from_secs(30), done)
            .ok_or("a node did not report its traffic")?;
        let mut sum = [0u64; 4];
        for t in self.traffic.iter().flatten() {
            for (s, x) in sum.iter_mut().zip(t) {
                *s += x;
            }
        }
        Ok(sum)
    }

    /// Sockets (TCP connections and listeners, the UDP socket) the survivors hold, on average.
    fn sockets_per_node(&self) -> f64 {
        let mut total = 0usize;
        let mut nodes = 0usize;
        for (_, node) in self.survivors() {
            let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", node.pid)) else {
                continue;
            };
            nodes += 1;
            total += dir
                .flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count();
        }
        total as f64 / nodes.max(1) as f64
    }

    fn cpu(&self) -> f64 {
        self.survivors()
            .map(|(_, n)| support::cpu_seconds(Some(n.pid)))
            .sum()
    }
}

/// What one size measured.
struct Row {
    nodes: usize,
    start_span: Duration,
    /// From the last start until every node served (its `READY`).
    serving: Duration,
    converged: Option<Duration>,
    /// When the median node saw every other (it may have before the last start: 0).
    converged_median: Option<Duration>,
    idle_cores: f64,
    /// Sockets per node at the end of the idle window (listener and UDP socket included).
    sockets: f64,
    /// Per node and second: datagrams, datagram bytes, frames, frame bytes sent.
    per_node: [f64; 4],
    drops: usize,
    detected: Option<Duration>,
    /// When the median survivor marked the killed node dead.
    detected_median: Option<Duration>,
}

/// The next value of a SplitMix64 generator (enough to pick seeds reproducibly).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn measure(
    n: usize,
    idle: Duration,
    classic: bool,
    keyed: bool,
    random: Option<u64>,
) -> Result<Row, Error> {
    let mut cluster = Cluster::new(classic, keyed)?;
    let first_start = Instant::now();
    let last_start = match random {
        Some(mut state) => cluster.spawn_burst(n, &mut state)?,
        None => {
            for _ in 0..n {
                cluster.spawn()?;
            }
            Instant::now()
        }
    };
    let serving = last_start.elapsed();
    cluster.expect(n - 1);
    let converged = cluster
        .wait_for(PHASE_LIMIT, |c| c.all_see(n - 1))
        .map(|at| at.saturating_duration_since(last_start));
    let converged_median = cluster.median_reached(last_start);
    if std::env::var_os("VOLDISEFS_MEMBERSHIP_REACHED").is_some() {
        let mut order: Vec<(Duration, usize)> = (0..n)
            .filter_map(|i| {
                cluster.reached[i].map(|at| (at.saturating_duration_since(last_start), i))
            })
            .collect();
        order.sort();
        let show: Vec<String> = order
            .iter()
            .step_by((n / 20).max(1))
            .chain(order.last())
            .map(|(d, i)| format!("#{i}:{:.1}", d.as_secs_f64()))
            .collect();
        eprintln!("reached: {}", show.join(" "));
    }

    // Let the joins' traffic die down (and the connections they opened, open mode's address
    // checks included, close after the 15 s idle timeout), then measure a quiet window.
    std::thread::sleep(SETTLE);
    cluster.drain();
    cluster.watching_drops = true;
    let traffic0 = cluster.traffic_sum()?;
    let cpu0 = cluster.cpu();
    let window = Instant::now();
    std::thread::sleep(idle);
    let cpu1 = cluster.cpu();
    let secs = window.elapsed().as_secs_f64();
    let traffic1 = cluster.traffic_sum()?;
    let sockets = cluster.sockets_per_node();
    cluster.drain();
    cluster.watching_drops = false;
    let mut per_node = [0.0; 4];
    for (i, p) in per_node.iter_mut().enumerate() {
        *p = (traffic1[i] - traffic0[i]) as f64 / n as f64 / secs;
    }

    // Crash one node (not the seed) and time until every survivor has marked it dead.
    let victim = n / 2;
    cluster.nodes[victim].child.kill()?;
    let killed_at = Instant::now();
    cluster.nodes[victim].killed = true;
    cluster.expect(n - 2);
    let _ = cluster.nodes[victim].child.wait();
    let mut detected = cluster.wait_for(Duration::from_secs(15), |c| c.all_see(n - 2));
    if detected.is_none() {
        let late: Vec<usize> = cluster.survivors().map(|(i, _)| i).collect();
        for i in late {
            if cluster.reached[i].is_none() {
                eprintln!("straggler {i}: counts {:?}", cluster.counts[i]);
                let victim_addr = cluster.nodes[victim].peer;
                if let Some(stdin) = cluster.nodes[i].child.stdin.as_mut() {
                    let _ = writeln!(stdin, "peer {victim_addr}");
                    let _ = stdin.flush();
                }
            }
        }
        detected = cluster.wait_for(PHASE_LIMIT, |c| c.all_see(n - 2));
    }
    let detected = detected.map(|at| at.saturating_duration_since(killed_at));
    let detected_median = cluster.median_reached(killed_at);

    Ok(Row {
        nodes: n,
        start_span: last_start - first_start,
        serving,
        converged,
        converged_median,
        idle_cores: (cpu1 - cpu0) / secs,
        sockets,
        per_node,
        drops: cluster.drops,
        detected,
        detected_median,
    })
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "not reached".into(),
        |d| format!("{:.2} s", d.as_secs_f64()),
    )
}

fn run_benchmark() -> Result<(), Error> {
    let mut sizes = vec![25, 50, 100, 200];
    let mut idle = Duration::from_secs(20);
    let mut classic = false;
    let mut random = false;
    let mut keyed = true;
    let mut seed: u64 = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nodes" => {
                let list = args.next().ok_or("--nodes needs a list")?;
                sizes = list
                    .split(',')
                    .map(|x| x.trim().parse::<usize>())
                    .collect::<Result<_, _>>()?;
            }
            "--idle" => idle = Duration::from_secs(args.next().ok_or("--idle S")?.parse()?),
            "--classic" => classic = true,
            "--random-bootstrap" => random = true,
            "--open" => keyed = false,
            "--seed" => seed = args.next().ok_or("--seed N")?.parse()?,
            "--bench" => {}
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if sizes.iter().any(|&n| n < 3) {
        return Err("every size must be at least 3 nodes".into());
    }
    let detector = if classic {
        "classic all-to-all pings"
    } else {
        "SWIM gossip"
    };
    let joins = if random {
        format!("each node joins through a random earlier one (seed {seed})")
    } else {
        "every node joins through the first".to_string()
    };
    let mode = if keyed { "keyed mode" } else { "open mode" };
    println!("membership: {detector}, {mode}, {joins}, sizes {sizes:?}, idle window {idle:?}");
    let mut rows = Vec::new();
    for &n in &sizes {
        let row = measure(n, idle, classic, keyed, random.then_some(seed))?;
        println!(
            "{n} nodes: started in {:.1} s, all serving {:.1} s and converged {} after the last start, idle {:.3} cores, kill seen everywhere after {}",
            row.start_span.as_secs_f64(),
            row.serving.as_secs_f64(),
            secs(row.converged),
            row.idle_cores,
            secs(row.detected)
        );
        rows.push(row);
    }
    println!();
    println!(
        "| nodes | start span | converged after last start (median node / all) | idle CPU, all nodes | datagrams/node/s | datagram B/node/s | TCP frames/node/s | TCP B/node/s | sockets/node | live-set drops while idle | killed node dead (median / everywhere) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} s | {} / {} | {:.3} cores | {:.2} | {:.0} | {:.2} | {:.0} | {:.1} | {} | {} / {} |",
            r.nodes,
            r.start_span.as_secs_f64(),
            secs(r.converged_median),
            secs(r.converged),
            r.idle_cores,
            r.per_node[0],
            r.per_node[1],
            r.per_node[2],
            r.per_node[3],
            r.sockets,
            r.drops,
            secs(r.detected_median),
            secs(r.detected)
        );
    }
    Ok(())
}

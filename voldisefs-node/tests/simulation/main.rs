//! The whole-node simulation: real nodes (placement, uploads and downloads through the client
//! pipelines, replication, hedging, proofs, repair, stripes, tombstones, expiry and clock
//! following, gossip membership) on turmoil's simulated network and clock, in one process,
//! under a random workload and random faults drawn from one seed.
//!
//! Each seed runs one scenario ([`scenario`]):
//! 1. six nodes start, each joining through a random earlier one (keyed mode);
//! 2. **chaos**: files and collections (`replicas:3` and `rs:2+2`, some expiring, some "once")
//!    are put, read and deleted through random nodes, several at once, while faults come and
//!    go: crash, restart under a new id, partition (links held both ways, then released),
//!    freeze (the network's freeze drill: a hung process), message delay, a clock that runs
//!    late or early, a lying member, and one node with a small store that runs full. At most
//!    two nodes are out at once (a crashed node, and the liar's damage, count until repair had
//!    time to restore the copies): `replicas:3` and `rs:2+2` survive two.
//!
//!    A partition holds messages rather than dropping them: turmoil's TCP has no
//!    retransmission, so a dropped segment would stall its stream for good, which real TCP
//!    never does (it resends once the path heals). Datagram loss, which SWIM is built for, is
//!    the gossip simulation's part (`voldisefs-net`'s `gossip/sim.rs`);
//! 3. **heal**: every fault ends, the liar leaves;
//! 4. **check** ([`Ledger`]): the invariants below, and the scenario's own bounds.
//!
//! Invariants (a violation fails the seed, and the failure prints the command that runs it):
//! - every file acknowledged with all its copies and neither deleted nor expired reads back,
//!   byte for byte, through a random node within [`READ_DEADLINE`];
//! - a file whose delete was acknowledged (or that burned after its first read) stays
//!   deleted: no read opens it, no node holds its record;
//! - an expired file is gone from every node within [`EXPIRY_BOUND`] of its expiry;
//! - no node ever holds more than its capacity (checked every simulated second);
//! - after the faults stop, membership converges and every node's repair backlog drains
//!   (within [`SETTLE`]).
//!
//! Seeds: `VOLDISEFS_SIM_SEEDS` (`7`, `1,5,9` or a range `100..200`) replaces the fixed set
//! CI runs ([`CI_SEEDS`]); README "Simulation" has the soak command.
//!
//! A seed replays exactly, byte for byte and log line for log line: each seed runs in a
//! process of its own whose every random byte comes from the seed (`entropy.rs`: node ids,
//! sealing's nonces, salts and keys, and so object ids and placement; Noise keys; `HashMap`
//! order; tokio's choice among ready `select!` branches), nodes do their CPU work inline
//! rather than on real threads (`voldisefs_node`'s `cpu.rs`), and the time of day starts at a
//! fixed [`EPOCH`]. Turning the logs on (`VOLDISEFS_SIM_LOG`) changes nothing of the run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod entropy;
mod host;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use host::{CAPACITY, Op, Outcome, Plan, Registry, SMALL_CAPACITY};
use voldisefs_node::crypto::Redundancy;

/// Storage nodes of every scenario.
const NODES: usize = 6;
/// The simulated time of day at the start of every run (Unix seconds: 2027-01-15).
const EPOCH: u64 = 1_800_000_000;
/// Seeds CI runs: 1 to 8, and each soak seed that found a bug (a regression test, though a
/// code change may change the scenario a seed draws): 135 (a repair sweep stalled behind a
/// frozen peer, and files were lost; see ARCHITECTURE.md, "Simulation"). Seeds 2 and 5 found
/// bugs too and are in 1 to 8.
const CI_SEEDS: [u64; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 135];
/// How long chaos lasts (simulated).
const CHAOS: Duration = Duration::from_secs(90);
/// The longest a read of an available file may take once faults stopped.
const READ_DEADLINE: Duration = Duration::from_secs(20);
/// Within this of a file's expiry every node has dropped it: the 2 s a late clock is allowed
/// before it follows its peers, one clock-check round (5 s here), the expiry sweep (1 s) and
/// a second of rounding.
const EXPIRY_BOUND: u64 = 2 + 5 + 1 + 1;
/// After the faults stop: how long membership may take to converge and repair to drain.
const SETTLE: Duration = Duration::from_secs(60);
/// How long after the network converged the backlog is first read: three repair sweeps.
const REPAIR_ROUNDS: Duration = Duration::from_secs(12);
/// A crashed or restarted node counts as out until this long after its restart: detection,
/// a repair sweep (every 4 s) and time to push what it held.
const RECOVERY: Duration = Duration::from_secs(15);
/// How far ahead of the others a node's clock may run (a fault restarts nodes with it).
const EARLY_CLOCK: u64 = 30;
/// Most nodes whose clock is wrong at once (a minority: clock following takes the median).
const MAX_SKEWED: usize = 2;
/// Most nodes out at once: `replicas:3` and `rs:2+2` survive two.
const MAX_OUT: usize = 2;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn host_name(i: usize) -> String {
    format!("n{i}")
}

/// What became of a file, as far as the client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Stored; not deleted.
    Live,
    /// Its delete was acknowledged.
    Deleted,
    /// A "once" file read whole: burned.
    Burned,
    /// A delete or burn failed part way: it may be gone or not.
    Unsure,
}

/// One file the workload stored.
#[derive(Debug, Clone)]
struct File {
    label: String,
    id: [u8; 32],
    password: String,
    /// Its bytes; a collection's files by path (sorted).
    files: Vec<(String, Vec<u8>)>,
    /// Unix seconds (simulated) it expires at; 0: never.
    expires: u64,
    once: bool,
    /// Its objects (records, chunks, stripes).
    objects: Vec<[u8; 32]>,
    /// Acknowledged with every copy it asked for.
    full: bool,
    fate: Fate,
    /// An operation on it is under way (reads of "once" files and deletes run alone).
    busy: bool,
}

/// What the scenario saw: files, operations, faults and violations.
#[derive(Default)]
struct Ledger {
    files: Vec<File>,
    counts: BTreeMap<&'static str, u64>,
    faults: BTreeMap<&'static str, u64>,
    /// Why operations failed (the first words of each reason), and how often.
    reasons: BTreeMap<String, u64>,
    violations: Vec<String>,
}

impl Ledger {
    fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }
    fn failed(&mut self, what: &'static str, outcome: &Outcome) {
        self.count(what);
        let reason = match outcome {
            Outcome::Failed(reason) => reason.chars().take(60).collect(),
            other => format!("{other:?}").chars().take(60).collect(),
        };
        *self.reasons.entry(reason).or_default() += 1;
    }
    fn fault(&mut self, what: &'static str) {
        *self.faults.entry(what).or_default() += 1;
    }
    /// Prints what happens when `VOLDISEFS_SIM_TRACE` is set.
    fn trace(&self, what: impl FnOnce() -> String) {
        if std::env::var_os("VOLDISEFS_SIM_TRACE").is_some() {
            println!("{:8.2} s  {}", now().as_secs_f64(), what());
        }
    }
    fn violation(&mut self, at: Duration, what: String) {
        self.violations
            .push(format!("at {:.1} s: {what}", at.as_secs_f64()));
    }
}

/// Requests only the driver (which owns the simulation) can carry out.
enum Control {
    Crash(String),
    Bounce(String),
    Latency(Duration),
}

/// The scenario's view of the world.
struct World {
    registry: Arc<Registry>,
    control: std::sync::mpsc::Sender<Control>,
    ledger: Rc<RefCell<Ledger>>,
    /// Per storage node: out (crashed, frozen, cut off) until this time, or for good (`None`
    /// when it is in).
    out_until: RefCell<Vec<Option<Duration>>>,
    /// Nodes crashed and not yet restarted.
    crashed: RefCell<Vec<bool>>,
    /// A liar is a member now.
    liar: RefCell<bool>,
    /// The liar's damage lasts: what it acknowledged and did not keep counts as lost until
    /// repair had [`RECOVERY`] after it left.
    liar_until: RefCell<Duration>,
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

fn unix_now() -> u64 {
    turmoil::since_epoch().unwrap_or_default().as_secs()
}

impl World {
    /// Nodes out now (the liar counts as one).
    fn out(&self) -> usize {
        let t = now();
        let nodes = self
            .out_until
            .borrow()
            .iter()
            .filter(|u| u.is_some_and(|u| u > t))
            .count();
        nodes + usize::from(*self.liar.borrow() || *self.liar_until.borrow() > t)
    }

    fn mark_out(&self, i: usize, until: Duration) {
        self.out_until.borrow_mut()[i] = Some(until);
    }

    /// Storage nodes the schedule has not crashed: what faults are drawn from. It depends
    /// on the seed alone (not on how long a restarted node takes to start), so the fault
    /// schedule does too.
    fn scheduled_up(&self) -> Vec<usize> {
        (0..NODES).filter(|&i| !self.crashed.borrow()[i]).collect()
    }

    /// Running storage nodes.
    fn up(&self) -> Vec<usize> {
        (0..NODES)
            .filter(|&i| {
                !self.crashed.borrow()[i]
                    && self
                        .registry
                        .running(&host_name(i))
                        .is_some_and(|r| r.node.is_some())
            })
            .collect()
    }

    /// Sends `op` to node `i`'s agent and waits for the outcome.
    async fn ask(&self, i: usize, op: Op) -> Outcome {
        let Some(running) = self.registry.running(&host_name(i)) else {
            return Outcome::Failed("node not running".into());
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if running.ops.send((op, tx)).is_err() {
            return Outcome::Failed("node stopped".into());
        }
        rx.await
            .unwrap_or_else(|_| Outcome::Failed("the node stopped during the operation".into()))
    }
}

/// Runs the scenario of `seed` and returns the ledger.
fn run(seed: u64, erasure: bool) -> Ledger {
    // A fixed epoch: the time of day (files' creation and expiry stamps, which sealed
    // records carry) is the same on every run of a seed. Nodes and clients read it from the
    // simulation, never from this machine's clock.
    let epoch = Duration::from_secs(EPOCH);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .enable_random_order()
        .epoch(UNIX_EPOCH + epoch)
        .tick_duration(Duration::from_millis(5))
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(Duration::from_millis(20))
        .tcp_capacity(4096)
        .udp_capacity(4096)
        .simulation_duration(CHAOS + Duration::from_secs(600))
        .build();
    let registry = Arc::new(Registry::default());
    let mut rng = Rng(seed ^ 0x5151_5151);
    // Node 5 runs with a small store (it fills); the rest with the normal one.
    for i in 0..NODES {
        let bootstrap = if i == 0 {
            Vec::new()
        } else {
            vec![host_name(rng.below(i as u64) as usize)]
        };
        registry.plan(
            &host_name(i),
            Plan {
                clock_offset: 0,
                capacity: if i == NODES - 1 {
                    SMALL_CAPACITY
                } else {
                    CAPACITY
                },
                bootstrap,
                liar: false,
                delay: Duration::from_millis(i as u64 * 150),
            },
        );
    }
    registry.plan(
        "liar",
        Plan {
            clock_offset: 0,
            capacity: 0,
            bootstrap: vec![host_name(0)],
            liar: true,
            delay: Duration::ZERO,
        },
    );
    for name in (0..NODES).map(host_name) {
        let registry = registry.clone();
        let host = name.clone();
        sim.host(name.as_str(), move || {
            host::run_host(host.clone(), registry.clone(), epoch)
        });
    }
    {
        let registry = registry.clone();
        sim.host("liar", move || {
            host::run_host("liar".into(), registry.clone(), epoch)
        });
    }
    let ledger = Rc::new(RefCell::new(Ledger::default()));
    let (control, requests) = std::sync::mpsc::channel();
    let world = Rc::new(World {
        registry: registry.clone(),
        control,
        ledger: ledger.clone(),
        out_until: RefCell::new(vec![None; NODES]),
        crashed: RefCell::new(vec![false; NODES]),
        liar: RefCell::new(false),
        liar_until: RefCell::new(Duration::ZERO),
    });
    // The liar host waits for its turn: crashed at once, started by a bounce.
    sim.crash("liar");
    sim.client("scenario", scenario(world, rng, erasure));
    loop {
        let done = match sim.step() {
            Ok(done) => done,
            Err(e) => {
                ledger
                    .borrow_mut()
                    .violations
                    .push(format!("the simulation failed: {e}"));
                break;
            }
        };
        while let Ok(request) = requests.try_recv() {
            match request {
                Control::Crash(host) => {
                    registry.stopped(&host);
                    sim.crash(host.as_str());
                }
                Control::Bounce(host) => {
                    registry.stopped(&host);
                    sim.bounce(host.as_str());
                }
                Control::Latency(max) => sim.set_max_message_latency(max),
            }
        }
        if done {
            break;
        }
    }
    drop(sim);
    Rc::try_unwrap(ledger)
        .map(RefCell::into_inner)
        .unwrap_or_default()
}

/// The whole scenario of one seed (see the module docs).
async fn scenario(world: Rc<World>, rng: Rng, erasure: bool) -> turmoil::Result {
    let rng = Rc::new(RefCell::new(rng));
    // 1. Start: every node sees every other.
    converge(&world, "the first start").await;
    // A background check of the capacity bound, every simulated second.
    let watcher = {
        let world = world.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                check_capacity(&world);
            }
        })
    };
    // 2. Chaos.
    let end = now() + CHAOS;
    let mut tasks = tokio::task::JoinSet::new();
    let mut faults = tokio::task::JoinSet::new();
    let mut counter = 0u64;
    while now() < end {
        let pause = rng.borrow_mut().millis(50, 600);
        tokio::time::sleep(pause).await;
        while tasks.try_join_next().is_some() {}
        while faults.try_join_next().is_some() {}
        let roll = rng.borrow_mut().below(100);
        if roll < 12 {
            if let Some(fault) = start_fault(&world, &rng) {
                faults.spawn_local(fault);
            }
            continue;
        }
        // Drawn whether or not the operation runs, so the draws that follow (and with them
        // the fault schedule) do not depend on how fast earlier operations finished.
        let seed = rng.borrow_mut().next();
        if tasks.len() >= 6 {
            continue;
        }
        counter += 1;
        let world = world.clone();
        tasks.spawn_local(async move {
            let mut rng = Rng(seed);
            match roll {
                12..=49 => put(&world, &mut rng, counter, false, erasure).await,
                50..=59 => put(&world, &mut rng, counter, true, erasure).await,
                60..=87 => get(&world, &mut rng).await,
                _ => delete(&world, &mut rng).await,
            }
        });
    }
    // 3. Heal: the faults end (each cleans up after itself), the operations finish.
    while faults.join_next().await.is_some() {}
    while tasks.join_next().await.is_some() {}
    let _ = world
        .control
        .send(Control::Latency(Duration::from_millis(20)));
    if *world.liar.borrow() {
        let _ = world.control.send(Control::Crash("liar".into()));
        *world.liar.borrow_mut() = false;
    }
    converge(&world, "after the faults stopped").await;
    // Repair sweeps run every 4 s: a backlog read now may date from before the faults
    // stopped. Three sweeps later it is current.
    tokio::time::sleep(REPAIR_ROUNDS).await;
    drained(&world).await;
    // 4. Check.
    check_files(&world, &rng).await;
    check_capacity(&world);
    watcher.abort();
    Ok(())
}

/// Waits until every running node sees every other running node as live.
async fn converge(world: &World, when: &str) {
    let deadline = now() + SETTLE;
    loop {
        let up = world.up();
        let ids: Vec<_> = up
            .iter()
            .filter_map(|&i| world.registry.running(&host_name(i)))
            .filter_map(|r| r.node.map(|n| n.id()))
            .collect();
        let seen = up.len() == NODES - world.crashed.borrow().iter().filter(|c| **c).count()
            && up.iter().all(|&i| {
                world
                    .registry
                    .running(&host_name(i))
                    .and_then(|r| r.node)
                    .is_some_and(|n| {
                        let live = n.live_nodes();
                        ids.iter().all(|id| *id == n.id() || live.contains(id))
                    })
            });
        if seen {
            return;
        }
        if now() > deadline {
            let views: Vec<String> = up
                .iter()
                .filter_map(|&i| {
                    let n = world.registry.running(&host_name(i))?.node?;
                    Some(format!("n{i} sees {}", n.live_nodes().len()))
                })
                .collect();
            world.ledger.borrow_mut().violation(
                now(),
                format!(
                    "membership did not converge {when} within {SETTLE:?} ({} nodes up: {})",
                    up.len(),
                    views.join(", ")
                ),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until no node has repair work left.
async fn drained(world: &World) {
    let deadline = now() + SETTLE;
    loop {
        let backlog: Vec<(usize, u64)> = world
            .up()
            .into_iter()
            .filter_map(|i| {
                let n = world.registry.running(&host_name(i))?.node?;
                Some((i, n.status().repair.backlog))
            })
            .collect();
        if backlog.iter().all(|(_, b)| *b == 0) {
            return;
        }
        if now() > deadline {
            world.ledger.borrow_mut().violation(
                now(),
                format!("the repair backlog did not drain within {SETTLE:?}: {backlog:?}"),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn check_capacity(world: &World) {
    for i in world.up() {
        let Some(node) = world.registry.running(&host_name(i)).and_then(|r| r.node) else {
            continue;
        };
        let store = node.status().store;
        if store.bytes > store.capacity {
            world.ledger.borrow_mut().violation(
                now(),
                format!(
                    "n{i} holds {} bytes, above its capacity of {}",
                    store.bytes, store.capacity
                ),
            );
        }
    }
}

/// The first bytes of an id, in hex.
fn short(id: &[u8; 32]) -> String {
    id[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Picks a running node at random.
fn random_up(world: &World, rng: &mut Rng) -> Option<usize> {
    let up = world.up();
    (!up.is_empty()).then(|| up[rng.below(up.len() as u64) as usize])
}

async fn put(world: &World, rng: &mut Rng, n: u64, collection: bool, erasure: bool) {
    let Some(gateway) = random_up(world, rng) else {
        return;
    };
    let redundancy = if rng.chance(30) && erasure {
        Redundancy::ErasureCoded { data: 2, parity: 2 }
    } else {
        Redundancy::Replicas(3)
    };
    let expires = if rng.chance(25) {
        unix_now() + 10 + rng.below(40)
    } else {
        0
    };
    let password = format!("password {n}");
    let (op, files, once) = if collection {
        let mut files: Vec<(String, Vec<u8>)> = (0..1 + rng.below(3))
            .map(|j| {
                let len = 1 + rng.below(90_000) as usize;
                (format!("dir/file{j}"), rng.bytes(len))
            })
            .collect();
        files.sort();
        let op = Op::PutCollection {
            files: files.clone(),
            password: password.clone(),
            expires,
            redundancy,
        };
        (op, files, false)
    } else {
        let len = 1 + rng.below(200_000) as usize;
        let data = rng.bytes(len);
        let once = rng.chance(15);
        let op = Op::Put {
            data: data.clone(),
            password: password.clone(),
            expires,
            once,
            redundancy,
        };
        (op, vec![(String::new(), data)], once)
    };
    let label = format!(
        "{}{n} ({redundancy}{}{}, through n{gateway})",
        if collection { "collection " } else { "file " },
        if expires > 0 { ", expiring" } else { "" },
        if once { ", once" } else { "" },
    );
    world.ledger.borrow_mut().count("puts");
    match world.ask(gateway, op).await {
        Outcome::Stored {
            id,
            objects,
            stored,
        } => {
            let full = stored.is_full();
            let mut ledger = world.ledger.borrow_mut();
            ledger.trace(|| {
                let on: Vec<String> = objects
                    .iter()
                    .map(|o| format!("{} {:?}", short(o), holders_of(world, &[*o])))
                    .collect();
                format!(
                    "stored {} as {} ({stored:?}); objects on {}",
                    label,
                    short(&id),
                    on.join(", ")
                )
            });
            ledger.count(if full {
                "puts acknowledged"
            } else {
                "puts short of copies"
            });
            ledger.files.push(File {
                label,
                id,
                password,
                files,
                expires,
                once,
                objects,
                full,
                fate: Fate::Live,
                busy: false,
            });
        }
        other => world.ledger.borrow_mut().failed("puts failed", &other),
    }
}

/// Picks a live, idle file at random and marks it busy.
fn take_file(world: &World, rng: &mut Rng) -> Option<File> {
    let mut ledger = world.ledger.borrow_mut();
    let candidates: Vec<usize> = (0..ledger.files.len())
        .filter(|&k| ledger.files[k].fate == Fate::Live && !ledger.files[k].busy)
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let k = candidates[rng.below(candidates.len() as u64) as usize];
    ledger.files[k].busy = true;
    Some(ledger.files[k].clone())
}

fn settle_file(world: &World, id: [u8; 32], fate: Option<Fate>) {
    let mut ledger = world.ledger.borrow_mut();
    if let Some(f) = ledger.files.iter_mut().find(|f| f.id == id) {
        f.busy = false;
        if let Some(fate) = fate {
            f.fate = fate;
        }
    }
}

async fn get(world: &World, rng: &mut Rng) {
    let Some(gateway) = random_up(world, rng) else {
        return;
    };
    let Some(file) = take_file(world, rng) else {
        return;
    };
    world.ledger.borrow_mut().count("gets");
    let outcome = world
        .ask(
            gateway,
            Op::Get {
                id: file.id,
                password: file.password.clone(),
            },
        )
        .await;
    let fate = match outcome {
        Outcome::Read { files, burned } => {
            if files != file.files {
                world.ledger.borrow_mut().violation(
                    now(),
                    format!(
                        "{} read back different bytes through n{gateway}",
                        file.label
                    ),
                );
            }
            world.ledger.borrow_mut().count("gets read");
            world.ledger.borrow().trace(|| {
                format!(
                    "read {} {} through n{gateway} (burned: {burned})",
                    file.label,
                    short(&file.id)
                )
            });
            burned.then_some(Fate::Burned)
        }
        // A burn that failed after the read leaves the file in doubt.
        other @ Outcome::Failed(_) if file.once => {
            world.ledger.borrow_mut().failed("gets failed", &other);
            Some(Fate::Unsure)
        }
        other => {
            world.ledger.borrow_mut().failed("gets failed", &other);
            None
        }
    };
    settle_file(world, file.id, fate);
}

async fn delete(world: &World, rng: &mut Rng) {
    let Some(gateway) = random_up(world, rng) else {
        return;
    };
    let Some(file) = take_file(world, rng) else {
        return;
    };
    world.ledger.borrow_mut().count("deletes");
    let outcome = world
        .ask(
            gateway,
            Op::Delete {
                id: file.id,
                password: file.password.clone(),
            },
        )
        .await;
    let fate = match outcome {
        Outcome::Deleted => {
            world.ledger.borrow().trace(|| {
                format!(
                    "deleted {} {} through n{gateway}",
                    file.label,
                    short(&file.id)
                )
            });
            world.ledger.borrow_mut().count("deletes acknowledged");
            Fate::Deleted
        }
        other => {
            world.ledger.borrow_mut().failed("deletes failed", &other);
            Fate::Unsure
        }
    };
    settle_file(world, file.id, Some(fate));
}

/// Starts a random fault if the budget allows; the returned task ends it again.
fn start_fault(
    world: &Rc<World>,
    rng: &Rc<RefCell<Rng>>,
) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> {
    let mut r = rng.borrow_mut();
    let kind = r.below(8);
    let length = r.millis(2_000, 12_000);
    let world = world.clone();
    let up = world.scheduled_up();
    let target = *up.get(r.below(up.len() as u64) as usize)?;
    let name = host_name(target);
    let free = MAX_OUT.saturating_sub(world.out());
    let trace = |what: &str, who: &str| {
        world
            .ledger
            .borrow()
            .trace(|| format!("fault: {what} {who} (out before: {})", world.out()));
    };
    match kind {
        // Crash, and come back later under a new id.
        0 | 1 if free >= 1 => {
            let restart_after = if kind == 0 { length } else { Duration::ZERO };
            restart_plan(&world, target, None);
            world.mark_out(target, now() + restart_after + RECOVERY);
            world.crashed.borrow_mut()[target] = true;
            world
                .ledger
                .borrow_mut()
                .fault(if kind == 0 { "crash" } else { "restart" });
            trace(if kind == 0 { "crash" } else { "restart" }, &name);
            let _ = world.control.send(Control::Crash(name.clone()));
            Some(Box::pin(async move {
                tokio::time::sleep(restart_after.max(Duration::from_millis(100))).await;
                world
                    .ledger
                    .borrow()
                    .trace(|| format!("fault ends: {name} restarts"));
                world.crashed.borrow_mut()[target] = false;
                let _ = world.control.send(Control::Bounce(name));
            }))
        }
        // A clock that runs late (or early) after a restart.
        2 if free >= 1 => {
            // Clock following assumes most peers' clocks are right: at most two of six
            // nodes run wrong at once (a third restart sets its clock right).
            let skewed = (0..NODES)
                .filter(|&i| {
                    i != target
                        && world
                            .registry
                            .plan_of(&host_name(i))
                            .is_some_and(|p| p.clock_offset != 0)
                })
                .count();
            let offset = if skewed >= MAX_SKEWED {
                0
            } else if r.chance(70) {
                -90
            } else {
                EARLY_CLOCK as i64
            };
            world.mark_out(target, now() + RECOVERY);
            world.crashed.borrow_mut()[target] = true;
            world.ledger.borrow_mut().fault(match offset {
                0 => "restart with a right clock",
                o if o < 0 => "restart with a late clock",
                _ => "restart with an early clock",
            });
            restart_plan(&world, target, Some(offset));
            trace(&format!("restart with clock {offset:+} s"), &name);
            let _ = world.control.send(Control::Crash(name.clone()));
            Some(Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                world.crashed.borrow_mut()[target] = false;
                let _ = world.control.send(Control::Bounce(name));
            }))
        }
        // Cut one or two nodes off from the rest.
        3 if free >= 1 => {
            let mut side = vec![target];
            if free >= 2 && r.chance(40) {
                if let Some(&other) = up.iter().find(|&&i| i != target) {
                    side.push(other);
                }
            }
            let rest: Vec<String> = (0..NODES)
                .filter(|i| !side.contains(i))
                .map(host_name)
                .chain(["liar".to_string()])
                .collect();
            let side: Vec<usize> = side;
            for &i in &side {
                world.mark_out(i, now() + length);
            }
            world.ledger.borrow_mut().fault("partition");
            let names: Vec<String> = side.iter().map(|&i| host_name(i)).collect();
            trace("partition", &names.join("+"));
            for a in &names {
                for b in &rest {
                    turmoil::hold(a.as_str(), b.as_str());
                }
            }
            Some(Box::pin(async move {
                tokio::time::sleep(length).await;
                world
                    .ledger
                    .borrow()
                    .trace(|| format!("fault ends: {names:?} rejoin"));
                for a in &names {
                    for b in &rest {
                        turmoil::release(a.as_str(), b.as_str());
                    }
                }
            }))
        }
        // Freeze a node (the network's freeze drill, a hung process): it reads, answers and
        // sends nothing, its connections stay open, until it thaws.
        4 if free >= 1 => {
            world.mark_out(target, now() + length);
            world.ledger.borrow_mut().fault("freeze");
            trace("freeze", &name);
            let end = now() + length;
            Some(Box::pin(async move {
                // A node restarted a moment ago may still be starting: it freezes once up.
                let node = loop {
                    if let Some(node) = world.registry.running(&name).and_then(|r| r.node) {
                        break node;
                    }
                    if now() >= end {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                node.network().set_frozen(true);
                tokio::time::sleep(end.saturating_sub(now())).await;
                world
                    .ledger
                    .borrow()
                    .trace(|| format!("fault ends: {name} thaws"));
                node.network().set_frozen(false);
            }))
        }
        // A lying member joins, and leaves (crashes) later.
        5 if free >= 1 && !*world.liar.borrow() && *world.liar_until.borrow() <= now() => {
            *world.liar.borrow_mut() = true;
            world.ledger.borrow_mut().fault("liar");
            trace("liar joins", "");
            let _ = world.control.send(Control::Bounce("liar".into()));
            let length = length * 3;
            Some(Box::pin(async move {
                tokio::time::sleep(length).await;
                world
                    .ledger
                    .borrow()
                    .trace(|| "fault ends: the liar leaves".into());
                let _ = world.control.send(Control::Crash("liar".into()));
                *world.liar.borrow_mut() = false;
                *world.liar_until.borrow_mut() = now() + RECOVERY;
            }))
        }
        // Messages are slow for a while.
        6 | 7 => {
            world.ledger.borrow_mut().fault("message delay");
            let _ = world
                .control
                .send(Control::Latency(Duration::from_millis(400)));
            Some(Box::pin(async move {
                tokio::time::sleep(length).await;
                let _ = world
                    .control
                    .send(Control::Latency(Duration::from_millis(20)));
            }))
        }
        _ => None,
    }
}

/// Node `i` restarts at once, joining through any other node, with its clock off by
/// `clock_offset` seconds if given.
fn restart_plan(world: &World, i: usize, clock_offset: Option<i64>) {
    let name = host_name(i);
    if let Some(mut plan) = world.registry.plan_of(&name) {
        plan.delay = Duration::ZERO;
        plan.bootstrap = (0..NODES).filter(|&j| j != i).map(host_name).collect();
        if let Some(offset) = clock_offset {
            plan.clock_offset = offset;
        }
        world.registry.plan(&name, plan);
    }
}

/// Whether `file` expires within [`EARLY_CLOCK`] of now.
fn expires_soon(file: &File) -> bool {
    file.expires > 0 && file.expires <= unix_now() + EARLY_CLOCK + 1
}

/// The end-of-run invariants over every file.
async fn check_files(world: &World, rng: &Rc<RefCell<Rng>>) {
    let files = world.ledger.borrow().files.clone();
    for file in files {
        let expired = file.expires > 0 && file.expires <= unix_now();
        let gone_for = |at: u64| unix_now().saturating_sub(at);
        match file.fate {
            // A file that the early clock of a node may already judge expired is not checked
            // for loss: that node drops its copies early (it never keeps one longer).
            Fate::Live if !expired && file.full && !expires_soon(&file) => {
                let Some(gateway) = random_up(world, &mut rng.borrow_mut()) else {
                    continue;
                };
                let read = tokio::time::timeout(
                    READ_DEADLINE,
                    world.ask(
                        gateway,
                        Op::Get {
                            id: file.id,
                            password: file.password.clone(),
                        },
                    ),
                )
                .await;
                match read {
                    Ok(Outcome::Read { files, .. }) if files == file.files => {
                        world.ledger.borrow_mut().count("checked: read back");
                    }
                    Ok(Outcome::Read { .. }) => world
                        .ledger
                        .borrow_mut()
                        .violation(now(), format!("{} read back different bytes", file.label)),
                    // It expired while being read.
                    Ok(Outcome::NotFound) if expires_soon(&file) => {}
                    Ok(other) => world.ledger.borrow_mut().violation(
                        now(),
                        format!(
                            "{} was acknowledged with every copy and is lost or unreadable \
                             through n{gateway}: {other:?}; its objects are on {}",
                            file.label,
                            placement(world, &file.objects)
                        ),
                    ),
                    Err(_) => world.ledger.borrow_mut().violation(
                        now(),
                        format!(
                            "a read of {} through n{gateway} took longer than {READ_DEADLINE:?}",
                            file.label
                        ),
                    ),
                }
            }
            Fate::Deleted | Fate::Burned => {
                let holders = holders_of(world, &file.objects);
                if !holders.is_empty() {
                    world.ledger.borrow_mut().violation(
                        now(),
                        format!(
                            "{} was deleted ({:?}) and objects of it are still held: {}",
                            file.label,
                            file.fate,
                            placement(world, &file.objects)
                        ),
                    );
                }
                let Some(gateway) = random_up(world, &mut rng.borrow_mut()) else {
                    continue;
                };
                let read = world
                    .ask(
                        gateway,
                        Op::Get {
                            id: file.id,
                            password: file.password.clone(),
                        },
                    )
                    .await;
                if let Outcome::Read { .. } = read {
                    world.ledger.borrow_mut().violation(
                        now(),
                        format!(
                            "{} was deleted ({:?}) and reads again",
                            file.label, file.fate
                        ),
                    );
                } else {
                    world.ledger.borrow_mut().count("checked: stays deleted");
                }
            }
            _ if expired && gone_for(file.expires) > EXPIRY_BOUND => {
                let holders = holders_of(world, &file.objects);
                if holders.is_empty() {
                    world
                        .ledger
                        .borrow_mut()
                        .count("checked: expired everywhere");
                } else {
                    world.ledger.borrow_mut().violation(
                        now(),
                        format!(
                            "{} expired {} s ago and is still held by {holders:?}",
                            file.label,
                            gone_for(file.expires)
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Where each of `objects` is now: its id and the running nodes holding it.
fn placement(world: &World, objects: &[[u8; 32]]) -> String {
    objects
        .iter()
        .map(|o| format!("{} {:?}", short(o), holders_of(world, &[*o])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The running nodes holding any of `objects`.
fn holders_of(world: &World, objects: &[[u8; 32]]) -> Vec<String> {
    world
        .up()
        .into_iter()
        .filter(|&i| {
            world
                .registry
                .running(&host_name(i))
                .and_then(|r| r.node)
                .is_some_and(|n| objects.iter().any(|o| n.holds_object(*o)))
        })
        .map(host_name)
        .collect()
}

/// Log lines stamped with simulated time.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{:8.3}",
            turmoil::sim_elapsed().unwrap_or_default().as_secs_f64()
        )
    }
}

/// The seeds to run: `VOLDISEFS_SIM_SEEDS` (`7`, `1,5,9`, `100..200`) or [`CI_SEEDS`].
fn seeds() -> Vec<u64> {
    let Ok(text) = std::env::var("VOLDISEFS_SIM_SEEDS") else {
        return CI_SEEDS.to_vec();
    };
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once("..") {
            Some((a, b)) => seeds.extend(a.parse::<u64>().unwrap()..b.parse::<u64>().unwrap()),
            None => seeds.push(part.parse().unwrap()),
        }
    }
    seeds
}

/// Runs every seed of [`seeds`], with `rs:2+2` files beside `replicas:3` ones when
/// `erasure`, printing each seed's fault mix and operations, and each violation with the
/// command that runs its seed again (`test` names the test).
///
/// Each seed runs in a process of its own (this test binary again, with [`entropy::VAR`]
/// set): there every random byte comes from the seed (`entropy.rs`), and nothing an earlier
/// seed did in the process (tokio counts the runtimes it made) changes it, so a seed replays
/// byte for byte, alone or after others.
fn check_seeds(erasure: bool, test: &str) {
    if std::env::var_os(entropy::VAR).is_some() {
        return run_here(erasure, test);
    }
    let mut failed = Vec::new();
    for seed in seeds() {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--include-ignored", "--nocapture"])
            .env("VOLDISEFS_SIM_SEEDS", seed.to_string())
            .env(entropy::VAR, seed.to_string())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        // The seed's own lines, without the test harness's.
        for line in out.lines().filter(|l| {
            !(l.starts_with("running ")
                || l.starts_with("test ")
                || l.starts_with("test result")
                || l.is_empty())
        }) {
            println!("{line}");
        }
        if !child.status.success() {
            let err = String::from_utf8_lossy(&child.stderr);
            for line in err
                .lines()
                .filter(|l| !l.contains("stack backtrace"))
                .take(20)
            {
                println!("{line}");
            }
            failed.push(seed);
        }
    }
    assert!(
        failed.is_empty(),
        "seeds {failed:?} broke invariants (see above)"
    );
}

/// [`check_seeds`] in this process: every seed of [`seeds`], each on a thread of its own
/// (the standard library draws a thread's `HashMap` keys once, when it first needs them).
fn run_here(erasure: bool, test: &str) {
    // `VOLDISEFS_SIM_LOG=debug` (a tracing filter) prints the nodes' logs, each line with
    // the simulated time and host; `VOLDISEFS_SIM_TRACE=1` prints the scenario's steps.
    if let Ok(filter) = std::env::var("VOLDISEFS_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            // turmoil's own span names the host each line comes from.
            .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
                "{filter},turmoil=info"
            )))
            .with_timer(SimTime)
            .with_ansi(false)
            .try_init();
    }
    let mut failed = Vec::new();
    for seed in seeds() {
        let started = std::time::Instant::now();
        let ledger = std::thread::scope(|s| s.spawn(|| run(seed, erasure)).join().unwrap());
        println!(
            "seed {seed}: {:.1} s; faults {:?}; operations {:?}; failures {:?}",
            started.elapsed().as_secs_f64(),
            ledger.faults,
            ledger.counts,
            ledger.reasons
        );
        if !ledger.violations.is_empty() {
            println!(
                "seed {seed} broke {} invariant(s):",
                ledger.violations.len()
            );
            for v in &ledger.violations {
                println!("  {v}");
            }
            println!(
                "  run it again: VOLDISEFS_SIM_SEEDS={seed} cargo test -p voldisefs-node \
                 --test simulation {test} -- --nocapture"
            );
            failed.push(seed);
        }
    }
    assert!(
        failed.is_empty(),
        "seeds {failed:?} broke invariants (see above)"
    );
}

/// CI: `replicas:3` files and collections (expiring, "once") under every fault of the mix.
#[test]
fn replicated_files_keep_every_invariant_under_random_faults() {
    check_seeds(
        false,
        "replicated_files_keep_every_invariant_under_random_faults",
    );
}

/// CI: the same with `rs:2+2` files beside them.
#[test]
fn erasure_coded_files_keep_every_invariant_under_random_faults() {
    check_seeds(
        true,
        "erasure_coded_files_keep_every_invariant_under_random_faults",
    );
}

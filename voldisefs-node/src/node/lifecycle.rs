//! A node's lifecycle: assembling it from bound listeners (store, network, replication,
//! repair, the periodic sweeps), joining through the bootstrap peers, graceful shutdown and
//! crash.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voldisefs_net::Network;

use super::uploads::SETTLE_DELAY;
use super::{Inner, Node, Owner};
use crate::metrics::Metrics;
use crate::replication::{
    Cluster, LocalHolder, Mode, Repairer, Settings, StoreHandler, Tombstones,
};
use crate::transfer::kdf_gate::KdfGate;
use crate::{NodeConfig, NodeError};

/// How long shutdown waits for HTTP transfers and upload clean-up before cutting them off.
const WORK_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
impl Node {
    /// Assembles a node on a bound peer listener: its store, the network, replication,
    /// repair and the periodic sweeps, all started. `http_addr` is where the HTTP API (which
    /// `crate::startup` starts on the node afterwards) listens; `object_body_budget` the bytes
    /// object API bodies may hold node-wide. Joining is [`Node::join_and_announce`].
    pub(crate) fn assemble(
        config: NodeConfig,
        peer_listener: voldisefs_net::Listener,
        http_addr: Option<SocketAddr>,
        object_body_budget: usize,
    ) -> Result<Node, NodeError> {
        let root = CancellationToken::new();
        let local = Arc::new(
            LocalHolder::new(
                config.capacity,
                Tombstones::new(config.tombstone_ttl, config.max_tombstones),
            )
            .with_clock(crate::clock::Clock::new(
                config.drill_clock_offset,
                config.wall_clock.clone(),
            )),
        );
        let handler = Arc::new(StoreHandler {
            local: local.clone(),
        });
        // Membership datagrams state this node's own time, so peers compare clocks without
        // asking (see `crate::clock`).
        let mut net_config = config.net.clone();
        let own = crate::clock::Clock::new(config.drill_clock_offset, config.wall_clock.clone());
        net_config.wall_clock = crate::clock::WallClock::from_fn(move || {
            std::time::Duration::from_millis(own.own_millis())
        });
        let net = Network::start(
            peer_listener,
            config.advertise,
            handler,
            net_config,
            root.child_token(),
        )?;
        // The network chose (keyed mode: derived) this node's id; proofs are bound to it.
        let _ = local.id.set(net.local().id);
        let sweeper = local.clone();
        let network = net.clone();
        let cluster = Cluster::new(
            net,
            local,
            Settings {
                replicas: config.replicas,
                attempt_timeout: config.attempt_timeout,
                hedge_min: config.hedge_min,
                hedge_max: config.hedge_max,
                window_budget: config.transfer_window_budget,
            },
        );
        let repairer = Repairer::new(&cluster, config.repair_bandwidth);
        let cache = voldisefs_crypto::KekCache::new(config.kdf_cache_entries, config.kdf_cache_age)
            .map_err(NodeError::Crypto)?;
        let kdf = Arc::new(KdfGate::new(
            config.kdf_concurrency,
            config.kdf_queue_timeout,
            config.kdf_max.max(&config.kdf),
            cache,
        ));
        let metrics = Metrics::new(
            cluster.clone(),
            network.clone(),
            repairer.clone(),
            kdf.clone(),
        );
        let work = root.child_token();
        let node = Node {
            inner: Arc::new(Inner {
                metrics,
                cluster,
                network,
                repairer,
                kdf,
                tickets: crate::tickets::Tickets::default(),
                settling: Mutex::new(Vec::new()),
                object_budget: Arc::new(tokio::sync::Semaphore::new(object_body_budget >> 10)),
                index: Mutex::new(std::collections::VecDeque::new()),
                http_addr,
                root: root.clone(),
                work,
                tracker: TaskTracker::new(),
                joining: AtomicBool::new(!config.bootstrap.is_empty()),
                stopping: AtomicBool::new(false),
                config,
            }),
            _owner: Some(Arc::new(Owner(root))),
        };
        let repair = node
            .inner
            .repairer
            .clone()
            .run(node.inner.config.repair_interval, node.inner.work.clone());
        node.inner.tracker.spawn(repair);
        // Expired objects leave the store within `expiry_sweep` (reads drop them at once);
        // expired password keys and download tickets leave RAM within the same second.
        let (cache, swept) = (node.inner.kdf.cache(), node.internal());
        let every = node.inner.config.expiry_sweep;
        node.every(every.max(std::time::Duration::from_millis(10)), move || {
            let dropped = sweeper.expire(sweeper.clock.now());
            if dropped > 0 {
                tracing::debug!(dropped, "expired objects dropped");
            }
            cache.sweep();
            swept.inner.tickets.sweep(std::time::Instant::now());
            std::future::ready(())
        });
        // Objects stored through the object API are settled in batches, as uploads are.
        let (settler, queue) = (node.inner.repairer.clone(), node.internal());
        node.every(SETTLE_DELAY, move || {
            let ids = std::mem::take(
                &mut *queue
                    .inner
                    .settling
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            let settler = settler.clone();
            async move {
                if !ids.is_empty() {
                    settler.settle(&ids).await;
                }
            }
        });
        // A late clock follows the peers' (see `clock`): one round per interval.
        let (cluster, network) = (node.inner.cluster.clone(), node.inner.network.clone());
        let every = node
            .inner
            .config
            .clock_check_interval
            .max(std::time::Duration::from_millis(100));
        node.every(every, move || {
            let (cluster, network) = (cluster.clone(), network.clone());
            async move {
                use crate::clock::{MIN_SAMPLES, SAMPLE_AGE, SAMPLE_PEERS};
                let own = cluster.clock().own();
                // The times members stated in their datagrams lately: free.
                let mut times: Vec<u64> = network
                    .peer_times(every.max(SAMPLE_AGE))
                    .into_iter()
                    .take(SAMPLE_PEERS)
                    .map(|(_, millis)| millis / 1000)
                    .collect();
                if times.len() < MIN_SAMPLES {
                    // Too few heard from (the classic detector sends no datagrams): ask.
                    let answers = cluster
                        .peer_stats(SAMPLE_PEERS, std::time::Duration::from_secs(1))
                        .await;
                    times = answers.values().map(|(_, _, time)| *time).collect();
                }
                cluster.clock().observe(own, &times);
            }
        });
        Ok(node)
    }

    /// Runs `task`, given a handle that does not keep the node alive and the token that ends
    /// the node's work, as one of the node's tasks: shutdown cancels the token and waits for it
    /// (bounded by the work grace).
    pub(crate) fn spawn_work<F>(&self, task: impl FnOnce(Node, CancellationToken) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let task = task(self.internal(), self.inner.work.clone());
        self.inner.tracker.spawn(task);
    }

    /// Joins through the bootstrap peers (if any: see [`Node::join`]) and logs that the node
    /// started (warning when the peer links are open).
    pub(crate) async fn join_and_announce(&self) {
        let node = self;
        if !node.inner.config.bootstrap.is_empty() {
            node.join().await;
        }
        if !node.network().is_keyed() {
            tracing::warn!(
                peer_addr = %node.peer_addr(),
                "OPEN MODE: peer links are neither encrypted nor authenticated; anyone who can \
                 reach the peer port can join, list peers, store and fetch chunks (file contents \
                 stay encrypted). Use a network key (voldisefs keygen, --network-key-file)."
            );
        }
        tracing::info!(
            node = %node.id(),
            peer_addr = %node.peer_addr(),
            http = ?node.http_addr(),
            peers = node.network().membership().len(),
            joining = node.is_joining(),
            "node started"
        );
    }

    /// Joins through the bootstrap peers: one attempt now, for at most one dial and handshake's
    /// worth of time; if no peer answered by then (they may not be up yet, or a seed listed
    /// peers that hang), keeps going in the background with capped backoff
    /// ([`Network::join`], `NetConfig::join_retry_*`) while the node serves, and reports
    /// itself as joining until one answers.
    async fn join(&self) {
        let seeds = self.inner.config.bootstrap.clone();
        let net = self.network().clone();
        // A seed that answers with peers that hang must not hold up the start: the first
        // attempt gets one dial and handshake's worth of time, the rest goes on in the
        // background.
        let budget = net.config().connect_timeout + net.config().handshake_timeout;
        let first = tokio::time::timeout(budget, net.bootstrap(&seeds)).await;
        match first {
            Ok(Ok(_)) => self.inner.joining.store(false, Ordering::Relaxed),
            failed => {
                match failed {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "bootstrap peers not reachable yet; retrying in the background")
                    }
                    _ => tracing::warn!(
                        ?budget,
                        "bootstrap still running; going on in the background"
                    ),
                }
                let node = self.internal();
                let token = self.inner.work.clone();
                self.inner.tracker.spawn(async move {
                    tokio::select! {
                        () = token.cancelled() => {}
                        joined = net.join(&seeds) => match joined {
                            Ok(report) => {
                                node.inner.joining.store(false, Ordering::Relaxed);
                                tracing::info!(peers = report.reached.len(), "joined the network");
                            }
                            Err(e) => tracing::warn!(error = %e, "gave up joining"),
                        },
                    }
                });
            }
        }
    }

    /// Stops the node gracefully, in a fixed order: stops taking requests and cancels the
    /// uploads in progress (which delete what they stored) and repair, waiting for them
    /// (HTTP transfers get a few seconds to finish); tells its peers it leaves; hands every
    /// chunk it holds to the holders that should have it (within `handoff_deadline`, logging
    /// what it could not hand off); stops the peer network; wipes the store. Idempotent.
    pub async fn shutdown(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) || self.inner.root.is_cancelled() {
            return;
        }
        self.stop_work().await;
        let net = self.network();
        net.announce_leave().await;
        let held = self.inner.cluster.store_stats().chunks;
        if held > 0 {
            let deadline = tokio::time::Instant::now() + self.inner.config.handoff_deadline;
            let outcome = self
                .inner
                .repairer
                .sweep(Mode::Handoff, Some(deadline))
                .await;
            if outcome.failed + outcome.unfinished > 0 {
                tracing::warn!(
                    held,
                    pushed = outcome.pushed,
                    failed = outcome.failed,
                    unfinished = outcome.unfinished,
                    "hand-off incomplete: some chunks may have fewer copies until repair"
                );
            } else {
                tracing::info!(held, pushed = outcome.pushed, "handed off every chunk");
            }
        }
        net.shutdown().await;
        self.inner.root.cancel();
        self.inner.cluster.wipe();
        self.lock_index().clear();
        self.inner.kdf.cache().clear();
        self.inner.tickets.clear();
        tracing::info!(node = %self.id(), "node stopped; memory wiped");
    }

    /// Cancels the work token and waits (bounded) for every task under it.
    async fn stop_work(&self) {
        self.inner.work.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(WORK_GRACE, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("node tasks still running after {WORK_GRACE:?}; going on without them");
        }
    }

    /// Stops the node at once, as a crash or power cut would: no leave announcement, no
    /// hand-off; connections drop and the store is wiped. For failure drills and tests.
    pub async fn crash(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) || self.inner.root.is_cancelled() {
            return;
        }
        self.inner.root.cancel();
        self.network().shutdown().await;
        self.stop_work().await;
        self.inner.cluster.wipe();
        self.lock_index().clear();
        self.inner.kdf.cache().clear();
        self.inner.tickets.clear();
        tracing::warn!(node = %self.id(), "node crashed (drill)");
    }
}

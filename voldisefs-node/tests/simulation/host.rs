//! The simulated machines: turmoil hosts that each run one real node (or a lying member) on
//! the simulated network, and an agent per node that runs the client pipelines against it on
//! the scenario's behalf.
//!
//! A node's async methods must run inside its own host (its sockets are that host's), so the
//! scenario (a turmoil client) never calls them itself: it sends an [`Op`] to the node's
//! agent and awaits the [`Outcome`]. Synchronous reads of a node's state (its status, whether
//! it holds an object) are made directly through the [`Registry`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use voldisefs_node::clock::WallClock;
use voldisefs_node::crypto::client::{
    Access, BoxFuture, Client, Clock, DeleteScope, Fetched, Inline, Keying, Object, ObjectKind,
    ObjectStore, PutOptions, Settings, StoreError, StoreErrorKind, Stored,
};
use voldisefs_node::crypto::{
    ChunkSize, DeleteKey, EncodedStripe, Error as CryptoError, FileKind, KdfParams, Password,
    Plaintext, Redundancy,
};
use voldisefs_node::net::{
    CancellationToken, GossipConfig, Handler, NetConfig, Network, NetworkKey, Payload,
};
use voldisefs_node::proto::{ChunkProof, Message, NodeId, ProofDigest};
use voldisefs_node::{Node, NodeConfig, NodeError};

/// The port every simulated node listens on (each host has its own address).
pub(crate) const PORT: u16 = 7000;

/// Bytes a node's store may hold, and the smaller store of the nodes that run full.
pub(crate) const CAPACITY: u64 = 64 << 20;
/// The store of a node that is meant to run full.
pub(crate) const SMALL_CAPACITY: u64 = 1536 << 10;

/// How one incarnation of a host runs: set by the scenario before it (re)starts the host.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Seconds the node's clock is off (negative: late).
    pub(crate) clock_offset: i64,
    /// Bytes its store may hold.
    pub(crate) capacity: u64,
    /// The hosts it may join through (names); empty starts a new network.
    pub(crate) bootstrap: Vec<String>,
    /// A lying member instead of a node.
    pub(crate) liar: bool,
    /// How long the host waits before it starts.
    pub(crate) delay: Duration,
}

/// What the scenario asks of a node's agent.
pub(crate) enum Op {
    /// Seal and store a file.
    Put {
        data: Vec<u8>,
        password: String,
        expires: u64,
        once: bool,
        redundancy: Redundancy,
    },
    /// Seal and store a collection of named files.
    PutCollection {
        files: Vec<(String, Vec<u8>)>,
        password: String,
        expires: u64,
        redundancy: Redundancy,
    },
    /// Open and read a file or collection whole; a "once" file is burned after the read.
    Get { id: [u8; 32], password: String },
    /// Delete a file or collection for good.
    Delete { id: [u8; 32], password: String },
}

/// What an agent answers.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Stored: the file's id, its objects, and the copies of the least-kept one.
    Stored {
        id: [u8; 32],
        objects: Vec<[u8; 32]>,
        stored: Stored,
    },
    /// Read: a file's bytes, or a collection's files by path.
    Read {
        files: Vec<(String, Vec<u8>)>,
        burned: bool,
    },
    /// Deleted.
    Deleted,
    /// No node has the file (never stored, deleted, burned or expired).
    NotFound,
    /// Anything else (unreachable holders, a full network, too few nodes, a timeout).
    Failed(String),
}

/// A running node as the scenario sees it.
#[derive(Clone)]
pub(crate) struct Running {
    /// The node (`None` for a lying member).
    pub(crate) node: Option<Node>,
    /// Its agent.
    pub(crate) ops: mpsc::UnboundedSender<(Op, oneshot::Sender<Outcome>)>,
}

/// The hosts' plans and the running incarnations, shared by the hosts and the scenario.
#[derive(Default)]
pub(crate) struct Registry {
    plans: Mutex<HashMap<String, Plan>>,
    running: Mutex<HashMap<String, Running>>,
}

impl Registry {
    /// Sets how `host` runs from its next start.
    pub(crate) fn plan(&self, host: &str, plan: Plan) {
        lock(&self.plans).insert(host.to_string(), plan);
    }

    /// The plan `host` starts with next.
    pub(crate) fn plan_of(&self, host: &str) -> Option<Plan> {
        lock(&self.plans).get(host).cloned()
    }

    /// The incarnation of `host` that runs now, if it has started.
    pub(crate) fn running(&self, host: &str) -> Option<Running> {
        lock(&self.running).get(host).cloned()
    }

    /// Forgets `host`'s incarnation (it crashed or is being restarted).
    pub(crate) fn stopped(&self, host: &str) {
        lock(&self.running).remove(host);
    }

    fn started(&self, host: &str, running: Running) {
        lock(&self.running).insert(host.to_string(), running);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The network key of every simulated network (keyed mode, as operators run it).
pub(crate) fn network_key() -> NetworkKey {
    NetworkKey::from_hex(&"5e".repeat(32)).expect("a valid key")
}

/// Timings of a small, busy network: failures found within about a second, a repair sweep
/// every few seconds (the defaults, made for real networks, would leave a simulated minute
/// without a sweep).
fn node_config(plan: &Plan, me: SocketAddr, epoch: Duration) -> NodeConfig {
    let bootstrap = plan
        .bootstrap
        .iter()
        .map(|h| SocketAddr::new(turmoil::lookup(h.as_str()), PORT))
        .collect();
    NodeConfig {
        advertise: Some(me),
        bootstrap,
        replicas: 3,
        capacity: plan.capacity,
        chunk_size: ChunkSize::MIN,
        kdf: KdfParams::insecure_test(),
        kdf_max: KdfParams::insecure_test(),
        drill_clock_offset: plan.clock_offset,
        wall_clock: WallClock::from_fn(move || turmoil::since_epoch().unwrap_or(epoch)),
        clock_check_interval: Duration::from_secs(5),
        repair_interval: Duration::from_secs(4),
        attempt_timeout: Duration::from_secs(3),
        hedge_max: Duration::from_millis(500),
        handoff_deadline: Duration::from_secs(5),
        tombstone_ttl: Duration::from_secs(3600),
        net: NetConfig {
            network_key: Some(network_key()),
            request_timeout: Duration::from_secs(10),
            probe_interval: Duration::from_millis(250),
            probe_timeout: Duration::from_millis(750),
            connect_timeout: Duration::from_millis(750),
            discovery_interval: Duration::from_millis(500),
            gossip: Some(GossipConfig::default()),
            ..NetConfig::default()
        },
        ..NodeConfig::default()
    }
}

/// The software of host `name`: waits its plan's delay, then runs a node (or a liar) and its
/// agent until the host is crashed.
pub(crate) async fn run_host(
    name: String,
    registry: Arc<Registry>,
    epoch: Duration,
) -> turmoil::Result {
    let plan = registry
        .plan_of(&name)
        .ok_or_else(|| format!("no plan for {name}"))?;
    tokio::time::sleep(plan.delay).await;
    let me = SocketAddr::new(turmoil::lookup(name.as_str()), PORT);
    let listener =
        turmoil::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT))
            .await?;
    let (ops, mut inbox) = mpsc::unbounded_channel::<(Op, oneshot::Sender<Outcome>)>();
    if plan.liar {
        let config = node_config(&plan, me, epoch).net;
        let bootstrap = node_config(&plan, me, epoch).bootstrap;
        let net = Network::start(
            listener,
            Some(me),
            Arc::new(Liar),
            config,
            CancellationToken::new(),
        )?;
        let _ = net.bootstrap(&bootstrap).await;
        registry.started(&name, Running { node: None, ops });
        // A liar serves until it is crashed; it takes no client work.
        while let Some((_, reply)) = inbox.recv().await {
            let _ = reply.send(Outcome::Failed("a liar serves no clients".into()));
        }
        drop(net);
        return Ok(());
    }
    let node = Node::start_on(node_config(&plan, me, epoch), listener).await?;
    registry.started(
        &name,
        Running {
            node: Some(node.clone()),
            ops,
        },
    );
    let client = Client::new(
        Arc::new(NodeStore(node.clone())),
        Arc::new(Inline),
        Settings {
            kdf: KdfParams::insecure_test(),
            kdf_ceiling: KdfParams::insecure_test(),
            chunk_size: ChunkSize::MIN,
            parallelism: 4,
            // Files are stamped, and expiry judged, by the simulated clock.
            clock: Clock(|| turmoil::since_epoch().map_or(0, |d| d.as_secs())),
            ..Settings::default()
        },
    )?;
    while let Some((op, reply)) = inbox.recv().await {
        let client = client.clone();
        tokio::spawn(async move {
            let _ = reply.send(perform(&client, op).await);
        });
    }
    drop(node);
    Ok(())
}

/// Runs one client operation through the node's store.
async fn perform(client: &Client, op: Op) -> Outcome {
    let failed = |e: CryptoError| match e {
        CryptoError::NotFound => Outcome::NotFound,
        e => Outcome::Failed(e.to_string()),
    };
    match op {
        Op::Put {
            data,
            password,
            expires,
            once,
            redundancy,
        } => {
            let options = PutOptions {
                expires,
                once,
                ..PutOptions::file("file", redundancy)
            };
            let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data))]);
            match client
                .put(Keying::Password(Password::new(password)), options, body)
                .await
            {
                Ok(r) => Outcome::Stored {
                    id: r.id,
                    objects: r.objects.clone(),
                    stored: r.stored,
                },
                Err(e) => failed(e),
            }
        }
        Op::PutCollection {
            files,
            password,
            expires,
            redundancy,
        } => {
            let key = match client.derive(Password::new(password)).await {
                Ok(key) => key,
                Err(e) => return failed(e),
            };
            let mut upload = client.collection_upload(key, expires, redundancy);
            for (path, data) in files {
                if let Err(e) = upload.add_bytes(&path, Plaintext::new(data)).await {
                    upload.abort().await;
                    return failed(e);
                }
            }
            match upload.finish("collection").await {
                Ok(r) => Outcome::Stored {
                    id: r.id,
                    objects: r.objects.clone(),
                    stored: r.stored,
                },
                Err(e) => failed(e),
            }
        }
        Op::Get { id, password } => match read(client, id, password).await {
            Ok((files, burned)) => Outcome::Read { files, burned },
            Err(e) => failed(e),
        },
        Op::Delete { id, password } => match client.delete(id, Password::new(password)).await {
            Ok(_) => Outcome::Deleted,
            Err(e) => failed(e),
        },
    }
}

/// Reads file or collection `id` whole; burns a "once" file after the read.
async fn read(
    client: &Client,
    id: [u8; 32],
    password: String,
) -> Result<(Vec<(String, Vec<u8>)>, bool), CryptoError> {
    let access = Access::Password(Password::new(password.clone()));
    let opened = client.open(id, access).await?;
    if opened.manifest().kind() == FileKind::Collection {
        let listing = client.collection(&opened).await?;
        let mut files = Vec::new();
        for entry in listing.entries() {
            let member = client
                .open(
                    entry.file,
                    Access::Password(Password::new(password.clone())),
                )
                .await?;
            files.push((
                entry.path.clone(),
                client.read_all(&member, usize::MAX).await?,
            ));
        }
        return Ok((files, false));
    }
    let bytes = client.read_all(&opened, usize::MAX).await?;
    let once = opened.manifest().once();
    client.burn(&opened).await?;
    Ok((vec![(String::new(), bytes)], once))
}

/// A node's object API as the client pipelines' store (what the HTTP object routes call).
struct NodeStore(Node);

fn store_error(e: NodeError) -> StoreError {
    let kind = match e {
        NodeError::Full(_) => StoreErrorKind::Full,
        _ => StoreErrorKind::Unreachable,
    };
    StoreError::new(kind, e.to_string())
}

impl ObjectStore for NodeStore {
    fn put(&self, objects: Vec<Object>) -> BoxFuture<'_, Result<Stored, StoreError>> {
        Box::pin(async move {
            let receipt = self
                .0
                .put_objects(objects.into_iter().map(|o| (o.id, o.bytes)).collect())
                .await
                .map_err(store_error)?;
            Ok(Stored {
                copies: receipt.copies,
                wanted: receipt.replicas,
            })
        })
    }

    fn put_stripe(&self, stripe: EncodedStripe) -> BoxFuture<'_, Result<Stored, StoreError>> {
        Box::pin(async move {
            let mut objects = vec![(stripe.id, Bytes::from(stripe.descriptor))];
            for shard in stripe.shards {
                objects.push((
                    voldisefs_node::crypto::content_id(&shard),
                    Bytes::from(shard),
                ));
            }
            let receipt = self
                .0
                .put_stripe(stripe.id, objects)
                .await
                .map_err(store_error)?;
            Ok(Stored {
                copies: receipt.copies,
                wanted: receipt.replicas,
            })
        })
    }

    fn get(
        &self,
        _source: usize,
        id: [u8; 32],
        kind: ObjectKind,
    ) -> BoxFuture<'_, Result<Fetched, StoreError>> {
        Box::pin(async move {
            let got = match kind {
                ObjectKind::Object => self.0.get_object(id).await,
                ObjectKind::Stripe => self.0.get_stripe(id).await,
            };
            match got {
                Ok(bytes) => Ok(Fetched::Found(bytes)),
                Err(NodeError::NoSuchObject(_) | NodeError::ObjectDeleted(_)) => {
                    Ok(Fetched::Missing)
                }
                Err(e) => Err(store_error(e)),
            }
        })
    }

    fn delete(
        &self,
        key: DeleteKey,
        ids: Vec<[u8; 32]>,
        scope: DeleteScope,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (everywhere, spread) = match scope {
                DeleteScope::Everywhere => (true, 0),
                DeleteScope::Holders { nodes } => (false, nodes),
            };
            self.0
                .delete_objects(&key, &ids, everywhere, spread)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }
}

/// A member that acknowledges every put and delete and keeps nothing, says it holds
/// everything, answers proofs with made-up digests and never answers a get.
struct Liar;

impl Handler for Liar {
    async fn handle(&self, _from: NodeId, request: Payload) -> Payload {
        let message = match request.message {
            Message::PutChunk { chunk } => Message::PutOk { chunk },
            Message::HasChunks { chunks } => Message::Have {
                present: vec![true; chunks.len()],
            },
            Message::ProveChunks { chunks, .. } => Message::Proofs {
                proofs: vec![
                    ChunkProof::Held {
                        proof: ProofDigest::from_bytes([0x5a; 32]),
                    };
                    chunks.len()
                ],
            },
            Message::DeleteChunks { .. } => Message::Ack,
            _ => std::future::pending().await,
        };
        Payload::new(message)
    }
}

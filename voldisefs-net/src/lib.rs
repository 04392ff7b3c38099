//! Voldisefs networking: TCP server and client, bootstrap and membership.
//!
//! A [`Network`] serves peers on an already-bound listener and keeps one pooled, multiplexed
//! connection per peer for its own requests (many requests in flight, matched by request id,
//! each with a timeout). Every connection opens with a `hello` that checks the protocol version
//! and tells each side the other's node id and listen address, which feeds the [`Membership`]
//! table (the address a peer's `hello` claims counts once this node has dialled it and found that
//! peer there). The network layer answers membership requests itself (`get_peers`, `ping`, `leave`)
//! and hands every other request to the node's [`Handler`]: it knows nothing of storage.
//!
//! A malformed, unknown, oversized or out-of-order frame closes that one connection with a
//! logged reason; the node and its other connections keep working.
//!
//! **Membership: SWIM gossip** ([`NetConfig::gossip`], the default) on the `foca` crate,
//! over UDP on the peer port, so each node's cost stays the same whatever the network's size:
//!
//! - each `probe_period` (1 s) one member is probed, in shuffled round-robin order; with no
//!   answer within `probe_rtt` (300 ms), `indirect_probes` (3) others probe it too;
//! - a member that answered none is suspect, and dead unless it refutes (gossips a higher
//!   incarnation) within `suspect_after` (2 s) times `max(1, log10 N)` and, as a last check,
//!   fails a direct ping over TCP (so a refutation lost on the way kills nobody); a member
//!   that stays suspect longer than that at one node (the news of its death missed that node)
//!   is pinged directly too, and declared dead there if it does not answer;
//! - news (joins, suspicions, deaths) rides on the probes and on a gossip round every
//!   `gossip_every` (200 ms, only while there is news) to `gossip_fanout` (3) members, each item sent `4 log10 N` times
//!   (at least 8);
//! - anti-entropy: a `get_peers` to one random live member every `sync_every` (2 s) while it
//!   brings news, backing off to 30 times that; and at once (at most one per `pull_gap`,
//!   250 ms) from a member that gossiped of a member this node did not know, and from a
//!   joiner that asked for this node's list (push-pull: each side gets the other's list);
//!   an announcement to a random member every `announce_every` (10 s) reunites the halves
//!   of a healed partition.
//!
//! Guarantees, with the defaults: a crashed member is marked dead by every member within about
//! 5 s in a small network and 10 s at 200 members (measured by `cargo bench --bench
//! membership`); a live member that answers some probes is not declared dead under 10% packet
//! loss, and a suspected one refutes (the simulation in the test suite checks both at 1,000
//! members); a node that announced its leave is never revived, not by its own `hello`, a probe
//! or gossip. In keyed mode every datagram is encrypted and authenticated under a per-sender
//! key derived from the network key, with a replay window, so
//! only key holders take part; in open mode a member named by gossip counts only once an
//! address check (two datagrams with a nonce; a dial when unanswered) found it at its address,
//! and is then gossiped on. Bootstrap asks only the seeds, announces this node to them, and
//! returns once the members they named are live (at most 5 s). See [`GossipConfig`].
//!
//! **Classic detector** (`NetConfig::gossip = None`): every peer is pinged each
//! `probe_interval` (one failure: suspect; `dead_after` in a row: dead; any answer: alive
//! again), and each `discovery_interval` one live peer is asked for its peers; simple, but its
//! cost grows with the square of the network's size.
//!
//! Peer connections are opened on demand and closed after [`NetConfig::idle_timeout`] (15 s)
//! unused, so with gossip a node holds links only to the peers it is exchanging with.
//!
//! Joining: [`Network::bootstrap`] is one attempt; [`Network::join`] retries it with capped
//! exponential backoff until a seed answers or the network's token is cancelled, and
//! [`Network::is_joining`] tells whether it is still trying.
//!
//! Everything peers feed this node is bounded, with its eviction rule next to the table:
//!
//! - membership table: at most [`NetConfig::max_peers`] (4096) entries; when full a new peer
//!   evicts the oldest dead or left entry, or is refused if there is none; dead and left
//!   entries are forgotten after [`NetConfig::forget_after`] (10 min);
//! - a peer known only from its inbound `hello` is unverified (not live, in no placement nor
//!   peer list) until this node dials the address it claims and finds it there; unverified
//!   entries are evicted before dead and left ones and forgotten after
//!   [`NetConfig::unverified_forget_after`] (30 s); verification dials: at most
//!   [`NetConfig::max_verifying`] (16) at once, each within [`NetConfig::probe_timeout`], and
//!   at most [`NetConfig::max_verify_pending`] (256) addresses waiting, further claims are not
//!   dialled (the probe loop retries them each round);
//! - ids of nodes that left: at most `max_peers`, oldest forgotten first;
//! - peer lists: an answer longer than [`MAX_PEERS_PER_ANSWER`](voldisefs_proto::MAX_PEERS_PER_ANSWER)
//!   (1024) is refused whole, invalid entries (this node's id, unspecified, multicast or
//!   broadcast address, port 0, repeated id) are dropped; this node answers with at most that
//!   many live peers;
//! - bootstrap contacts at most `max_peers` learned addresses; a discovery round introduces
//!   this node to at most [`NetConfig::discovery_fanout`] (16) new peers;
//! - inbound connections before their handshake (Noise and `hello`):
//!   [`NetConfig::max_handshaking`] (64) in all, [`NetConfig::max_handshaking_per_ip`] (8) per
//!   address, each for at most [`NetConfig::handshake_timeout`] (5 s); more are closed on
//!   accept, and they never take an established slot;
//! - established inbound connections: [`NetConfig::max_connections`] (1024) in all (a `hello`
//!   beyond is refused); [`NetConfig::max_connections_per_ip`] (256) per address in either
//!   phase; each with at most [`NetConfig::max_in_flight_per_connection`] (64) requests in
//!   flight, and closed after [`NetConfig::idle_timeout`] (15 s) without a frame while no
//!   request is in flight;
//! - frames: at most [`NetConfig::max_frame_len`] (16 MiB + 64 KiB); once a frame's first byte
//!   has arrived the whole frame must arrive within [`NetConfig::frame_timeout`] (10 s), on
//!   inbound and outbound connections alike; its buffer grows with the bytes received (at most
//!   twice those, or those + 128 KiB), never with the announced length;
//! - frame memory: every buffer held for an incoming frame not yet complete (all connections,
//!   open and keyed mode, the Noise ciphertext and decrypted bytes, before and after the
//!   `hello`) is granted before it is allocated, within [`NetConfig::frame_memory`] (256 MiB)
//!   for the node and [`NetConfig::frame_memory_per_ip`] (64 MiB) per address (IPv6: per
//!   /64), so they never hold more than the budget ([`Network::frame_memory`] reports it).
//!   A connection refused a buffer reads nothing until memory frees (the frame timeout closes
//!   it meanwhile if its frame stalls); when the budget is spent, the largest connection of
//!   the address holding the most is closed if that address holds more than the refused one
//!   would, so a peer gets at least `min(64 MiB, 256 MiB / addresses holding frame memory)`
//!   whatever the others do. Complete frames handed to the [`Handler`] are its business and
//!   not counted.
//!
//! Lifecycle: [`Network::start`] takes a [`CancellationToken`] as the network's root;
//! cancelling it (or [`Network::shutdown`], which also waits for every task) stops the accept
//! loop, the liveness loops and every connection. For failure drills,
//! [`Network::set_isolated`] cuts every link and [`Network::set_frozen`] stops all traffic
//! while keeping links open, like a stopped process.
//!
//! ```
//! use std::sync::Arc;
//! use voldisefs_net::{CancellationToken, Handler, NetConfig, Network, Payload};
//! use voldisefs_proto::{ErrorCode, Message, NodeId};
//!
//! /// A node that stores nothing.
//! struct Refuse;
//! impl Handler for Refuse {
//!     async fn handle(&self, _from: NodeId, _req: Payload) -> Payload {
//!         Payload::new(Message::error(ErrorCode::Unavailable, "no storage here"))
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // The node's root token: cancelling it stops both networks.
//! let root = CancellationToken::new();
//! let start = || async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//!     let config = NetConfig::default();
//!     Network::start(listener, None, Arc::new(Refuse), config, root.child_token()).unwrap()
//! };
//! let (a, b) = (start().await, start().await);
//! let mut changes = a.membership().subscribe();
//! // `join` retries until a seed answers; `bootstrap` would try once.
//! b.join(&[a.local().addr]).await.unwrap();
//! assert!(!b.is_joining());
//! // a counts b once it has dialled the address b's hello claimed, right after the hello.
//! while a.membership().live_peers().is_empty() {
//!     changes.changed().await.unwrap();
//! }
//! assert_eq!(a.membership().live_peers(), vec![b.local()]);
//! assert_eq!(b.membership().live_peers(), vec![a.local()]);
//! let pong = b.request(a.local(), Payload::new(Message::Ping)).await.unwrap();
//! assert_eq!(pong.message, Message::Pong);
//! root.cancel();
//! a.shutdown().await;
//! b.shutdown().await;
//! assert!(a.is_shut_down() && b.is_shut_down());
//! # });
//! ```

mod bootstrap;
mod config;
mod conn;
mod datagram;
mod dial;
mod error;
mod freeze;
mod gossip;
mod link;
mod liveness;
mod membership;
mod memory;
mod network;
mod noise;
mod payload;
mod peer_time;
mod pool;
mod server;
mod shared;
mod socket;
mod stats;
mod verify;

pub use bootstrap::BootstrapReport;
pub use config::{GossipConfig, NetConfig};
pub use error::NetError;
pub use membership::{Membership, PeerEntry, PeerState, Reported};
pub use memory::FrameMemoryStats;
pub use network::{LEAVE_PARALLELISM, Network};
pub use noise::{NETWORK_KEY_LEN, NOISE_PARAMS, NetworkKey, node_id_for};
pub use payload::{Handler, Payload};
pub use peer_time::{MAX_PEER_TIMES, WallClock};
pub use socket::Listener;
pub use stats::{RequestStat, TrafficStats};
pub use tokio_util::sync::CancellationToken;
pub use voldisefs_proto::PROTOCOL_VERSION;

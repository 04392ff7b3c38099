//! Voldisefs networking: TCP server and client, bootstrap and membership.
//!
//! A [`Network`] serves peers on an already-bound listener and keeps one pooled, multiplexed
//! connection per peer for its own requests (many requests in flight, matched by request id,
//! each with a timeout). Every connection opens with a `hello` that checks the protocol version
//! and tells each side the other's node id and listen address, which feeds the [`Membership`]
//! table. The network layer answers membership requests itself (`get_peers`, `ping`, `leave`)
//! and hands every other request to the node's [`Handler`]: it knows nothing of storage.
//!
//! A malformed, unknown, oversized or out-of-order frame closes that one connection with a
//! logged reason; the node and its other connections keep working.
//!
//! Two background loops keep the table true: every peer is pinged each `probe_interval` (one
//! failure: suspect; `dead_after` in a row: dead; any answer: alive again), and each
//! `discovery_interval` one live peer is asked for its peers so concurrent joins still reach
//! full membership. See [`NetConfig`].
//!
//! ```
//! use std::sync::Arc;
//! use voldisefs_net::{Handler, NetConfig, Network, Payload};
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
//! let start = || async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//!     Network::start(listener, None, Arc::new(Refuse), NetConfig::default()).unwrap()
//! };
//! let (a, b) = (start().await, start().await);
//! b.bootstrap(&[a.local().addr]).await.unwrap();
//! assert_eq!(a.membership().live_peers(), vec![b.local()]);
//! assert_eq!(b.membership().live_peers(), vec![a.local()]);
//! let pong = b.request(a.local(), Payload::new(Message::Ping)).await.unwrap();
//! assert_eq!(pong.message, Message::Pong);
//! a.shutdown().await;
//! b.shutdown().await;
//! # });
//! ```

mod config;
mod conn;
mod error;
mod link;
mod liveness;
mod membership;
mod network;
mod noise;
mod server;
mod stats;

pub use config::NetConfig;
pub use error::NetError;
pub use membership::{Membership, PeerEntry, PeerState};
pub use network::{BootstrapReport, Handler, Network, Payload};
pub use noise::{NETWORK_KEY_LEN, NOISE_PARAMS, NetworkKey, node_id_for};
pub use stats::{RequestStat, TrafficStats};
pub use voldisefs_proto::PROTOCOL_VERSION;

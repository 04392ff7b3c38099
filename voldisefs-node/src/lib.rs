//! A Voldisefs node: composes the proto, crypto, store and net crates.
//!
//! [`Node::start`] binds a peer server and (optionally) an HTTP API, joins the network through
//! bootstrap peers (retrying in the background while they are not up yet), and serves until
//! [`Node::shutdown`]. Clients seal and open files themselves (`voldisefs_crypto::client`) and
//! hand a node only sealed objects through its *object API* ([`Node::put_objects`],
//! `/api/v1/objects`; [`RemoteStore`] is that API's client), so no node sees a password, a name
//! or a plaintext byte. A caller that sends its password instead (*gateway mode*, curl and the
//! page: the node sees its data) gets the very same pipelines, run in the node over its cluster.
//!
//! Layout: `replication/` is the one layer that knows where chunks live (placement, holders,
//! hedged reads and writes, proofs of possession, repair and hand-off, tombstones, peer
//! health); `transfer/` holds the upload and download pipelines, which talk only to it;
//! `node/` the node's API and lifecycle (it never names the HTTP layer); `http/` the API and
//! page, which call only the node (its JSON bodies: [`api`]); `startup.rs` binds the listeners
//! and starts both.
//!
//! * Placement: each chunk and manifest record goes to the `replicas` live nodes with the
//!   highest rendezvous weight for its id, so every node computes the same holders; peers that
//!   recently failed a get, put or proof of possession, and suspect peers, are asked last.
//! * Object API ([`Node::put_objects`], [`Node::put_stripe`], [`Node::get_object`],
//!   [`Node::delete_objects`]): every object checked (id, length, expiry) before the
//!   replication layer places it; deletes present the file's delete key.
//! * Gateway upload ([`Node::upload`], a task the node owns): the password's key derived
//!   through the node's bounded gate, then the client's sealing pipeline over the cluster:
//!   body -> chunks -> sealed on the blocking pool in parallel -> stored on their holders
//!   concurrently (a hung holder is hedged past and replaced), with a window of chunks in
//!   flight sized by latency -> the sealed record -> an entry in this node's local index. A
//!   failed or cancelled upload deletes what it stored.
//! * Gateway download ([`Node::download`]; [`Node::stat`] opens without reading): the record
//!   by FileId, hash-checked -> opened with the password or a read key -> every chunk located
//!   on its ranked holders -> the client's opening pipeline: chunks fetched ahead with hedging
//!   (no single slow holder stalls it), verified against their ids (another holder on any
//!   failure) and decrypted, in order.
//! * Repair keeps `replicas` *proven* copies: a copy is dropped only after better-ranked
//!   holders answered a fresh proof-of-possession challenge; deletes leave tombstones so a
//!   holder that missed one cannot bring the file back.
//! * Erasure coding (`rs:K+M`, per file; [`NodeConfig::redundancy`], [`UploadOptions`]):
//!   each sealed chunk becomes K + M Reed-Solomon shards on K + M distinct nodes, named by a
//!   public stripe descriptor every shard holder keeps; reads take any K shards; the holders
//!   rebuild lost shards from any K others (`replication/stripes.rs`, `stripe_repair.rs`).
//! * Collections ([`Node::batch`]): several files under one password key (one Argon2id run),
//!   listed by a sealed collection record; read back as a listing, one file, or a streamed
//!   tar archive.
//! * HTTP API (`src/openapi.json`): the object API (`/api/v1/info`, `/api/v1/objects`,
//!   `/api/v1/stripes`), gateway mode (`/api/v1/files`, `/api/v1/collections`), `/api/v1/network`,
//!   `/healthz`, `/metrics`, `/`.
//!
//! ```
//! use bytes::Bytes;
//! use voldisefs_node::{Node, NodeConfig, crypto::Password};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let a = Node::start(NodeConfig::ephemeral()).await?;
//! let b = Node::start(NodeConfig {
//!     bootstrap: vec![a.peer_addr()],
//!     ..NodeConfig::ephemeral()
//! })
//! .await?;
//! let receipt = a
//!     .upload_bytes("hello.txt", Password::new("pw"), Bytes::from_static(b"hello"))
//!     .await?;
//! let (name, data) = b.download_bytes(receipt.id, Password::new("pw")).await?;
//! assert_eq!((name.as_str(), &data[..]), ("hello.txt", &b"hello"[..]));
//! b.shutdown().await;
//! a.shutdown().await;
//! # Ok::<(), voldisefs_node::NodeError>(())
//! # }).unwrap();
//! ```

pub mod api;
pub mod archive;
pub mod clock;
mod config;
mod cpu;
mod error;
mod http;
mod metrics;
mod node;
mod remote;
mod replication;
mod runtime;
mod startup;
mod status;
mod tickets;
mod transfer;

pub use config::{ApiToken, NodeConfig};
pub use error::NodeError;
pub use http::{
    ApiErrorCode, BUDGET_STEP, BUDGET_WAIT, DELETE_KEY_HEADER, EXPIRES_HEADER, FILENAME_HEADER,
    LINK_HEADER, MIN_BODY_RATE, NodeInfo, OBJECT_BODY_BUDGET, ONCE_HEADER, PASSWORD_HEADER,
    READ_KEY_HEADER, REDUNDANCY_HEADER, UnknownCode, api_routes,
};
pub use node::collections::{Batch, CollectionFile, CollectionListing};
pub use node::objects::{
    EXPIRY_SKEW_SECS, MAX_BATCH_BYTES, MAX_BATCH_OBJECTS, MAX_DELETE_IDS, MAX_OBJECT_LEN,
    ObjectReceipt,
};
pub use node::{FileStat, MAX_STATS_PEERS, MIN_EXPIRY_SECS, Node, TRANSFER_LOG, UploadOptions};
pub use remote::{RemoteStore, Url, remote_client};
pub use replication::{DELETE_MEMORY, placement};
pub use runtime::runtime_builder;
pub use status::{
    IndexEntry, IndexKind, MAX_INDEX_ENTRIES, MAX_INDEX_NAME_BYTES, NetworkStatus, PeerStatus,
    RepairStatus, StoreStatus,
};
pub use tickets::{MAX_TICKETS, TICKET_TTL};
pub use transfer::download::{Access, ByteRange, ByteStream, Download};
pub use transfer::upload::UploadReceipt;

pub use voldisefs_crypto as crypto;
pub use voldisefs_net as net;
pub use voldisefs_proto as proto;
pub use voldisefs_store as store;

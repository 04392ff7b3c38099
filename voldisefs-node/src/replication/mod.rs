//! The replication layer: the one module that knows where chunks live and how to reach them.
//!
//! [`Cluster`] owns this node's store (behind [`LocalHolder`]) and keeps the network to
//! itself; the upload and download pipelines, repair, hand-off and status talk only to it
//! (erasure-coded objects through [`Stripes`](stripes::Stripes), repair through [`Repairer`]).
//! `ARCHITECTURE.md` (at the repository root) describes its files. Its rules:
//!
//! * **Placement**: a chunk's holders are the first `replicas` live nodes in rendezvous order
//!   ([`placement`]); reads and writes use that order with demoted peers (recent failures,
//!   [`health`]) and suspect peers moved last, re-evaluated for every chunk.
//! * **Never wait on one peer** ([`hedge`]): every request has a short per-attempt deadline,
//!   and when the best holder has not answered within about the observed p99 latency the next
//!   one is asked as well. A write succeeds once `replicas` holders (or as many as there are
//!   live nodes) confirmed; a failing holder is replaced by the next-ranked node.
//! * **Ranked first, wide only on a miss**: reads ask the ranked holders; only when none of
//!   them has a chunk are all live peers asked.
//! * **Believe nothing unproved**: repair drops a copy only after `replicas` better-ranked
//!   holders proved possession ([`plan`]); a holder that fails a proof, get or put is demoted.
//! * **Deletes stick** ([`tombstones`]): a delete leaves tombstones on the chunk's ranked
//!   holders (the record's on every live node), which refuse later puts of it.

// What a holder is, and its two kinds: this node (which also answers peers) and a peer.
mod handler;
mod holder;
mod local;
mod remote;

// What the holders and the layer keep track of.
mod budget;
mod descriptor;
mod expiry;
mod health;
mod scrub;
mod tombstones;

// Where objects go, and the state every operation shares.
mod hedge;
mod layer;
pub mod placement;
mod window;

// The operations.
mod delete;
mod fetch;
mod locate;
mod put;
mod stripes;

// The facade and its read-only views.
mod cluster;
mod peers;

// Repair: `repair` runs sweeps and calls `stripe_repair` for erasure-coded objects; both use
// `plan` and `sweep`.
mod plan;
mod repair;
mod stripe_repair;
mod sweep;

pub(crate) use cluster::Cluster;
pub use cluster::DELETE_MEMORY;
pub(crate) use fetch::Fetched;
pub(crate) use handler::StoreHandler;
pub(crate) use health::Failure;
pub(crate) use hedge::AttemptError;
pub(crate) use holder::HolderError;
pub(crate) use layer::Settings;
pub(crate) use local::LocalHolder;
pub(crate) use repair::Repairer;
pub(crate) use scrub::scrubbed;
pub(crate) use stripes::StripeUpload;
pub(crate) use sweep::{Mode, TransferGuard};
pub(crate) use tombstones::Tombstones;
pub(crate) use window::Window;

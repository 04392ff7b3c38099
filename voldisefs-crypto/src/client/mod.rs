//! The client pipelines: sealing and opening files, streams, collections, ranges, expiry,
//! burn after reading, redundancy, share links and deletes, written once and run over any
//! [`ObjectStore`] (a node's object API from the CLI, a node's own cluster in gateway mode, or
//! [`MemoryStore`]).
//!
//! Whoever runs a [`Client`] holds the secrets; the store only ever sees sealed objects, their
//! public trailers, stripe descriptors and delete keys. CPU work (Argon2id, AES-GCM, BLAKE3,
//! Reed-Solomon) runs on an [`Offload`], never on the task that drives the store, and chunks
//! are sealed and opened in parallel; memory is bounded by
//! [`Settings::parallelism`] chunks in flight per transfer, never by the file's size.
//!
//! ```
//! use std::sync::Arc;
//! use voldisefs_crypto::client::{Access, Client, MemoryStore, PutOptions, Keying, Settings, Threads};
//! use voldisefs_crypto::{Password, Redundancy};
//! # fn main() -> Result<(), voldisefs_crypto::Error> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|_| voldisefs_crypto::Error::Rng)?;
//! # runtime.block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let client = Client::new(store.clone(), Arc::new(Threads::per_core()?), Settings::default())?;
//! let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from("hello"))]);
//! let options = PutOptions::file("hello.txt", Redundancy::Replicas(3));
//! let receipt = client.put(Keying::Password(Password::new("pw")), options, body).await?;
//! let opened = client.open(receipt.id, Access::ReadKey(receipt.read_key.clone())).await?;
//! assert_eq!(client.read_all(&opened, 1 << 20).await?, b"hello");
//! # Ok(()) })
//! # }
//! ```

mod collection;
mod get;
mod link;
mod offload;
mod put;
mod store;
mod store_error;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use collection::CollectionUpload;
pub use get::{Access, Opened};
pub use link::ShareLink;
pub use offload::{Inline, Job, Offload, Threads, run};
pub use put::{Keying, PutOptions, PutReceipt};
pub use store::{
    BoxFuture, DeleteScope, Direction, Fetched, FixedWindow, MemoryStore, Object, ObjectKind,
    ObjectStore, Stored, Window,
};
pub use store_error::{StoreError, StoreErrorKind};

use crate::{ChunkSize, KdfParams, KekCache, Result};

/// How a [`Client`] seals and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Argon2id parameters for new files.
    pub kdf: KdfParams,
    /// The most a record may ask of this reader's Argon2id (a planted record cannot make it
    /// spend more).
    pub kdf_ceiling: KdfParams,
    /// Chunk size of new files.
    pub chunk_size: ChunkSize,
    /// Chunks in flight per transfer (sealing, opening, storing, fetching).
    pub parallelism: usize,
    /// Most objects in one batch of small files.
    pub batch_objects: usize,
    /// Most bytes in one batch of small files.
    pub batch_bytes: usize,
    /// The time new files are stamped with and expiry is judged by: the machine's clock
    /// unless a simulation gives its own.
    pub clock: Clock,
}

/// Seconds since the Unix epoch, as a [`Client`] reads them ([`Settings::clock`]).
#[derive(Debug, Clone, Copy)]
pub struct Clock(pub fn() -> u64);

impl Clock {
    /// This machine's clock.
    pub const SYSTEM: Clock = Clock(system_now);

    /// Seconds since the Unix epoch now.
    pub fn now(&self) -> u64 {
        (self.0)()
    }
}

impl PartialEq for Clock {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::fn_addr_eq(self.0, other.0)
    }
}

impl Eq for Clock {}

impl Default for Settings {
    fn default() -> Self {
        Self {
            kdf: KdfParams::default(),
            kdf_ceiling: KdfParams::default(),
            chunk_size: ChunkSize::default(),
            parallelism: 8,
            batch_objects: 256,
            batch_bytes: 4 << 20,
            clock: Clock::SYSTEM,
        }
    }
}

/// Keys cached per client: at most this many passwords' keys.
const CACHE_ENTRIES: usize = 16;
/// ... for at most this long.
const CACHE_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs the pipelines over a store: cheap to clone (every clone shares the store, the offload
/// threads and the password-key cache).
#[derive(Clone)]
pub struct Client {
    store: Arc<dyn ObjectStore>,
    offload: Arc<dyn Offload>,
    settings: Settings,
    cache: Arc<KekCache>,
    /// Argon2id runs so far.
    derivations: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client over `store`, running CPU work on `offload`. Passwords' keys are cached (at
    /// most 16, for at most 10 minutes, wiped when dropped) so a collection's files and a
    /// repeated read cost one Argon2id run.
    /// Fails only if the system random generator does.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        offload: Arc<dyn Offload>,
        settings: Settings,
    ) -> Result<Self> {
        Ok(Self {
            store,
            offload,
            settings,
            cache: Arc::new(KekCache::new(CACHE_ENTRIES, CACHE_AGE)?),
            derivations: Arc::default(),
        })
    }

    /// How many Argon2id derivations this client (and its clones) ran so far: one per
    /// password upload, collection or first read of a salt; none for read keys and keys
    /// found in its cache.
    pub fn key_derivations(&self) -> u64 {
        self.derivations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Its store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Runs `work` on the client's offload threads.
    pub async fn offload<R, F>(&self, work: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        run(&*self.offload, work).await
    }
}

/// Seconds since the Unix epoch by this machine's clock.
fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

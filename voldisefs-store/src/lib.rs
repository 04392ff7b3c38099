//! Voldisefs chunk storage: the [`ChunkStore`] trait and [`MemoryStore`], a capacity-bounded
//! store that keeps chunks in RAM only.
//!
//! Chunks are opaque ciphertext addressed by [`ChunkId`] (the BLAKE3 digest of their bytes). A store
//! never sees keys; it verifies every chunk against its id on the way in, refuses what does not
//! fit with [`StoreError::Full`] rather than evicting anything, and writes nothing to disk.
//!
//! ```
//! use bytes::Bytes;
//! use voldisefs_proto::ChunkId;
//! use voldisefs_store::{ChunkStore, MemoryStore, PutOutcome, StoreError};
//!
//! let store = MemoryStore::new(16);
//! let data = Bytes::from_static(b"sealed chunk");
//! let id = ChunkId::digest(&data);
//!
//! assert_eq!(store.put(id, data.clone())?, PutOutcome::Stored);
//! assert_eq!(store.put(id, data.clone())?, PutOutcome::AlreadyPresent);
//! assert_eq!(store.get(&id), Some(data));
//! assert_eq!(store.stats().bytes, 12);
//!
//! // Data that does not hash to its id is refused.
//! let wrong = store.put(id, Bytes::from_static(b"tampered"));
//! assert!(matches!(wrong, Err(StoreError::IdMismatch { .. })));
//!
//! // So is data that does not fit: nothing is evicted.
//! let big = Bytes::from_static(b"more than four bytes");
//! let err = store.put(ChunkId::digest(&big), big).unwrap_err();
//! assert_eq!(err.to_string(), "store full: need 20 bytes, 4 available of 16");
//!
//! // Share it between tasks as a trait object.
//! let shared: std::sync::Arc<dyn ChunkStore> = std::sync::Arc::new(store);
//! assert!(shared.remove(&id));
//! assert_eq!(shared.stats().bytes, 0);
//! # Ok::<(), StoreError>(())
//! ```

mod chunk_store;
mod error;
mod memory;

pub use chunk_store::{ChunkStore, PutOutcome, StoreStats};
pub use error::StoreError;
pub use memory::{ENTRY_OVERHEAD, MemoryStore};
pub use voldisefs_proto::ChunkId;

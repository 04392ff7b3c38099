//! Voldisefs: a volatile, distributed, secure peer-to-peer file store.
//!
//! This facade re-exports the libraries the `voldisefs` binary is built from, so a program that
//! embeds Voldisefs gets exactly what the CLI uses:
//!
//! * [`proto`]: ids, wire messages, frame codec;
//! * [`crypto`]: password KDF, chunk and manifest sealing;
//! * [`store`]: the volatile chunk store;
//! * [`net`]: peer networking;
//! * [`node`]: a whole node.
//!
//! ```
//! use voldisefs::proto::FileId;
//! let id: FileId = "00".repeat(32).parse().unwrap();
//! assert_eq!(id.as_bytes(), &[0u8; 32]);
//! ```

pub use voldisefs_crypto as crypto;
pub use voldisefs_net as net;
pub use voldisefs_node as node;
pub use voldisefs_proto as proto;
pub use voldisefs_store as store;

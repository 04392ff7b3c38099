//! [`StoreError`]: every way a store can refuse a chunk.

use voldisefs_proto::ChunkId;

/// Why a [`ChunkStore::put`](crate::ChunkStore::put) was refused.
///
/// A refused put leaves the store exactly as it was: nothing is stored and no capacity is held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Storing the chunk would exceed the store's byte capacity. Nothing is ever evicted to make
    /// room: the caller must place the chunk elsewhere or free space first.
    #[error("store full: need {needed} bytes, {available} available of {capacity}")]
    Full {
        /// Size of the refused chunk in bytes.
        needed: u64,
        /// Bytes still free when the put was refused.
        available: u64,
        /// The store's total byte capacity.
        capacity: u64,
    },
    /// The data does not hash (BLAKE3) to the id it was offered under.
    #[error("chunk id mismatch: expected {expected}, data hashes to {actual}")]
    IdMismatch {
        /// The id the chunk was offered under.
        expected: ChunkId,
        /// The id the data actually has.
        actual: ChunkId,
    },
    /// The chunk is longer than the store's maximum chunk length.
    #[error("chunk too large: {len} bytes, maximum is {max}")]
    ChunkTooLarge {
        /// Length of the refused chunk in bytes.
        len: u64,
        /// The store's maximum chunk length in bytes.
        max: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_readable() {
        let full = StoreError::Full {
            needed: 1_048_592,
            available: 12,
            capacity: 1_073_741_824,
        };
        assert_eq!(
            full.to_string(),
            "store full: need 1048592 bytes, 12 available of 1073741824"
        );
        let id = ChunkId::digest(b"abc");
        let mismatch = StoreError::IdMismatch {
            expected: id,
            actual: id,
        };
        assert!(
            mismatch
                .to_string()
                .starts_with(&format!("chunk id mismatch: expected {id}, data hashes to"))
        );
        let big = StoreError::ChunkTooLarge { len: 10, max: 9 };
        assert_eq!(big.to_string(), "chunk too large: 10 bytes, maximum is 9");
    }
}

//! The one error type of this crate.

/// Everything that can go wrong while sealing or opening a file.
///
/// A wrong password and any tampering with authenticated data are deliberately the *same*
/// variant ([`Error::Decrypt`]): telling them apart would hand an attacker an oracle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Wrong password, or the record / chunk was corrupted or forged (failed key commitment or
    /// failed AEAD tag).
    #[error("wrong password or corrupted data")]
    Decrypt,

    /// The record's BLAKE3 digest does not match the file id it was requested under.
    #[error("record does not match the requested file id")]
    IdMismatch,

    /// A chunk's BLAKE3 digest does not match the id listed for it in the manifest.
    #[error("chunk {index} does not match its id in the manifest")]
    ChunkIdMismatch {
        /// Index of the offending chunk.
        index: u64,
    },

    /// The record uses a magic, format version or KDF this build does not know.
    #[error("unsupported {field}: {value:#x}")]
    Unsupported {
        /// Which header field was not recognised (`"magic"`, `"format version"`, `"kdf"`).
        field: &'static str,
        /// The value found (the magic is read as a big-endian `u32`).
        value: u32,
    },

    /// The record header has the wrong length or an impossible field value.
    #[error("malformed record header: {0}")]
    MalformedHeader(&'static str),

    /// The KDF parameters are below the security floor (a downgrade attempt).
    #[error("KDF parameters too weak (m = {m_kib} KiB, t = {t}, p = {p})")]
    KdfParamsTooWeak {
        /// Memory cost in KiB.
        m_kib: u32,
        /// Number of passes.
        t: u32,
        /// Parallelism (lanes).
        p: u32,
    },

    /// The KDF parameters exceed the ceiling (a denial-of-service attempt); nothing was run.
    #[error("KDF parameters too expensive (m = {m_kib} KiB, t = {t}, p = {p})")]
    KdfParamsTooExpensive {
        /// Memory cost in KiB.
        m_kib: u32,
        /// Number of passes.
        t: u32,
        /// Parallelism (lanes).
        p: u32,
    },

    /// The record (or the caller) uses the insecure test KDF, which this build refuses.
    /// Only builds with the `insecure-test-kdf` feature accept it.
    #[error("insecure test KDF refused by this build")]
    InsecureTestKdf,

    /// The file exceeds the size or chunk-count cap of the format.
    #[error("file too large (limit {max_bytes} bytes and {max_chunks} chunks)")]
    TooLarge {
        /// Byte limit ([`crate::MAX_FILE_SIZE`]).
        max_bytes: u64,
        /// Chunk-count limit ([`crate::MAX_CHUNKS`]).
        max_chunks: u64,
    },

    /// The manifest is inconsistent (chunk count vs size, bad name, trailing bytes, ...).
    #[error("invalid manifest: {0}")]
    InvalidManifest(&'static str),

    /// A collection listing is malformed or unsafe to recreate (a path escaping its folder,
    /// a duplicate, ...), whoever sealed it.
    #[error("invalid collection: entry {entry}: {reason}")]
    InvalidCollection {
        /// Index of the offending entry (in stored order).
        entry: u64,
        /// What was wrong.
        reason: &'static str,
    },

    /// A read key that is not 64 hexadecimal digits.
    #[error("a read key is 64 hexadecimal digits")]
    InvalidReadKey,

    /// A chunk was sealed or opened with an impossible index, length or final flag.
    #[error("invalid chunk {index}: {reason}")]
    InvalidChunk {
        /// Index of the offending chunk.
        index: u64,
        /// What was wrong.
        reason: &'static str,
    },

    /// A stripe descriptor or shard set is malformed or does not fit together (FORMAT.md
    /// section 8).
    #[error("invalid stripe: {0}")]
    InvalidStripe(&'static str),

    /// A redundancy spec that is not `replicas:N` or `rs:K+M` within the bounds.
    #[error("invalid redundancy: {0}")]
    InvalidRedundancy(&'static str),

    /// A chunk size that is not a power of two in the supported range.
    #[error("invalid chunk size {0} (must be a power of two from 64 KiB to 16 MiB)")]
    InvalidChunkSize(u64),

    /// Argon2id itself failed (should not happen with validated parameters).
    #[error("Argon2id failed")]
    Kdf(#[source] argon2::Error),

    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Rng,

    /// No source holds the file (never stored, expired or deleted).
    #[error("no such file: never stored, expired or deleted")]
    NotFound,

    /// A chunk of the file is held by no source that answers now.
    #[error("chunk {index} of the file is held by no reachable node")]
    Unavailable {
        /// Index of the first missing chunk.
        index: u64,
    },

    /// Every source that answered for an object served bytes that failed verification.
    #[error("every node that answered for object {id} served wrong bytes ({sources})")]
    BadObject {
        /// The object's id, hex.
        id: String,
        /// The sources that served wrong bytes.
        sources: String,
    },

    /// The object store failed (unreachable, refused, full, ...).
    #[error("{0}")]
    Store(#[from] crate::client::StoreError),

    /// The id names a collection where a file was expected.
    #[error("this id names a collection, not a file")]
    IsCollection,

    /// The id names a file where a collection was expected.
    #[error("this id names a file, not a collection")]
    NotACollection,

    /// A byte range that selects nothing of a file of `size` bytes.
    #[error("the range selects nothing of a {size}-byte file")]
    RangeNotSatisfiable {
        /// The file's size.
        size: u64,
    },

    /// The transfer was stopped before it ended (what it stored was deleted again).
    #[error("cancelled")]
    Cancelled,

    /// The caller's input was refused or could not be read (a body that failed, a bad path).
    #[error("{0}")]
    Input(String),

    /// A primitive failed in a way valid inputs never cause (a bug, not bad data).
    #[error("internal crypto error: {0}")]
    Internal(&'static str),
}

/// Shorthand for `Result<T, voldisefs_crypto::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Gateway downloads: fetch the record by FileId and check its hash -> open it with the
//! password through the node's key-derivation gate (or a read key) -> check every chunk is
//! held somewhere (asking its ranked holders) -> stream the chunks through the client's
//! opening pipeline (`voldisefs_crypto::client`) over this node's cluster
//! ([`ClusterStore`]): in order, fetched ahead from the ranked holders with hedging, checked
//! against their ids (another holder on any failure) and decrypted on the blocking pool.
//!
//! Read-ahead is bounded by whoever reads the body: a download opened inside a
//! [`READ_AHEAD`] scope (the HTTP server's responses) asks its [`ReadAhead`] before each chunk
//! it starts, so chunks are only fetched and decrypted ahead of a client within the bytes its
//! response may hold (see `http::slow_readers`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use voldisefs_crypto::client::{
    BoxFuture, Client, DeleteScope, Direction, Fetched as StoreFetched, Object, ObjectKind,
    ObjectStore, Opened, Settings as ClientSettings, StoreError, Stored, Window,
};
use voldisefs_crypto::{
    DeleteKey, EncodedStripe, Error as CryptoError, FileKind, FileOpener, Password, ReadKey,
};
use voldisefs_proto::{ChunkId, FileId};

use crate::NodeError;
use crate::replication::{Cluster, Fetched};
use crate::transfer::kdf_gate::KdfGate;
use crate::transfer::store::{BlockingPool, ClusterStore};

/// Bounds the read-ahead of a download: how many chunks it may keep in flight.
pub(crate) trait ReadAhead: Send + Sync {
    /// Chunks of `chunk_len` bytes the download may have started and not yet handed out, when
    /// its pipeline would keep `wanted` in flight. 0 lets only the one chunk a pipeline always
    /// keeps in flight through (the reader then makes room for it before it polls the body).
    fn window(&self, wanted: usize, chunk_len: usize) -> usize;
}

tokio::task_local! {
    /// The read-ahead bound of downloads opened in this scope (none outside one).
    pub(crate) static READ_AHEAD: Arc<dyn ReadAhead>;
}

/// The cluster store of one download, with its window bounded by a [`ReadAhead`].
struct Bounded {
    inner: Arc<ClusterStore>,
    read_ahead: Arc<dyn ReadAhead>,
}

/// A pipeline window within what a [`ReadAhead`] allows.
struct BoundedWindow {
    inner: Box<dyn Window>,
    read_ahead: Arc<dyn ReadAhead>,
    chunk_len: usize,
}

impl Window for BoundedWindow {
    fn size(&mut self) -> usize {
        let wanted = self.inner.size().max(1);
        self.read_ahead.window(wanted, self.chunk_len)
    }
}

impl ObjectStore for Bounded {
    fn put(&self, objects: Vec<Object>) -> BoxFuture<'_, Result<Stored, StoreError>> {
        self.inner.put(objects)
    }

    fn put_stripe(&self, stripe: EncodedStripe) -> BoxFuture<'_, Result<Stored, StoreError>> {
        self.inner.put_stripe(stripe)
    }

    fn get(
        &self,
        source: usize,
        id: [u8; 32],
        kind: ObjectKind,
    ) -> BoxFuture<'_, Result<StoreFetched, StoreError>> {
        self.inner.get(source, id, kind)
    }

    fn delete(
        &self,
        key: DeleteKey,
        ids: Vec<[u8; 32]>,
        scope: DeleteScope,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.delete(key, ids, scope)
    }

    fn sources(&self) -> usize {
        self.inner.sources()
    }

    fn window(&self, base: usize, chunk_len: usize, direction: Direction) -> Box<dyn Window> {
        // Tells the bound the chunk size before the first chunk starts.
        self.read_ahead.window(1, chunk_len);
        Box::new(BoundedWindow {
            inner: self.inner.window(base, chunk_len, direction),
            read_ahead: self.read_ahead.clone(),
            chunk_len,
        })
    }

    fn source_name(&self, source: usize) -> String {
        self.inner.source_name(source)
    }

    fn report_bad(&self, source: usize, id: [u8; 32]) {
        self.inner.report_bad(source, id);
    }
}

/// A stream of plaintext pieces of a file, in order.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, NodeError>> + Send>>;

/// One byte range of a file, as an HTTP `Range: bytes=...` header asks for it (RFC 9110).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last` (inclusive) or `first-` (to the end).
    From {
        /// First byte.
        first: u64,
        /// Last byte, inclusive (past the end: the end).
        last: Option<u64>,
    },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a `Range` header value. `None` for anything but one well-formed byte range
    /// (several ranges, other units, `last < first`): a server then sends the whole file.
    pub fn parse(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => Some(ByteRange::Suffix(number(last)?)),
            (false, true) => Some(ByteRange::From {
                first: number(first)?,
                last: None,
            }),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                (last >= first).then_some(ByteRange::From {
                    first,
                    last: Some(last),
                })
            }
            (true, true) => None,
        }
    }

    /// The inclusive `(first, last)` bytes this range selects of a file of `size` bytes, or
    /// `None` when it selects nothing (unsatisfiable: HTTP 416).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        if size == 0 {
            return None;
        }
        match self {
            ByteRange::From { first, last } if first < size => {
                Some((first, last.map_or(size - 1, |l| l.min(size - 1))))
            }
            ByteRange::From { .. } | ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((size - n.min(size), size - 1)),
        }
    }
}

/// An opened file, ready to stream.
pub struct Download {
    /// The original file name.
    pub name: String,
    /// Plaintext size in bytes (of the whole file, also when `range` is set).
    pub size: u64,
    /// The inclusive byte range `body` carries, when only part of the file was asked for.
    pub range: Option<(u64, u64)>,
    /// Number of chunks.
    pub chunks: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// The file's bytes. Each piece is wiped from memory when dropped. On a failure part-way
    /// (a holder vanished after the availability check) the stream ends with an error.
    pub body: ByteStream,
    /// For a "once" file downloaded whole: what to delete once the body was delivered.
    pub(crate) burn: Option<Burn>,
}

/// What deleting a "once" file takes: its delete key and every object (record first).
pub(crate) struct Burn {
    pub(crate) key: voldisefs_crypto::DeleteKey,
    pub(crate) record: ChunkId,
    pub(crate) chunks: Vec<ChunkId>,
    /// Nodes each chunk is spread over (K + M for stripes).
    pub(crate) spread: usize,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

/// Everything the holders of a file need to know, opened by [`open_record`].
pub(crate) struct OpenedFile {
    pub(crate) opener: Arc<FileOpener>,
    pub(crate) chunk_ids: Vec<ChunkId>,
}

impl OpenedFile {
    /// The opened file, or [`NodeError::NotFound`] once it expired at `now` (this node's
    /// time).
    fn checked(id: FileId, opener: FileOpener, now: u64) -> Result<Self, NodeError> {
        if voldisefs_crypto::expired(opener.expires(), now) {
            return Err(NodeError::NotFound(id));
        }
        Ok(Self::new(opener))
    }

    fn new(opener: FileOpener) -> Self {
        let chunk_ids = opener
            .manifest()
            .chunks()
            .iter()
            .map(|c| ChunkId::from_bytes(*c))
            .collect();
        Self {
            opener: Arc::new(opener),
            chunk_ids,
        }
    }
}

/// What opens a file: its password, or the read key a share link carries.
#[derive(Clone)]
pub enum Access {
    /// The password (Argon2id, or a key from the node's cache).
    Password(Password),
    /// The file's read key: opens that one file, with no Argon2id run and no right to delete.
    ReadKey(ReadKey),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Password(_) => "Access::Password(..)",
            Access::ReadKey(_) => "Access::ReadKey(..)",
        })
    }
}

impl From<Password> for Access {
    fn from(password: Password) -> Self {
        Access::Password(password)
    }
}

/// Fetches and opens the record of `id`: [`NodeError::NotFound`] if no node holds it (or it
/// was deleted), [`NodeError::WrongPassword`] if the password (or read key) does not open it.
pub(crate) async fn open_record(
    cluster: &Cluster,
    gate: &KdfGate,
    id: FileId,
    access: Access,
) -> Result<OpenedFile, NodeError> {
    let (client, store) = ClusterStore::client(cluster, ClientSettings::default(), Duration::MAX)?;
    let record = match client.fetch_record(*id.as_bytes()).await {
        Ok(record) => record,
        Err(CryptoError::NotFound) => return Err(NodeError::NotFound(id)),
        Err(e) => return Err(store.error(e)),
    };
    let password = match access {
        Access::Password(password) => password,
        Access::ReadKey(key) => {
            // No Argon2id: HKDF and one AES-GCM open of the manifest.
            let opener = crate::transfer::store::scrubbed(move || {
                FileOpener::open_with_read_key(id.as_bytes(), &record, &key)
            })
            .await??;
            return OpenedFile::checked(id, opener, cluster.now());
        }
    };
    let ceiling = gate.ceiling();
    let cache = gate.cache();
    // A key cached by an earlier read with this password: no Argon2id, no slot needed.
    let cached = {
        let (record, password, cache) = (record.clone(), password.clone(), cache.clone());
        crate::transfer::store::scrubbed(move || {
            FileOpener::open_cached(id.as_bytes(), &record, &password, &ceiling, &cache)
        })
        .await??
    };
    let opener = match cached {
        Some(opener) => {
            gate.hit();
            opener
        }
        None => {
            gate.run(move || {
                FileOpener::open_caching(id.as_bytes(), &record, &password, &ceiling, &cache)
            })
            .await??
        }
    };
    OpenedFile::checked(id, opener, cluster.now())
}

/// Opens file `id` (refused unless its manifest says `kind`) and returns its streaming body
/// (only the chunks `range` touches, cut to it: [`NodeError::RangeNotSatisfiable`] when it
/// selects nothing), after checking that every chunk is held by some reachable node
/// ([`NodeError::Unavailable`] says how many are not). The chunks then come through the
/// client's opening pipeline (`voldisefs_crypto::client`) over this node's cluster: fetched
/// from their ranked holders with hedging, each within `deadline`, in a window that follows
/// the latency, and decrypted on the blocking pool.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn download(
    cluster: &Cluster,
    gate: &KdfGate,
    id: FileId,
    access: Access,
    kind: FileKind,
    range: Option<ByteRange>,
    read_ahead: usize,
    deadline: Duration,
) -> Result<Download, NodeError> {
    let OpenedFile { opener, chunk_ids } = open_record(cluster, gate, id, access).await?;
    match (kind, opener.manifest().kind()) {
        (FileKind::File, FileKind::Collection) => return Err(NodeError::IsCollection(id)),
        (FileKind::Collection, FileKind::File) => return Err(NodeError::NotACollection(id)),
        _ => {}
    }
    let manifest = opener.manifest();
    let size = manifest.size();
    let range = match range {
        None => None,
        Some(r) => Some(
            r.resolve(size)
                .ok_or(NodeError::RangeNotSatisfiable { size })?,
        ),
    };
    // "Once": the read is a whole download, or a range that covers the whole file; a part is
    // refused, so nobody reads a burn-after-reading file piece by piece without burning it.
    let whole = range.is_none_or(|(first, last)| first == 0 && last + 1 == size);
    if manifest.once() && !whole {
        return Err(NodeError::InvalidRequest(
            "a burn-after-reading file is read whole: ask without a Range, or for all of it".into(),
        ));
    }
    let burn = match (manifest.once(), opener.delete_key()) {
        (true, Some(key)) => Some(Burn {
            key: key.clone(),
            record: id.record_chunk(),
            chunks: chunk_ids.clone(),
            spread: manifest
                .redundancy()
                .map_or(0, voldisefs_crypto::Redundancy::nodes),
        }),
        _ => None,
    };
    let total = manifest.chunk_count();
    let (name, created) = (manifest.name().to_string(), manifest.created());
    // Only the chunks the range touches must be held somewhere.
    let chunk_len = opener.chunk_size().bytes() as u64;
    let needed: Vec<ChunkId> = match range {
        Some((first, last)) => {
            chunk_ids[(first / chunk_len) as usize..=(last / chunk_len) as usize].to_vec()
        }
        None => chunk_ids,
    };
    let holders = cluster.locate(&needed).await;
    let missing = holders.iter().filter(|h| h.is_empty()).count() as u64;
    if missing > 0 {
        // A delete may have run since the record was read: then the file is gone, not broken.
        if !matches!(
            cluster.fetch(id.record_chunk(), &[], Ok).await?,
            Fetched::Found(_)
        ) {
            return Err(NodeError::NotFound(id));
        }
        return Err(NodeError::Unavailable { missing, total });
    }
    let settings = ClientSettings {
        parallelism: read_ahead.max(1),
        ..ClientSettings::default()
    };
    let (client, store) = ClusterStore::client(cluster, settings, deadline)?;
    // Inside a read-ahead scope, the window also answers to the reader's budget.
    let client = match READ_AHEAD.try_with(Arc::clone) {
        Ok(read_ahead) => {
            let bounded = Arc::new(Bounded {
                inner: store.clone(),
                read_ahead,
            });
            Client::new(bounded, Arc::new(BlockingPool), settings)?
        }
        Err(_) => client,
    };
    let opened = Opened::new(*id.as_bytes(), opener);
    let body = client
        .read(&opened, range)
        .map_err(|e| store.error(e))?
        .map(move |piece| {
            piece.map_err(|e| match e {
                CryptoError::Unavailable { .. } => NodeError::Unavailable { missing: 1, total },
                CryptoError::NotFound => NodeError::NotFound(id),
                e => store.error(e),
            })
        });
    Ok(Download {
        name,
        size,
        range,
        chunks: total,
        created,
        body: Box::pin(body),
        burn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_resolve_like_rfc_9110() {
        let from = |first, last| ByteRange::From { first, last };
        assert_eq!(ByteRange::parse("bytes=0-0"), Some(from(0, Some(0))));
        assert_eq!(ByteRange::parse("bytes= 5 - 9 "), Some(from(5, Some(9))));
        assert_eq!(ByteRange::parse("bytes=7-"), Some(from(7, None)));
        assert_eq!(ByteRange::parse("bytes=-3"), Some(ByteRange::Suffix(3)));
        for ignored in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=9-5",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(ByteRange::parse(ignored), None, "{ignored:?}");
        }
        assert_eq!(from(0, Some(0)).resolve(10), Some((0, 0)));
        assert_eq!(from(3, None).resolve(10), Some((3, 9)));
        assert_eq!(from(3, Some(100)).resolve(10), Some((3, 9)));
        assert_eq!(from(10, None).resolve(10), None);
        assert_eq!(ByteRange::Suffix(4).resolve(10), Some((6, 9)));
        assert_eq!(ByteRange::Suffix(40).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(from(0, None).resolve(0), None);
        assert_eq!(ByteRange::Suffix(1).resolve(0), None);
    }
}

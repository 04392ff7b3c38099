//! The opening pipeline: a record fetched and checked against its id, opened with the
//! password or a read key, then its chunks fetched, verified and decrypted in order (a range
//! fetches only the chunks it touches), with at most
//! [`Settings::parallelism`](super::Settings::parallelism) chunks in flight.
//!
//! Every object is verified as it arrives: a record against its id (the BLAKE3 of its bytes),
//! before any key derivation; a chunk (whole, or joined from a stripe's shards) by its length,
//! its public trailer and its AEAD tag under the file's key, whose nonce binds its index and
//! final flag. A source that answers with wrong bytes is reported
//! ([`ObjectStore::report_bad`](super::ObjectStore::report_bad)) and the next source is asked;
//! a wrong byte is never handed out.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::Client;
use super::offload::run;
use super::put::spread;
use super::store::{DeleteScope, Direction, Fetched, ObjectKind};
use crate::{
    Collection, DeleteKey, Error, FileKind, FileOpener, MAX_COLLECTION_LEN, Manifest, Password,
    ReadKey, Result, expired,
};

/// What opens a file: its password, or the read key a share link carries.
#[derive(Clone)]
pub enum Access {
    /// The password (Argon2id, or a key from the client's cache).
    Password(Password),
    /// The file's read key: opens that one file, no Argon2id, no right to delete.
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

/// An opened file or collection: its checked manifest and the keys to read it.
#[derive(Debug, Clone)]
pub struct Opened {
    id: [u8; 32],
    opener: Arc<FileOpener>,
}

impl Opened {
    /// An opened file from an opener made elsewhere (a node opens with its own bounded key
    /// derivation, then reads through these pipelines).
    pub fn new(id: [u8; 32], opener: impl Into<Arc<FileOpener>>) -> Self {
        Self {
            id,
            opener: opener.into(),
        }
    }

    /// The file's id.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// Its checked manifest (name, size, kind, chunks, ...).
    pub fn manifest(&self) -> &Manifest {
        self.opener.manifest()
    }

    /// When it expires, unix seconds (0: never).
    pub fn expires(&self) -> u64 {
        self.opener.expires()
    }

    /// Its read key.
    pub fn read_key(&self) -> &ReadKey {
        self.opener.read_key()
    }

    /// Its delete key: known when opened with the password, or for a "once" file.
    pub fn delete_key(&self) -> Option<&DeleteKey> {
        self.opener.delete_key()
    }

    /// The opener itself.
    pub fn opener(&self) -> &FileOpener {
        &self.opener
    }
}

/// Whether an error while checking bytes from one source means that source lied (ask the
/// next), rather than that the file or the request is bad.
fn is_bad_bytes(error: &Error) -> bool {
    // Chunks are checked by their length, trailer and AEAD tag (see `Client::read`): bytes
    // from one source that fail the tag are that source's fault.
    matches!(
        error,
        Error::IdMismatch
            | Error::ChunkIdMismatch { .. }
            | Error::InvalidChunk { .. }
            | Error::Decrypt
    )
}

impl Client {
    /// Fetches object `id` from the first source whose answer passes `check` (run on the
    /// offload threads; its flag says whether the store verified the bytes already).
    /// `Err(Error::NotFound)` when every source answers that it holds nothing;
    /// [`Error::BadObject`] when the only answers were wrong bytes.
    pub(crate) async fn fetch_checked<T, F>(
        &self,
        id: [u8; 32],
        kind: ObjectKind,
        check: F,
    ) -> Result<T>
    where
        F: Fn(Bytes, bool) -> Result<T> + Send + Sync + 'static,
        T: Send + 'static,
    {
        let check = Arc::new(check);
        let (mut bad, mut failure) = (Vec::new(), None);
        for source in 0..self.store.sources().max(1) {
            let (bytes, verified) = match self.store.get(source, id, kind).await {
                Ok(Fetched::Found(bytes)) => (bytes, false),
                Ok(Fetched::Verified(bytes)) => (bytes, true),
                Ok(Fetched::Missing) => continue,
                Err(e) => {
                    failure = Some(e);
                    continue;
                }
            };
            let check = check.clone();
            match run(&*self.offload, move || check(bytes, verified)).await? {
                Ok(value) => return Ok(value),
                Err(e) if is_bad_bytes(&e) => {
                    self.store.report_bad(source, id);
                    bad.push(self.store.source_name(source));
                }
                Err(e) => return Err(e),
            }
        }
        if !bad.is_empty() {
            return Err(Error::BadObject {
                id: hex(&id),
                sources: bad.join(", "),
            });
        }
        match failure {
            Some(e) => Err(Error::Store(e)),
            None => Err(Error::NotFound),
        }
    }

    /// Fetches and opens the record of `id` with `access` (Argon2id on the offload threads
    /// for a password the cache does not know). [`Error::NotFound`] when no source holds it
    /// or it expired; [`Error::Decrypt`] for a wrong password or read key.
    pub async fn open(&self, id: [u8; 32], access: Access) -> Result<Opened> {
        let record = self.fetch_record(id).await?;
        let (ceiling, cache) = (self.settings.kdf_ceiling, self.cache.clone());
        let derivations = self.derivations.clone();
        let opener = run(&*self.offload, move || match access {
            Access::ReadKey(key) => FileOpener::open_with_read_key(&id, &record, &key),
            // A key this client derived before for the record's salt (a collection's files,
            // a file read again): no Argon2id.
            Access::Password(password) => {
                match FileOpener::open_cached(&id, &record, &password, &ceiling, &cache)? {
                    Some(opener) => Ok(opener),
                    None => {
                        derivations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        FileOpener::open_caching(&id, &record, &password, &ceiling, &cache)
                    }
                }
            }
        })
        .await??;
        if expired(opener.expires(), self.settings.clock.now()) {
            return Err(Error::NotFound);
        }
        Ok(Opened {
            id,
            opener: Arc::new(opener),
        })
    }

    /// The record of `id`, checked against the id, from the first source that serves it
    /// ([`Error::NotFound`] when none holds it).
    pub async fn fetch_record(&self, id: [u8; 32]) -> Result<Bytes> {
        self.fetch_checked(id, ObjectKind::Object, move |bytes, verified| {
            if verified || crate::content_id(&bytes) == id {
                Ok(bytes)
            } else {
                Err(Error::IdMismatch)
            }
        })
        .await
    }

    /// Like [`Client::open`], refusing a record whose manifest is not of `kind`
    /// ([`Error::IsCollection`], [`Error::NotACollection`]).
    pub async fn open_kind(&self, id: [u8; 32], access: Access, kind: FileKind) -> Result<Opened> {
        let opened = self.open(id, access).await?;
        match (kind, opened.manifest().kind()) {
            (FileKind::File, FileKind::Collection) => Err(Error::IsCollection),
            (FileKind::Collection, FileKind::File) => Err(Error::NotACollection),
            _ => Ok(opened),
        }
    }

    /// The file's bytes `first..=last` (`None`: all of it), streamed in order: only the chunks
    /// the range touches are fetched, each verified and decrypted. A range past the end is
    /// [`Error::RangeNotSatisfiable`] (before anything is fetched).
    pub fn read(
        &self,
        opened: &Opened,
        range: Option<(u64, u64)>,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let manifest = opened.manifest();
        let size = manifest.size();
        let chunk_len = opened.opener.chunk_size().bytes() as u64;
        let count = manifest.chunk_count();
        let (first, last) = match range {
            Some((first, last)) if first > last || first >= size => {
                return Err(Error::RangeNotSatisfiable { size });
            }
            Some((first, last)) => (first, last.min(size - 1)),
            None => (0, size.saturating_sub(1)),
        };
        let (first_chunk, last_chunk) = if size == 0 {
            (0, count.saturating_sub(1))
        } else {
            (first / chunk_len, last / chunk_len)
        };
        let skip = (first % chunk_len) as usize;
        let keep_last = (last % chunk_len) as usize + 1;
        let kind = if manifest.is_striped() {
            ObjectKind::Stripe
        } else {
            ObjectKind::Object
        };
        let client = self.clone();
        let opener = opened.opener.clone();
        let chunks: Vec<(u64, [u8; 32])> = (first_chunk..=last_chunk)
            .filter_map(|i| manifest.chunk_id(i).map(|id| (i, *id)))
            .collect();
        let whole = size == 0;
        let fetches = futures_util::stream::iter(chunks).map(move |(index, id)| {
            let (client, opener) = (client.clone(), opener.clone());
            async move {
                let plain = client
                    // The AEAD tag under the file's key (with the chunk's index and final flag
                    // in its nonce) and the trailer check authenticate a chunk fully; hashing
                    // it against its id as well would only repeat that (and cost more than
                    // the decryption).
                    .fetch_checked(id, kind, move |bytes, _verified| {
                        opener
                            .open_verified_chunk(index, Vec::from(bytes))
                            .map(Bytes::from_owner)
                    })
                    .await
                    .map_err(|e| match e {
                        Error::NotFound => Error::Unavailable { index },
                        e => e,
                    })?;
                if whole {
                    return Ok(plain);
                }
                let end = if index == last_chunk {
                    keep_last.min(plain.len())
                } else {
                    plain.len()
                };
                let start = if index == first_chunk {
                    skip.min(end)
                } else {
                    0
                };
                Ok(plain.slice(start..end))
            }
        });
        let mut window = self.store.window(
            self.settings.parallelism.max(1),
            chunk_len as usize,
            Direction::Get,
        );
        // Fused: polling again after the end keeps answering `None`.
        Ok(ordered_window(fetches, move || window.size()).fuse())
    }

    /// Reads a whole opened file into memory (for collections' listings and small files).
    pub async fn read_all(&self, opened: &Opened, max: usize) -> Result<Vec<u8>> {
        if opened.manifest().size() > max as u64 {
            return Err(Error::InvalidManifest("larger than this reader accepts"));
        }
        let mut out = Vec::with_capacity(opened.manifest().size() as usize);
        let mut body = std::pin::pin!(self.read(opened, None)?);
        while let Some(piece) = body.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    /// Reads and checks the listing of an opened collection.
    pub async fn collection(&self, opened: &Opened) -> Result<Collection> {
        if opened.manifest().kind() != FileKind::Collection {
            return Err(Error::NotACollection);
        }
        let bytes = zeroize::Zeroizing::new(self.read_all(opened, MAX_COLLECTION_LEN).await?);
        Collection::decode(&bytes)
    }

    /// Deletes an opened file everywhere: its record first (every live node keeps a
    /// tombstone, so nobody can start another read), then its chunks on their holders. Needs
    /// the delete key ([`Error::Decrypt`] for an opener made from a read key). Returns the
    /// number of objects it asked to delete.
    pub async fn delete_opened(&self, opened: &Opened) -> Result<u64> {
        let key = opened.delete_key().ok_or(Error::Decrypt)?.clone();
        self.store
            .delete(key.clone(), vec![opened.id], DeleteScope::Everywhere)
            .await?;
        let chunks = opened.manifest().chunks().to_vec();
        let n = chunks.len() as u64;
        self.store
            .delete(key, chunks, spread(opened.manifest().redundancy()))
            .await?;
        Ok(n + 1)
    }

    /// Deletes file `id` for good after proving the password opens it; a collection's files
    /// go first (those already gone are skipped), then the collection. Returns the number of
    /// objects it asked to delete.
    pub async fn delete(&self, id: [u8; 32], password: Password) -> Result<u64> {
        let opened = self.open(id, Access::Password(password.clone())).await?;
        let mut members = 0;
        if opened.manifest().kind() == FileKind::Collection {
            let listing = self.collection(&opened).await?;
            for entry in listing.entries() {
                match self
                    .open(entry.file, Access::Password(password.clone()))
                    .await
                {
                    Ok(member) => members += self.delete_opened(&member).await?,
                    Err(Error::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(members + self.delete_opened(&opened).await?)
    }

    /// After the first complete read of a "once" file: deletes it everywhere with the delete
    /// key its manifest carries. Does nothing for other files.
    pub async fn burn(&self, opened: &Opened) -> Result<()> {
        if opened.manifest().once() {
            self.delete_opened(opened).await?;
        }
        Ok(())
    }
}

/// Runs the futures `source` yields with up to `limit()` of them in flight (asked again
/// before each start, so the window can follow the store's latency), yielding their outputs
/// in order: `StreamExt::buffered` with a window that may change.
fn ordered_window<S, L>(
    source: S,
    limit: L,
) -> impl Stream<Item = <S::Item as std::future::Future>::Output> + Send
where
    S: Stream + Unpin + Send,
    S::Item: std::future::Future + Send,
    <S::Item as std::future::Future>::Output: Send,
    L: FnMut() -> usize + Send,
{
    let queue = futures_util::stream::FuturesOrdered::new();
    futures_util::stream::unfold(
        (source, queue, false, limit),
        |(mut source, mut queue, mut exhausted, mut limit)| async move {
            while !exhausted && queue.len() < limit().max(1) {
                match source.next().await {
                    Some(work) => queue.push_back(work),
                    None => exhausted = true,
                }
            }
            let item = queue.next().await?;
            Some((item, (source, queue, exhausted, limit)))
        },
    )
}

fn hex(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

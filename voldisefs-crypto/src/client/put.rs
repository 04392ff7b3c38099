//! The sealing pipeline: a byte stream in, sealed objects out to the store, one record last.
//!
//! The body is cut into chunks as it arrives; each chunk is sealed (and, for `rs:K+M`, cut
//! into shards) on the offload threads and handed to the store, with at most
//! [`Settings::parallelism`](super::Settings::parallelism) chunks in flight, so memory is
//! bounded by that many chunks whatever the file's size. A failed upload deletes, with the
//! file's delete key, everything it handed over.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{Stream, StreamExt};

use super::Client;
use super::offload::run;
use super::store::{DeleteScope, Direction, Object, Stored};
use crate::chunk::too_large;
use crate::{
    CHUNK_OVERHEAD, DeleteKey, Error, FileKind, FileSealer, MAX_FILE_SIZE, MAX_NAME_LEN,
    ManifestInfo, Password, PasswordKey, Plaintext, ReadKey, Redundancy, Result, SealedRecord,
    Stripe,
};

/// Where a new file's password key comes from.
#[derive(Clone)]
pub enum Keying {
    /// A password: one Argon2id run (on the offload threads) for this file.
    Password(Password),
    /// A key derived once ([`Client::derive`]) and shared by many files: no Argon2id.
    Key(Arc<PasswordKey>),
}

impl std::fmt::Debug for Keying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Keying::Password(_) => "Keying::Password(..)",
            Keying::Key(_) => "Keying::Key(..)",
        })
    }
}

/// What to seal besides the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions {
    /// The name sealed into the manifest (at most [`MAX_NAME_LEN`] bytes).
    pub name: String,
    /// File or collection.
    pub kind: FileKind,
    /// When every object of the file expires, unix seconds (0: never).
    pub expires: u64,
    /// Burn after reading: the manifest carries the delete key for the first reader.
    pub once: bool,
    /// How the chunks are kept.
    pub redundancy: Redundancy,
}

impl PutOptions {
    /// A file named `name`, never expiring, kept as `redundancy`.
    pub fn file(name: impl Into<String>, redundancy: Redundancy) -> Self {
        Self {
            name: name.into(),
            kind: FileKind::File,
            expires: 0,
            once: false,
            redundancy,
        }
    }
}

/// What a finished upload produced. The keys are wiped when it is dropped.
#[derive(Debug, Clone)]
pub struct PutReceipt {
    /// The new file's id.
    pub id: [u8; 32],
    /// Plaintext size in bytes.
    pub size: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Creation time recorded in the manifest, unix seconds.
    pub created: u64,
    /// When it expires, unix seconds (0: never).
    pub expires: u64,
    /// How its chunks are kept.
    pub redundancy: Redundancy,
    /// Copies confirmed for its least-kept object, of those wanted.
    pub stored: Stored,
    /// Its read key (for a share link).
    pub read_key: ReadKey,
    /// Its delete key.
    pub delete_key: DeleteKey,
    /// Every object it stored: chunks (or stripes), then the record.
    pub objects: Vec<[u8; 32]>,
}

/// What an upload handed to the store so far, for cleanup after a failure.
#[derive(Default)]
pub(crate) struct Handed {
    ids: Vec<[u8; 32]>,
}

type Shared = Arc<Mutex<Handed>>;

fn note(shared: &Shared, id: [u8; 32]) {
    shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .ids
        .push(id);
}

/// The scope that reaches every object of a file kept as `redundancy`.
pub(crate) fn spread(redundancy: Option<Redundancy>) -> DeleteScope {
    DeleteScope::Holders {
        nodes: match redundancy {
            Some(spec @ Redundancy::ErasureCoded { .. }) => spec.nodes(),
            _ => 0,
        },
    }
}

impl Client {
    /// Runs Argon2id for `password` once (on the offload threads): a key to seal many files
    /// with ([`Keying::Key`]), each with its own data key and file nonce.
    pub async fn derive(&self, password: Password) -> Result<Arc<PasswordKey>> {
        if password.as_bytes().is_empty() {
            return Err(Error::Input("empty password".into()));
        }
        let kdf = self.settings.kdf;
        self.derivations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Arc::new(
            run(&*self.offload, move || PasswordKey::derive(&password, kdf)).await??,
        ))
    }

    /// A sealer for a new file under `keying`, as `options` say.
    pub(crate) async fn sealer(
        &self,
        keying: Keying,
        options: &PutOptions,
    ) -> Result<Arc<FileSealer>> {
        if options.name.len() > MAX_NAME_LEN {
            return Err(Error::Input(format!(
                "file name longer than {MAX_NAME_LEN} bytes"
            )));
        }
        let key = match keying {
            Keying::Password(password) => self.derive(password).await?,
            Keying::Key(key) => key,
        };
        let chunk_size = self.settings.chunk_size;
        let mut sealer = FileSealer::with_key(&key, chunk_size)?
            .with_expiry(options.expires)
            .with_redundancy(options.redundancy.validate()?);
        if options.once {
            sealer = sealer.once();
        }
        Ok(Arc::new(sealer))
    }

    /// Seals `body` (pieces of any size) as a new file and stores it: see the module docs.
    pub async fn put<S, E>(
        &self,
        keying: Keying,
        options: PutOptions,
        body: S,
    ) -> Result<PutReceipt>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.put_until(keying, options, body, std::future::pending())
            .await
    }

    /// Like [`Client::put`], stopping with [`Error::Cancelled`] when `stop` completes first;
    /// what was stored by then is deleted before this returns, as after any failure.
    pub async fn put_until<S, E, F>(
        &self,
        keying: Keying,
        options: PutOptions,
        body: S,
        stop: F,
    ) -> Result<PutReceipt>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
        F: std::future::Future<Output = ()>,
    {
        let sealer = self.sealer(keying, &options).await?;
        let handed = Shared::default();
        let result = {
            let run = self.put_sealed(&sealer, &options, body, &handed);
            futures_util::pin_mut!(run, stop);
            match futures_util::future::select(run, stop).await {
                futures_util::future::Either::Left((result, _)) => result,
                futures_util::future::Either::Right(((), _)) => Err(Error::Cancelled),
            }
        };
        let ids = std::mem::take(&mut handed.lock().unwrap_or_else(PoisonError::into_inner).ids);
        match result {
            Ok(mut receipt) => {
                receipt.objects = ids;
                Ok(receipt)
            }
            Err(e) => {
                self.forget(sealer.delete_key(), ids, sealer.redundancy())
                    .await;
                Err(e)
            }
        }
    }

    /// Deletes what a failed upload handed over (best effort: the error that ended the upload
    /// is what the caller reports).
    pub(crate) async fn forget(
        &self,
        key: &DeleteKey,
        ids: Vec<[u8; 32]>,
        redundancy: Option<Redundancy>,
    ) {
        if !ids.is_empty() {
            let _ = self
                .store
                .delete(key.clone(), ids, spread(redundancy))
                .await;
        }
    }

    async fn put_sealed<S, E>(
        &self,
        sealer: &Arc<FileSealer>,
        options: &PutOptions,
        mut body: S,
        handed: &Shared,
    ) -> Result<PutReceipt>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let created = self.settings.clock.now();
        let chunk_len = sealer.chunk_size().bytes();
        let mut window =
            self.store
                .window(self.settings.parallelism.max(1), chunk_len, Direction::Put);
        let new_buffer = || Plaintext::new(Vec::with_capacity(chunk_len + CHUNK_OVERHEAD));
        let mut in_flight = FuturesOrdered::new();
        let (mut ids, mut stored) = (Vec::new(), None::<Stored>);
        let mut collect = |done: Result<([u8; 32], Stored)>| -> Result<()> {
            let (id, s) = done?;
            ids.push(id);
            stored = Some(stored.map_or(s, |all| all.min(s)));
            Ok(())
        };
        let mut current = new_buffer();
        let (mut index, mut size) = (0u64, 0u64);
        loop {
            // The chunks in flight make progress while the body is awaited (a slow body must
            // not hold sealed chunks back from the store).
            let piece = if in_flight.is_empty() {
                body.next().await
            } else {
                match futures_util::future::select(body.next(), in_flight.next()).await {
                    futures_util::future::Either::Left((piece, _)) => piece,
                    futures_util::future::Either::Right((done, _)) => {
                        if let Some(done) = done {
                            collect(done)?;
                        }
                        continue;
                    }
                }
            };
            let Some(piece) = piece else { break };
            let piece = piece.map_err(|e| Error::Input(e.to_string()))?;
            size += piece.len() as u64;
            if size > MAX_FILE_SIZE {
                return Err(too_large());
            }
            let mut rest = &piece[..];
            while !rest.is_empty() {
                if current.len() == chunk_len {
                    // More data follows, so this full chunk is not the final one.
                    let full = std::mem::replace(&mut current, new_buffer());
                    while in_flight.len() >= window.size().max(1) {
                        if let Some(done) = in_flight.next().await {
                            collect(done)?;
                        }
                    }
                    in_flight.push_back(self.store_chunk(sealer, index, false, full, handed));
                    index += 1;
                }
                let take = rest.len().min(chunk_len - current.len());
                current.vec_mut().extend_from_slice(&rest[..take]);
                rest = &rest[take..];
            }
        }
        in_flight.push_back(self.store_chunk(sealer, index, true, current, handed));
        while let Some(done) = in_flight.next().await {
            collect(done)?;
        }
        let chunks = ids.len() as u64;
        let info = ManifestInfo {
            name: options.name.clone(),
            size,
            created,
            kind: options.kind,
            chunks: ids,
        };
        let record = {
            let sealer = sealer.clone();
            run(&*self.offload, move || sealer.finish(&info)).await??
        };
        let id = record.id;
        let record_stored = self.store_record(record, handed).await?;
        Ok(PutReceipt {
            id,
            size,
            chunks,
            created,
            expires: sealer.expires(),
            redundancy: options.redundancy,
            stored: stored.map_or(record_stored, |s| s.min(record_stored)),
            read_key: sealer.read_key().clone(),
            delete_key: sealer.delete_key().clone(),
            objects: Vec::new(),
        })
    }

    /// Stores a sealed record.
    async fn store_record(&self, record: SealedRecord, handed: &Shared) -> Result<Stored> {
        note(handed, record.id);
        let object = Object {
            id: record.id,
            bytes: Bytes::from(record.bytes),
        };
        Ok(self.store.put(vec![object]).await?)
    }

    /// Seals chunk `index` on the offload threads and stores it (as a stripe for `rs:K+M`).
    fn store_chunk(
        &self,
        sealer: &Arc<FileSealer>,
        index: u64,
        is_final: bool,
        mut plaintext: Plaintext,
        handed: &Shared,
    ) -> impl std::future::Future<Output = Result<([u8; 32], Stored)>> + use<> {
        let (sealer, handed) = (sealer.clone(), handed.clone());
        let (store, offload) = (self.store.clone(), self.offload.clone());
        async move {
            // Sealed in place: the buffer holds ciphertext once this returns.
            let buffer = std::mem::take(plaintext.vec_mut());
            if let Some(Redundancy::ErasureCoded { data, parity }) = sealer.redundancy() {
                let encoded = run(&*offload, move || {
                    let sealed = sealer.seal_chunk_owned(index, is_final, buffer)?;
                    Stripe::encode(data, parity, &sealed.bytes)
                })
                .await??;
                let id = encoded.id;
                note(&handed, id);
                return Ok((id, store.put_stripe(encoded).await?));
            }
            let sealed = run(&*offload, move || {
                sealer.seal_chunk_owned(index, is_final, buffer)
            })
            .await??;
            note(&handed, sealed.id);
            let mut bytes = sealed.bytes;
            bytes.shrink_to_fit();
            let object = Object {
                id: sealed.id,
                bytes: Bytes::from(bytes),
            };
            Ok((sealed.id, store.put(vec![object]).await?))
        }
    }

    /// Seals a whole small file (at most one chunk) under `sealer`: its chunk and its record,
    /// ready to store in a batch. Runs on the caller's thread (call it from an offload job).
    pub(crate) fn seal_small(
        sealer: &FileSealer,
        options: &PutOptions,
        data: Plaintext,
        created: u64,
    ) -> Result<(Vec<Object>, [u8; 32], u64)> {
        let size = data.len() as u64;
        if data.len() > sealer.chunk_size().bytes() {
            return Err(Error::Internal("a small file is at most one chunk"));
        }
        let mut data = data;
        let mut buffer = std::mem::take(data.vec_mut());
        buffer.reserve_exact(CHUNK_OVERHEAD);
        let mut objects = Vec::with_capacity(2);
        let chunk_id = if let Some(Redundancy::ErasureCoded { .. }) = sealer.redundancy() {
            return Err(Error::Internal(
                "striped files go through the streaming path",
            ));
        } else {
            let sealed = sealer.seal_chunk_owned(0, true, buffer)?;
            let id = sealed.id;
            objects.push(Object {
                id,
                bytes: Bytes::from(sealed.bytes),
            });
            id
        };
        let record = sealer.finish(&ManifestInfo {
            name: options.name.clone(),
            size,
            created,
            kind: options.kind,
            chunks: vec![chunk_id],
        })?;
        let id = record.id;
        objects.push(Object {
            id,
            bytes: Bytes::from(record.bytes),
        });
        Ok((objects, id, size))
    }
}

//! Collections from the client: many files under one password derivation, the small ones
//! stored in batches, then the sealed listing as a collection record.
//!
//! Memory: a batch holds at most [`Settings::batch_objects`](super::Settings::batch_objects)
//! objects and [`Settings::batch_bytes`](super::Settings::batch_bytes) bytes; larger files
//! stream like any file; the listing grows to at most
//! [`MAX_COLLECTION_LEN`](crate::MAX_COLLECTION_LEN).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::Client;
use super::offload::run;
use super::put::{Keying, PutOptions, PutReceipt};
use super::store::{Object, Stored};
use crate::{
    Collection, CollectionEntry, DeleteKey, Error, FileKind, MAX_COLLECTION_ENTRIES,
    MAX_COLLECTION_LEN, PasswordKey, Plaintext, Redundancy, Result, check_path,
};

/// A collection being uploaded ([`Client::collection_upload`]): add files, then
/// [`finish`](Self::finish). On any error call [`abort`](Self::abort), which deletes the
/// files stored so far.
pub struct CollectionUpload {
    client: Client,
    key: Arc<PasswordKey>,
    expires: u64,
    redundancy: Redundancy,
    entries: Vec<CollectionEntry>,
    paths: HashSet<String>,
    listing_len: usize,
    /// Objects sealed and waiting to go out in one batch.
    pending: Vec<Object>,
    pending_bytes: usize,
    /// Every file stored (or pending), to delete if the upload is aborted.
    files: Vec<(DeleteKey, Vec<[u8; 32]>)>,
    stored: Option<Stored>,
}

impl std::fmt::Debug for CollectionUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectionUpload")
            .field("files", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts a collection under `key` (see [`Client::derive`]); every file and the listing
    /// expire at `expires` (0: never) and are kept as `redundancy`.
    pub fn collection_upload(
        &self,
        key: Arc<PasswordKey>,
        expires: u64,
        redundancy: Redundancy,
    ) -> CollectionUpload {
        CollectionUpload {
            client: self.clone(),
            key,
            expires,
            redundancy,
            entries: Vec::new(),
            paths: HashSet::new(),
            listing_len: 4,
            pending: Vec::new(),
            pending_bytes: 0,
            files: Vec::new(),
            stored: None,
        }
    }
}

impl CollectionUpload {
    /// Files added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The files added so far, in the order they were added.
    pub fn entries(&self) -> &[CollectionEntry] {
        &self.entries
    }

    /// Whether no file was added yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks that `path` can join the listing.
    fn admit(&mut self, path: &str) -> Result<()> {
        check_path(path)
            .map_err(|reason| Error::Input(format!("{reason}: a path in the batch")))?;
        if self.entries.len() >= MAX_COLLECTION_ENTRIES {
            return Err(Error::Input(format!(
                "a collection holds at most {MAX_COLLECTION_ENTRIES} files"
            )));
        }
        if self.paths.contains(path) {
            return Err(Error::Input("two files with the same path".into()));
        }
        let grown = self.listing_len + 2 + path.len() + 8 + 32 + 32;
        if grown > MAX_COLLECTION_LEN {
            return Err(Error::Input(format!(
                "the listing would exceed {MAX_COLLECTION_LEN} bytes: fewer or shorter paths"
            )));
        }
        self.listing_len = grown;
        self.paths.insert(path.to_string());
        Ok(())
    }

    fn options(&self, name: &str) -> PutOptions {
        PutOptions {
            name: name.to_string(),
            kind: FileKind::File,
            expires: self.expires,
            once: false,
            redundancy: self.redundancy,
        }
    }

    fn note(&mut self, stored: Stored) {
        self.stored = Some(self.stored.map_or(stored, |s| s.min(stored)));
    }

    /// Adds a file held in memory. Files of at most one chunk (kept as copies) are sealed
    /// on the offload threads and stored in batches; larger ones stream.
    pub async fn add_bytes(&mut self, path: &str, data: Plaintext) -> Result<()> {
        let small = data.len() <= self.client.settings.chunk_size.bytes()
            && !matches!(self.redundancy, Redundancy::ErasureCoded { .. });
        if !small {
            let bytes = Bytes::from_owner(data);
            let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
            return self.add_stream(path, body).await;
        }
        self.admit(path)?;
        let name = path.rsplit('/').next().unwrap_or(path).to_string();
        let options = self.options(&name);
        let sealer = self
            .client
            .sealer(Keying::Key(self.key.clone()), &options)
            .await?;
        let created = self.client.settings.clock.now();
        let (objects, id, size) = {
            let sealer = sealer.clone();
            run(&*self.client.offload, move || {
                Client::seal_small(&sealer, &options, data, created)
            })
            .await??
        };
        self.files.push((
            sealer.delete_key().clone(),
            objects.iter().map(|o| o.id).collect(),
        ));
        self.pending_bytes += objects.iter().map(|o| o.bytes.len()).sum::<usize>();
        self.pending.extend(objects);
        self.entries.push(CollectionEntry {
            path: path.to_string(),
            size,
            file: id,
            read: sealer.read_key().clone(),
        });
        let settings = &self.client.settings;
        if self.pending.len() >= settings.batch_objects
            || self.pending_bytes >= settings.batch_bytes
        {
            self.flush().await?;
        }
        Ok(())
    }

    /// Adds a file read from `body` (streamed: memory bounded by the chunks in flight).
    pub async fn add_stream<S, E>(&mut self, path: &str, body: S) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.admit(path)?;
        let name = path.rsplit('/').next().unwrap_or(path).to_string();
        let options = self.options(&name);
        let receipt = self
            .client
            .put(Keying::Key(self.key.clone()), options, body)
            .await?;
        self.add_receipt(path, &receipt);
        Ok(())
    }

    fn add_receipt(&mut self, path: &str, receipt: &PutReceipt) {
        self.files
            .push((receipt.delete_key.clone(), receipt.objects.clone()));
        self.note(receipt.stored);
        self.entries.push(CollectionEntry {
            path: path.to_string(),
            size: receipt.size,
            file: receipt.id,
            read: receipt.read_key.clone(),
        });
    }

    /// Sends the pending batch.
    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let stored = self.client.store.put(batch).await?;
        self.note(stored);
        Ok(())
    }

    /// Stores what is pending, then seals and stores the listing as a collection named
    /// `name`. The receipt's `stored` covers every file and the listing.
    pub async fn finish(mut self, name: &str) -> Result<PutReceipt> {
        self.flush().await?;
        let listing = Collection::new(std::mem::take(&mut self.entries))?;
        let encoded = Bytes::from_owner(Plaintext::new(listing.encode().to_vec()));
        let options = PutOptions {
            name: name.to_string(),
            kind: FileKind::Collection,
            expires: self.expires,
            once: false,
            redundancy: self.redundancy,
        };
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(encoded)]);
        let mut receipt = self
            .client
            .put(Keying::Key(self.key.clone()), options, body)
            .await?;
        receipt.size = listing.total_size();
        if let Some(stored) = self.stored {
            receipt.stored = receipt.stored.min(stored);
        }
        Ok(receipt)
    }

    /// Deletes every file stored so far (after a failure), best effort.
    pub async fn abort(self) {
        for (key, ids) in self.files {
            self.client.forget(&key, ids, Some(self.redundancy)).await;
        }
    }
}

//! Collections: a folder, or several files, uploaded as one batch under one password.
//!
//! [`Node::batch`] runs Argon2id once; every file added to the [`Batch`] is sealed under that
//! key (its own data key, the batch's salt) and stored like any file; [`Batch::finish`] seals
//! the listing (relative path, size and id of every file) as a collection record, stored like
//! a file and listed in the node's index. Readers list a collection ([`Node::collection`]),
//! fetch one of its files ([`Node::collection_file`]) or stream all of them as one tar archive
//! ([`Node::collection_archive`]); the password key cache makes every file after the first
//! free of Argon2id.
//!
//! Bounds: at most [`MAX_COLLECTION_ENTRIES`] files per batch, paths of at most
//! [`MAX_PATH_LEN`](voldisefs_crypto::MAX_PATH_LEN) bytes, a listing of at most
//! [`MAX_COLLECTION_LEN`] bytes (16 MiB, checked as files are added, and by a reader before it
//! fetches one), so a batch holds at most about twice that in paths while it runs; one batch
//! per HTTP request, and requests are bounded by the node's connection limit. A batch dropped
//! before it finished deletes every file it stored.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use voldisefs_crypto::{
    Collection, CollectionEntry, DeleteKey, FileKind, MAX_COLLECTION_ENTRIES, MAX_COLLECTION_LEN,
    Password, PasswordKey, ReadKey, check_path,
};
use voldisefs_proto::{ChunkId, FileId};
use zeroize::Zeroizing;

use super::Indexed;
use crate::transfer::download::{Access, ByteStream, Download};
use crate::transfer::upload::{Keying, UploadReceipt, UploadRequest};
use crate::{Node, NodeError, archive};

/// One file of a collection, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CollectionFile {
    /// Relative path inside the collection, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The file's own id (it opens with the collection's password).
    pub id: FileId,
    /// The file's read key (64 hex digits in JSON): opens it without the password or
    /// Argon2id. Whoever can list the collection can read its files anyway.
    #[serde(
        rename = "read_key",
        serialize_with = "hex_key",
        deserialize_with = "key_hex"
    )]
    pub read: ReadKey,
}

fn hex_key<S: serde::Serializer>(key: &ReadKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&key.to_hex())
}

fn key_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ReadKey, D::Error> {
    let text = zeroize::Zeroizing::new(<String as serde::Deserialize>::deserialize(d)?);
    ReadKey::from_hex(&text).map_err(serde::de::Error::custom)
}

/// A collection: what a finished batch reports, and what a reader lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CollectionListing {
    /// The collection's id (give it with the password to read any of its files).
    pub id: FileId,
    /// Its name (a folder's name, or what the uploader chose).
    pub name: String,
    /// Total size of its files in bytes.
    pub size: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Its files, sorted by path.
    pub files: Vec<CollectionFile>,
    /// The collection's own read key, for a share link: set by [`Batch::finish`] only (a
    /// reader who opened it already has the password or the key).
    #[serde(skip)]
    pub read_key: Option<ReadKey>,
}

impl CollectionListing {
    fn new(id: FileId, name: String, created: u64, collection: &Collection) -> Self {
        let files = collection
            .entries()
            .iter()
            .map(|e| CollectionFile {
                path: e.path.clone(),
                size: e.size,
                id: FileId::from_bytes(e.file),
                read: e.read.clone(),
            })
            .collect();
        Self {
            id,
            name,
            size: collection.total_size(),
            created,
            files,
            read_key: None,
        }
    }

    /// The file at `path`, if the collection lists one.
    pub fn find(&self, path: &str) -> Option<&CollectionFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// An upload of several files under one password key, made by [`Node::batch`]: add files with
/// [`Batch::add`], seal the collection with [`Batch::finish`]; dropped unfinished, it deletes
/// the files it stored.
pub struct Batch {
    node: Node,
    key: Arc<PasswordKey>,
    entries: Vec<CollectionEntry>,
    paths: HashSet<String>,
    /// When the batch's files and collection expire (one time for all of them).
    expires: crate::transfer::upload::Expiry,
    /// How the batch's files and collection keep their chunks.
    redundancy: voldisefs_crypto::Redundancy,
    /// Bytes the listing will take so far (capped at `MAX_COLLECTION_LEN`).
    listing_len: usize,
    /// What to delete if the batch never finishes.
    stored: Vec<(DeleteKey, Vec<ChunkId>)>,
    finished: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("files", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn invalid(message: String) -> NodeError {
    NodeError::InvalidRequest(message)
}

impl Node {
    /// Starts a batch upload under `password`: runs Argon2id once (through the node's
    /// key-derivation gate) for every file the batch will hold.
    pub async fn batch(&self, password: Password) -> Result<Batch, NodeError> {
        self.batch_expiring(password, None).await
    }

    /// Like [`Node::batch`], every file and the collection expiring `expires_after` from now
    /// (`None`: the node's default; see [`Node::upload_with_options`]).
    pub async fn batch_expiring(
        &self,
        password: Password,
        expires_after: Option<std::time::Duration>,
    ) -> Result<Batch, NodeError> {
        let expires = self.expiry(expires_after)?;
        if password.as_bytes().is_empty() {
            return Err(invalid("empty password".into()));
        }
        let params = self.config().kdf;
        let key = self
            .kdf_gate()
            .run(move || PasswordKey::derive(&password, params))
            .await??;
        // One expiry for every file and the collection, counted from the end of the derivation.
        let expires = crate::transfer::upload::Expiry::At(expires.stamp(self.own_time()));
        Ok(Batch {
            node: self.clone(),
            key: Arc::new(key),
            entries: Vec::new(),
            paths: HashSet::new(),
            expires,
            redundancy: self.redundancy(None)?,
            listing_len: 4,
            stored: Vec::new(),
            finished: false,
        })
    }

    /// Opens collection `id` with `password` and lists its files ([`NodeError::NotACollection`]
    /// for a file's id). The listing is checked whoever sealed it (no path escapes its folder,
    /// no duplicates).
    pub async fn collection(
        &self,
        id: FileId,
        password: Password,
    ) -> Result<CollectionListing, NodeError> {
        self.collection_with(id, password.into()).await
    }

    /// Like [`Node::collection`], opened by `access`: the password, or the collection's read
    /// key (a share link's).
    pub async fn collection_with(
        &self,
        id: FileId,
        access: Access,
    ) -> Result<CollectionListing, NodeError> {
        let download = self
            .download_kind(id, access, FileKind::Collection, None)
            .await?;
        if download.size > MAX_COLLECTION_LEN as u64 {
            return Err(NodeError::Crypto(
                voldisefs_crypto::Error::InvalidCollection {
                    entry: 0,
                    reason: "listing over 16 MiB",
                },
            ));
        }
        let (name, created) = (download.name.clone(), download.created);
        let mut listing = Zeroizing::new(Vec::with_capacity(download.size as usize));
        let mut body = download.body;
        while let Some(piece) = body.next().await {
            listing.extend_from_slice(&piece?);
        }
        let collection = Collection::decode(&listing)?;
        Ok(CollectionListing::new(id, name, created, &collection))
    }

    /// Opens the file at `path` of collection `id` and returns it ready to stream, checked
    /// against the size the listing gives.
    pub async fn collection_file(
        &self,
        id: FileId,
        access: Access,
        path: &str,
    ) -> Result<Download, NodeError> {
        let listing = self.collection_with(id, access).await?;
        let Some(file) = listing.find(path) else {
            return Err(NodeError::NoSuchPath(id));
        };
        self.listed_file(file).await
    }

    /// Opens a file a collection lists with its read key (no Argon2id), refusing it if its
    /// size is not the listed one.
    async fn listed_file(&self, file: &CollectionFile) -> Result<Download, NodeError> {
        let access = Access::ReadKey(file.read.clone());
        let download = self.download_with(file.id, access, None).await?;
        if download.size != file.size {
            return Err(NodeError::Crypto(
                voldisefs_crypto::Error::InvalidCollection {
                    entry: 0,
                    reason: "a file's size differs from the listing",
                },
            ));
        }
        Ok(download)
    }

    /// Every file of `listing` as one tar archive, built while it streams (one file at a
    /// time, never whole in memory), and the archive's exact length. A file that cannot be
    /// read ends the stream with its error.
    pub fn collection_archive(
        &self,
        listing: CollectionListing,
    ) -> Result<(u64, ByteStream), NodeError> {
        let len = archive::archive_len(listing.files.iter().map(|f| (f.path.as_str(), f.size)))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, NodeError>>(4);
        let node = self.clone();
        tokio::spawn(async move {
            for file in &listing.files {
                let sent = node.archive_file(file, listing.created, &tx).await;
                if let Err(e) = sent {
                    // The client is gone, or gets the error that ends its download.
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            let _ = tx.send(Ok(Bytes::from_static(&archive::END))).await;
        });
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok((len, Box::pin(body)))
    }

    /// Sends one file's header, bytes and padding down `tx`.
    async fn archive_file(
        &self,
        file: &CollectionFile,
        mtime: u64,
        tx: &tokio::sync::mpsc::Sender<Result<Bytes, NodeError>>,
    ) -> Result<(), NodeError> {
        let gone = || NodeError::Cancelled;
        let header = archive::file_header(&file.path, file.size, mtime)?;
        tx.send(Ok(Bytes::from(header))).await.map_err(|_| gone())?;
        let mut body = self.listed_file(file).await?.body;
        while let Some(piece) = body.next().await {
            tx.send(piece).await.map_err(|_| gone())?;
        }
        let pad = archive::padding(file.size);
        if pad > 0 {
            let zeros = Bytes::from_static(&archive::END).slice(..pad);
            tx.send(Ok(zeros)).await.map_err(|_| gone())?;
        }
        Ok(())
    }
}

impl Batch {
    /// Keeps the chunks of every file added from now on, and of the collection, as
    /// `redundancy` says (checked like [`Node::redundancy`]) instead of the node's default.
    pub fn set_redundancy(
        &mut self,
        redundancy: voldisefs_crypto::Redundancy,
    ) -> Result<(), NodeError> {
        self.redundancy = self.node.redundancy(Some(redundancy))?;
        Ok(())
    }

    /// Uploads `body` as the file at `path` (relative, `/`-separated; its last component
    /// becomes the file's name) under the batch's key: no Argon2id. Refuses unsafe and
    /// duplicate paths and more than [`MAX_COLLECTION_ENTRIES`] files.
    pub async fn add<S, E>(&mut self, path: &str, body: S) -> Result<UploadReceipt, NodeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        check_path(path).map_err(|reason| invalid(format!("file path refused: {reason}")))?;
        if self.entries.len() >= MAX_COLLECTION_ENTRIES {
            return Err(invalid(format!(
                "a collection holds at most {MAX_COLLECTION_ENTRIES} files"
            )));
        }
        if self.paths.contains(path) {
            return Err(invalid("two files with the same path".into()));
        }
        // Each entry: path length, path, size, id.
        let listing_len = self.listing_len + 2 + path.len() + 8 + 32;
        if listing_len > MAX_COLLECTION_LEN {
            return Err(invalid(format!(
                "a collection's listing holds at most {MAX_COLLECTION_LEN} bytes of paths and ids"
            )));
        }
        let name = path.rsplit('/').next().unwrap_or(path).to_string();
        let request = UploadRequest {
            name,
            kind: FileKind::File,
            keying: Keying::Key(self.key.clone()),
            expires: self.expires,
            once: false,
            redundancy: self.redundancy,
        };
        let uploaded = self.node.upload_with(request, body, None).await?;
        let receipt = uploaded.receipt;
        self.stored.push((uploaded.key, uploaded.ids));
        self.paths.insert(path.to_string());
        self.listing_len = listing_len;
        self.entries.push(CollectionEntry {
            path: path.to_string(),
            size: receipt.size,
            file: *receipt.id.as_bytes(),
            read: receipt.read_key.clone(),
        });
        Ok(receipt)
    }

    /// Files added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no file was added yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals the listing of every file added as a collection named `name`, stores it, and
    /// adds it to the node's index. On failure (a folder and a file at one path, say) the
    /// batch's files are deleted.
    pub async fn finish(mut self, name: &str) -> Result<CollectionListing, NodeError> {
        let collection = Collection::new(std::mem::take(&mut self.entries))
            .map_err(|e| invalid(format!("collection refused: {e}")))?;
        // The listing holds names: wiped when the upload lets go of it.
        let listing = Bytes::from_owner(collection.encode());
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(listing)]);
        let request = UploadRequest {
            name: name.to_string(),
            kind: FileKind::Collection,
            keying: Keying::Key(self.key.clone()),
            expires: self.expires,
            once: false,
            redundancy: self.redundancy,
        };
        let indexed = Indexed::Collection {
            size: collection.total_size(),
            files: collection.entries().len() as u64,
        };
        let uploaded = self.node.upload_with(request, body, Some(indexed)).await?;
        self.finished = true;
        let receipt = uploaded.receipt;
        let mut listing =
            CollectionListing::new(receipt.id, name.to_string(), receipt.created, &collection);
        listing.read_key = Some(receipt.read_key);
        Ok(listing)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.finished || self.stored.is_empty() {
            return;
        }
        let stored = std::mem::take(&mut self.stored);
        self.node.forget_later(stored);
    }
}

//! Opening in the page: one file opened with its password or a read key, a collection's files.

use wasm_bindgen::prelude::*;

use super::{hex, js, parse_id, whole};
use crate::{
    Collection, ExternalChunks, FileKind, FileOpener, KdfParams, Password, ReadKey, Redundancy,
    TRAILER_LEN,
};

/// One opened file: its manifest, and what the page needs to check and open its chunks.
#[wasm_bindgen]
pub struct Download {
    opener: FileOpener,
    external: ExternalChunks,
}

#[wasm_bindgen]
impl Download {
    /// Opens the record fetched for `id` with the password: one Argon2id run at the
    /// record's parameters, refused before it starts when they ask more than this
    /// client's default (64 MiB, 3 passes), so a planted record cannot make the page
    /// spend more.
    pub fn with_password(id: &str, record: &[u8], password: &str) -> Result<Download, JsError> {
        let opener = FileOpener::open_limited(
            &parse_id(id)?,
            record,
            &Password::new(password),
            &KdfParams::default(),
        )
        .map_err(js)?;
        Self::of(opener)
    }

    /// Opens the record fetched for `id` with a read key (hex, from a share link): no
    /// Argon2id.
    pub fn with_read_key(id: &str, record: &[u8], read_key: &str) -> Result<Download, JsError> {
        let read = ReadKey::from_hex(read_key).map_err(js)?;
        let opener = FileOpener::open_with_read_key(&parse_id(id)?, record, &read).map_err(js)?;
        Self::of(opener)
    }

    fn of(opener: FileOpener) -> Result<Download, JsError> {
        let external = opener.external_chunks().map_err(js)?;
        Ok(Download { opener, external })
    }

    /// The file's name.
    pub fn name(&self) -> String {
        self.opener.manifest().name().to_string()
    }

    /// The file's size in bytes.
    pub fn size(&self) -> f64 {
        self.opener.manifest().size() as f64
    }

    /// Whether it is a collection (its content is a listing: [`Listing`]).
    pub fn is_collection(&self) -> bool {
        self.opener.manifest().kind() == FileKind::Collection
    }

    /// Whether it burns after its first complete download.
    pub fn once(&self) -> bool {
        self.opener.manifest().once()
    }

    /// When its objects expire (unix seconds, 0: never).
    pub fn expires(&self) -> f64 {
        self.opener.expires() as f64
    }

    /// Unix seconds it was made.
    pub fn created(&self) -> f64 {
        self.opener.manifest().created() as f64
    }

    /// Its chunk size in bytes.
    pub fn chunk_size(&self) -> f64 {
        self.opener.chunk_size().bytes() as f64
    }

    /// How many chunks it has.
    pub fn chunk_count(&self) -> f64 {
        self.opener.manifest().chunk_count() as f64
    }

    /// Whether its chunks are stripes (read them from `/api/v1/stripes/{id}`).
    pub fn striped(&self) -> bool {
        self.opener.manifest().is_striped()
    }

    /// Nodes one chunk is spread over, for deleting it: K + M for stripes, 0 for copies.
    pub fn spread(&self) -> f64 {
        match self.opener.manifest().redundancy() {
            Some(spec @ Redundancy::ErasureCoded { .. }) => spec.nodes() as f64,
            _ => 0.0,
        }
    }

    fn index(&self, index: f64) -> Result<(u64, bool), JsError> {
        let index = whole(index, "index")?;
        let count = self.opener.manifest().chunk_count();
        if index >= count {
            return Err(js("no such chunk"));
        }
        Ok((index, index + 1 == count))
    }

    /// The id (hex) of chunk `index`.
    pub fn chunk_id(&self, index: f64) -> Result<String, JsError> {
        let (index, _) = self.index(index)?;
        self.opener
            .manifest()
            .chunk_id(index)
            .map(|id| hex(id))
            .ok_or_else(|| js("no such chunk"))
    }

    /// Plaintext bytes of chunk `index`.
    pub fn chunk_len(&self, index: f64) -> Result<f64, JsError> {
        let (index, _) = self.index(index)?;
        self.opener
            .manifest()
            .chunk_len(index)
            .map(|n| n as f64)
            .ok_or_else(|| js("no such chunk"))
    }

    /// The AES-256-GCM key of the file's chunks (a copy: import it into WebCrypto as a
    /// non-extractable key, then zero the array).
    pub fn chunk_key(&self) -> Vec<u8> {
        self.external.key().to_vec()
    }

    /// The nonce of chunk `index`.
    pub fn nonce(&self, index: f64) -> Result<Vec<u8>, JsError> {
        let (index, is_final) = self.index(index)?;
        Ok(self.external.nonce(index, is_final).to_vec())
    }

    /// The associated data of chunk `index`.
    pub fn aad(&self, index: f64) -> Result<Vec<u8>, JsError> {
        let (index, is_final) = self.index(index)?;
        Ok(self.external.aad(index, is_final).to_vec())
    }

    /// Checks a fetched object for chunk `index` before it is opened: its BLAKE3 against
    /// the listed id (not for stripes, checked by the node against their descriptor and by
    /// the tag here), its length and its trailer. Returns the length of the part
    /// WebCrypto opens (`ciphertext || tag`, the object without its trailer).
    pub fn verify(&self, index: f64, object: &[u8]) -> Result<f64, JsError> {
        let (index, _) = self.index(index)?;
        self.opener.verify_chunk(index, object).map_err(js)?;
        Ok((object.len() - TRAILER_LEN) as f64)
    }

    /// The file's read key (hex): with its id, what a share link carries.
    pub fn read_key(&self) -> String {
        self.opener.read_key().to_hex().to_string()
    }

    /// The file's delete key (hex), when known: opened with the password, or a "once"
    /// file (whose manifest carries it, for the first reader to burn it).
    pub fn delete_key(&self) -> Option<String> {
        self.opener.delete_key().map(|k| hex(k.as_bytes()))
    }

    /// A collection's listing, from its opened content.
    pub fn listing(&self, content: &[u8]) -> Result<Listing, JsError> {
        if !self.is_collection() {
            return Err(js("not a collection"));
        }
        Collection::decode(content).map(Listing).map_err(js)
    }
}

/// A collection's files: path, size, id and read key of each, sorted by path.
#[wasm_bindgen]
pub struct Listing(Collection);

#[wasm_bindgen]
impl Listing {
    /// How many files.
    pub fn len(&self) -> usize {
        self.0.entries().len()
    }

    /// Whether it lists no file.
    pub fn is_empty(&self) -> bool {
        self.0.entries().is_empty()
    }

    fn entry(&self, i: usize) -> Result<&crate::CollectionEntry, JsError> {
        self.0.entries().get(i).ok_or_else(|| js("no such entry"))
    }

    /// File `i`'s relative path.
    pub fn path(&self, i: usize) -> Result<String, JsError> {
        Ok(self.entry(i)?.path.clone())
    }

    /// File `i`'s size.
    pub fn size(&self, i: usize) -> Result<f64, JsError> {
        Ok(self.entry(i)?.size as f64)
    }

    /// File `i`'s id (hex).
    pub fn id(&self, i: usize) -> Result<String, JsError> {
        Ok(hex(&self.entry(i)?.file))
    }

    /// File `i`'s read key (hex).
    pub fn read_key(&self, i: usize) -> Result<String, JsError> {
        Ok(self.entry(i)?.read.to_hex().to_string())
    }
}

//! Sealing in the page: a password's key, one file being sealed, a collection's listing.

use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use super::{hex, js, parse_id, whole};
use crate::{
    ChunkSize, Collection, ExternalChunks, FileKind, FileSealer, KdfParams, ManifestInfo, Password,
    PasswordKey, ReadKey, Redundancy, Stripe,
};

/// A password's key: one Argon2id run, shared by every file of one upload (each file
/// still draws its own data key and file nonce). Wiped when freed.
#[wasm_bindgen]
pub struct Key(PasswordKey);

#[wasm_bindgen]
impl Key {
    /// Argon2id of `password` under a fresh salt at the client's parameters (64 MiB,
    /// 3 passes, 1 lane: [`KdfParams::default`]). A node's advice is not asked: a node
    /// must not be able to make the page derive a weaker key.
    pub fn derive(password: &str) -> Result<Key, JsError> {
        PasswordKey::derive(&Password::new(password), KdfParams::default())
            .map(Key)
            .map_err(js)
    }
}

/// An object sealed here: its id (hex) and its bytes.
#[wasm_bindgen]
pub struct SealedObject {
    id: String,
    bytes: Vec<u8>,
}

#[wasm_bindgen]
impl SealedObject {
    /// The object's id (BLAKE3 of the bytes; for a stripe, of its descriptor), in hex.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// The bytes to store: an object, or a stripe's batch body (descriptor, then shards).
    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

/// One file being sealed: the page reads it slice by slice, seals each chunk with
/// WebCrypto under [`chunk_key`](Self::chunk_key), [`nonce`](Self::nonce) and
/// [`aad`](Self::aad), hands the result to [`add_chunk`](Self::add_chunk) (or
/// [`add_stripe`](Self::add_stripe)) and stores it; [`finish`](Self::finish) seals the
/// record last.
#[wasm_bindgen]
pub struct Upload {
    sealer: FileSealer,
    external: ExternalChunks,
    redundancy: Redundancy,
    size: u64,
    ids: Vec<Option<[u8; 32]>>,
}

#[wasm_bindgen]
impl Upload {
    /// Starts a file of `size` bytes under `key`: `chunk_size` bytes per chunk (the
    /// node's), objects expiring at `expires` (unix seconds, 0: never), `once` for burn
    /// after reading, `redundancy` as `replicas:N` or `rs:K+M`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        key: &Key,
        chunk_size: f64,
        size: f64,
        expires: f64,
        once: bool,
        redundancy: &str,
    ) -> Result<Upload, JsError> {
        let chunk_size = ChunkSize::from_bytes(whole(chunk_size, "chunk size")?).map_err(js)?;
        let size = whole(size, "size")?;
        let count = crate::chunk::checked_chunk_count(size, chunk_size).map_err(js)?;
        let redundancy = redundancy
            .parse::<Redundancy>()
            .and_then(Redundancy::validate)
            .map_err(js)?;
        let mut sealer = FileSealer::with_key(&key.0, chunk_size)
            .map_err(js)?
            .with_expiry(whole(expires, "expiry")?)
            .with_redundancy(redundancy);
        if once {
            sealer = sealer.once();
        }
        let external = sealer.external_chunks().map_err(js)?;
        let count = usize::try_from(count).map_err(js)?;
        Ok(Upload {
            sealer,
            external,
            redundancy,
            size,
            ids: vec![None; count],
        })
    }

    /// The AES-256-GCM key of this file's chunks (a copy: import it into WebCrypto as a
    /// non-extractable key, then zero the array).
    pub fn chunk_key(&self) -> Vec<u8> {
        self.external.key().to_vec()
    }

    /// How many chunks the file has.
    pub fn chunk_count(&self) -> f64 {
        self.ids.len() as f64
    }

    /// Plaintext bytes of chunk `index` (the slice of the file to seal).
    pub fn chunk_len(&self, index: f64) -> Result<f64, JsError> {
        crate::chunk::chunk_plain_len(
            self.size,
            self.external.chunk_size(),
            whole(index, "index")?,
        )
        .map(|n| n as f64)
        .ok_or_else(|| js("no such chunk"))
    }

    fn final_flag(&self, index: f64) -> Result<(u64, bool), JsError> {
        let index = whole(index, "index")?;
        if index >= self.ids.len() as u64 {
            return Err(js("no such chunk"));
        }
        Ok((index, index + 1 == self.ids.len() as u64))
    }

    /// The nonce of chunk `index`.
    pub fn nonce(&self, index: f64) -> Result<Vec<u8>, JsError> {
        let (index, is_final) = self.final_flag(index)?;
        Ok(self.external.nonce(index, is_final).to_vec())
    }

    /// The associated data of chunk `index`.
    pub fn aad(&self, index: f64) -> Result<Vec<u8>, JsError> {
        let (index, is_final) = self.final_flag(index)?;
        Ok(self.external.aad(index, is_final).to_vec())
    }

    /// The trailer every object of this file ends with (append it to each sealed chunk).
    pub fn trailer(&self) -> Vec<u8> {
        self.external.trailer().to_vec()
    }

    /// Records chunk `index` from WebCrypto's `ciphertext || tag` and returns its id (hex):
    /// the object to store is `sealed || trailer`.
    pub fn add_chunk(&mut self, index: f64, sealed: Vec<u8>) -> Result<String, JsError> {
        let (index, is_final) = self.final_flag(index)?;
        let chunk = self.external.finish(index, is_final, sealed).map_err(js)?;
        self.ids[index as usize] = Some(chunk.id);
        Ok(hex(&chunk.id))
    }

    /// For an `rs:K+M` file: records chunk `index` from WebCrypto's `ciphertext || tag` as a
    /// stripe and returns it: its id and the body of `PUT /api/v1/stripes/{id}`.
    pub fn add_stripe(&mut self, index: f64, sealed: Vec<u8>) -> Result<SealedObject, JsError> {
        let Redundancy::ErasureCoded { data, parity } = self.redundancy else {
            return Err(js("this file is kept as copies, not stripes"));
        };
        let (index, is_final) = self.final_flag(index)?;
        let chunk = self.external.finish(index, is_final, sealed).map_err(js)?;
        let stripe = Stripe::encode(data, parity, &chunk.bytes).map_err(js)?;
        let mut body = Vec::new();
        voldisefs_proto::objects::encode_entry(&mut body, &stripe.id, &stripe.descriptor)
            .map_err(js)?;
        for shard in &stripe.shards {
            voldisefs_proto::objects::encode_entry(&mut body, &crate::content_id(shard), shard)
                .map_err(js)?;
        }
        self.ids[index as usize] = Some(stripe.id);
        Ok(SealedObject {
            id: hex(&stripe.id),
            bytes: body,
        })
    }

    /// Whether chunks go out as stripes ([`add_stripe`](Self::add_stripe)).
    pub fn striped(&self) -> bool {
        matches!(self.redundancy, Redundancy::ErasureCoded { .. })
    }

    /// Seals the record once every chunk is added: `name` (sealed, never sent in clear),
    /// `created` (unix seconds), `collection` for a collection's listing.
    pub fn finish(
        &self,
        name: &str,
        created: f64,
        collection: bool,
    ) -> Result<SealedObject, JsError> {
        let chunks = self
            .ids
            .iter()
            .map(|id| id.ok_or_else(|| js("a chunk was not added")))
            .collect::<Result<Vec<_>, _>>()?;
        let record = self
            .sealer
            .finish(&ManifestInfo {
                name: name.to_string(),
                size: self.size,
                created: whole(created, "creation time")?,
                kind: if collection {
                    FileKind::Collection
                } else {
                    FileKind::File
                },
                chunks,
            })
            .map_err(js)?;
        Ok(SealedObject {
            id: hex(&record.id),
            bytes: record.bytes,
        })
    }

    /// The file's read key (hex): with its id, what a share link carries.
    pub fn read_key(&self) -> String {
        self.sealer.read_key().to_hex().to_string()
    }

    /// The file's delete key (hex): what deleting it takes.
    pub fn delete_key(&self) -> String {
        hex(self.sealer.delete_key().as_bytes())
    }
}

/// A collection listing being built: add each file once it is stored, then
/// [`encode`](Self::encode) it and upload the result as a file with `collection` set.
#[wasm_bindgen]
#[derive(Default)]
pub struct ListingBuilder(Vec<crate::CollectionEntry>);

#[wasm_bindgen]
impl ListingBuilder {
    /// An empty listing.
    #[wasm_bindgen(constructor)]
    pub fn new() -> ListingBuilder {
        ListingBuilder::default()
    }

    /// Adds a stored file: its relative path, size, id and read key (hex).
    pub fn add(&mut self, path: &str, size: f64, id: &str, read_key: &str) -> Result<(), JsError> {
        crate::check_path(path).map_err(js)?;
        self.0.push(crate::CollectionEntry {
            path: path.to_string(),
            size: whole(size, "size")?,
            file: parse_id(id)?,
            read: ReadKey::from_hex(read_key).map_err(js)?,
        });
        Ok(())
    }

    /// The encoded listing (checked: safe paths, no duplicates), the content to upload.
    pub fn encode(&self) -> Result<Vec<u8>, JsError> {
        let collection = Collection::new(self.0.clone()).map_err(js)?;
        let bytes: Zeroizing<Vec<u8>> = collection.encode();
        Ok(bytes.to_vec())
    }
}

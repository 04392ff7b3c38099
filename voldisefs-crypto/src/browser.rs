//! JavaScript bindings of the client library for a page (feature `browser`, on
//! `wasm32-unknown-unknown` only), built as a WebAssembly module with wasm-bindgen. The node
//! builds them (voldisefs-node/build.rs) and serves them with the page, which seals and opens
//! in the browser so that no node sees a password, a name, a key or a plaintext byte.
//!
//! The page's scripts drive the transfer (reading files, fetching objects, progress) and hand
//! the bulk AES-256-GCM of chunks to WebCrypto ([`crate::ExternalChunks`]); everything of the
//! format comes from here: Argon2id, the key schedule, records and manifests, collections,
//! stripes, nonces, associated data, trailers and BLAKE3 ids.
//!
//! - [`Key`]: Argon2id of a password once, for every file of an upload.
//! - [`Upload`]: one file being sealed; [`Download`]: one file opened (password or read key).
//! - [`check_format_vector`]: FORMAT.md's file vector, opened in the browser (the page runs it
//!   once before it trusts itself with a file; the tests run it in Chromium).
//! - [`argon2id`], [`seal`] and [`Sealed`]: what `benches/browser/` times.

pub use bindings::*;
pub use client::*;

mod bindings {
    use crate::{
        ChunkSize, FileKind, FileOpener, FileSealer, KdfParams, ManifestInfo, Password, PasswordKey,
    };
    use wasm_bindgen::prelude::*;

    const FORMAT_MD: &str = include_str!("../FORMAT.md");
    /// The file vector's password and plaintext (FORMAT.md section 6).
    const PASSWORD: &str = "correct horse battery staple";
    const PLAINTEXT: &[u8] = b"Hello, Voldisefs!\n";

    fn js(e: impl std::fmt::Display) -> JsError {
        JsError::new(&e.to_string())
    }

    /// A value of the ```vector block of FORMAT.md, as bytes.
    fn vector(name: &str) -> Result<Vec<u8>, JsError> {
        vector_in("```vector", name)
    }

    /// A value of the block opened by `fence` in FORMAT.md, as bytes.
    fn vector_in(fence: &str, name: &str) -> Result<Vec<u8>, JsError> {
        let block = FORMAT_MD
            .split(fence)
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .ok_or_else(|| js(format!("FORMAT.md has no {fence} block")))?;
        let hex = block
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once('=')?;
                (key.trim() == name).then(|| value.trim())
            })
            .ok_or_else(|| js(format!("FORMAT.md's {fence} has no {name}")))?;
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<_, _>>()
            .map_err(|_| js(format!("FORMAT.md's {name} is not hex")))
    }

    fn id_in(fence: &str, name: &str) -> Result<[u8; 32], JsError> {
        vector_in(fence, name)?
            .try_into()
            .map_err(|_| js(format!("{name} is not 32 bytes")))
    }

    /// Checks FORMAT.md's vectors in this build (two Argon2id runs at the vectors' 64 MiB):
    /// the file (section 6) opens with its password and its chunk gives the plaintext; the
    /// collection (section 7) opens and lists the file; the stripe (section 8) is encoded
    /// byte for byte and any four of its six shards give the chunk back; the erasure-coded
    /// file opens with the file's read key and its joined stripe gives the plaintext.
    #[wasm_bindgen]
    pub fn check_format_vector() -> Result<(), JsError> {
        let id = id_in("```vector", "file_id")?;
        let opener =
            FileOpener::open(&id, &vector("record")?, &Password::new(PASSWORD)).map_err(js)?;
        let chunk0 = vector("chunk0")?;
        let plaintext = opener.open_chunk(0, chunk0.clone()).map_err(js)?;
        if &*plaintext != PLAINTEXT || opener.manifest().name() != "hello.txt" {
            return Err(js("the file vector opened to something else"));
        }

        const COLLECTION: &str = "```collection-vector";
        let collection = FileOpener::open(
            &id_in(COLLECTION, "collection_id")?,
            &vector_in(COLLECTION, "record")?,
            &Password::new(PASSWORD),
        )
        .map_err(js)?;
        let listing = collection
            .open_chunk(0, vector_in(COLLECTION, "chunk0")?)
            .map_err(js)?;
        if *listing != vector_in(COLLECTION, "listing")?[..] {
            return Err(js("the collection vector opened to another listing"));
        }
        let listing = crate::Collection::decode(&listing).map_err(js)?;
        let names: Vec<&str> = listing.entries().iter().map(|e| e.path.as_str()).collect();
        if collection.manifest().kind() != FileKind::Collection
            || names != ["hello.txt", "sub dir/\u{e9}t\u{e9}.txt"]
            || listing.entries()[0].file != id
        {
            return Err(js("the collection vector lists something else"));
        }

        const STRIPE: &str = "```stripe-vector";
        let stripe = crate::Stripe::encode(4, 2, &chunk0).map_err(js)?;
        if stripe.id != id_in(STRIPE, "stripe_id")?
            || stripe.descriptor != vector_in(STRIPE, "descriptor")?
        {
            return Err(js("the stripe vector encodes to something else"));
        }
        let parsed = crate::Stripe::parse(&stripe.descriptor).map_err(js)?;
        let four: Vec<Option<&Vec<u8>>> = stripe
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| (i != 1 && i != 4).then_some(s))
            .collect();
        if parsed.join(&four).map_err(js)? != chunk0 {
            return Err(js(
                "four shards of the stripe vector do not give the chunk back",
            ));
        }

        const RS_FILE: &str = "```rs-file-vector";
        let striped = FileOpener::open_with_read_key(
            &id_in(RS_FILE, "file_id")?,
            &vector_in(RS_FILE, "record")?,
            opener.read_key(),
        )
        .map_err(js)?;
        if striped.manifest().chunks() != [stripe.id]
            || &*striped.open_verified_chunk(0, chunk0).map_err(js)? != PLAINTEXT
        {
            return Err(js("the erasure-coded file vector opened to something else"));
        }
        Ok(())
    }

    /// One Argon2id derivation at `m_kib` KiB, `t` passes, `p` lanes.
    #[wasm_bindgen]
    pub fn argon2id(m_kib: u32, t: u32, p: u32) -> Result<(), JsError> {
        let params = KdfParams::new(m_kib, t, p).map_err(js)?;
        PasswordKey::derive(&Password::new("a password"), params).map_err(js)?;
        Ok(())
    }

    /// A file sealed chunk by chunk in wasm memory, to open again.
    #[wasm_bindgen]
    pub struct Sealed {
        record: Vec<u8>,
        id: [u8; 32],
        chunks: Vec<Vec<u8>>,
        password: String,
    }

    /// Seals `mib` MiB (1 MiB chunks of one repeated pattern) under a key derived first at
    /// the format's minimum parameters (the derivation is timed by [`argon2id`], not here).
    #[wasm_bindgen]
    pub fn seal(mib: u32) -> Result<Sealed, JsError> {
        let password = "a password".to_string();
        let params = KdfParams::new(crate::MIN_M_KIB, crate::MIN_T, crate::MIN_P).map_err(js)?;
        let key = PasswordKey::derive(&Password::new(password.as_str()), params).map_err(js)?;
        let chunk_size = ChunkSize::from_log2(20).map_err(js)?;
        let sealer = FileSealer::with_key(&key, chunk_size).map_err(js)?;
        let piece: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut chunks = Vec::with_capacity(mib as usize);
        let mut ids = Vec::with_capacity(mib as usize);
        for index in 0..mib {
            let sealed = sealer
                .seal_chunk(u64::from(index), index + 1 == mib, &piece)
                .map_err(js)?;
            ids.push(sealed.id);
            chunks.push(sealed.bytes);
        }
        let record = sealer
            .finish(&ManifestInfo {
                name: "bench.bin".into(),
                size: u64::from(mib) << 20,
                created: 1_700_000_000,
                kind: FileKind::File,
                chunks: ids,
            })
            .map_err(js)?;
        Ok(Sealed {
            record: record.bytes,
            id: record.id,
            chunks,
            password,
        })
    }

    #[wasm_bindgen]
    impl Sealed {
        /// Opens the record (one Argon2id run at the minimum parameters), then every chunk,
        /// checking each; returns the plaintext bytes opened.
        pub fn open(&self) -> Result<f64, JsError> {
            let opener = FileOpener::open(
                &self.id,
                &self.record,
                &Password::new(self.password.as_str()),
            )
            .map_err(js)?;
            let mut total = 0u64;
            for (index, chunk) in self.chunks.iter().enumerate() {
                total += opener
                    .open_chunk(index as u64, chunk.clone())
                    .map_err(js)?
                    .len() as u64;
            }
            Ok(total as f64)
        }
    }
}

mod client {
    use wasm_bindgen::prelude::*;
    use zeroize::Zeroizing;

    use crate::{
        ChunkSize, Collection, ExternalChunks, FileKind, FileOpener, FileSealer, KdfParams,
        ManifestInfo, Password, PasswordKey, ReadKey, Redundancy, Stripe, TRAILER_LEN,
    };

    fn js(e: impl std::fmt::Display) -> JsError {
        JsError::new(&e.to_string())
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn parse_id(text: &str) -> Result<[u8; 32], JsError> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(js("an id is 64 hexadecimal digits"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let digits = std::str::from_utf8(pair).map_err(|_| js("an id is hexadecimal"))?;
            out[i] = u8::from_str_radix(digits, 16).map_err(|_| js("an id is hexadecimal"))?;
        }
        Ok(out)
    }

    /// A whole number from JavaScript (at most 2^53, where a double stays exact).
    fn whole(value: f64, what: &str) -> Result<u64, JsError> {
        if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 9.007e15 {
            Ok(value as u64)
        } else {
            Err(js(format!("{what} must be a whole number")))
        }
    }

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
            let opener =
                FileOpener::open_with_read_key(&parse_id(id)?, record, &read).map_err(js)?;
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
        pub fn add(
            &mut self,
            path: &str,
            size: f64,
            id: &str,
            read_key: &str,
        ) -> Result<(), JsError> {
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
}

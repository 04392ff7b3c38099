//! JavaScript bindings of the client library for a page (feature `browser`, on
//! `wasm32-unknown-unknown` only), built as a WebAssembly module with wasm-bindgen. Today they
//! are what `benches/browser/` measures in Chromium, to choose how the page will seal and open
//! (issue 27); each call is timed by the page.
//!
//! It checks FORMAT.md's file vector (the record opens with the vector's password and its
//! chunk gives the vector's plaintext), runs one Argon2id derivation at given parameters, and
//! seals then opens a file chunk by chunk exactly as the client pipelines do (AES-256-GCM,
//! BLAKE3 ids, the format's trailer), with the key derived once beforehand.

pub use bindings::*;

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
        let block = FORMAT_MD
            .split("```vector")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .ok_or_else(|| js("FORMAT.md has no vector block"))?;
        let hex = block
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once('=')?;
                (key.trim() == name).then(|| value.trim())
            })
            .ok_or_else(|| js(format!("FORMAT.md's vector has no {name}")))?;
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<_, _>>()
            .map_err(|_| js(format!("FORMAT.md's {name} is not hex")))
    }

    /// Opens FORMAT.md's file vector with its password (one Argon2id run at the vector's
    /// parameters) and checks the chunk's plaintext.
    #[wasm_bindgen]
    pub fn check_format_vector() -> Result<(), JsError> {
        let id: [u8; 32] = vector("file_id")?
            .try_into()
            .map_err(|_| js("file_id is not 32 bytes"))?;
        let opener =
            FileOpener::open(&id, &vector("record")?, &Password::new(PASSWORD)).map_err(js)?;
        let plaintext = opener.open_chunk(0, vector("chunk0")?).map_err(js)?;
        if &*plaintext != PLAINTEXT || opener.manifest().name() != "hello.txt" {
            return Err(js("the vector opened to something else"));
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

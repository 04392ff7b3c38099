//! What `benches/browser/run.sh` times: Argon2id, and sealing then opening with this crate's own
//! AES-GCM in WebAssembly (the measurement that sent chunk AES-GCM to WebCrypto).

use wasm_bindgen::prelude::*;

use super::js;
use crate::{
    ChunkSize, FileKind, FileOpener, FileSealer, KdfParams, ManifestInfo, Password, PasswordKey,
};

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

//! Whole-file tests through the public API, with the fast insecure KDF (which this crate's own
//! unit tests accept) and the smallest chunk size.

mod cache;
mod negative;
mod roundtrip;
mod vectors;

use crate::{
    ChunkSize, FileOpener, FileSealer, KdfParams, ManifestInfo, Password, Result, SealedChunk,
    SealedRecord, chunk_count_for,
};

/// The chunk size used by these tests (64 KiB).
pub(super) const CS: ChunkSize = ChunkSize::MIN;
/// `CS` in bytes.
pub(super) const C: usize = 1 << 16;

/// A sealed file: its record and its chunks in order.
pub(super) struct Sealed {
    pub(super) record: SealedRecord,
    pub(super) chunks: Vec<SealedChunk>,
}

impl Sealed {
    pub(super) fn chunk_bytes(&self) -> Vec<Vec<u8>> {
        self.chunks.iter().map(|c| c.bytes.clone()).collect()
    }
}

/// Deterministic pseudo-random test data.
pub(super) fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub(super) fn seal_with(
    password: &Password,
    params: KdfParams,
    chunk_size: ChunkSize,
    data: &[u8],
) -> Sealed {
    let sealer = FileSealer::new(password, params, chunk_size).unwrap();
    let count = chunk_count_for(data.len() as u64, chunk_size);
    let chunks: Vec<SealedChunk> = if data.is_empty() {
        vec![sealer.seal_chunk(0, true, &[]).unwrap()]
    } else {
        data.chunks(chunk_size.bytes())
            .enumerate()
            .map(|(i, piece)| {
                let i = i as u64;
                sealer.seal_chunk(i, i + 1 == count, piece).unwrap()
            })
            .collect()
    };
    let record = sealer
        .finish(&ManifestInfo {
            name: "test file.bin".into(),
            size: data.len() as u64,
            created: 1_700_000_000,
            kind: crate::FileKind::File,
            chunks: chunks.iter().map(|c| c.id).collect(),
        })
        .unwrap();
    Sealed { record, chunks }
}

/// Seals `data` with the insecure test KDF and 64 KiB chunks.
pub(super) fn seal(password: &str, data: &[u8]) -> Sealed {
    seal_with(
        &Password::new(password),
        KdfParams::insecure_test(),
        CS,
        data,
    )
}

/// Opens a whole file from its id, record and chunks.
pub(super) fn open(
    id: &[u8; 32],
    record: &[u8],
    password: &str,
    chunks: Vec<Vec<u8>>,
) -> Result<Vec<u8>> {
    let opener = FileOpener::open(id, record, &Password::new(password))?;
    let mut out = Vec::new();
    for (i, chunk) in chunks.into_iter().enumerate() {
        out.extend_from_slice(&opener.open_chunk(i as u64, chunk)?);
    }
    Ok(out)
}

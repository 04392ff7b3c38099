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
//! - [`check_format_vector`]: FORMAT.md's vectors, checked in the browser (the tests run it in
//!   Chromium).
//! - [`argon2id`], [`seal`] and [`Sealed`]: what `benches/browser/run.sh` times.
//!
//! Files: `upload.rs` (sealing), `download.rs` (opening), `vectors.rs`, `bench.rs`; the few
//! conversions they share are here.

mod bench;
mod download;
mod upload;
mod vectors;

pub use bench::*;
pub use download::*;
pub use upload::*;
pub use vectors::*;

use wasm_bindgen::prelude::*;

/// A Rust error as a JavaScript `Error` with its message.
pub(crate) fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Bytes as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A 64-digit hex id.
pub(crate) fn parse_id(text: &str) -> Result<[u8; 32], JsError> {
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
pub(crate) fn whole(value: f64, what: &str) -> Result<u64, JsError> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 9.007e15 {
        Ok(value as u64)
    } else {
        Err(js(format!("{what} must be a whole number")))
    }
}

//! `voldisefs_proto::objects::decode_batch`, what the node's object API parses of a batch or
//! stripe body beyond raw bytes, on arbitrary bytes.
//!
//! Checked: no panic; an accepted body holds 1 to the allowed count of objects, none longer than
//! the allowed length, and encoding them again gives the body back byte for byte.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use voldisefs_proto::objects::{decode_batch, encode_batch};

/// Small limits, so the fuzzer reaches them.
const MAX_OBJECTS: usize = 8;
const MAX_LEN: usize = 512;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    if let Ok(objects) = decode_batch(&body, MAX_OBJECTS, MAX_LEN) {
        assert!(!objects.is_empty() && objects.len() <= MAX_OBJECTS);
        assert!(objects.iter().all(|(_, b)| b.len() <= MAX_LEN));
        let again = encode_batch(objects.iter().map(|(id, b)| (id, &b[..]))).expect("encodes");
        assert_eq!(again, data);
    }
});

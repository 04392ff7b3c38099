//! The body of the HTTP object API's batch requests (`POST /api/v1/objects` and
//! `PUT /api/v1/stripes/{id}`): sealed objects back to back, each
//!
//! | size | field                           |
//! |-----:|---------------------------------|
//! |   32 | the object's id (its BLAKE3)    |
//! |    4 | length `n`, u32 big-endian      |
//! |    n | the object's bytes              |
//!
//! and nothing after the last one. [`decode_batch`] refuses, with a [`BatchError`] that says
//! why, a body that is cut short, has trailing bytes, holds more than the caller's count of
//! objects or one longer than the caller's length. Ids are not checked here (the node hashes
//! every object against its id before storing it).

use bytes::Bytes;

/// Bytes in front of every object: id and length.
pub const BATCH_ENTRY_HEAD: usize = 32 + 4;

/// Why a batch body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The body ends inside an entry.
    #[error("the batch ends inside object {index}")]
    Truncated {
        /// Index of the incomplete entry.
        index: usize,
    },
    /// More objects than allowed.
    #[error("more than {max} objects in one batch")]
    TooManyObjects {
        /// The limit.
        max: usize,
    },
    /// An object longer than allowed.
    #[error("object {index} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Index of the entry.
        index: usize,
        /// Its announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An empty batch.
    #[error("the batch holds no object")]
    Empty,
}

/// Appends one entry to a batch body.
pub fn encode_entry(out: &mut Vec<u8>, id: &[u8; 32], bytes: &[u8]) -> Result<(), BatchError> {
    let len = u32::try_from(bytes.len()).map_err(|_| BatchError::TooLong {
        index: 0,
        len: bytes.len(),
        max: u32::MAX as usize,
    })?;
    out.reserve(BATCH_ENTRY_HEAD + bytes.len());
    out.extend_from_slice(id);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Encodes `objects` as a batch body.
pub fn encode_batch<'a>(
    objects: impl IntoIterator<Item = (&'a [u8; 32], &'a [u8])>,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    for (id, bytes) in objects {
        encode_entry(&mut out, id, bytes)?;
    }
    Ok(out)
}

/// Splits a batch body into its objects (slices of `body`, no copies), refusing more than
/// `max_objects` entries, an entry longer than `max_len`, and any malformed body.
pub fn decode_batch(
    body: &Bytes,
    max_objects: usize,
    max_len: usize,
) -> Result<Vec<([u8; 32], Bytes)>, BatchError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let index = out.len();
        if index >= max_objects {
            return Err(BatchError::TooManyObjects { max: max_objects });
        }
        let head = body
            .get(at..at + BATCH_ENTRY_HEAD)
            .ok_or(BatchError::Truncated { index })?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&head[..32]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[32..]);
        let len = u32::from_be_bytes(len) as usize;
        if len > max_len {
            return Err(BatchError::TooLong {
                index,
                len,
                max: max_len,
            });
        }
        let start = at + BATCH_ENTRY_HEAD;
        let end = start
            .checked_add(len)
            .filter(|end| *end <= body.len())
            .ok_or(BatchError::Truncated { index })?;
        out.push((id, body.slice(start..end)));
        at = end;
    }
    if out.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn batches_round_trip(objects in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 0..300)), 1..20)) {
            let body = encode_batch(objects.iter().map(|(id, b)| (id, &b[..]))).unwrap();
            let decoded = decode_batch(&Bytes::from(body), 20, 300).unwrap();
            prop_assert_eq!(decoded.len(), objects.len());
            for ((id, bytes), (want_id, want)) in decoded.iter().zip(&objects) {
                prop_assert_eq!(id, want_id);
                prop_assert_eq!(&bytes[..], &want[..]);
            }
        }

        #[test]
        fn any_body_decodes_or_is_refused_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(objects) = decode_batch(&Bytes::from(body.clone()), 8, 200) {
                let again = encode_batch(objects.iter().map(|(id, b)| (id, &b[..]))).unwrap();
                prop_assert_eq!(again, body);
            }
        }
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_reason() {
        let one = encode_batch([(&[7u8; 32], &b"abc"[..])]).unwrap();
        let cut = Bytes::from(one[..one.len() - 1].to_vec());
        assert_eq!(
            decode_batch(&cut, 8, 8),
            Err(BatchError::Truncated { index: 0 })
        );
        assert_eq!(
            decode_batch(&Bytes::from(one.clone()), 8, 2),
            Err(BatchError::TooLong {
                index: 0,
                len: 3,
                max: 2
            })
        );
        let two = [one.clone(), one].concat();
        assert_eq!(
            decode_batch(&Bytes::from(two), 1, 8),
            Err(BatchError::TooManyObjects { max: 1 })
        );
        assert_eq!(decode_batch(&Bytes::new(), 1, 8), Err(BatchError::Empty));
        // A length near u32::MAX is refused by the limit, never allocated.
        let mut huge = vec![0u8; 32];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_batch(&Bytes::from(huge), 8, 1 << 20),
            Err(BatchError::TooLong { .. })
        ));
    }
}

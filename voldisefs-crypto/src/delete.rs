//! Delete keys: the capability to erase a file's stored objects, derived from its data key.
//!
//! Every stored object of a file (each sealed chunk and the record) ends with the file's
//! 32-byte **delete check**, `SHA-256("voldisefs v2 delete check" || delete key)`. The check
//! is part of the bytes the object's content id covers, so nobody can change it without
//! changing the id. Holders need no keys to apply the rule: a delete request presents the
//! delete key, and a holder erases an object only if the key hashes to the object's last 32
//! bytes ([`DeleteKeyExt::authorizes`]). The key itself comes from the file's data key (see
//! `FORMAT.md`), so only a reader of the file (someone with its password) can present it.

use crate::TAG_LEN;

/// Length of a delete key and of a delete check.
pub const DELETE_CHECK_LEN: usize = 32;

/// Length of the expiry every stored object carries before its delete check: unix seconds,
/// u64 big-endian, 0 for never (format version 3).
pub const EXPIRY_LEN: usize = 8;

/// Length of the public trailer of every stored object: expiry, then delete check.
pub const TRAILER_LEN: usize = EXPIRY_LEN + DELETE_CHECK_LEN;

/// Bytes a stored chunk is longer than its plaintext: the GCM tag, the expiry and the delete
/// check.
pub const CHUNK_OVERHEAD: usize = TAG_LEN + TRAILER_LEN;

/// Shortest object a writer of this format ever stores (an empty chunk: tag and check). A
/// holder may refuse anything shorter.
pub const MIN_STORED_LEN: usize = CHUNK_OVERHEAD;

/// Domain label hashed in front of the key to give the check.
pub(crate) const CHECK_LABEL: &[u8] = b"voldisefs v2 delete check";

/// The delete check of `key`: `SHA-256("voldisefs v2 delete check" || key)`.
pub fn delete_check(key: &[u8; DELETE_CHECK_LEN]) -> [u8; DELETE_CHECK_LEN] {
    crate::primitives::sha256(&[CHECK_LABEL, key])
}

/// The delete check a stored object ends with, or `None` when it is shorter than
/// [`MIN_STORED_LEN`] (no object of this format is).
pub fn stored_delete_check(object: &[u8]) -> Option<&[u8; DELETE_CHECK_LEN]> {
    if object.len() < MIN_STORED_LEN {
        return None;
    }
    object[object.len() - DELETE_CHECK_LEN..].try_into().ok()
}

/// When a stored object expires (unix seconds; `Some(0)`: never), read from its public
/// trailer, or `None` when it is shorter than [`MIN_STORED_LEN`]. Holders drop an object at
/// its expiry and refuse to store it after; the id covers these bytes, so nobody can change
/// them without changing the id.
pub fn stored_expiry(object: &[u8]) -> Option<u64> {
    if object.len() < MIN_STORED_LEN {
        return None;
    }
    let at = object.len() - TRAILER_LEN;
    let mut bytes = [0u8; EXPIRY_LEN];
    bytes.copy_from_slice(&object[at..at + EXPIRY_LEN]);
    Some(u64::from_be_bytes(bytes))
}

/// Whether an object expiring at `expires` (0: never) has expired at `now` (unix seconds).
pub fn expired(expires: u64, now: u64) -> bool {
    expires != 0 && expires <= now
}

/// A file's delete key: proof, to a holder that knows nothing else, that a request to erase
/// the file's objects comes from someone who can read the file. The one type of the workspace,
/// defined in `voldisefs-proto` (it travels in `delete_chunks`); wiped when dropped.
pub use voldisefs_proto::DeleteKey;

/// What this crate adds to a [`DeleteKey`]: its check and the rule that says which objects it
/// may erase. A trait, not free functions, so that `key.check()` and `key.authorizes(object)`
/// read as they always did wherever the trait is imported, while the format's check stays here
/// (`voldisefs-proto` knows the key only as 32 bytes on the wire).
pub trait DeleteKeyExt {
    /// The check stored objects of this key's file end with.
    fn check(&self) -> [u8; DELETE_CHECK_LEN];

    /// Whether this key may erase `object` (a stored chunk or record): its last 32 bytes are
    /// this key's check.
    fn authorizes(&self, object: &[u8]) -> bool;
}

impl DeleteKeyExt for DeleteKey {
    fn check(&self) -> [u8; DELETE_CHECK_LEN] {
        delete_check(self.as_bytes())
    }

    fn authorizes(&self, object: &[u8]) -> bool {
        stored_delete_check(object).is_some_and(|stored| *stored == self.check())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_authorizes_only_objects_ending_with_its_check() {
        let key = DeleteKey::from_bytes([9; 32]);
        let mut object = b"ciphertext and a tag....".to_vec();
        object.extend_from_slice(&key.check());
        assert!(key.authorizes(&object));
        assert!(!DeleteKey::from_bytes([8; 32]).authorizes(&object));
        let last = object.len() - 1;
        object[last] ^= 1;
        assert!(!key.authorizes(&object));
        assert!(
            !key.authorizes(&key.check()),
            "shorter than any stored object"
        );
        assert_eq!(stored_delete_check(&[0; MIN_STORED_LEN - 1]), None);
        assert_eq!(format!("{key:?}"), "DeleteKey(..)");
    }

    #[test]
    fn the_check_is_a_labelled_hash() {
        let key = [1u8; 32];
        let mut input = CHECK_LABEL.to_vec();
        input.extend_from_slice(&key);
        let sha256 = |bytes: &[u8]| -> [u8; 32] {
            let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
            digest.as_ref().try_into().unwrap()
        };
        assert_eq!(delete_check(&key), sha256(&input));
        assert_ne!(delete_check(&key), sha256(&key));
    }
}

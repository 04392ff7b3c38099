//! Identifiers: [`NodeId`] (random UUID per node run) and the content addresses [`ChunkId`] and
//! [`FileId`] (BLAKE3 digests), all shown and parsed as lowercase text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

/// Why a textual id could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A digest id was not 64 hexadecimal digits.
    #[error("invalid {kind}: expected 64 hex digits")]
    InvalidDigest {
        /// Which id type was being parsed.
        kind: &'static str,
    },
    /// A node id was not a UUID.
    #[error("invalid node id: expected a UUID")]
    InvalidNodeId,
}

/// A node's name: a random UUID v4 generated at start. A restarted node is a new node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(Uuid);

impl NodeId {
    /// Generates a fresh random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The raw 16 bytes, e.g. for hashing in placement.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0.hyphenated())
    }
}

impl FromStr for NodeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| IdError::InvalidNodeId)
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Defines a 32-byte BLAKE3 content address with hex text form and serde support.
macro_rules! digest_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Length of the id in bytes.
            pub const LEN: usize = 32;

            /// Wraps a raw 32-byte digest.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The BLAKE3 digest of `data`: the id that content must have.
            pub fn digest(data: &[u8]) -> Self {
                Self(*blake3::hash(data).as_bytes())
            }

            /// Whether `data` hashes to this id.
            pub fn matches(&self, data: &[u8]) -> bool {
                Self::digest(data) == *self
            }

            /// The raw digest bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex form (64 characters).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 64];
                // Encoding 32 bytes into a 64-byte buffer cannot fail.
                hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), hex::encode(&self.0[..8]))
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 32];
                if s.len() != 64 {
                    return Err(IdError::InvalidDigest { kind: $kind });
                }
                hex::decode_to_slice(s, &mut out)
                    .map_err(|_| IdError::InvalidDigest { kind: $kind })?;
                Ok(Self(out))
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_id!(
    /// Content address of a stored chunk (or sealed manifest record): BLAKE3 of its bytes.
    ///
    /// Any node can verify what it stores or serves against its id without keys.
    ChunkId,
    "chunk id"
);

digest_id!(
    /// A file's id: BLAKE3 of its sealed manifest record. With the password it is all anyone
    /// needs to fetch the file.
    FileId,
    "file id"
);

digest_id!(
    /// A fresh random challenge for a proof of possession (see [`crate::proof`]).
    ProofNonce,
    "proof nonce"
);

digest_id!(
    /// A proof-of-possession answer: a digest over a nonce, the prover and a chunk's bytes.
    ProofDigest,
    "proof digest"
);

/// A file's delete key: the capability to erase the file's stored objects, and how it travels
/// in `delete_chunks` (64 hex digits). A holder erases an object only if the key's check
/// equals the object's last 32 bytes (the check and that rule are `voldisefs-crypto`'s:
/// `voldisefs_crypto::DeleteKeyExt`). The one delete-key type of the workspace: wiped when
/// dropped, compared in constant time, `Clone` but not `Copy` (every copy is a deliberate
/// clone, wiped in turn), and `Debug` does not show it.
#[derive(Clone)]
pub struct DeleteKey([u8; 32]);

impl DeleteKey {
    /// Wraps raw key bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for DeleteKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PartialEq for DeleteKey {
    /// Constant time: how long a comparison takes tells nothing about where keys differ.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for DeleteKey {}

impl fmt::Debug for DeleteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeleteKey(..)")
    }
}

impl Serialize for DeleteKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = Zeroizing::new(hex::encode(self.0));
        s.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for DeleteKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut key = Self([0u8; 32]);
        if s.len() != 64 || hex::decode_to_slice(s.as_bytes(), &mut key.0).is_err() {
            return Err(serde::de::Error::custom(IdError::InvalidDigest {
                kind: "delete key",
            }));
        }
        Ok(key)
    }
}

impl FileId {
    /// The chunk id under which the file's manifest record is stored (the same digest).
    pub const fn record_chunk(&self) -> ChunkId {
        ChunkId::from_bytes(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn delete_keys_travel_as_hex_and_never_debug() {
        let key = DeleteKey::from_bytes([0xab; 32]);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<DeleteKey>(&json).unwrap(), key);
        assert!(serde_json::from_str::<DeleteKey>("\"abc\"").is_err());
        assert!(serde_json::from_str::<DeleteKey>(&format!("\"{}\"", "zz".repeat(32))).is_err());
        assert_eq!(format!("{key:?}"), "DeleteKey(..)");
    }

    #[test]
    fn blake3_known_answer() {
        // BLAKE3("abc"), from the reference implementation's test vectors.
        let id = ChunkId::digest(b"abc");
        assert_eq!(
            id.to_string(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert!(id.matches(b"abc"));
        assert!(!id.matches(b"abd"));
    }

    #[test]
    fn bad_text_is_refused() {
        assert!("".parse::<ChunkId>().is_err());
        assert!("zz".repeat(32).parse::<ChunkId>().is_err());
        assert!("ab".repeat(33).parse::<FileId>().is_err());
        assert!("not-a-uuid".parse::<NodeId>().is_err());
        // Multi-byte characters must not panic on slicing.
        assert!("é".repeat(32).parse::<ChunkId>().is_err());
    }

    #[test]
    fn file_id_maps_to_record_chunk() {
        let f = FileId::digest(b"record");
        assert_eq!(f.record_chunk().as_bytes(), f.as_bytes());
    }

    proptest! {
        #[test]
        fn digest_ids_round_trip(bytes in any::<[u8; 32]>()) {
            let c = ChunkId::from_bytes(bytes);
            prop_assert_eq!(c.to_string().parse::<ChunkId>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            prop_assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), c);
            let f = FileId::from_bytes(bytes);
            prop_assert_eq!(f.to_string().parse::<FileId>().unwrap(), f);
        }

        #[test]
        fn node_ids_round_trip(bytes in any::<[u8; 16]>()) {
            let n = NodeId::from_uuid(Uuid::from_bytes(bytes));
            prop_assert_eq!(n.to_string().parse::<NodeId>().unwrap(), n);
            let json = serde_json::to_string(&n).unwrap();
            prop_assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), n);
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = s.parse::<ChunkId>();
            let _ = s.parse::<FileId>();
            let _ = s.parse::<NodeId>();
        }
    }
}

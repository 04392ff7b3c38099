//! Read keys: what a share link carries to open one file without its password.
//!
//! A file's read key is derived from its data key (`FORMAT.md`, section 2) and is the root of
//! its manifest and chunk keys: it opens that file's record and chunks, nothing else (another
//! file has another data key and file nonce), and it gives neither the password, the data key
//! nor the delete key, so a link lets its holder read the file but not delete it or change its
//! password. Opening with it costs no Argon2id run.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of a read key.
pub const READ_KEY_LEN: usize = 32;

/// A file's read key (see the module docs). Wiped when dropped; compared in constant time;
/// never shown by `Debug`.
#[derive(Clone)]
pub struct ReadKey(Zeroizing<[u8; READ_KEY_LEN]>);

impl ReadKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; READ_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; READ_KEY_LEN] {
        &self.0
    }

    /// The key as 64 lowercase hex digits (as a share link carries it), wiped when dropped.
    pub fn to_hex(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(2 * READ_KEY_LEN));
        for b in self.0.iter() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// Parses 64 hex digits (either case); anything else is [`Error::InvalidReadKey`].
    pub fn from_hex(text: &str) -> Result<Self> {
        let text = text.as_bytes();
        if text.len() != 2 * READ_KEY_LEN {
            return Err(Error::InvalidReadKey);
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(Error::InvalidReadKey),
        };
        let mut out = Zeroizing::new([0u8; READ_KEY_LEN]);
        for (i, pair) in text.chunks_exact(2).enumerate() {
            out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Ok(Self(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl PartialEq for ReadKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&*other.0))
    }
}

impl Eq for ReadKey {}

impl std::fmt::Debug for ReadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_refusals() {
        let key = ReadKey::from_bytes(std::array::from_fn(|i| i as u8 * 7));
        let hex = key.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(ReadKey::from_hex(&hex).unwrap(), key);
        assert_eq!(ReadKey::from_hex(&hex.to_uppercase()).unwrap(), key);
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"0".repeat(65)] {
            assert!(ReadKey::from_hex(bad).is_err(), "{bad:?}");
        }
        assert!(!format!("{key:?}").contains(&hex[..8]));
        assert_ne!(key, ReadKey::from_bytes([0; 32]));
    }
}

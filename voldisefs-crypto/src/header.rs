//! The fixed-size, big-endian, versioned record header.
//!
//! | offset | size | field                                             |
//! |-------:|-----:|---------------------------------------------------|
//! |      0 |    4 | magic `"VDFS"`                                    |
//! |      4 |    2 | format version, u16 BE (= 3)                      |
//! |      6 |    1 | KDF id (0x01 Argon2id v1.3, 0xFE insecure test)   |
//! |      7 |    4 | Argon2 memory m in KiB, u32 BE                    |
//! |     11 |    4 | Argon2 passes t, u32 BE                           |
//! |     15 |    4 | Argon2 lanes p, u32 BE                            |
//! |     19 |   16 | salt                                              |
//! |     35 |   16 | file nonce                                        |
//! |     51 |    1 | chunk size log2 (16..=24)                         |
//! |     52 |   32 | key commitment                                    |
//! |     84 |   48 | wrapped DEK (ciphertext 32 + GCM tag 16)          |
//! |    132 |      | end (`HEADER_LEN`)                                |

use crate::chunk::ChunkSize;
use crate::delete::TRAILER_LEN;
use crate::error::{Error, Result};
use crate::kdf::{ALLOW_INSECURE, KdfParams, check_params};
use crate::keys::{COMMITMENT_LEN, WRAPPED_DEK_LEN};
use crate::{FORMAT_VERSION, MAGIC, MANIFEST_NONCE_LEN, TAG_LEN};

/// Length of the record header in bytes.
pub const HEADER_LEN: usize = 132;

const OFF_VERSION: usize = 4;
const OFF_KDF_ID: usize = 6;
const OFF_M: usize = 7;
const OFF_T: usize = 11;
const OFF_P: usize = 15;
const OFF_SALT: usize = 19;
const OFF_FILE_NONCE: usize = 35;
const OFF_CHUNK_LOG2: usize = 51;
const OFF_COMMITMENT: usize = 52;
/// Offset of the wrapped DEK; the header before it is the DEK wrap's AAD.
pub(crate) const OFF_WRAPPED_DEK: usize = 84;

/// A parsed record header. Holds only public data (everything here is stored in the clear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub(crate) kdf: KdfParams,
    pub(crate) salt: [u8; 16],
    pub(crate) file_nonce: [u8; 16],
    pub(crate) chunk_size: ChunkSize,
    pub(crate) commitment: [u8; COMMITMENT_LEN],
    pub(crate) wrapped_dek: [u8; WRAPPED_DEK_LEN],
}

fn be_u32(bytes: &[u8; HEADER_LEN], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

fn array<const N: usize>(bytes: &[u8; HEADER_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

impl RecordHeader {
    /// Parses a header of exactly [`HEADER_LEN`] bytes, checking magic, version, KDF id and
    /// parameters (floor and ceiling) and the chunk size. Runs no KDF.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_with(bytes, ALLOW_INSECURE)
    }

    /// Parses the header at the start of a whole record (header + sealed manifest).
    pub fn from_record(record: &[u8]) -> Result<Self> {
        if record.len() < HEADER_LEN + MANIFEST_NONCE_LEN + TAG_LEN + TRAILER_LEN {
            return Err(Error::MalformedHeader("record too short"));
        }
        Self::parse(&record[..HEADER_LEN])
    }

    pub(crate) fn parse_with(bytes: &[u8], allow_insecure: bool) -> Result<Self> {
        let bytes: &[u8; HEADER_LEN] = bytes
            .try_into()
            .map_err(|_| Error::MalformedHeader("header has the wrong length"))?;
        let magic = array::<4>(bytes, 0);
        if magic != MAGIC {
            return Err(Error::Unsupported {
                field: "magic",
                value: u32::from_be_bytes(magic),
            });
        }
        let version = u16::from_be_bytes(array(bytes, OFF_VERSION));
        if version != FORMAT_VERSION {
            return Err(Error::Unsupported {
                field: "format version",
                value: u32::from(version),
            });
        }
        let kdf = check_params(
            bytes[OFF_KDF_ID],
            be_u32(bytes, OFF_M),
            be_u32(bytes, OFF_T),
            be_u32(bytes, OFF_P),
            allow_insecure,
        )?;
        let chunk_size = ChunkSize::from_log2(bytes[OFF_CHUNK_LOG2])
            .map_err(|_| Error::MalformedHeader("chunk size log2 out of range"))?;
        Ok(RecordHeader {
            kdf,
            salt: array(bytes, OFF_SALT),
            file_nonce: array(bytes, OFF_FILE_NONCE),
            chunk_size,
            commitment: array(bytes, OFF_COMMITMENT),
            wrapped_dek: array(bytes, OFF_WRAPPED_DEK),
        })
    }

    /// Serialises the header.
    pub(crate) fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        self.write_prefix(&mut out);
        out[OFF_WRAPPED_DEK..].copy_from_slice(&self.wrapped_dek);
        out
    }

    /// Writes everything before the wrapped DEK (the DEK wrap's AAD) into `out`.
    pub(crate) fn write_prefix(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&MAGIC);
        out[OFF_VERSION..OFF_KDF_ID].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        out[OFF_KDF_ID] = self.kdf.kdf_id();
        out[OFF_M..OFF_T].copy_from_slice(&self.kdf.m_kib().to_be_bytes());
        out[OFF_T..OFF_P].copy_from_slice(&self.kdf.t().to_be_bytes());
        out[OFF_P..OFF_SALT].copy_from_slice(&self.kdf.p().to_be_bytes());
        out[OFF_SALT..OFF_FILE_NONCE].copy_from_slice(&self.salt);
        out[OFF_FILE_NONCE..OFF_CHUNK_LOG2].copy_from_slice(&self.file_nonce);
        out[OFF_CHUNK_LOG2] = self.chunk_size.log2();
        out[OFF_COMMITMENT..OFF_WRAPPED_DEK].copy_from_slice(&self.commitment);
    }

    /// The format version (always 3 in this build).
    pub fn format_version(&self) -> u16 {
        FORMAT_VERSION
    }

    /// The KDF parameters the record was sealed with.
    pub fn kdf_params(&self) -> KdfParams {
        self.kdf
    }

    /// The file's chunk size.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// The Argon2id salt (shared by every file of one batch).
    pub fn salt(&self) -> &[u8; 16] {
        &self.salt
    }

    /// The file nonce (unique to the file).
    pub fn file_nonce(&self) -> &[u8; 16] {
        &self.file_nonce
    }

    /// The key commitment (unique to the password, salt and file nonce).
    pub fn commitment(&self) -> &[u8; 32] {
        &self.commitment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::{KDF_ARGON2ID, KDF_ARGON2ID_INSECURE_TEST};

    fn sample() -> RecordHeader {
        RecordHeader {
            kdf: KdfParams::default(),
            salt: [1; 16],
            file_nonce: [2; 16],
            chunk_size: ChunkSize::default(),
            commitment: [3; 32],
            wrapped_dek: [4; 48],
        }
    }

    #[test]
    fn layout_and_round_trip() {
        let h = sample();
        let b = h.to_bytes();
        assert_eq!(&b[..4], b"VDFS");
        assert_eq!(&b[4..6], &[0, 4]);
        assert_eq!(b[6], KDF_ARGON2ID);
        assert_eq!(&b[7..11], &65536u32.to_be_bytes());
        assert_eq!(&b[11..15], &3u32.to_be_bytes());
        assert_eq!(&b[15..19], &1u32.to_be_bytes());
        assert_eq!(&b[19..35], &[1; 16]);
        assert_eq!(&b[35..51], &[2; 16]);
        assert_eq!(b[51], 20);
        assert_eq!(&b[52..84], &[3; 32]);
        assert_eq!(&b[84..132], &[4; 48]);
        assert_eq!(RecordHeader::parse(&b).unwrap(), h);
        assert_eq!(RecordHeader::parse(&b).unwrap().format_version(), 4);
    }

    #[test]
    fn exact_length_only() {
        let b = sample().to_bytes();
        for len in 0..HEADER_LEN {
            assert!(matches!(
                RecordHeader::parse(&b[..len]),
                Err(Error::MalformedHeader(_))
            ));
        }
        let mut long = b.to_vec();
        long.push(0);
        assert!(matches!(
            RecordHeader::parse(&long),
            Err(Error::MalformedHeader(_))
        ));
        assert!(RecordHeader::from_record(&b).is_err());
    }

    #[test]
    fn unsupported_fields_are_distinct() {
        let b = sample().to_bytes();
        let mut bad = b;
        bad[0] = b'X';
        assert!(matches!(
            RecordHeader::parse(&bad),
            Err(Error::Unsupported { field: "magic", .. })
        ));
        for v in [0u16, 1, 2, 3, 5, 0x0400, u16::MAX] {
            let mut bad = b;
            bad[4..6].copy_from_slice(&v.to_be_bytes());
            assert!(matches!(
                RecordHeader::parse(&bad),
                Err(Error::Unsupported {
                    field: "format version",
                    ..
                })
            ));
        }
        let mut bad = b;
        bad[6] = 0x02;
        assert!(matches!(
            RecordHeader::parse(&bad),
            Err(Error::Unsupported { field: "kdf", .. })
        ));
        for log2 in [0u8, 15, 25, 255] {
            let mut bad = b;
            bad[51] = log2;
            assert!(matches!(
                RecordHeader::parse(&bad),
                Err(Error::MalformedHeader(_))
            ));
        }
    }

    #[test]
    fn params_checked_at_parse() {
        let b = sample().to_bytes();
        let mut weak = b;
        weak[7..11].copy_from_slice(&1024u32.to_be_bytes());
        assert!(matches!(
            RecordHeader::parse(&weak),
            Err(Error::KdfParamsTooWeak { .. })
        ));
        let mut huge = b;
        huge[7..11].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            RecordHeader::parse(&huge),
            Err(Error::KdfParamsTooExpensive { .. })
        ));
        let mut test_kdf = b;
        test_kdf[6] = KDF_ARGON2ID_INSECURE_TEST;
        test_kdf[7..19].copy_from_slice(&[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1]);
        assert!(matches!(
            RecordHeader::parse_with(&test_kdf, false),
            Err(Error::InsecureTestKdf)
        ));
        assert!(
            RecordHeader::parse_with(&test_kdf, true)
                .unwrap()
                .kdf_params()
                .is_insecure_test()
        );
    }
}

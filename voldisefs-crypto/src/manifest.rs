//! The manifest: file metadata and ordered chunk ids, and its binary layout.
//!
//! Plaintext layout (big-endian), sealed with AES-256-GCM under the manifest key:
//!
//! | size       | field                                   |
//! |-----------:|-----------------------------------------|
//! |          2 | name length `n`, u16 BE (<= 4096)       |
//! |          n | name, UTF-8                             |
//! |          8 | file size in bytes, u64 BE              |
//! |          8 | created, unix seconds, u64 BE           |
//! |          1 | kind: 0 file, 1 collection (version 3)  |
//! |          1 | flags: bit 0 "once", bit 1 "redundancy" |
//! |     0 / 32 | the delete key, if "once"               |
//! |      0 / 3 | redundancy, if flagged: kind, a, b      |
//! |          4 | chunk count `c`, u32 BE                 |
//! |     32 * c | chunk ids, or stripe ids if `rs:K+M`    |
//!
//! Redundancy (flag bit 1): kind 0 `replicas:a` (b = 0) or kind 1 `rs:a+b`. For an
//! erasure-coded file each listed id is the BLAKE3 of the chunk's stripe descriptor
//! ([`crate::Stripe`]) rather than of the sealed chunk. Writers of this build always set it.

use zeroize::Zeroizing;

use crate::chunk::{ChunkSize, MAX_CHUNKS, checked_chunk_count, chunk_plain_len, too_large};
use crate::delete::{DeleteKey, EXPIRY_LEN, TRAILER_LEN};
use crate::error::{Error, Result};
use crate::primitives::{AeadKey, NONCE_LEN};
use crate::redundancy::Redundancy;
use crate::{MANIFEST_NONCE_LEN, TAG_LEN};

/// Longest file name a manifest holds, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 4096;

/// Longest manifest plaintext the format allows.
pub(crate) const MAX_MANIFEST_LEN: usize =
    2 + MAX_NAME_LEN + 8 + 8 + 1 + 1 + 32 + 4 + 32 * MAX_CHUNKS as usize;

/// What a record's content is, recorded (sealed) in its manifest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A file: the content is the user's bytes.
    #[default]
    File,
    /// A collection: the content is an encoded [`Collection`](crate::Collection), listing
    /// files stored on their own.
    Collection,
}

impl FileKind {
    fn to_byte(self) -> u8 {
        match self {
            FileKind::File => 0,
            FileKind::Collection => 1,
        }
    }

    fn from_byte(byte: u8) -> Result<Self> {
        match byte {
            0 => Ok(FileKind::File),
            1 => Ok(FileKind::Collection),
            _ => Err(Error::InvalidManifest("unknown kind")),
        }
    }
}

/// What a writer puts into a manifest (see [`crate::FileSealer::finish`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestInfo {
    /// File name (UTF-8, at most [`MAX_NAME_LEN`] bytes). Stored encrypted.
    pub name: String,
    /// File size in bytes.
    pub size: u64,
    /// Creation time, unix seconds.
    pub created: u64,
    /// What the content is.
    pub kind: FileKind,
    /// Chunk ids in order; exactly [`crate::chunk_count_for`]`(size, chunk_size)` of them.
    pub chunks: Vec<[u8; 32]>,
}

/// An opened, checked manifest.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    name: String,
    size: u64,
    created: u64,
    kind: FileKind,
    /// Burn after reading: the delete key, so whoever reads the file once deletes it.
    once: Option<DeleteKey>,
    /// How the chunks are kept, if the writer recorded it.
    redundancy: Option<Redundancy>,
    chunk_size: ChunkSize,
    chunks: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Manifest {
    // The name is user plaintext: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("name_len", &self.name.len())
            .field("size", &self.size)
            .field("created", &self.created)
            .field("kind", &self.kind)
            .field("once", &self.once.is_some())
            .field("redundancy", &self.redundancy)
            .field("chunk_size", &self.chunk_size.bytes())
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl Manifest {
    /// File name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Creation time, unix seconds.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// What the content is: a file, or a collection listing files.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// Whether the file is to be deleted after its first complete download ("burn after
    /// reading"); the manifest then carries the delete key, so any reader can do it.
    pub fn once(&self) -> bool {
        self.once.is_some()
    }

    /// How the file's chunks are kept, as its writer chose: `None` for records written
    /// before redundancy was recorded (whole copies, as many as the network keeps). For
    /// [`Redundancy::ErasureCoded`] the ids [`chunks`](Self::chunks) lists are stripe ids.
    pub fn redundancy(&self) -> Option<Redundancy> {
        self.redundancy
    }

    /// Whether the listed ids name stripe descriptors (an erasure-coded file).
    pub fn is_striped(&self) -> bool {
        matches!(self.redundancy, Some(Redundancy::ErasureCoded { .. }))
    }

    /// The delete key a "once" file's manifest carries.
    pub(crate) fn once_key(&self) -> Option<&DeleteKey> {
        self.once.as_ref()
    }

    /// Chunk size of the file.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// Ordered chunk ids.
    pub fn chunks(&self) -> &[[u8; 32]] {
        &self.chunks
    }

    /// Number of chunks (at least 1).
    pub fn chunk_count(&self) -> u64 {
        self.chunks.len() as u64
    }

    /// Id of chunk `index`, if it exists.
    pub fn chunk_id(&self, index: u64) -> Option<&[u8; 32]> {
        usize::try_from(index).ok().and_then(|i| self.chunks.get(i))
    }

    /// Plaintext length of chunk `index`, if it exists.
    pub fn chunk_len(&self, index: u64) -> Option<usize> {
        chunk_plain_len(self.size, self.chunk_size, index)
    }

    /// Back to writer input (used to re-seal under a new password).
    pub(crate) fn to_info(&self) -> ManifestInfo {
        ManifestInfo {
            name: self.name.clone(),
            size: self.size,
            created: self.created,
            kind: self.kind,
            chunks: self.chunks.clone(),
        }
    }
}

/// Checks the writer's input and serialises it (not a "once" file).
#[cfg(test)]
pub(crate) fn encode(info: &ManifestInfo, chunk_size: ChunkSize) -> Result<Zeroizing<Vec<u8>>> {
    encode_with(info, chunk_size, None, None)
}

/// Checks the writer's input and serialises it; `once` carries the delete key of a file to
/// delete after its first complete download.
pub(crate) fn encode_with(
    info: &ManifestInfo,
    chunk_size: ChunkSize,
    once: Option<&DeleteKey>,
    redundancy: Option<Redundancy>,
) -> Result<Zeroizing<Vec<u8>>> {
    let count = checked_chunk_count(info.size, chunk_size)?;
    if info.chunks.len() as u64 != count {
        return Err(Error::InvalidManifest(
            "chunk count does not match the file size",
        ));
    }
    let name_len = u16::try_from(info.name.len())
        .ok()
        .filter(|&n| usize::from(n) <= MAX_NAME_LEN)
        .ok_or(Error::InvalidManifest("name too long"))?;
    let count = u32::try_from(count).map_err(|_| too_large())?;
    let mut out = Zeroizing::new(Vec::with_capacity(
        2 + info.name.len() + 22 + 32 + 32 * info.chunks.len() + TAG_LEN,
    ));
    out.extend_from_slice(&name_len.to_be_bytes());
    out.extend_from_slice(info.name.as_bytes());
    out.extend_from_slice(&info.size.to_be_bytes());
    out.extend_from_slice(&info.created.to_be_bytes());
    out.push(info.kind.to_byte());
    let mut flags = 0;
    if once.is_some() {
        flags |= FLAG_ONCE;
    }
    if redundancy.is_some() {
        flags |= FLAG_REDUNDANCY;
    }
    out.push(flags);
    if let Some(key) = once {
        out.extend_from_slice(key.as_bytes());
    }
    if let Some(redundancy) = redundancy {
        out.extend_from_slice(&redundancy.validate()?.to_bytes());
    }
    out.extend_from_slice(&count.to_be_bytes());
    for id in &info.chunks {
        out.extend_from_slice(id);
    }
    Ok(out)
}

/// A cursor that never panics: every read checks the remaining length.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::InvalidManifest("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// Parses and checks a manifest plaintext against the header's chunk size.
pub(crate) fn decode(bytes: &[u8], chunk_size: ChunkSize) -> Result<Manifest> {
    let mut r = Reader(bytes);
    let name_len = usize::from(u16::from_be_bytes(r.array()?));
    if name_len > MAX_NAME_LEN {
        return Err(Error::InvalidManifest("name too long"));
    }
    let name = std::str::from_utf8(r.take(name_len)?)
        .map_err(|_| Error::InvalidManifest("name is not UTF-8"))?
        .to_owned();
    let size = u64::from_be_bytes(r.array()?);
    let created = u64::from_be_bytes(r.array()?);
    let [kind] = r.array()?;
    let kind = FileKind::from_byte(kind)?;
    let [flags] = r.array()?;
    if flags & !(FLAG_ONCE | FLAG_REDUNDANCY) != 0 {
        return Err(Error::InvalidManifest("unknown flags"));
    }
    let once = if flags & FLAG_ONCE != 0 {
        Some(DeleteKey::from_bytes(r.array()?))
    } else {
        None
    };
    let redundancy = if flags & FLAG_REDUNDANCY != 0 {
        Some(
            Redundancy::from_bytes(r.array()?)
                .map_err(|_| Error::InvalidManifest("unknown redundancy"))?,
        )
    } else {
        None
    };
    let count = u64::from(u32::from_be_bytes(r.array()?));
    if count != checked_chunk_count(size, chunk_size)? {
        return Err(Error::InvalidManifest(
            "chunk count does not match the file size",
        ));
    }
    // count <= MAX_CHUNKS here, so this multiplication cannot overflow.
    let ids = r.take(32 * count as usize)?;
    if !r.0.is_empty() {
        return Err(Error::InvalidManifest("trailing bytes"));
    }
    let chunks = ids
        .chunks_exact(32)
        .map(|c| {
            let mut id = [0u8; 32];
            id.copy_from_slice(c);
            id
        })
        .collect();
    Ok(Manifest {
        name,
        size,
        created,
        kind,
        once,
        redundancy,
        chunk_size,
        chunks,
    })
}

/// Manifest flag: delete the file after its first complete download.
const FLAG_ONCE: u8 = 1;
/// Manifest flag: the redundancy the writer chose follows.
const FLAG_REDUNDANCY: u8 = 2;

/// Builds a whole record: `header || nonce(12) || ciphertext || tag(16) || expiry(8) ||
/// check(32)`, the manifest sealed under `key` with AAD = the whole header then the expiry,
/// then the file's public trailer. One allocation, sealed in place.
pub(crate) fn seal_record(
    key: &AeadKey,
    nonce: [u8; NONCE_LEN],
    header: &[u8],
    plaintext: &[u8],
    trailer: &[u8; TRAILER_LEN],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(
        header.len() + MANIFEST_NONCE_LEN + plaintext.len() + TAG_LEN + TRAILER_LEN,
    );
    out.extend_from_slice(header);
    out.extend_from_slice(&nonce);
    let body = out.len();
    out.extend_from_slice(plaintext);
    let aad = record_aad(header, trailer[..EXPIRY_LEN].try_into().unwrap_or_default());
    let tag = key.seal_detached(nonce, &aad, &mut out[body..])?;
    out.extend_from_slice(&tag);
    out.extend_from_slice(trailer);
    Ok(out)
}

/// The manifest's AAD: the whole header, then the record's expiry (so the expiry a record
/// shows is the one its writer sealed).
fn record_aad(header: &[u8], expiry: [u8; EXPIRY_LEN]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + EXPIRY_LEN);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&expiry);
    aad
}

/// Opens `nonce || ciphertext || tag` of a record whose trailer carries `expiry`; any failure
/// (including a short input) is [`Error::Decrypt`].
pub(crate) fn open(
    key: &AeadKey,
    header: &[u8],
    expiry: [u8; EXPIRY_LEN],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.len() < MANIFEST_NONCE_LEN + TAG_LEN {
        return Err(Error::Decrypt);
    }
    let (nonce, body) = sealed.split_at(MANIFEST_NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::Decrypt)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = key.open(nonce, &record_aad(header, expiry), &mut buf[..])?;
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(size: u64, chunks: usize) -> ManifestInfo {
        ManifestInfo {
            name: "report é.pdf".into(),
            size,
            created: 1_700_000_000,
            kind: FileKind::File,
            chunks: (0..chunks).map(|i| [i as u8; 32]).collect(),
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let cs = ChunkSize::MIN;
        let i = info(65537, 2);
        let bytes = encode(&i, cs).unwrap();
        let name_len = i.name.len();
        assert_eq!(bytes.len(), 2 + name_len + 8 + 8 + 1 + 1 + 4 + 64);
        assert_eq!(bytes[2 + name_len + 16], 0);
        assert_eq!(&bytes[..2], &(name_len as u16).to_be_bytes());
        assert_eq!(&bytes[2 + name_len..10 + name_len], &65537u64.to_be_bytes());
        let m = decode(&bytes, cs).unwrap();
        assert_eq!(m.to_info(), i);
        assert_eq!(m.chunk_count(), 2);
        assert_eq!(m.chunk_len(1), Some(1));
        assert_eq!(m.chunk_id(1), Some(&[1; 32]));
        assert_eq!(m.chunk_id(2), None);
        assert_eq!(m.chunk_id(u64::MAX), None);
        assert!(!format!("{m:?}").contains("report"));
        let mut c = i.clone();
        c.kind = FileKind::Collection;
        let bytes = encode(&c, cs).unwrap();
        assert_eq!(bytes[2 + name_len + 16], 1);
        assert_eq!(decode(&bytes, cs).unwrap().kind(), FileKind::Collection);
        // A "once" file carries its delete key after the flags.
        let key = DeleteKey::from_bytes([9; 32]);
        let bytes = encode_with(&i, cs, Some(&key), None).unwrap();
        assert_eq!(bytes[2 + name_len + 17], 1);
        assert_eq!(&bytes[2 + name_len + 18..2 + name_len + 50], &[9; 32]);
        let m = decode(&bytes, cs).unwrap();
        assert!(m.once());
        assert_eq!(m.once_key(), Some(&key));
        assert!(!decode(&encode(&i, cs).unwrap(), cs).unwrap().once());
        // The redundancy follows the once key: kind, then two parameters.
        let rs = Redundancy::ErasureCoded { data: 4, parity: 2 };
        let bytes = encode_with(&i, cs, Some(&key), Some(rs)).unwrap();
        assert_eq!(bytes[2 + name_len + 17], 3);
        assert_eq!(&bytes[2 + name_len + 50..2 + name_len + 53], &[1, 4, 2]);
        let m = decode(&bytes, cs).unwrap();
        assert_eq!(
            (m.redundancy(), m.once(), m.is_striped()),
            (Some(rs), true, true)
        );
        let bytes = encode_with(&i, cs, None, Some(Redundancy::Replicas(3))).unwrap();
        assert_eq!(bytes[2 + name_len + 17], 2);
        assert_eq!(&bytes[2 + name_len + 18..2 + name_len + 21], &[0, 3, 0]);
        let m = decode(&bytes, cs).unwrap();
        assert_eq!(
            (m.redundancy(), m.is_striped()),
            (Some(Redundancy::Replicas(3)), false)
        );
        assert_eq!(
            decode(&encode(&i, cs).unwrap(), cs).unwrap().redundancy(),
            None
        );
        // Unknown kinds, out-of-bounds values and unknown flags are refused.
        for bad in [[2u8, 1, 1], [1, 0, 2], [1, 30, 3], [0, 0, 0], [0, 3, 1]] {
            let mut b = encode_with(&i, cs, None, Some(Redundancy::Replicas(3))).unwrap();
            b[2 + name_len + 18..2 + name_len + 21].copy_from_slice(&bad);
            assert!(decode(&b, cs).is_err(), "{bad:?}");
        }
        let mut b = encode(&i, cs).unwrap();
        b[2 + name_len + 17] = 4;
        assert!(decode(&b, cs).is_err());
    }

    #[test]
    fn writer_checks() {
        let cs = ChunkSize::MIN;
        assert!(encode(&info(0, 1), cs).is_ok());
        assert!(matches!(
            encode(&info(0, 0), cs),
            Err(Error::InvalidManifest(_))
        ));
        assert!(matches!(
            encode(&info(65537, 1), cs),
            Err(Error::InvalidManifest(_))
        ));
        assert!(matches!(
            encode(&info(65536, 2), cs),
            Err(Error::InvalidManifest(_))
        ));
        let mut long = info(1, 1);
        long.name = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(encode(&long, cs), Err(Error::InvalidManifest(_))));
        long.name = "x".repeat(MAX_NAME_LEN);
        assert!(encode(&long, cs).is_ok());
        assert!(matches!(
            encode(&info(u64::MAX, 1), cs),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn reader_checks() {
        let cs = ChunkSize::MIN;
        let good = encode(&info(65537, 2), cs).unwrap();
        // Every truncation and every extension fails, without panicking.
        for len in 0..good.len() {
            assert!(decode(&good[..len], cs).is_err(), "{len}");
        }
        let mut long = good.to_vec();
        long.push(0);
        assert!(matches!(decode(&long, cs), Err(Error::InvalidManifest(_))));
        // Same bytes under a bigger chunk size: count no longer matches size.
        assert!(decode(&good, ChunkSize::from_log2(17).unwrap()).is_err());
        // A lying count (and matching extra id) is caught.
        let n = info(0, 0).name.len();
        let mut lying = good.to_vec();
        lying[2 + n + 18..2 + n + 22].copy_from_slice(&3u32.to_be_bytes());
        lying.extend_from_slice(&[9; 32]);
        assert!(matches!(decode(&lying, cs), Err(Error::InvalidManifest(_))));
        // A name that is not UTF-8 is refused.
        let mut bad_name = good.to_vec();
        bad_name[2] = 0xFF;
        assert!(matches!(
            decode(&bad_name, cs),
            Err(Error::InvalidManifest(_))
        ));
        // A huge declared count never allocates beyond the caps.
        let mut huge = good.to_vec();
        huge[2 + n..2 + n + 8].copy_from_slice(&u64::MAX.to_be_bytes());
        huge[2 + n + 18..2 + n + 22].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&huge, cs).is_err());
        // Unknown flags are refused.
        for flags in 2..=u8::MAX {
            let mut other = good.to_vec();
            other[2 + n + 17] = flags;
            assert!(matches!(decode(&other, cs), Err(Error::InvalidManifest(_))));
        }
        // An unknown kind is refused.
        for kind in 2..=u8::MAX {
            let mut other = good.to_vec();
            other[2 + n + 16] = kind;
            assert!(matches!(decode(&other, cs), Err(Error::InvalidManifest(_))));
        }
    }
}

//! Chunk-sized plaintext buffers, wiped on drop with one bulk write.
//!
//! `Zeroizing<Vec<u8>>` wipes a byte vector one volatile byte store at a time: zeroize 1.9
//! zeroizes a `Vec<Z>` element by element, each `u8` on its own. On a 1 MiB chunk that is a
//! million stores, and on the download path it was the largest cost after the primitives
//! (BENCHMARKS.md, issue 15). [`Plaintext`] wipes the same bytes, and the spare capacity after
//! them, through zeroize's slice impls, which fill in bulk behind an optimization barrier.

use std::ops::{Deref, DerefMut};

use zeroize::Zeroize;

/// Decrypted bytes (a chunk from [`FileOpener::open_chunk`](crate::FileOpener::open_chunk)),
/// zeroed, with the buffer's spare capacity, when dropped. Derefs to the bytes; `Debug` shows
/// only the length. Hand it to `bytes::Bytes::from_owner` to serve it without a copy: the
/// wipe runs when the last `Bytes` is dropped.
#[derive(Default)]
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    /// Takes ownership of `bytes`; they are wiped when the result is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The buffer itself, for in-place work inside the crate (truncating after decryption).
    pub(crate) fn vec_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// Zeroes `buf`'s bytes and spare capacity in bulk, then empties it (capacity kept).
pub(crate) fn wipe(buf: &mut Vec<u8>) {
    buf.as_mut_slice().zeroize();
    buf.spare_capacity_mut().zeroize();
    buf.clear();
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl Deref for Plaintext {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Plaintext {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for Plaintext {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plaintext({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a [`Plaintext`] is dropped, its old allocation (still mapped: 4 KiB stays in the
    /// allocator's heap) holds neither the bytes nor what sat in its spare capacity. Read back
    /// through `/proc/self/mem`, as an attacker with the process's memory would.
    #[cfg(target_os = "linux")]
    #[test]
    fn drop_wipes_bytes_and_spare_capacity() {
        use std::io::{Read, Seek, SeekFrom};

        const MARK: u8 = 0xa5;
        let mut buf = Vec::with_capacity(4096);
        buf.resize(4096, MARK);
        buf.truncate(1024); // the rest of the marks now sit in the spare capacity
        let (addr, cap) = (buf.as_ptr() as u64, buf.capacity());
        // Everything the check allocates is allocated before the drop, so nothing reuses the
        // freed block before it is read.
        let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
        let mut seen = vec![0u8; cap];
        let read = |mem: &mut std::fs::File, seen: &mut Vec<u8>| {
            mem.seek(SeekFrom::Start(addr)).unwrap();
            mem.read_exact(seen).unwrap();
            // The allocator may keep its own words at the start of a freed block.
            seen[64..].iter().filter(|b| **b == MARK).count()
        };
        let plain = Plaintext::new(buf);
        assert_eq!(
            read(&mut mem, &mut seen),
            cap - 64,
            "the marks are there before"
        );
        drop(plain);
        assert_eq!(read(&mut mem, &mut seen), 0, "no mark survives the drop");
    }

    #[test]
    fn derefs_and_hides_contents() {
        let mut p = Plaintext::new(b"secret".to_vec());
        assert_eq!(&*p, b"secret");
        p[0] = b'S';
        assert_eq!(p.as_ref(), b"Secret");
        assert_eq!(format!("{p:?}"), "Plaintext(6 bytes)");
    }
}

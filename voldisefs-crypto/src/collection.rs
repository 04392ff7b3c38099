//! Collections: the sealed listing of a batch of files (a folder, or several files put
//! together), stored as the content of a record whose manifest kind is
//! [`FileKind::Collection`](crate::FileKind::Collection).
//!
//! Plaintext layout (big-endian), `FORMAT.md` section 7:
//!
//! | size | field                                        |
//! |-----:|----------------------------------------------|
//! |    4 | entry count `e`, u32 (<= [`MAX_ENTRIES`])    |
//! |      | then `e` entries, paths strictly ascending:  |
//! |    2 | path length `n`, u16 (1..=[`MAX_PATH_LEN`])  |
//! |    n | relative path, UTF-8, `/`-separated          |
//! |    8 | file size in bytes, u64                      |
//! |   32 | FileId of the file                           |
//! |   32 | read key of the file                         |
//!
//! Whoever sealed a collection, a reader only ever sees entries that passed [`check_path`]:
//! relative, no `.` or `..` component, no empty component, no backslash or control character,
//! no duplicate and no path that is also another entry's folder. So recreating the tree under a
//! directory never writes outside it.

use std::collections::HashSet;

use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::read_key::ReadKey;

/// Most entries in one collection.
pub const MAX_ENTRIES: usize = 65_536;
/// Longest relative path of an entry, in bytes of UTF-8.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest encoded collection a reader accepts (16 MiB); a writer refuses to produce more.
pub const MAX_COLLECTION_LEN: usize = 16 << 20;

/// One file of a collection.
#[derive(Clone, PartialEq, Eq)]
pub struct CollectionEntry {
    /// Relative path, `/`-separated (checked by [`check_path`]).
    pub path: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's FileId.
    pub file: [u8; 32],
    /// The file's read key: whoever opens the collection (password or its own read key)
    /// opens its files with these, without Argon2id.
    pub read: ReadKey,
}

impl std::fmt::Debug for CollectionEntry {
    // The path is user plaintext: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectionEntry")
            .field("path_len", &self.path.len())
            .field("size", &self.size)
            .field("file", &crate::HexId(&self.file))
            .finish()
    }
}

impl Drop for CollectionEntry {
    fn drop(&mut self) {
        self.path.zeroize();
    }
}

/// A checked list of files: safe relative paths, no duplicates, sorted by path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    entries: Vec<CollectionEntry>,
}

/// Checks that `path` is a safe relative path: 1 to [`MAX_PATH_LEN`] bytes, `/`-separated
/// components that are neither empty, `.` nor `..`, not absolute, and no backslash or control
/// character anywhere. The error names the problem (never the path).
pub fn check_path(path: &str) -> std::result::Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.len() > MAX_PATH_LEN {
        return Err("path longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.contains('\\') {
        return Err("backslash in path");
    }
    if path.chars().any(char::is_control) {
        return Err("control character in path");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("empty path component"),
            "." | ".." => return Err("`.` or `..` in path"),
            _ => {}
        }
    }
    Ok(())
}

fn invalid(entry: usize, reason: &'static str) -> Error {
    Error::InvalidCollection {
        entry: entry as u64,
        reason,
    }
}

impl Collection {
    /// Checks `entries` (paths, duplicates, folder/file clashes, count, total size and
    /// encoded length) and sorts them by path.
    pub fn new(mut entries: Vec<CollectionEntry>) -> Result<Self> {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let collection = Self { entries };
        collection.check()?;
        if collection.encoded_len() > MAX_COLLECTION_LEN {
            return Err(invalid(collection.entries.len(), "listing over 16 MiB"));
        }
        Ok(collection)
    }

    /// The entries, sorted by path (bytewise).
    pub fn entries(&self) -> &[CollectionEntry] {
        &self.entries
    }

    /// The entry at `path`, if any.
    pub fn find(&self, path: &str) -> Option<&CollectionEntry> {
        self.entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// Sum of the entries' sizes (checked not to overflow when built or decoded).
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    fn encoded_len(&self) -> usize {
        4 + self
            .entries
            .iter()
            .map(|e| 2 + e.path.len() + 8 + 32 + 32)
            .sum::<usize>()
    }

    /// The collection's plaintext bytes (the content of its record), wiped when dropped.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.encoded_len()));
        // `new` and `decode` keep both within u32 and u16.
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            out.extend_from_slice(&(e.path.len() as u16).to_be_bytes());
            out.extend_from_slice(e.path.as_bytes());
            out.extend_from_slice(&e.size.to_be_bytes());
            out.extend_from_slice(&e.file);
            out.extend_from_slice(e.read.as_bytes());
        }
        out
    }

    /// Parses and checks a collection's plaintext: everything [`Collection::new`] checks, and
    /// that entries come in strictly ascending order with no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_COLLECTION_LEN {
            return Err(invalid(0, "listing over 16 MiB"));
        }
        let mut rest = bytes;
        let mut take = |n: usize, entry: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(invalid(entry, "truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let mut count = [0u8; 4];
        count.copy_from_slice(take(4, 0)?);
        let count = u32::from_be_bytes(count) as usize;
        if count > MAX_ENTRIES {
            return Err(invalid(count, "more than 65,536 entries"));
        }
        // Each entry takes at least 75 bytes: never reserve more than the input can hold.
        let mut entries = Vec::with_capacity(count.min(bytes.len() / 75));
        for i in 0..count {
            let mut len = [0u8; 2];
            len.copy_from_slice(take(2, i)?);
            let path = std::str::from_utf8(take(usize::from(u16::from_be_bytes(len)), i)?)
                .map_err(|_| invalid(i, "path is not UTF-8"))?
                .to_owned();
            let mut size = [0u8; 8];
            size.copy_from_slice(take(8, i)?);
            let mut file = [0u8; 32];
            file.copy_from_slice(take(32, i)?);
            let mut read = [0u8; 32];
            read.copy_from_slice(take(32, i)?);
            entries.push(CollectionEntry {
                path,
                size: u64::from_be_bytes(size),
                file,
                read: ReadKey::from_bytes(read),
            });
        }
        if !rest.is_empty() {
            return Err(invalid(count, "trailing bytes"));
        }
        for (i, pair) in entries.windows(2).enumerate() {
            match pair[0].path.as_bytes().cmp(pair[1].path.as_bytes()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(invalid(i + 1, "duplicate path")),
                std::cmp::Ordering::Greater => return Err(invalid(i + 1, "entries out of order")),
            }
        }
        let collection = Self { entries };
        collection.check()?;
        Ok(collection)
    }

    /// Everything but order and length: count, paths, duplicates, clashes, total size.
    fn check(&self) -> Result<()> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(invalid(self.entries.len(), "more than 65,536 entries"));
        }
        let mut files = HashSet::with_capacity(self.entries.len());
        let mut total = 0u64;
        for (i, e) in self.entries.iter().enumerate() {
            check_path(&e.path).map_err(|reason| invalid(i, reason))?;
            if !files.insert(e.path.as_str()) {
                return Err(invalid(i, "duplicate path"));
            }
            total = total
                .checked_add(e.size)
                .ok_or(invalid(i, "sizes add up past 2^64"))?;
        }
        // A path that is also a folder of another entry cannot be recreated.
        for (i, e) in self.entries.iter().enumerate() {
            let mut folder = e.path.as_str();
            while let Some((parent, _)) = folder.rsplit_once('/') {
                if files.contains(parent) {
                    return Err(invalid(i, "a file and a folder share a path"));
                }
                folder = parent;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, n: u8) -> CollectionEntry {
        CollectionEntry {
            path: path.into(),
            size: u64::from(n),
            file: [n; 32],
            read: ReadKey::from_bytes([n; 32]),
        }
    }

    #[test]
    fn round_trip_sorted_and_found() {
        let c = Collection::new(vec![
            entry("b/é x.txt", 1),
            entry("a", 2),
            entry("b/c/d", 3),
        ])
        .unwrap();
        let paths: Vec<&str> = c.entries().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "b/c/d", "b/é x.txt"]);
        let bytes = c.encode();
        assert_eq!(Collection::decode(&bytes).unwrap(), c);
        assert_eq!(c.total_size(), 6);
        assert_eq!(c.find("b/c/d").unwrap().file, [3; 32]);
        assert!(c.find("b").is_none());
        assert!(!format!("{c:?}").contains("txt"));
        let empty = Collection::new(Vec::new()).unwrap();
        assert_eq!(&empty.encode()[..], &[0, 0, 0, 0]);
        assert_eq!(Collection::decode(&[0, 0, 0, 0]).unwrap(), empty);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for path in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\nb",
            "a\0b",
        ] {
            assert!(check_path(path).is_err(), "{path:?}");
            let refused = Collection::new(vec![entry(path, 1)]);
            assert!(
                matches!(refused, Err(Error::InvalidCollection { .. })),
                "{path:?}"
            );
        }
        assert!(check_path(&"x".repeat(MAX_PATH_LEN + 1)).is_err());
        for path in ["a", "a b/c d", "日本/ファイル", "..a/b..", ".hidden/x"] {
            assert_eq!(check_path(path), Ok(()), "{path:?}");
        }
    }

    #[test]
    fn duplicates_and_clashes_are_refused() {
        let dup = Collection::new(vec![entry("a/b", 1), entry("a/b", 2)]);
        assert!(matches!(
            dup,
            Err(Error::InvalidCollection {
                reason: "duplicate path",
                ..
            })
        ));
        let clash = Collection::new(vec![entry("a", 1), entry("a/b", 2)]);
        assert!(matches!(
            clash,
            Err(Error::InvalidCollection {
                reason: "a file and a folder share a path",
                ..
            })
        ));
        let overflow = Collection::new(vec![
            CollectionEntry {
                path: "a".into(),
                size: u64::MAX,
                file: [1; 32],
                read: ReadKey::from_bytes([1; 32]),
            },
            entry("b", 1),
        ]);
        assert!(overflow.is_err());
    }

    /// Encodes entries as given, bypassing every writer check (a hostile sealer).
    fn raw(entries: &[(&str, u64)]) -> Vec<u8> {
        let mut out = (entries.len() as u32).to_be_bytes().to_vec();
        for (path, size) in entries {
            out.extend_from_slice(&(path.len() as u16).to_be_bytes());
            out.extend_from_slice(path.as_bytes());
            out.extend_from_slice(&size.to_be_bytes());
            out.extend_from_slice(&[7; 32]);
            out.extend_from_slice(&[8; 32]);
        }
        out
    }

    #[test]
    fn the_reader_checks_whatever_the_writer_did() {
        assert!(Collection::decode(&raw(&[("a", 1), ("b", 2)])).is_ok());
        for hostile in [
            raw(&[("../escape", 1)]),
            raw(&[("/abs", 1)]),
            raw(&[("a", 1), ("a", 1)]),
            raw(&[("b", 1), ("a", 1)]),
            raw(&[("a", 1), ("a/b", 1)]),
            raw(&[("a", u64::MAX), ("b", 1)]),
        ] {
            assert!(
                matches!(
                    Collection::decode(&hostile),
                    Err(Error::InvalidCollection { .. })
                ),
                "{hostile:?}"
            );
        }
        let good = raw(&[("a", 1), ("b", 2)]);
        for len in 0..good.len() {
            assert!(Collection::decode(&good[..len]).is_err(), "{len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(Collection::decode(&long).is_err());
        let mut not_utf8 = good;
        not_utf8[6] = 0xFF;
        assert!(Collection::decode(&not_utf8).is_err());
        // A huge declared count allocates nothing.
        assert!(Collection::decode(&u32::MAX.to_be_bytes()).is_err());
        let mut many = ((MAX_ENTRIES + 1) as u32).to_be_bytes().to_vec();
        many.extend_from_slice(&[0; 64]);
        assert!(Collection::decode(&many).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Collection::decode(&bytes);
        }

        #[test]
        fn valid_collections_round_trip(
            paths in proptest::collection::btree_set("[a-z ]{1,6}(/[a-zé]{1,4}){0,2}", 0..20),
        ) {
            let entries: Vec<CollectionEntry> = paths
                .iter()
                .enumerate()
                .map(|(i, p)| entry(p, i as u8))
                .collect();
            if let Ok(c) = Collection::new(entries) {
                proptest::prop_assert_eq!(Collection::decode(&c.encode()).unwrap(), c);
            }
        }
    }
}

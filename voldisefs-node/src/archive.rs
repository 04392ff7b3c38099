//! Tar framing for collection downloads, built on the fly: a header block (from the `tar`
//! crate) before each file, zero padding after it, two zero blocks at the end. File bytes
//! stream between the headers, so an archive is never whole in memory, and its exact length is
//! known before the first byte goes out.
//!
//! Paths that are not ASCII or longer than 100 bytes get a PAX extended header (`path=`), so
//! every tar reader of the last twenty years recreates the exact UTF-8 path.

use crate::NodeError;

/// Size of a tar block.
const BLOCK: usize = 512;

/// The end-of-archive marker: two zero blocks.
pub const END: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// Zero bytes after a file of `size` bytes, up to the next block.
pub fn padding(size: u64) -> usize {
    let rest = (size % BLOCK as u64) as usize;
    if rest == 0 { 0 } else { BLOCK - rest }
}

fn fail(e: std::io::Error) -> NodeError {
    NodeError::Internal(format!("building a tar header: {e}"))
}

/// The header block(s) announcing a regular file at `path` of `size` bytes, modified at
/// `mtime` (unix seconds).
pub fn file_header(path: &str, size: u64, mtime: u64) -> Result<Vec<u8>, NodeError> {
    let mut out = Vec::with_capacity(BLOCK);
    let simple = path.is_ascii() && path.len() <= 100;
    if !simple {
        // A PAX record is "<len> path=<path>\n", <len> counting its own digits.
        let body = format!(" path={path}\n");
        let mut len = body.len() + 1;
        while len.to_string().len() + body.len() != len {
            len += 1;
        }
        let record = format!("{len}{body}");
        let mut pax = tar::Header::new_ustar();
        pax.set_path("PaxHeader").map_err(fail)?;
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(record.len() as u64);
        pax.set_mode(0o644);
        pax.set_mtime(mtime);
        pax.set_cksum();
        out.extend_from_slice(pax.as_bytes());
        out.extend_from_slice(record.as_bytes());
        out.resize(out.len() + padding(record.len() as u64), 0);
    }
    let mut header = tar::Header::new_ustar();
    if simple {
        header.set_path(path).map_err(fail)?;
    } else {
        // Readers take the PAX path; this ASCII stand-in is for those that do not.
        let fallback: String = path
            .chars()
            .rev()
            .take(90)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        let fallback = fallback.trim_start_matches('/');
        header
            .set_path(if fallback.is_empty() {
                "file"
            } else {
                fallback
            })
            .map_err(fail)?;
    }
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    Ok(out)
}

/// The exact length of an archive of `files` (path, size), every header included.
pub(crate) fn archive_len<'a>(
    files: impl Iterator<Item = (&'a str, u64)>,
) -> Result<u64, NodeError> {
    let mut total = END.len() as u64;
    for (path, size) in files {
        total += file_header(path, size, 0)?.len() as u64 + size + padding(size) as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive built as the download builds it.
    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, data) in files {
            out.extend(file_header(path, data.len() as u64, 1_700_000_000).unwrap());
            out.extend_from_slice(data);
            out.resize(out.len() + padding(data.len() as u64), 0);
        }
        out.extend_from_slice(&END);
        out
    }

    #[test]
    fn a_tar_reader_recreates_every_path_and_byte() {
        let long = format!("{}/deep.bin", "d".repeat(150));
        let files: Vec<(&str, &[u8])> = vec![
            ("a.txt", b"hello"),
            ("empty", b""),
            ("sub dir/\u{e9}t\u{e9} \u{65e5}\u{672c}.txt", b"unicode"),
            (&long, &[7u8; 512]),
            ("exact/block.bin", &[1u8; 1024]),
        ];
        let bytes = archive(&files);
        assert_eq!(
            archive_len(files.iter().map(|(p, d)| (*p, d.len() as u64))).unwrap(),
            bytes.len() as u64
        );
        let mut reader = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for entry in reader.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            seen.push((path, data));
        }
        let expected: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(p, d)| (p.to_string(), d.to_vec()))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn padding_fills_the_last_block() {
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 511);
        assert_eq!(padding(512), 0);
        assert_eq!(padding(513), 511);
    }
}

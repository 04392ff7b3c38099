//! File names on disk.
//!
//! A name that comes from a manifest (anyone who can seal a file chooses it) is never trusted
//! as a path: [`safe_file_name`] reduces it to one harmless component.

/// Longest file name we create, in bytes (the usual file system limit).
const MAX_NAME_BYTES: usize = 255;

/// Turns a name received from the network into a single safe file name component.
///
/// Keeps only what follows the last `/` or `\`, removes control characters, bidirectional
/// formatting characters (which can make `evil\u{202e}txt.exe` display as `evilexe.txt`),
/// leading dots and surrounding whitespace, and caps the length at 255 bytes. A name with nothing left (or
/// none at all) becomes `fallback`, the file id.
pub(crate) fn safe_file_name(name: Option<&str>, fallback: &str) -> String {
    let name = name.unwrap_or_default();
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim_start();
    let mut end = cleaned.len().min(MAX_NAME_BYTES);
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    let cleaned = cleaned[..end].trim_end();
    if cleaned.is_empty() {
        fallback.to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// Unicode's bidirectional formatting characters: embeddings, overrides, isolates and marks.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_strip_bidirectional_overrides() {
        assert_eq!(
            safe_file_name(Some("invoice\u{202e}fdp.exe"), ID),
            "invoicefdp.exe"
        );
        assert_eq!(
            safe_file_name(Some("\u{2066}a\u{2069}\u{200f}b\u{061c}"), ID),
            "ab"
        );
        assert_eq!(safe_file_name(Some("\u{202d}"), ID), ID);
    }

    const ID: &str = "ab12";

    #[test]
    fn safe_names_keep_ordinary_names() {
        assert_eq!(safe_file_name(Some("notes.txt"), ID), "notes.txt");
        assert_eq!(safe_file_name(Some("naïve 日本.md"), ID), "naïve 日本.md");
        assert_eq!(safe_file_name(Some("a..b"), ID), "a..b");
    }

    #[test]
    fn safe_names_strip_paths() {
        assert_eq!(safe_file_name(Some("/etc/passwd"), ID), "passwd");
        assert_eq!(safe_file_name(Some("../../.bashrc"), ID), "bashrc");
        assert_eq!(safe_file_name(Some("..\\..\\win.ini"), ID), "win.ini");
        assert_eq!(safe_file_name(Some("dir/"), ID), ID);
    }

    #[test]
    fn safe_names_strip_dots_and_controls() {
        assert_eq!(safe_file_name(Some(".hidden"), ID), "hidden");
        assert_eq!(safe_file_name(Some("..."), ID), ID);
        assert_eq!(safe_file_name(Some(".."), ID), ID);
        assert_eq!(safe_file_name(Some("."), ID), ID);
        assert_eq!(safe_file_name(Some("a\u{1b}[31mb\n.txt"), ID), "a[31mb.txt");
        assert_eq!(safe_file_name(Some(" . x "), ID), "x");
        assert_eq!(safe_file_name(Some("\0\u{7f}"), ID), ID);
    }

    #[test]
    fn safe_names_fall_back_to_the_id() {
        assert_eq!(safe_file_name(None, ID), ID);
        assert_eq!(safe_file_name(Some(""), ID), ID);
        assert_eq!(safe_file_name(Some("   "), ID), ID);
    }

    #[test]
    fn safe_names_are_capped_on_a_char_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let safe = safe_file_name(Some(&long), ID);
        assert!(safe.len() <= MAX_NAME_BYTES);
        assert_eq!(safe, "é".repeat(127));
    }
}

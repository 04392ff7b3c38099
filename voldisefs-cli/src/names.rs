//! File names on the wire and on disk.
//!
//! Uploads send the file's base name percent-encoded in `X-Voldisefs-Filename`; downloads
//! read it back from `Content-Disposition` (RFC 6266: `filename*=UTF-8''...` preferred over
//! the ASCII `filename="..."` fallback). A name that comes from the network is never trusted
//! as a path: [`safe_file_name`] reduces it to one harmless component.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything except RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest file name we create, in bytes (the usual file system limit).
const MAX_NAME_BYTES: usize = 255;

/// Percent-encodes a file name (UTF-8) for the `X-Voldisefs-Filename` header.
pub(crate) fn encode_filename(name: &str) -> String {
    utf8_percent_encode(name, ENCODE).to_string()
}

/// Extracts the file name from a `Content-Disposition` header value, if it names one.
///
/// `filename*=UTF-8''<percent-encoded>` wins over `filename="<quoted>"` or `filename=token`.
/// The result is not yet safe to use as a path: pass it to [`safe_file_name`].
pub(crate) fn filename_from_disposition(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_params(value).into_iter().skip(1) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => extended = decode_ext_value(raw.trim()).or(extended),
            "filename" => plain = Some(unquote(raw.trim())),
            _ => {}
        }
    }
    extended.or(plain).filter(|name| !name.is_empty())
}

/// Splits a header value at `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// Removes surrounding quotes and backslash escapes from a parameter value.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"') else {
        return raw.to_owned();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes an RFC 8187 `ext-value` (`UTF-8'lang'percent-encoded`); only UTF-8 is accepted.
fn decode_ext_value(raw: &str) -> Option<String> {
    let mut parts = raw.splitn(3, '\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let encoded = parts.next()?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

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
    fn encodes_everything_but_unreserved() {
        assert_eq!(
            encode_filename("report-v1.2_final~.txt"),
            "report-v1.2_final~.txt"
        );
        assert_eq!(encode_filename("my file.txt"), "my%20file.txt");
        assert_eq!(encode_filename("naïve.txt"), "na%C3%AFve.txt");
        assert_eq!(encode_filename("a/b;c\"d"), "a%2Fb%3Bc%22d");
        assert_eq!(encode_filename("日本.md"), "%E6%97%A5%E6%9C%AC.md");
    }

    #[test]
    fn encode_round_trips_through_disposition() {
        for name in [
            "plain.txt",
            "with space.bin",
            "naïve 日本 ✓.tar.gz",
            "quote\"semi;.x",
        ] {
            let header = format!(
                "attachment; filename=\"fallback\"; filename*=UTF-8''{}",
                encode_filename(name)
            );
            assert_eq!(filename_from_disposition(&header).as_deref(), Some(name));
        }
    }

    #[test]
    fn prefers_extended_filename() {
        let header = "attachment; filename=\"na_ve.txt\"; filename*=UTF-8''na%C3%AFve.txt";
        assert_eq!(
            filename_from_disposition(header).as_deref(),
            Some("naïve.txt")
        );
        let reversed = "attachment; filename*=utf-8'en'na%C3%AFve.txt; filename=\"x\"";
        assert_eq!(
            filename_from_disposition(reversed).as_deref(),
            Some("naïve.txt")
        );
    }

    #[test]
    fn falls_back_to_plain_filename() {
        assert_eq!(
            filename_from_disposition("attachment; filename=\"a; b \\\"c\\\".txt\"").as_deref(),
            Some("a; b \"c\".txt")
        );
        assert_eq!(
            filename_from_disposition("attachment; filename=token.bin").as_deref(),
            Some("token.bin")
        );
        assert_eq!(
            filename_from_disposition("attachment;FILENAME = \"up.txt\"").as_deref(),
            Some("up.txt")
        );
        // An unsupported charset or broken encoding falls back to the ASCII name.
        let latin1 = "attachment; filename=\"x.txt\"; filename*=ISO-8859-1''%E9.txt";
        assert_eq!(filename_from_disposition(latin1).as_deref(), Some("x.txt"));
        let broken = "attachment; filename=\"x.txt\"; filename*=UTF-8''%FF%FE";
        assert_eq!(filename_from_disposition(broken).as_deref(), Some("x.txt"));
    }

    #[test]
    fn no_filename() {
        assert_eq!(filename_from_disposition("attachment"), None);
        assert_eq!(filename_from_disposition("inline; size=3"), None);
        assert_eq!(filename_from_disposition("attachment; filename=\"\""), None);
        assert_eq!(filename_from_disposition(""), None);
    }

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

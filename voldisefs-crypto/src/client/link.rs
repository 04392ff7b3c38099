//! Share links: `PAGE#id=ID&key=KEY`, a node's page with the file id and its read key in the
//! fragment (which browsers never send to a server). Whoever holds the link reads that one
//! file; it cannot delete it or open anything else.

use zeroize::Zeroizing;

use crate::{Error, ReadKey, Result};

/// A parsed share link.
#[derive(Clone)]
pub struct ShareLink {
    /// The page the link points at (`http://host:port/`), without the fragment.
    pub page: String,
    /// The file's id.
    pub id: [u8; 32],
    /// The file's read key.
    pub key: ReadKey,
}

impl std::fmt::Debug for ShareLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareLink")
            .field("page", &self.page)
            .field("id", &crate::HexId(&self.id))
            .finish_non_exhaustive()
    }
}

fn parse_id(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

impl ShareLink {
    /// The link of file `id` with read key `key` on the page at `page` (its path, query and
    /// fragment are replaced: a link always points at the page's root). Wiped when dropped.
    pub fn format(page: &str, id: &[u8; 32], key: &ReadKey) -> Zeroizing<String> {
        let base = page.split(['#', '?']).next().unwrap_or(page);
        let root = match base.find("://") {
            Some(scheme) => match base[scheme + 3..].find('/') {
                Some(slash) => &base[..scheme + 3 + slash],
                None => base,
            },
            None => base,
        };
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        Zeroizing::new(format!("{root}/#id={id}&key={}", key.to_hex().as_str()))
    }

    /// Parses a link made by [`ShareLink::format`] (`http` or `https`, the id and the key in
    /// the fragment, either order, hex in either case). Anything else is [`Error::Input`].
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::Input(
                "not a share link (`http://node/#id=ID&key=KEY`, 64 hex digits each)".into(),
            )
        };
        let (page, fragment) = text.trim().split_once('#').ok_or_else(bad)?;
        let rest = page
            .strip_prefix("http://")
            .or_else(|| page.strip_prefix("https://"))
            .ok_or_else(bad)?;
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        if host.is_empty() {
            return Err(bad());
        }
        let (mut id, mut key) = (None, None);
        for pair in fragment.split('&') {
            match pair.split_once('=') {
                Some(("id", v)) if id.is_none() => id = Some(parse_id(v).ok_or_else(bad)?),
                Some(("key", v)) if key.is_none() => {
                    key = Some(ReadKey::from_hex(v).map_err(|_| bad())?);
                }
                _ => return Err(bad()),
            }
        }
        let (Some(id), Some(key)) = (id, key) else {
            return Err(bad());
        };
        let scheme = if page.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        Ok(Self {
            page: format!("{scheme}://{host}/"),
            id,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn links_point_at_the_page_root_and_round_trip() {
        let key = ReadKey::from_bytes([0x0f; 32]);
        let link = ShareLink::format("http://127.0.0.1:4200/api/v1?x=1#old", &[0xab; 32], &key);
        let (id, hex_key) = ("ab".repeat(32), "0f".repeat(32));
        assert_eq!(
            link.as_str(),
            format!("http://127.0.0.1:4200/#id={id}&key={hex_key}")
        );
        let parsed = ShareLink::parse(&link).unwrap();
        assert_eq!(parsed.page, "http://127.0.0.1:4200/");
        assert_eq!(parsed.id, [0xab; 32]);
        assert_eq!(parsed.key.as_bytes(), key.as_bytes());
        let upper = format!(
            "https://node.example/#key={}&id={}",
            hex_key.to_uppercase(),
            id
        );
        assert_eq!(
            ShareLink::parse(&upper).unwrap().page,
            "https://node.example/"
        );
    }

    #[test]
    fn malformed_links_are_refused() {
        let (id, key) = ("ab".repeat(32), "0f".repeat(32));
        for text in [
            id.clone(),
            format!("ftp://h/#id={id}&key={key}"),
            format!("http:///#id={id}&key={key}"),
            format!("http://h/#id={id}"),
            format!("http://h/#id={id}&key={}", &key[1..]),
            format!("http://h/#id={id}&key={key}&extra=1"),
            format!("http://h/#id={id}&id={id}&key={key}"),
            format!("http://h/#id=zz{}&key={key}", &id[2..]),
        ] {
            assert!(ShareLink::parse(&text).is_err(), "{text}");
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in ".{0,200}") {
            let _ = ShareLink::parse(&text);
        }
    }
}

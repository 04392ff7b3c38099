//! Parsers of argument values (addresses, node URLs, file ids and share links, sizes,
//! durations, redundancies): a malformed value is a usage error with clap's message.

use std::fmt;

use reqwest::Url;
use voldisefs_node::crypto::client::ShareLink;
use voldisefs_node::crypto::{ChunkSize, ReadKey, Redundancy};

use crate::size::parse_size;

/// A `HOST:PORT` pair whose host may be a name, resolved when the node starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    /// Host name or IP address (IPv6 without brackets).
    pub(crate) host: String,
    /// Port number.
    pub(crate) port: u16,
}

impl std::str::FromStr for HostPort {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not HOST:PORT (for example 127.0.0.1:4100)");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let host = match host.strip_prefix('[') {
            Some(rest) => rest.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(bad());
        }
        let port = port.parse().map_err(|_| bad())?;
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `--node`: an `http://` URL, or a bare `HOST:PORT` taken as one.
pub(crate) fn parse_node_url(text: &str) -> Result<Url, String> {
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "{text:?}: only http:// node URLs are supported (nodes serve plain HTTP)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?}: a node URL has no query or fragment"));
    }
    // API paths are joined onto the URL, so its path must end with a slash.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Parses a file id: 64 hex digits, returned in lower case.
pub(crate) fn parse_file_id(text: &str) -> Result<String, String> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "{text:?} is not a file id (64 hex digits, as printed by `voldisefs put`)"
        ))
    }
}

/// A file to get: its id, and the node and read key when it came as a share link.
#[derive(Debug, Clone)]
pub(crate) struct FileRef {
    /// The file id (64 lowercase hex digits).
    pub(crate) id: String,
    /// The link's node page and read key, for a share link.
    pub(crate) link: Option<(Url, ReadKey)>,
}

impl std::ops::Deref for FileRef {
    type Target = str;

    fn deref(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// The share link of file `id` with read key `key` on the node at `node`: its page, with
/// the id and key in the fragment (see `voldisefs_crypto::client::ShareLink`).
pub(crate) fn share_link(node: &Url, id: &[u8; 32], key: &ReadKey) -> zeroize::Zeroizing<String> {
    ShareLink::format(node.as_str(), id, key)
}

/// Parses a file id, or a share link (`http://node/#id=ID&key=KEY`).
pub(crate) fn parse_file_ref(text: &str) -> Result<FileRef, String> {
    if !text.contains('#') {
        return parse_file_id(text).map(|id| FileRef { id, link: None });
    }
    let bad =
        || format!("{text:?} is neither a file id nor a share link (`http://node/#id=ID&key=KEY`)");
    let link = ShareLink::parse(text).map_err(|_| bad())?;
    let page = Url::parse(&link.page).map_err(|_| bad())?;
    Ok(FileRef {
        id: link.id.iter().map(|b| format!("{b:02x}")).collect(),
        link: Some((page, link.key)),
    })
}

/// Parses a DURATION: a whole number with an optional unit, `s` (default), `m`, `h`, `d` or
/// `w`; at least one second.
/// The most copies `--replicas` (and the config file's `replicas`) may ask for: as many as a
/// redundancy can name (`replicas:N`, `rs:K+M` with K + M nodes), one limit for every source.
pub(crate) const MAX_REPLICAS: i64 = voldisefs_node::crypto::MAX_SHARDS as i64;

/// Parses `replicas:N` or `rs:K+M`.
pub(crate) fn parse_redundancy(text: &str) -> Result<Redundancy, String> {
    text.parse()
        .map_err(|e: voldisefs_node::crypto::Error| e.to_string())
}

pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration (for example 90s, 10m, 24h, 7d, 2w)");
    let text = text.trim();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let secs = number.checked_mul(scale).ok_or_else(bad)?;
    if secs == 0 {
        return Err(format!("{text:?}: an expiry must be at least one second"));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Parses a SIZE argument.
pub(crate) fn parse_size_arg(text: &str) -> Result<u64, String> {
    parse_size(text)
}

/// Parses `--chunk-size`: a SIZE that is a power of two between 64KiB and 16MiB.
pub(crate) fn parse_chunk_size(text: &str) -> Result<ChunkSize, String> {
    let bytes = parse_size(text)?;
    ChunkSize::from_bytes(bytes)
        .map_err(|_| format!("chunk size must be a power of two from 64KiB to 16MiB, not {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("90"), Ok(90));
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("24h"), Ok(86_400));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("2w"), Ok(1_209_600));
        for bad in [
            "",
            "m",
            "0",
            "0s",
            "-1",
            "1y",
            "1.5h",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn share_links_round_trip_and_bad_ones_are_usage_errors() {
        let id = "ab".repeat(32);
        let key = "0f".repeat(32);
        let node = Url::parse("http://127.0.0.1:4200/api").unwrap();
        let link = share_link(&node, &[0xab; 32], &ReadKey::from_bytes([0x0f; 32]));
        assert_eq!(
            link.as_str(),
            format!("http://127.0.0.1:4200/#id={id}&key={key}")
        );
        let parsed = parse_file_ref(&link).unwrap();
        assert_eq!(parsed.id, id);
        let (page, got) = parsed.link.unwrap();
        assert_eq!(page.as_str(), "http://127.0.0.1:4200/");
        assert_eq!(got.as_bytes(), &[0x0f; 32]);
        assert!(parse_file_ref(&id.to_uppercase()).unwrap().link.is_none());
        for bad in [
            format!("http://h/#id={id}"),
            format!("http://h/#key={key}"),
            format!("http://h/#id={id}&key={}", &key[1..]),
            format!("ftp://h/#id={id}&key={key}"),
            format!("http://h/#id={id}&key={key}&x=1"),
            "#".to_string(),
        ] {
            assert!(parse_file_ref(&bad).is_err(), "{bad}");
        }
    }
    #[test]
    fn host_port_parsing() {
        let hp: HostPort = "127.0.0.1:4100".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("127.0.0.1", 4100));
        let hp: HostPort = "localhost:0".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("localhost", 0));
        let hp: HostPort = "[::1]:4200".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("::1", 4200));
        assert_eq!(hp.to_string(), "[::1]:4200");
        for bad in [
            "",
            "4100",
            "host",
            ":4100",
            "host:",
            "host:99999",
            "::1:4100",
            "[::1:80",
        ] {
            assert!(
                bad.parse::<HostPort>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn node_urls() {
        let url = parse_node_url("http://127.0.0.1:4200").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:4200/");
        assert_eq!(
            url.join("api/v1/files").unwrap().as_str(),
            "http://127.0.0.1:4200/api/v1/files"
        );
        let url = parse_node_url("localhost:4201").unwrap();
        assert_eq!(url.as_str(), "http://localhost:4201/");
        let url = parse_node_url("http://gw.lan/voldisefs").unwrap();
        assert_eq!(
            url.join("healthz").unwrap().as_str(),
            "http://gw.lan/voldisefs/healthz"
        );
        for bad in [
            "https://x:1",
            "ftp://x",
            "http://",
            "not a url",
            "http://x/?q=1",
        ] {
            assert!(parse_node_url(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn file_ids() {
        let upper = "AB".repeat(32);
        assert_eq!(parse_file_id(&upper).unwrap(), "ab".repeat(32));
        assert!(parse_file_id(&"a".repeat(63)).is_err());
        assert!(parse_file_id(&"g".repeat(64)).is_err());
        assert!(parse_file_id("../etc/passwd").is_err());
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size("1MiB").unwrap().bytes(), 1 << 20);
        assert_eq!(parse_chunk_size("64K").unwrap().bytes(), 64 << 10);
        assert!(parse_chunk_size("1000000").is_err());
        assert!(parse_chunk_size("32KiB").is_err());
        assert!(parse_chunk_size("32MiB").is_err());
    }
}

//! What an upload asks of the network, checked before any byte is sealed, and the name it
//! records. Shared by `put` and collection uploads.

use anyhow::Context as _;
use voldisefs_node::crypto::Redundancy;

use crate::cli::PutArgs;
use crate::store::Session;

/// What an upload asks for, checked against the network's settings before any byte is sealed.
pub(crate) struct Request {
    /// Unix time its objects expire (0: never).
    pub(crate) expires: u64,
    /// How its chunks are kept.
    pub(crate) redundancy: Redundancy,
}

impl Request {
    /// The expiry and redundancy `args` ask for, by the network's defaults and limits (the
    /// same rules, and messages, as a node applies to gateway uploads).
    pub(crate) fn new(session: &Session, args: &PutArgs) -> anyhow::Result<Self> {
        let info = &session.info;
        let refuse = |message: String| -> anyhow::Error {
            crate::error::CliError::Server {
                status: 0,
                code: String::new(),
                message,
            }
            .into()
        };
        let after = match (args.expires.map(|d| d.as_secs()), info.max_expiry) {
            (Some(after), Some(max)) if after > max => {
                return Err(refuse(format!(
                    "this node keeps files at most {max} s; ask for less"
                )));
            }
            (Some(after), _) => Some(after),
            (None, max) => match (info.default_expiry, max) {
                (Some(default), Some(max)) => Some(default.min(max)),
                (default, max) => default.or(max),
            },
        };
        let expires = match after {
            None => 0,
            Some(after) if after < voldisefs_node::MIN_EXPIRY_SECS => {
                return Err(refuse(format!(
                    "an expiry must be at least {} seconds away",
                    voldisefs_node::MIN_EXPIRY_SECS
                )));
            }
            // Counted from the next whole second, so at least that many seconds remain.
            Some(after) => unix_now().saturating_add(1).saturating_add(after),
        };
        let default: Redundancy = info
            .redundancy
            .parse()
            .map_err(|_| anyhow::anyhow!("the node reports an unknown redundancy"))?;
        let redundancy = args.redundancy.unwrap_or(default);
        match redundancy {
            Redundancy::Replicas(n) if usize::from(n) != info.replicas => {
                return Err(refuse(format!(
                    "this network keeps {0} copies of replicated files, so replicas:{n} is not available; use replicas:{0}, or rs:K+M for another overhead",
                    info.replicas
                )));
            }
            Redundancy::ErasureCoded { .. } if info.live_nodes < redundancy.nodes() => {
                return Err(refuse(format!(
                    "{redundancy} needs {} live nodes, and {} are live; use fewer shards or replicas:N",
                    redundancy.nodes(),
                    info.live_nodes
                )));
            }
            _ => {}
        }
        Ok(Self {
            expires,
            redundancy,
        })
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The name recorded with the file: the path's last component (`..` and `.` resolved).
pub(crate) fn upload_name(path: &std::path::Path) -> anyhow::Result<String> {
    if let Some(name) = path.file_name() {
        return Ok(name.to_string_lossy().into_owned());
    }
    let absolute = std::fs::canonicalize(path)
        .with_context(|| format!("cannot resolve {}", path.display()))?;
    let name = absolute
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    Ok(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn names_are_base_names() {
        assert_eq!(
            upload_name(Path::new("dir/sub/notes.txt")).unwrap(),
            "notes.txt"
        );
        assert_eq!(upload_name(Path::new("/tmp/a b.bin")).unwrap(), "a b.bin");
        assert_eq!(upload_name(Path::new("plain")).unwrap(), "plain");
    }
}

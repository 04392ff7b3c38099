//! A file's plaintext streaming out of the local pipeline, and where it is written: standard
//! output, or a temporary file beside its destination renamed into place once whole (through
//! a folder handle, never through a symbolic link). Shared by `get` and collection downloads.

use std::ffi::OsStr;
use std::path::Path;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures_util::StreamExt as _;
use voldisefs_node::crypto::Error as CryptoError;
use voldisefs_node::crypto::client::Opened;

use crate::folder::Folder;
use crate::progress::TransferBar;
use crate::store::{Session, crypto_error};

use crate::store::hex;

/// A file's plaintext as it streams out of the local pipeline.
pub(crate) struct Download {
    /// Verified, decrypted pieces in order.
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, CryptoError>> + Send>>,
    /// The file's id, for messages.
    id: String,
    /// The file's recorded name, not yet made safe.
    pub(crate) filename: Option<String>,
    /// The body's length.
    pub(crate) length: Option<u64>,
}

impl Download {
    /// Bytes `range` of an opened file (`None`: all of it).
    pub(crate) fn of(
        session: &Session,
        opened: &Opened,
        range: Option<(u64, u64)>,
    ) -> anyhow::Result<Self> {
        let id = hex(&opened.id());
        let size = opened.manifest().size();
        let length = match range {
            None => size,
            Some((first, last)) => last.min(size.saturating_sub(1)) + 1 - first.min(size),
        };
        let body = session
            .client
            .read(opened, range)
            .map_err(|e| crypto_error(e, &id))?;
        Ok(Self {
            body: Box::pin(body),
            id,
            filename: Some(opened.manifest().name().to_string()),
            length: Some(length),
        })
    }

    /// The next piece, `None` at the end.
    pub(crate) async fn next_chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        match self.body.next().await {
            None => Ok(None),
            Some(Ok(piece)) => Ok(Some(piece)),
            Some(Err(e)) => Err(crypto_error(e, &self.id)),
        }
    }
}

/// Parses a file id.
pub(crate) fn parse_id(id: &str) -> anyhow::Result<[u8; 32]> {
    let id: voldisefs_node::proto::FileId = id
        .parse()
        .map_err(|e| anyhow::anyhow!("{id:?} is not a file id: {e}"))?;
    Ok(*id.as_bytes())
}

/// Fails when `path` exists (even as a dangling link) and `force` is not set.
pub(crate) async fn refuse_overwrite(path: &Path, force: bool) -> anyhow::Result<()> {
    if !force && tokio::fs::symlink_metadata(path).await.is_ok() {
        bail!(
            "{} already exists; use --force to overwrite it or -o to choose another path",
            path.display()
        );
    }
    Ok(())
}

/// Streams the body to standard output.
pub(crate) async fn to_stdout(mut download: Download) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let mut received = 0u64;
    while let Some(piece) = download.next_chunk().await? {
        received += piece.len() as u64;
        write_blocking(&mut stdout, &piece).context("cannot write to standard output")?;
    }
    tokio::task::block_in_place(|| std::io::Write::flush(&mut stdout))
        .context("cannot write to standard output")?;
    check_length(received, download.length)
}

/// Writes `piece` with a blocking write, straight from its buffer (tokio's files and standard
/// output copy every write into a buffer of their own first), letting the runtime move other
/// tasks off this thread meanwhile.
fn write_blocking(out: &mut impl std::io::Write, piece: &[u8]) -> std::io::Result<()> {
    tokio::task::block_in_place(|| out.write_all(piece))
}

/// Streams the body into a temporary file beside `path`, then renames it into place; the
/// folder `path` is in is opened as named, and everything in it through its handle.
pub(crate) async fn to_path(
    download: Download,
    path: &Path,
    force: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("cannot create {}: it names no file", path.display());
    };
    let folder = Folder::open(dir)?;
    to_file(download, &folder, name, path, force, quiet).await
}

/// Streams the body into a temporary file in `folder`, then renames it into place as `name`,
/// all through the folder's handle, never through a symbolic link. `path` is the file as the
/// user knows it, for messages.
pub(crate) async fn to_file(
    mut download: Download,
    folder: &Folder,
    name: &OsStr,
    path: &Path,
    force: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut temp = folder.temp_file(name, path)?;
    let write_error = || format!("cannot write {}", path.display());

    let bar = TransferBar::new(download.length, "downloading", quiet);
    let mut received = 0u64;
    let result = async {
        while let Some(piece) = download.next_chunk().await? {
            received += piece.len() as u64;
            bar.inc(piece.len() as u64);
            write_blocking(temp.file(), &piece).with_context(write_error)?;
        }
        tokio::task::block_in_place(|| temp.file().sync_all()).with_context(write_error)?;
        check_length(received, download.length)
    }
    .await;
    drop(bar);
    result?;

    temp.persist(name, force).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} appeared during the download and was not overwritten; use --force to \
                 overwrite it",
                path.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })
}

/// Fails when fewer (or more) bytes arrived than the node announced.
fn check_length(received: u64, announced: Option<u64>) -> anyhow::Result<()> {
    match announced {
        Some(expected) if expected != received => {
            bail!("the download was cut short: received {received} of {expected} bytes")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overwrite_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        refuse_overwrite(&path, false).await.unwrap();
        std::fs::write(&path, b"old").unwrap();
        let err = refuse_overwrite(&path, false).await.unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        refuse_overwrite(&path, true).await.unwrap();
    }

    #[test]
    fn lengths() {
        assert!(check_length(3, Some(3)).is_ok());
        assert!(check_length(3, None).is_ok());
        assert!(check_length(2, Some(3)).is_err());
    }
}

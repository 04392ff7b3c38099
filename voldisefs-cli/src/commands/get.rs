//! `voldisefs get ID`: download a file through a node (a collection goes to
//! [`super::collection::get`]; `--path` fetches one file of a collection).
//!
//! The file is written to a hidden temporary file next to its destination and renamed into
//! place only once the whole body arrived, so a failed or interrupted download leaves nothing
//! behind. An existing file is never overwritten without `--force`: that is checked before the
//! download starts and again, atomically, by the final rename.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tokio::io::AsyncWriteExt as _;

use crate::cli::GetArgs;
use crate::client::{Download, NodeClient};
use crate::names::safe_file_name;
use crate::password;
use crate::progress::TransferBar;

/// Where the downloaded bytes go.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// Standard output (`-o -`).
    Stdout,
    /// Exactly this path.
    File(PathBuf),
    /// A file in this directory named after the original file.
    Directory(PathBuf),
}

impl Target {
    /// Reads `-o`: absent means the current directory.
    fn from_arg(output: Option<PathBuf>) -> Self {
        match output {
            None => Target::Directory(PathBuf::from(".")),
            Some(path) if path.as_os_str() == "-" => Target::Stdout,
            Some(path) if path.is_dir() => Target::Directory(path),
            Some(path) => Target::File(path),
        }
    }
}

/// Downloads the file and writes it where `-o` says.
pub(crate) async fn run(args: GetArgs) -> anyhow::Result<()> {
    let target = Target::from_arg(args.output.clone());
    if let Target::File(path) = &target {
        refuse_overwrite(path, args.force).await?;
    }
    let password = password::obtain(args.password.password_file.as_deref(), false)?;
    let client = NodeClient::new(&args.node)?;
    let download = match &args.path {
        Some(path) => client.download_path(&args.id, path, &password).await?,
        None => match client.download(&args.id, &password).await {
            Err(e) if super::collection::is_collection(&e) => {
                return super::collection::get(args, client, password).await;
            }
            other => other?,
        },
    };
    drop(password);

    let path = match target {
        Target::Stdout => return to_stdout(download).await,
        Target::File(path) => path,
        Target::Directory(dir) => {
            let path = dir.join(safe_file_name(download.filename.as_deref(), &args.id));
            refuse_overwrite(&path, args.force).await?;
            path
        }
    };
    // Ctrl-C drops this future (see `commands::interruptible`), and the temporary file with it.
    to_file(download, &path, args.force, args.quiet).await?;
    println!("{}", path.display());
    Ok(())
}

/// Fails when `path` exists (even as a dangling link) and `force` is not set.
pub(super) async fn refuse_overwrite(path: &Path, force: bool) -> anyhow::Result<()> {
    if !force && tokio::fs::symlink_metadata(path).await.is_ok() {
        bail!(
            "{} already exists; use --force to overwrite it or -o to choose another path",
            path.display()
        );
    }
    Ok(())
}

/// Streams the body to standard output.
pub(super) async fn to_stdout(mut download: Download) -> anyhow::Result<()> {
    let mut stdout = tokio::io::stdout();
    let mut received = 0u64;
    while let Some(piece) = download.next_chunk().await? {
        received += piece.len() as u64;
        stdout
            .write_all(&piece)
            .await
            .context("cannot write to standard output")?;
    }
    stdout
        .flush()
        .await
        .context("cannot write to standard output")?;
    check_length(received, download.length)
}

/// Streams the body into a temporary file beside `path`, then renames it into place.
pub(super) async fn to_file(
    mut download: Download,
    path: &Path,
    force: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(&temp_prefix(&name))
        .suffix(".part")
        // Like any new file (the umask applies), not the temporary file default of 0600.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let write_error = || format!("cannot write {}", temp.path().display());
    let mut out = tokio::fs::File::from_std(temp.as_file().try_clone().with_context(write_error)?);

    let bar = TransferBar::new(download.length, "downloading", quiet);
    let mut received = 0u64;
    let result = async {
        while let Some(piece) = download.next_chunk().await? {
            received += piece.len() as u64;
            bar.inc(piece.len() as u64);
            out.write_all(&piece).await.with_context(write_error)?;
        }
        out.flush().await.with_context(write_error)?;
        out.sync_all().await.with_context(write_error)?;
        check_length(received, download.length)
    }
    .await;
    drop(bar);
    result?;
    drop(out);

    let persisted = if force {
        temp.persist(path)
    } else {
        temp.persist_noclobber(path)
    };
    persisted.map(drop).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} appeared during the download and was not overwritten; use --force to \
                 overwrite it",
                path.display()
            )
        } else {
            anyhow::Error::new(e.error).context(format!("cannot create {}", path.display()))
        }
    })
}

/// The temporary file's name prefix: hidden, and short enough for any file system.
fn temp_prefix(name: &str) -> String {
    let mut end = name.len().min(100);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.", &name[..end])
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

    #[test]
    fn targets() {
        assert_eq!(Target::from_arg(None), Target::Directory(".".into()));
        assert_eq!(Target::from_arg(Some("-".into())), Target::Stdout);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Target::from_arg(Some(dir.path().into())),
            Target::Directory(dir.path().into())
        );
        let file = dir.path().join("out.bin");
        assert_eq!(Target::from_arg(Some(file.clone())), Target::File(file));
    }

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
    fn temp_prefixes_are_hidden_and_short() {
        assert_eq!(temp_prefix("a.txt"), ".a.txt.");
        let long = "é".repeat(100);
        let prefix = temp_prefix(&long);
        assert!(prefix.len() <= 102);
        assert!(prefix.starts_with('.'));
    }

    #[test]
    fn lengths() {
        assert!(check_length(3, Some(3)).is_ok());
        assert!(check_length(3, None).is_ok());
        assert!(check_length(2, Some(3)).is_err());
    }
}

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
    if let Some((node, key)) = args.id.link.clone() {
        if args.resume || args.path.is_some() {
            bail!("a share link opens one file: --resume and --path need the id and password");
        }
        let client = NodeClient::for_url(node, &args.node)?;
        let download = match client.download_with_key(&args.id, &key).await {
            Err(e) if super::collection::is_collection(&e) => {
                let auth = crate::client::Auth::ReadKey(&key);
                return super::collection::get(args, client, auth).await;
            }
            other => other?,
        };
        return write(download, &args, target).await;
    }
    let password = password::obtain(args.password.password_file.as_deref(), false)?;
    let client = NodeClient::new(&args.node)?;
    if args.resume {
        return resume(&args, &client, &password, target).await;
    }
    let download = match &args.path {
        Some(path) => client.download_path(&args.id, path, &password).await?,
        None => match client.download(&args.id, &password).await {
            Err(e) if super::collection::is_collection(&e) => {
                let auth = crate::client::Auth::Password(&password);
                return super::collection::get(args, client, auth).await;
            }
            other => other?,
        },
    };
    drop(password);
    write(download, &args, target).await
}

/// Writes a download where `-o` says, and prints the path written.
async fn write(download: Download, args: &GetArgs, target: Target) -> anyhow::Result<()> {
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

/// How much of a partial file's end `--resume` checks against the file's bytes before
/// appending.
const RESUME_CHECK: u64 = 64 * 1024;
/// Further windows of a partial file `--resume` checks, spread evenly over the part before
/// its end (each one range request of [`RESUME_SAMPLE`] bytes): a part of another file, or
/// one damaged in the middle, is caught before anything is appended to it.
const RESUME_SAMPLES: u64 = 4;
/// Bytes in each of those windows.
const RESUME_SAMPLE: u64 = 4 * 1024;

/// Where `--resume` keeps the part of `path` downloaded so far: hidden, beside it, named after
/// the file id so a part of another file is never taken for this one's.
fn partial_path(path: &Path, id: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!("{}{}.part", temp_prefix(&name), &id[..16]))
}

/// `get --resume`: continues `.NAME.ID.part` if there is one, after checking that its last
/// bytes (up to 64 KiB), and four windows of 4 KiB spread over the rest, are the file's bytes
/// at those offsets, and keeps it if this run fails too; renames it into place once complete.
async fn resume(
    args: &GetArgs,
    client: &NodeClient,
    password: &password::Password,
    target: Target,
) -> anyhow::Result<()> {
    let id: &str = &args.id;
    // One byte tells the name and the size (a collection, or an empty file, answers otherwise).
    let probe = match client.download_range(id, Some("bytes=0-0"), password).await {
        Ok(probe) => probe,
        Err(e) if super::collection::is_collection(&e) => {
            bail!("--resume works on files; a collection's files are fetched one by one anyway")
        }
        Err(e) if is_unsatisfiable(&e) => {
            // An empty file: nothing to resume.
            let download = client.download(id, password).await?;
            let path = output_path(&target, download.filename.as_deref(), id)?;
            refuse_overwrite(&path, args.force).await?;
            to_file(download, &path, args.force, args.quiet).await?;
            println!("{}", path.display());
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let size = probe
        .total
        .or(probe.length)
        .context("the node did not say how long the file is")?;
    let path = output_path(&target, probe.filename.as_deref(), id)?;
    drop(probe);
    refuse_overwrite(&path, args.force).await?;
    let partial = partial_path(&path, id);
    let have = match tokio::fs::metadata(&partial).await {
        Ok(meta) => meta.len(),
        Err(_) => 0,
    };
    if have > size {
        bail!(
            "{} is longer than file {id} ({have} of {size} bytes); delete it to start over",
            partial.display()
        );
    }
    let overlap = have.min(RESUME_CHECK);
    let from = have - overlap;
    check_samples(client, id, password, &partial, from).await?;
    let mut download = if have == 0 {
        client.download(id, password).await?
    } else {
        client
            .download_range(id, Some(&format!("bytes={from}-")), password)
            .await?
    };
    if download.total.is_none() && have > 0 {
        bail!(
            "the node sent the whole file instead of the part asked for; try again without --resume"
        );
    }
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .await
        .with_context(|| format!("cannot open {}", partial.display()))?;
    let write_error = || format!("cannot write {}", partial.display());
    // Check the overlap: the part already there must end with the file's bytes.
    let mut expected = {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let mut existing = tokio::fs::File::open(&partial)
            .await
            .with_context(write_error)?;
        existing
            .seek(std::io::SeekFrom::Start(from))
            .await
            .with_context(write_error)?;
        let mut tail = Vec::with_capacity(overlap as usize);
        existing
            .take(overlap)
            .read_to_end(&mut tail)
            .await
            .with_context(write_error)?;
        std::collections::VecDeque::from(tail)
    };
    let bar = TransferBar::new(Some(size), "downloading", args.quiet);
    bar.inc(have);
    let mut received = from;
    let kept = || {
        format!(
            "what arrived is kept in {}: run the same command again to continue",
            partial.display()
        )
    };
    while let Some(piece) = download.next_chunk().await.with_context(kept)? {
        let mut piece = &piece[..];
        while !expected.is_empty() && !piece.is_empty() {
            let n = expected.len().min(piece.len());
            if !expected.drain(..n).eq(piece[..n].iter().copied()) {
                bail!(
                    "{} is not the beginning of file {id} (its last bytes differ); delete it to \
                     start over",
                    partial.display()
                );
            }
            piece = &piece[n..];
            received += n as u64;
        }
        received += piece.len() as u64;
        bar.inc(piece.len() as u64);
        out.write_all(piece).await.with_context(write_error)?;
    }
    out.flush().await.with_context(write_error)?;
    out.sync_all().await.with_context(write_error)?;
    drop(bar);
    if received != size {
        bail!(
            "the download was cut short at {received} of {size} bytes; what arrived is kept in \
             {}: run the same command again to continue",
            partial.display()
        );
    }
    if !args.force && tokio::fs::symlink_metadata(&path).await.is_ok() {
        bail!(
            "{} appeared during the download and was not overwritten",
            path.display()
        );
    }
    tokio::fs::rename(&partial, &path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// Checks [`RESUME_SAMPLES`] windows of the partial file before `end` (evenly spread, the
/// first at its start) against the file's bytes, with one range request each.
async fn check_samples(
    client: &NodeClient,
    id: &str,
    password: &password::Password,
    partial: &Path,
    end: u64,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    if end == 0 {
        return Ok(());
    }
    let read_error = || format!("cannot read {}", partial.display());
    let mut existing = tokio::fs::File::open(partial)
        .await
        .with_context(read_error)?;
    let mut last = None;
    for k in 0..RESUME_SAMPLES {
        let at = end * k / RESUME_SAMPLES;
        let len = RESUME_SAMPLE.min(end - at);
        if len == 0 || last == Some(at) {
            continue;
        }
        last = Some(at);
        let mut mine = vec![0u8; len as usize];
        existing
            .seek(std::io::SeekFrom::Start(at))
            .await
            .with_context(read_error)?;
        existing
            .read_exact(&mut mine)
            .await
            .with_context(read_error)?;
        let mut download = client
            .download_range(id, Some(&format!("bytes={at}-{}", at + len - 1)), password)
            .await?;
        let mut theirs = Vec::with_capacity(mine.len());
        while let Some(piece) = download.next_chunk().await? {
            theirs.extend_from_slice(&piece);
            if theirs.len() > mine.len() {
                break;
            }
        }
        if theirs != mine {
            bail!(
                "{} is not the beginning of file {id} (its bytes at {at} differ); delete it to \
                 start over",
                partial.display()
            );
        }
    }
    Ok(())
}

/// Whether a request failed with 416: the range selects nothing (the file is empty).
fn is_unsatisfiable(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<crate::error::CliError>(),
        Some(crate::error::CliError::Server { status: 416, .. })
    )
}

/// The file a download writes, from `-o` and the file's name.
fn output_path(target: &Target, name: Option<&str>, id: &str) -> anyhow::Result<PathBuf> {
    match target {
        Target::Stdout => bail!("--resume needs an output file, not standard output"),
        Target::File(path) => Ok(path.clone()),
        Target::Directory(dir) => Ok(dir.join(safe_file_name(name, id))),
    }
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

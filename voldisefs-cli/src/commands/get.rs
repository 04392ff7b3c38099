//! `voldisefs get ID`: open a file on this machine from its sealed objects (a collection goes to
//! [`super::collection::get`]; `--path` fetches one file of a collection).
//!
//! The file is written to a hidden temporary file next to its destination and renamed into
//! place only once the whole body arrived, so a failed or interrupted download leaves nothing
//! behind. An existing file is never overwritten without `--force`: that is checked before the
//! download starts and again, atomically, by the final rename.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tokio::io::AsyncWriteExt as _;

use voldisefs_node::crypto::client::{Access, Opened};
use voldisefs_node::crypto::{FileKind, Password};

use crate::cli::GetArgs;
use crate::error::CliError;
use crate::folder::temp_prefix;
use crate::names::safe_file_name;
use crate::password;
use crate::progress::TransferBar;
use crate::store::{Session, crypto_error};

use super::download::{Download, parse_id, refuse_overwrite, to_path, to_stdout};
use crate::store::hex;

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

/// Opens `args.id` on this machine: with the password, or the link's key (the link's node
/// first, then the `--node`s).
pub(super) async fn open(args: &GetArgs) -> anyhow::Result<(Session, Opened)> {
    let id = parse_id(&args.id)?;
    let (session, access) = match &args.id.link {
        Some((node, key)) => {
            let mut nodes = vec![node.clone()];
            nodes.extend(args.node.node.iter().filter(|n| *n != node).cloned());
            (
                Session::over(&nodes, &args.node).await?,
                Access::ReadKey(key.clone()),
            )
        }
        None => {
            let password = password::obtain(args.password.password_file.as_deref(), false)?;
            let session = Session::open(&args.node).await?;
            (session, Access::Password(Password::new(password.to_vec())))
        }
    };
    let opened = session
        .client
        .open(id, access)
        .await
        .map_err(|e| crypto_error(e, &args.id))?;
    Ok((session, opened))
}

/// Opens the file (or collection) on this machine and writes it where `-o` says.
pub(crate) async fn run(args: GetArgs) -> anyhow::Result<()> {
    let target = Target::from_arg(args.output.clone());
    if let Target::File(path) = &target {
        refuse_overwrite(path, args.force).await?;
    }
    if args.id.link.is_some() && (args.resume || args.path.is_some()) {
        bail!("a share link opens one file: --resume and --path need the id and password");
    }
    let (session, opened) = open(&args).await?;
    let collection = opened.manifest().kind() == FileKind::Collection;
    if let Some(path) = &args.path {
        if !collection {
            bail!(
                "{} is a file, not a collection: --path picks a file of a collection",
                args.id
            );
        }
        let listing = session
            .client
            .collection(&opened)
            .await
            .map_err(|e| crypto_error(e, &args.id))?;
        let entry = listing.find(path).ok_or_else(|| CliError::NotFound {
            message: format!("collection {} has no file at that path", args.id),
        })?;
        let member = session
            .client
            .open(entry.file, Access::ReadKey(entry.read.clone()))
            .await
            .map_err(|e| crypto_error(e, &hex(&entry.file)))?;
        return write(Download::of(&session, &member, None)?, &args, target).await;
    }
    if collection {
        if args.resume {
            bail!("--resume works on files; a collection's files are fetched one by one anyway");
        }
        return super::collection::get(args, session, opened).await;
    }
    if args.resume {
        resume(&args, &session, &opened, target).await?;
    } else {
        write(Download::of(&session, &opened, None)?, &args, target).await?;
    }
    burn(&session, &opened, args.quiet).await
}

/// After a complete read of a "once" file: deletes it everywhere and says so.
async fn burn(session: &Session, opened: &Opened, quiet: bool) -> anyhow::Result<()> {
    if !opened.manifest().once() {
        return Ok(());
    }
    let id = hex(&opened.id());
    session
        .client
        .burn(opened)
        .await
        .map_err(|e| crypto_error(e, &id))
        .context("the file was read, but deleting it (burn after reading) failed")?;
    if !quiet {
        eprintln!("this file could be read once: it is now deleted everywhere");
    }
    Ok(())
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
    to_path(download, &path, args.force, args.quiet).await?;
    println!("{}", path.display());
    Ok(())
}

/// How much of a partial file's end `--resume` checks against the file's bytes before
/// appending.
const RESUME_CHECK: u64 = 64 * 1024;
/// Further windows of a partial file `--resume` checks, spread evenly over the part before
/// its end (each one range read of [`RESUME_SAMPLE`] bytes): a part of another file, or
/// one damaged in the middle, is caught before anything is appended to it.
const RESUME_SAMPLES: u64 = 4;
/// Bytes in each of those windows.
const RESUME_SAMPLE: u64 = 4 * 1024;

/// `O_NOFOLLOW`: opening a path whose last component is a symbolic link fails.
const NO_FOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

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
    session: &Session,
    opened: &Opened,
    target: Target,
) -> anyhow::Result<()> {
    let id: &str = &args.id;
    let size = opened.manifest().size();
    let path = output_path(&target, Some(opened.manifest().name()), id)?;
    refuse_overwrite(&path, args.force).await?;
    if size == 0 {
        // An empty file: nothing to resume.
        to_path(
            Download::of(session, opened, None)?,
            &path,
            args.force,
            args.quiet,
        )
        .await?;
        println!("{}", path.display());
        return Ok(());
    }
    let partial = partial_path(&path, id);
    // The part file is opened with no-follow throughout: a symbolic link planted under its name
    // (by someone who can write to the folder) is refused, never written through.
    let have = match tokio::fs::symlink_metadata(&partial).await {
        Ok(meta) if !meta.is_file() => bail!(
            "refusing to resume through {}: it is not a regular file (a symbolic link?)",
            partial.display()
        ),
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
    check_samples(session, opened, id, &partial, from).await?;
    let mut download = Download::of(session, opened, Some((from, size - 1)))?;
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(NO_FOLLOW)
        .open(&partial)
        .await
        .with_context(|| format!("cannot open {}", partial.display()))?;
    let write_error = || format!("cannot write {}", partial.display());
    // Check the overlap: the part already there must end with the file's bytes.
    let mut expected = {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let mut existing = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(NO_FOLLOW)
            .open(&partial)
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
/// first at its start) against the file's bytes, with one range read each.
async fn check_samples(
    session: &Session,
    opened: &Opened,
    id: &str,
    partial: &Path,
    end: u64,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    if end == 0 {
        return Ok(());
    }
    let read_error = || format!("cannot read {}", partial.display());
    let mut existing = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(NO_FOLLOW)
        .open(partial)
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
        let mut download = Download::of(session, opened, Some((at, at + len - 1)))?;
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

/// The file a download writes, from `-o` and the file's name.
fn output_path(target: &Target, name: Option<&str>, id: &str) -> anyhow::Result<PathBuf> {
    match target {
        Target::Stdout => bail!("--resume needs an output file, not standard output"),
        Target::File(path) => Ok(path.clone()),
        Target::Directory(dir) => Ok(dir.join(safe_file_name(name, id))),
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
}

//! `voldisefs put FILE|-`: upload a file (or standard input, a pipe, a FIFO) through a node.
//! Several paths, or a folder, go to [`super::collection::put`].

use anyhow::{Context as _, bail};
use futures_util::TryStreamExt as _;
use tokio_util::io::ReaderStream;

use crate::cli::PutArgs;
use crate::client::NodeClient;
use crate::password;
use crate::progress::TransferBar;
use crate::size::format_size;

/// Bytes read from the file per body piece.
const READ_BUFFER: usize = 256 * 1024;

/// The name recorded for standard input unless `--name` says otherwise.
const STDIN_NAME: &str = "stdin";

/// Where the bytes come from: a regular file (length known) or a stream (standard input, a
/// pipe, a FIFO, a device), whose length only the end tells.
struct Source {
    reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    len: Option<u64>,
    name: String,
}

/// Opens `path` (`-`: standard input) and picks the recorded name.
async fn open(path: &std::path::Path, args: &PutArgs) -> anyhow::Result<Source> {
    if path.as_os_str() == "-" {
        return Ok(Source {
            reader: Box::new(tokio::io::stdin()),
            len: None,
            name: args.name.clone().unwrap_or_else(|| STDIN_NAME.to_string()),
        });
    }
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let metadata = file
        .metadata()
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    if metadata.is_dir() {
        bail!("{} is a directory", path.display());
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => upload_name(path)?,
    };
    // Pipes, FIFOs and devices report no meaningful length: streamed like standard input.
    let len = metadata.is_file().then_some(metadata.len());
    Ok(Source {
        reader: Box::new(file),
        len,
        name,
    })
}

/// Streams the file to the node, then prints a summary on stderr and the id on stdout.
pub(crate) async fn run(args: PutArgs) -> anyhow::Result<()> {
    let path = match &args.files[..] {
        [one] if one.as_os_str() == "-" || !one.is_dir() => one.clone(),
        _ if args.once => {
            anyhow::bail!("--once works for single files; put the files one by one")
        }
        _ => return super::collection::put(args).await,
    };
    let path = &path;
    let Source { reader, len, name } = open(path, &args).await?;
    let password = password::obtain(args.password.password_file.as_deref(), true)?;
    let client = NodeClient::new(&args.node)?;

    let bar = TransferBar::new(len, "uploading", args.quiet);
    let progress = bar.handle();
    let stream = ReaderStream::with_capacity(reader, READ_BUFFER)
        .inspect_ok(move |piece| progress.inc(piece.len() as u64));
    let receipt = client
        .upload(
            reqwest::Body::wrap_stream(stream),
            len,
            &name,
            &password,
            crate::client::UploadOptions {
                link: args.link,
                expires: args.expires,
                once: args.once,
                redundancy: args.redundancy,
            },
        )
        .await;
    drop(bar);
    let receipt = receipt.with_context(|| format!("uploading {} failed", path.display()))?;

    let chunks = receipt.chunks;
    if let (Some(copies), Some(replicas), false) = (receipt.copies, receipt.replicas, args.quiet) {
        if copies < replicas {
            eprintln!(
                "warning: stored with {copies} cop{} of each chunk instead of {replicas}: the \
                 network has too few live nodes; repair adds copies as nodes join",
                if copies == 1 { "y" } else { "ies" }
            );
        }
    }
    if let (Some(expires), false) = (receipt.expires, args.quiet) {
        eprintln!(
            "it expires at {} UTC: then every node drops it",
            crate::table::format_utc(expires)
        );
    }
    if !args.quiet {
        let kept = receipt
            .redundancy
            .as_deref()
            .map_or_else(String::new, |r| format!(", kept as {r}"));
        eprintln!(
            "stored {name} ({}, {chunks} chunk{}{kept}); fetch it with: voldisefs get {}",
            format_size(receipt.size),
            if chunks == 1 { "" } else { "s" },
            receipt.id
        );
    }
    println!("{}", receipt.id);
    if args.link {
        let key = receipt
            .read_key
            .as_deref()
            .context("the node did not answer with a read key: it may be too old for links")?;
        let link =
            zeroize::Zeroizing::new(crate::cli::share_link(&args.node.node, &receipt.id, key));
        if !args.quiet {
            eprintln!(
                "share link (opens this file without the password, in a browser or with \
                 `voldisefs get LINK`; it cannot delete it):"
            );
        }
        println!("{}", link.as_str());
    }
    Ok(())
}

/// The name recorded with the file: the path's last component (`..` and `.` resolved).
pub(super) fn upload_name(path: &std::path::Path) -> anyhow::Result<String> {
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

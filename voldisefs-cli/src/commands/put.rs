//! `voldisefs put FILE|-`: upload a file (or standard input, a pipe, a FIFO) through a node.
//! Several paths, or a folder, go to [`super::collection::put`].

use anyhow::{Context as _, bail};
use futures_util::TryStreamExt as _;
use tokio_util::io::ReaderStream;

use voldisefs_node::crypto::Password;
use voldisefs_node::crypto::client::{Keying, PutOptions, PutReceipt, Stored};

use crate::cli::PutArgs;
use crate::password;
use crate::progress::TransferBar;
use crate::size::format_size;
use crate::store::Session;

use super::upload::{Request, upload_name};
use crate::store::hex;

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

/// Seals the file on this machine and stores its objects through the nodes, then prints a
/// summary on stderr and the id on stdout.
pub(crate) async fn run(args: PutArgs) -> anyhow::Result<()> {
    let path = match &args.files[..] {
        [one] if one.as_os_str() == "-" || !one.is_dir() => one.clone(),
        _ if args.once => {
            bail!("--once works for single files; put the files one by one")
        }
        _ => return super::collection::put(args).await,
    };
    let path = &path;
    let Source { reader, len, name } = open(path, &args).await?;
    let password = password::obtain(args.password.password_file.as_deref(), true)?;
    let session = Session::open(&args.node).await?;
    let request = Request::new(&session, &args)?;

    let bar = TransferBar::new(len, "uploading", args.quiet);
    let progress = bar.handle();
    let stream = ReaderStream::with_capacity(reader, READ_BUFFER)
        .inspect_ok(move |piece| progress.inc(piece.len() as u64));
    let mut options = PutOptions::file(name.clone(), request.redundancy);
    options.expires = request.expires;
    options.once = args.once;
    let password = Password::new(password.to_vec());
    let receipt = session
        .client
        .put(Keying::Password(password), options, stream)
        .await;
    drop(bar);
    let id = hex(&receipt.as_ref().map_or([0; 32], |r| r.id));
    let receipt = receipt
        .map_err(|e| crate::store::crypto_error(e, &id))
        .with_context(|| format!("uploading {} failed", path.display()))?;
    let id = hex(&receipt.id);
    report(&args, &receipt, &name, &id);
    println!("{id}");
    if args.link {
        let link = crate::cli::share_link(args.node.first(), &receipt.id, &receipt.read_key);
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

/// Prints what was stored on stderr (nothing with `--quiet`).
pub(super) fn report(args: &PutArgs, receipt: &PutReceipt, name: &str, id: &str) {
    if args.quiet {
        return;
    }
    let Stored { copies, wanted } = receipt.stored;
    if !receipt.stored.is_full() {
        eprintln!(
            "warning: stored with {copies} cop{} of each chunk instead of {wanted}: the \
             network has too few live nodes; repair adds copies as nodes join",
            if copies == 1 { "y" } else { "ies" }
        );
    }
    if receipt.expires != 0 {
        eprintln!(
            "it expires at {} UTC: then every node drops it",
            crate::table::format_utc(receipt.expires)
        );
    }
    let chunks = receipt.chunks;
    eprintln!(
        "stored {name} ({}, {chunks} chunk{}, kept as {}); fetch it with: voldisefs get {id}",
        format_size(receipt.size),
        if chunks == 1 { "" } else { "s" },
        receipt.redundancy,
    );
}

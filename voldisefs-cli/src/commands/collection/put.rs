//! `put` of several paths or a folder: every file gathered (refusing what a collection cannot
//! hold) and uploaded as one collection under one key derivation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures_util::TryStreamExt as _;
use tokio_util::io::ReaderStream;
use voldisefs_node::crypto::{
    Collection, CollectionEntry, MAX_COLLECTION_ENTRIES, MAX_PATH_LEN, Password, Plaintext,
    check_path,
};

use super::printable;
use crate::cli::PutArgs;
use crate::password;
use crate::progress::TransferBar;
use crate::size::format_size;
use crate::store::hex;
use crate::store::{Session, crypto_error};

/// Bytes read from a file per body piece.
const READ_BUFFER: usize = 256 * 1024;
/// One file to upload: where it is, where it goes in the collection, its length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    source: PathBuf,
    path: String,
    len: u64,
}

/// Every file the arguments name: files as their base name, folders recursively under their
/// own name. Refuses `-`, symbolic links inside folders, special files, names that are not
/// UTF-8, two files at one path, and more files than a collection holds.
fn gather(args: &[PathBuf]) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    for arg in args {
        if arg.as_os_str() == "-" {
            bail!("`-` (standard input) cannot be uploaded together with other paths");
        }
        // Named on the command line: a symbolic link is followed, as `cp` does.
        let meta =
            std::fs::metadata(arg).with_context(|| format!("cannot open {}", arg.display()))?;
        let name = crate::commands::upload::upload_name(arg)?;
        if meta.is_dir() {
            walk(arg, &name, &mut items)?;
        } else if meta.is_file() {
            push(&mut items, arg.clone(), name, meta.len())?;
        } else {
            bail!(
                "{} is not a regular file or a folder; upload it alone to stream it",
                arg.display()
            );
        }
    }
    if items.is_empty() {
        bail!("no files to upload: the folders are empty");
    }
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for item in &items {
        if let Some(first) = seen.insert(&item.path, &item.source) {
            bail!(
                "{} and {} would both be stored as {}; upload them separately",
                first.display(),
                item.source.display(),
                item.path
            );
        }
    }
    // Whatever else a reader would refuse (a file where another needs a folder).
    let entries = items.iter().map(|i| entry(&i.path, i.len)).collect();
    Collection::new(entries).context("these files cannot form one collection")?;
    Ok(items)
}

fn entry(path: &str, size: u64) -> CollectionEntry {
    CollectionEntry {
        path: path.to_string(),
        size,
        file: [0; 32],
        read: voldisefs_node::crypto::ReadKey::from_bytes([0; 32]),
    }
}

fn push(items: &mut Vec<Item>, source: PathBuf, path: String, len: u64) -> anyhow::Result<()> {
    if items.len() >= MAX_COLLECTION_ENTRIES {
        bail!("a collection holds at most {MAX_COLLECTION_ENTRIES} files");
    }
    if let Err(reason) = check_path(&path) {
        bail!("{} cannot be stored: {reason}", source.display());
    }
    items.push(Item { source, path, len });
    Ok(())
}

/// Adds every file below `dir` (sorted by name) at `prefix/...`.
fn walk(dir: &Path, prefix: &str, items: &mut Vec<Item>) -> anyhow::Result<()> {
    if prefix.len() > MAX_PATH_LEN {
        bail!("{} is nested too deep to store", dir.display());
    }
    let read = || format!("cannot read the folder {}", dir.display());
    let mut entries = std::fs::read_dir(dir)
        .with_context(read)?
        .collect::<Result<Vec<_>, _>>()
        .with_context(read)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let source = e.path();
        let Ok(name) = e.file_name().into_string() else {
            bail!("{} has a name that is not UTF-8", source.display());
        };
        let path = format!("{prefix}/{name}");
        let kind = e
            .file_type()
            .with_context(|| format!("cannot read {}", source.display()))?;
        if kind.is_symlink() {
            bail!(
                "{} is a symbolic link; a collection holds regular files only (name its \
                 target on the command line instead)",
                source.display()
            );
        } else if kind.is_dir() {
            walk(&source, &path, items)?;
        } else if kind.is_file() {
            let len = e
                .metadata()
                .with_context(|| format!("cannot read {}", source.display()))?
                .len();
            push(items, source, path, len)?;
        } else {
            bail!("{} is not a regular file", source.display());
        }
    }
    Ok(())
}

/// `voldisefs put PATH...` of several paths or a folder: one collection, one password (one
/// Argon2id run), sealed on this machine; small files go to the nodes in batches.
pub(in crate::commands) async fn put(args: PutArgs) -> anyhow::Result<()> {
    let items = gather(&args.files)?;
    let name = args.name.clone().or_else(|| match &args.files[..] {
        [one] => crate::commands::upload::upload_name(one).ok(),
        _ => None,
    });
    let name = name.unwrap_or_else(|| format!("{} files", items.len()));
    let password = password::obtain(args.password.password_file.as_deref(), true)?;
    let session = Session::open(&args.node).await?;
    let request = crate::commands::upload::Request::new(&session, &args)?;
    let total: u64 = items.iter().map(|i| i.len).sum();
    let bar = TransferBar::new(Some(total), "uploading", args.quiet);
    let key = session
        .client
        .derive(Password::new(password.to_vec()))
        .await
        .map_err(|e| crypto_error(e, "the collection"))?;
    drop(password);
    let mut upload = session
        .client
        .collection_upload(key, request.expires, request.redundancy);
    let small = session.client.settings().chunk_size.bytes() as u64;
    let mut listed = Vec::with_capacity(items.len());
    let added = async {
        for item in &items {
            if item.len <= small {
                let bytes = tokio::fs::read(&item.source)
                    .await
                    .with_context(|| format!("cannot read {}", item.source.display()))?;
                upload
                    .add_bytes(&item.path, Plaintext::new(bytes))
                    .await
                    .map_err(|e| crypto_error(e, "the collection"))?;
            } else {
                let file = tokio::fs::File::open(&item.source)
                    .await
                    .with_context(|| format!("cannot open {}", item.source.display()))?;
                let progress = bar.handle();
                let body = ReaderStream::with_capacity(file, READ_BUFFER)
                    .inspect_ok(move |piece| progress.inc(piece.len() as u64));
                upload
                    .add_stream(&item.path, body)
                    .await
                    .map_err(|e| crypto_error(e, "the collection"))?;
                bar.inc(0);
                continue;
            }
            bar.inc(item.len);
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = added {
        upload.abort().await;
        return Err(e.context("uploading the collection failed"));
    }
    for entry in upload.entries() {
        listed.push((hex(&entry.file), entry.path.clone()));
    }
    let receipt = upload
        .finish(&name)
        .await
        .map_err(|e| crypto_error(e, "the collection"))
        .context("uploading the collection failed")?;
    drop(bar);
    let id = hex(&receipt.id);
    if !args.quiet {
        for (file, path) in &listed {
            println!("{file}  {}", printable(path));
        }
        eprintln!(
            "stored {} file{} ({}) as the collection {}; fetch them with: voldisefs get {id}",
            listed.len(),
            if listed.len() == 1 { "" } else { "s" },
            format_size(receipt.size),
            printable(&name),
        );
    }
    println!("{id}");
    if args.link {
        let link = crate::cli::share_link(args.node.first(), &receipt.id, &receipt.read_key);
        if !args.quiet {
            eprintln!("share link (opens the collection and its files without the password):");
        }
        println!("{}", link.as_str());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn folders_are_gathered_under_their_name_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        write(&top.join("b.txt"), b"bb");
        write(&top.join("a/z"), b"z");
        write(&top.join("a/\u{e9} x"), b"");
        std::fs::create_dir_all(top.join("empty")).unwrap();
        write(&tmp.path().join("single.bin"), b"123");
        let items = gather(&[top.clone(), tmp.path().join("single.bin")]).unwrap();
        let paths: Vec<(&str, u64)> = items.iter().map(|i| (i.path.as_str(), i.len)).collect();
        assert_eq!(
            paths,
            [
                ("top/a/z", 1),
                ("top/a/\u{e9} x", 0),
                ("top/b.txt", 2),
                ("single.bin", 3)
            ]
        );
    }

    #[test]
    fn gathering_refuses_what_a_collection_cannot_hold() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("x/f"), tmp.path().join("y/f"));
        write(&a, b"1");
        write(&b, b"2");
        let err = gather(&[a.clone(), b]).unwrap_err();
        assert!(
            err.to_string().contains("would both be stored as f"),
            "{err}"
        );
        let err = gather(&[a.clone(), PathBuf::from("-")]).unwrap_err();
        assert!(err.to_string().contains("standard input"), "{err}");
        std::fs::create_dir_all(tmp.path().join("void")).unwrap();
        let err = gather(&[tmp.path().join("void")]).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        std::os::unix::fs::symlink(&a, tmp.path().join("x/link")).unwrap();
        let err = gather(&[tmp.path().join("x")]).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // Named on the command line, a link is followed.
        let items = gather(&[tmp.path().join("x/link")]).unwrap();
        assert_eq!(items[0].path, "link");
    }
}

//! Collections from the command line: `put` of several paths or a folder, `get` of a
//! collection id (recreating its folders), `ls ID`.
//!
//! A collection is checked before anything is written, whoever sealed it: every path must be
//! relative and stay inside the output folder (no `..`, no absolute path, no duplicates, no
//! file where another entry needs a folder), no existing symbolic link or file may stand on
//! the way, and no file may exist already unless `--force`. Only then are folders created and
//! files downloaded, each into a temporary file renamed into place once complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio_util::io::ReaderStream;
use voldisefs_node::crypto::{
    Collection, CollectionEntry, MAX_COLLECTION_ENTRIES, MAX_PATH_LEN, check_path,
};

use crate::cli::{GetArgs, LsArgs, PutArgs};
use crate::client::{Auth, ListedFile, Listing, NodeClient};
use crate::error::CliError;
use crate::names::safe_file_name;
use crate::password;
use crate::progress::TransferBar;
use crate::size::format_size;
use crate::table::render;

/// Bytes read from a file per body piece.
const READ_BUFFER: usize = 256 * 1024;
/// Files of a collection downloaded at once.
const PARALLEL_GETS: usize = 8;

/// One file to upload: where it is, where it goes in the collection, its length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    source: PathBuf,
    path: String,
    len: u64,
}

/// Whether a download failed because the id is a collection's.
pub(super) fn is_collection(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<CliError>(),
        Some(CliError::Server { code, .. }) if code == "collection"
    )
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
        let name = super::put::upload_name(arg)?;
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

/// A multipart body streaming every file (opened only when its turn comes).
fn form(items: &[Item], bar: &TransferBar) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for item in items {
        let (source, progress) = (item.source.clone(), bar.handle());
        let bytes = futures_util::stream::once(async move { tokio::fs::File::open(source).await })
            .map_ok(|file| ReaderStream::with_capacity(file, READ_BUFFER))
            .try_flatten()
            .inspect_ok(move |piece| progress.inc(piece.len() as u64));
        let part = reqwest::multipart::Part::stream_with_length(
            reqwest::Body::wrap_stream(bytes),
            item.len,
        )
        .file_name("file");
        form = form.text("path", item.path.clone()).part("file", part);
    }
    form
}

/// `voldisefs put PATH...` of several paths or a folder: one collection, one password.
pub(super) async fn put(args: PutArgs) -> anyhow::Result<()> {
    let items = gather(&args.files)?;
    let name = args.name.clone().or_else(|| match &args.files[..] {
        [one] => super::put::upload_name(one).ok(),
        _ => None,
    });
    let password = password::obtain(args.password.password_file.as_deref(), true)?;
    let client = NodeClient::new(&args.node)?;
    let total: u64 = items.iter().map(|i| i.len).sum();
    let bar = TransferBar::new(Some(total), "uploading", args.quiet);
    let answer = client
        .upload_collection(
            form(&items, &bar),
            name.as_deref(),
            &password,
            crate::client::UploadOptions {
                link: args.link,
                expires: args.expires,
                once: false,
                redundancy: args.redundancy,
            },
        )
        .await;
    drop(bar);
    let answer = answer.context("uploading the collection failed")?;
    let read_key = answer["read_key"]
        .as_str()
        .map(|k| zeroize::Zeroizing::new(k.to_owned()));
    let listing: Listing = serde_json::from_value(answer)
        .context("the node's answer to the upload is not what was expected")?;
    if !args.quiet {
        for file in &listing.files {
            println!("{}  {}", file.id, printable(&file.path));
        }
        eprintln!(
            "stored {} file{} ({}) as the collection {}; fetch them with: voldisefs get {}",
            listing.files.len(),
            if listing.files.len() == 1 { "" } else { "s" },
            format_size(listing.size),
            printable(&listing.name),
            listing.id
        );
    }
    println!("{}", listing.id);
    if args.link {
        let key = read_key
            .context("the node did not answer with a read key: it may be too old for links")?;
        let link =
            zeroize::Zeroizing::new(crate::cli::share_link(&args.node.node, &listing.id, &key));
        if !args.quiet {
            eprintln!("share link (opens the collection and its files without the password):");
        }
        println!("{}", link.as_str());
    }
    Ok(())
}

/// `name` safe to print on a terminal: control characters are shown escaped.
pub(super) fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Checks a listing the node sent (it checked it too): the paths a reader may write.
fn checked(listing: &Listing) -> anyhow::Result<()> {
    let entries = listing
        .files
        .iter()
        .map(|f| entry(&f.path, f.size))
        .collect();
    Collection::new(entries).context("refusing the collection")?;
    Ok(())
}

/// Where each file of `files` goes under `dir`, after checking that writing there stays
/// inside `dir`: no existing symbolic link or non-folder where a folder is needed, no existing
/// file unless `force`.
fn plan(dir: &Path, files: &[ListedFile], force: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut targets = Vec::with_capacity(files.len());
    let mut checked_dirs = std::collections::HashSet::new();
    for file in files {
        let mut at = dir.to_path_buf();
        let components: Vec<&str> = file.path.split('/').collect();
        let (last, folders) = components
            .split_last()
            .context("refusing the collection: an empty path")?;
        for folder in folders {
            at.push(folder);
            if !checked_dirs.insert(at.clone()) {
                continue;
            }
            if let Ok(meta) = std::fs::symlink_metadata(&at) {
                if meta.file_type().is_symlink() {
                    bail!(
                        "refusing to write through {}: it is a symbolic link",
                        at.display()
                    );
                }
                if !meta.is_dir() {
                    bail!("cannot create the folder {}: a file is there", at.display());
                }
            }
        }
        at.push(last);
        if let Ok(meta) = std::fs::symlink_metadata(&at) {
            if meta.file_type().is_symlink() || meta.is_dir() {
                bail!(
                    "refusing to replace {}: it is a symbolic link or a folder",
                    at.display()
                );
            }
            if !force {
                bail!(
                    "{} already exists; use --force to overwrite it or -o to choose another folder",
                    at.display()
                );
            }
        }
        targets.push(at);
    }
    Ok(targets)
}

/// `voldisefs get ID` of a collection: recreates its folders under `-o DIR` (default: its
/// name), or writes it as a tar archive to standard output with `-o -`.
pub(super) async fn get(args: GetArgs, client: NodeClient, auth: Auth<'_>) -> anyhow::Result<()> {
    if args.output.as_deref().is_some_and(|o| o.as_os_str() == "-") {
        let archive = client.download_archive(&args.id, auth).await?;
        return super::get::to_stdout(archive).await;
    }
    let answer = client.collection(&args.id, auth).await?;
    let listing: Listing = serde_json::from_value(answer)
        .context("the node's collection listing is not what was expected")?;
    checked(&listing)?;
    let dir = match args.output {
        Some(dir) => dir,
        None => PathBuf::from(safe_file_name(Some(&listing.name), &args.id)),
    };
    if let Ok(meta) = std::fs::symlink_metadata(&dir) {
        if !meta.is_dir() && !meta.file_type().is_symlink() {
            bail!("{} exists and is not a folder", dir.display());
        }
    }
    let targets = plan(&dir, &listing.files, args.force)?;
    // Nothing was written before this point.
    for target in &targets {
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("cannot create the folder {}", parent.display()))?;
        }
    }
    let bar = TransferBar::new(Some(listing.size), "downloading", args.quiet);
    let (client, force) = (&client, args.force);
    let bar_ref = &bar;
    futures_util::stream::iter(listing.files.iter().zip(&targets))
        .map(|(file, target)| async move {
            // Each file by its own read key (no Argon2id), else by the password.
            let download = match (&file.read_key, auth) {
                (Some(key), _) => client.download_with_key(&file.id, key).await?,
                (None, Auth::Password(password)) => client.download(&file.id, password).await?,
                (None, Auth::ReadKey(_)) => {
                    bail!("the node listed no read keys: it is too old for collection links")
                }
            };
            if download.length.is_some_and(|len| len != file.size) {
                bail!(
                    "refusing {}: the collection lists {} bytes, the file has another size",
                    target.display(),
                    file.size
                );
            }
            super::get::to_file(download, target, force, true).await?;
            bar_ref.inc(file.size);
            Ok(())
        })
        .buffer_unordered(PARALLEL_GETS)
        .try_collect::<()>()
        .await?;
    drop(bar);
    if !args.quiet {
        eprintln!(
            "wrote {} file{} ({}) under {}",
            listing.files.len(),
            if listing.files.len() == 1 { "" } else { "s" },
            format_size(listing.size),
            dir.display()
        );
    }
    println!("{}", dir.display());
    Ok(())
}

/// `voldisefs ls ID`: the files of a collection.
pub(super) async fn list(args: LsArgs, id: &str) -> anyhow::Result<()> {
    let password = password::obtain(args.password.password_file.as_deref(), false)?;
    let client = NodeClient::new(&args.node)?;
    let answer = client.collection(id, Auth::Password(&password)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let listing: Listing = serde_json::from_value(answer)
        .context("the node's collection listing is not what was expected")?;
    print!("{}", listing_table(&listing));
    Ok(())
}

/// The `ls ID` table: one row per file, the path last.
fn listing_table(listing: &Listing) -> String {
    let rows: Vec<Vec<String>> = listing
        .files
        .iter()
        .map(|f| vec![f.id.clone(), format_size(f.size), printable(&f.path)])
        .collect();
    let mut out = render(&["ID", "SIZE", "PATH"], &rows);
    out.push_str(&format!(
        "{} file{}, {} in all, collection {}\n",
        listing.files.len(),
        if listing.files.len() == 1 { "" } else { "s" },
        format_size(listing.size),
        printable(&listing.name)
    ));
    out
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

    fn listed(path: &str) -> ListedFile {
        ListedFile {
            path: path.into(),
            size: 1,
            id: "00".into(),
            read_key: None,
        }
    }

    #[test]
    fn the_plan_never_writes_through_links_or_over_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let files = [listed("a/b"), listed("c")];
        let targets = plan(&dir, &files, false).unwrap();
        assert_eq!(targets, [dir.join("a/b"), dir.join("c")]);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(tmp.path(), dir.join("a")).unwrap();
        let err = plan(&dir, &files, true).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::remove_file(dir.join("a")).unwrap();
        std::fs::write(dir.join("c"), b"old").unwrap();
        let err = plan(&dir, &files, false).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert!(plan(&dir, &files, true).is_ok());
        std::fs::write(dir.join("a"), b"a file").unwrap();
        let err = plan(&dir, &files, true).unwrap_err();
        assert!(err.to_string().contains("a file is there"), "{err}");
    }

    #[test]
    fn hostile_listings_are_refused() {
        for paths in [
            &["../x"][..],
            &["/etc/passwd"],
            &["a", "a"],
            &["a", "a/b"],
            &["a/./b"],
        ] {
            let listing = Listing {
                id: "00".into(),
                name: "n".into(),
                size: 0,
                files: paths.iter().map(|p| listed(p)).collect(),
            };
            assert!(checked(&listing).is_err(), "{paths:?}");
        }
    }
}

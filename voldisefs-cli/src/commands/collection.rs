//! Collections from the command line: `put` of several paths or a folder, `get` of a
//! collection id (recreating its folders), `ls ID`.
//!
//! A collection is checked before anything is written, whoever sealed it: every path must be
//! relative and stay inside the output folder (no `..`, no absolute path, no duplicates, no
//! file where another entry needs a folder), no existing symbolic link or file may stand on
//! the way, and no file may exist already unless `--force`. Only then are folders created and
//! files downloaded, each into a temporary file renamed into place once complete; all of it
//! through the output folder's open handle, one name at a time, never following a symbolic
//! link ([`crate::folder`]), so a folder swapped for a link during the download is refused.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio_util::io::ReaderStream;
use voldisefs_node::crypto::client::{Access, Opened};
use voldisefs_node::crypto::{
    Collection, CollectionEntry, FileKind, MAX_COLLECTION_ENTRIES, MAX_PATH_LEN, Password,
    Plaintext, check_path,
};

use super::download::Download;
use crate::cli::{GetArgs, LsArgs, PutArgs};
use crate::folder::Folder;
use crate::names::safe_file_name;
use crate::password;
use crate::progress::TransferBar;
use crate::size::format_size;
use crate::store::hex;
use crate::store::{Session, crypto_error};
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
        let name = super::upload::upload_name(arg)?;
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
pub(super) async fn put(args: PutArgs) -> anyhow::Result<()> {
    let items = gather(&args.files)?;
    let name = args.name.clone().or_else(|| match &args.files[..] {
        [one] => super::upload::upload_name(one).ok(),
        _ => None,
    });
    let name = name.unwrap_or_else(|| format!("{} files", items.len()));
    let password = password::obtain(args.password.password_file.as_deref(), true)?;
    let session = Session::open(&args.node).await?;
    let request = super::upload::Request::new(&session, &args)?;
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

/// Where each file of `files` goes under `dir`, after checking that writing there stays
/// inside `dir`: no existing symbolic link or non-folder where a folder is needed, no existing
/// file unless `force`.
fn plan(dir: &Path, files: &[&str], force: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut targets = Vec::with_capacity(files.len());
    let mut checked_dirs = std::collections::HashSet::new();
    for file in files {
        let mut at = dir.to_path_buf();
        let components: Vec<&str> = file.split('/').collect();
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
/// name), or writes it as a tar archive to standard output with `-o -`. Every file is opened
/// here with the read key the listing holds.
pub(super) async fn get(args: GetArgs, session: Session, opened: Opened) -> anyhow::Result<()> {
    let listing = session
        .client
        .collection(&opened)
        .await
        .map_err(|e| crypto_error(e, &args.id))?;
    let entries = listing.entries();
    if args.output.as_deref().is_some_and(|o| o.as_os_str() == "-") {
        return archive(&session, entries, opened.manifest().created()).await;
    }
    let dir = match args.output {
        Some(dir) => dir,
        None => PathBuf::from(safe_file_name(Some(opened.manifest().name()), &args.id)),
    };
    if let Ok(meta) = std::fs::symlink_metadata(&dir) {
        if !meta.is_dir() && !meta.file_type().is_symlink() {
            bail!("{} exists and is not a folder", dir.display());
        }
    }
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let targets = plan(&dir, &paths, args.force)?;
    // Nothing was written before this point. From here on, every folder and file is reached
    // through the handle of the output folder, never through a symbolic link (see
    // `crate::folder`): what `plan` saw may have changed since. The folders first, so that a
    // folder that cannot be made stops the command before any download.
    let root = Folder::create(&dir)?;
    let mut made = std::collections::HashSet::new();
    for path in &paths {
        let (folders, _) = split(path);
        if made.insert(folders) {
            root.descend(folders.split('/').filter(|f| !f.is_empty()))?;
        }
    }
    let bar = TransferBar::new(Some(listing.total_size()), "downloading", args.quiet);
    let (session, force, bar_ref, root) = (&session, args.force, &bar, &root);
    futures_util::stream::iter(entries.iter().zip(&targets))
        .map(|(entry, target)| async move {
            let download = member(session, entry).await?;
            // Reached afresh from the output folder for each file: a folder swapped for a
            // link meanwhile is refused here.
            let (folders, name) = split(&entry.path);
            let folder = root.descend(folders.split('/').filter(|f| !f.is_empty()))?;
            super::download::to_file(download, &folder, OsStr::new(name), target, force, true)
                .await?;
            bar_ref.inc(entry.size);
            anyhow::Ok(())
        })
        .buffer_unordered(PARALLEL_GETS)
        .try_collect::<()>()
        .await?;
    drop(bar);
    if !args.quiet {
        eprintln!(
            "wrote {} file{} ({}) under {}",
            entries.len(),
            if entries.len() == 1 { "" } else { "s" },
            format_size(listing.total_size()),
            dir.display()
        );
    }
    println!("{}", dir.display());
    Ok(())
}

/// A collection path's folders (`a/b` of `a/b/c`, empty for `c`) and file name.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Opens one file of a collection by its read key, refusing one whose size is not the one
/// the listing gives.
async fn member(session: &Session, entry: &CollectionEntry) -> anyhow::Result<Download> {
    let id = hex(&entry.file);
    let opened = session
        .client
        .open(entry.file, Access::ReadKey(entry.read.clone()))
        .await
        .map_err(|e| crypto_error(e, &id))?;
    if opened.manifest().size() != entry.size || opened.manifest().kind() != FileKind::File {
        bail!(
            "refusing {}: the collection lists {} bytes, the file has another size",
            printable(&entry.path),
            entry.size
        );
    }
    Download::of(session, &opened, None)
}

/// Writes the collection's files to standard output as one tar archive, streamed: files are
/// opened (and small ones read) [`PARALLEL_GETS`] ahead of the one being written.
async fn archive(session: &Session, entries: &[CollectionEntry], mtime: u64) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut stdout = tokio::io::stdout();
    let fail = || "cannot write to standard output";
    let small = session.client.settings().chunk_size.bytes() as u64;
    let mut members = futures_util::stream::iter(entries)
        .map(|entry| async move {
            let mut download = member(session, entry).await?;
            // A file of one chunk is read ahead too; larger ones stream when their turn comes.
            let mut ahead = Vec::new();
            if entry.size <= small {
                while let Some(piece) = download.next_chunk().await? {
                    ahead.push(piece);
                }
            }
            anyhow::Ok((entry, ahead, download))
        })
        .buffered(PARALLEL_GETS);
    while let Some(next) = members.next().await {
        let (entry, ahead, mut download) = next?;
        let header = voldisefs_node::archive::file_header(&entry.path, entry.size, mtime)?;
        stdout.write_all(&header).await.context(fail())?;
        let mut written = 0u64;
        for piece in ahead {
            written += piece.len() as u64;
            stdout.write_all(&piece).await.context(fail())?;
        }
        while let Some(piece) = download.next_chunk().await? {
            written += piece.len() as u64;
            stdout.write_all(&piece).await.context(fail())?;
        }
        anyhow::ensure!(
            written == entry.size,
            "a file of the collection was cut short"
        );
        let padding = voldisefs_node::archive::padding(entry.size);
        stdout
            .write_all(&[0u8; 512][..padding])
            .await
            .context(fail())?;
    }
    stdout
        .write_all(&voldisefs_node::archive::END)
        .await
        .context(fail())?;
    stdout.flush().await.context(fail())
}

/// `voldisefs ls ID`: the files of a collection, opened on this machine.
pub(super) async fn list(args: LsArgs, id: &str) -> anyhow::Result<()> {
    let password = password::obtain(args.password.password_file.as_deref(), false)?;
    let session = Session::open(&args.node).await?;
    let opened = session
        .client
        .open_kind(
            super::download::parse_id(id)?,
            Access::Password(Password::new(password.to_vec())),
            FileKind::Collection,
        )
        .await
        .map_err(|e| crypto_error(e, id))?;
    let listing = session
        .client
        .collection(&opened)
        .await
        .map_err(|e| crypto_error(e, id))?;
    let manifest = opened.manifest();
    if args.json {
        let files: Vec<serde_json::Value> = listing
            .entries()
            .iter()
            .map(|e| {
                serde_json::json!({
                    "path": e.path,
                    "size": e.size,
                    "id": hex(&e.file),
                    "read_key": e.read.to_hex().as_str(),
                })
            })
            .collect();
        let answer = serde_json::json!({
            "id": id,
            "name": manifest.name(),
            "size": listing.total_size(),
            "created": manifest.created(),
            "files": files,
        });
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    print!("{}", listing_table(manifest.name(), &listing));
    Ok(())
}

/// The `ls ID` table: one row per file, the path last.
fn listing_table(name: &str, listing: &Collection) -> String {
    let rows: Vec<Vec<String>> = listing
        .entries()
        .iter()
        .map(|f| vec![hex(&f.file), format_size(f.size), printable(&f.path)])
        .collect();
    let mut out = render(&["ID", "SIZE", "PATH"], &rows);
    out.push_str(&format!(
        "{} file{}, {} in all, collection {}\n",
        listing.entries().len(),
        if listing.entries().len() == 1 {
            ""
        } else {
            "s"
        },
        format_size(listing.total_size()),
        printable(name)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;
    use std::sync::Arc;
    use voldisefs_node::crypto::Redundancy;
    use voldisefs_node::crypto::client::{
        BoxFuture, Client, DeleteScope, Fetched, MemoryStore, Object, ObjectKind, ObjectStore,
        Settings, StoreError, Stored, Threads,
    };

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

    #[test]
    fn the_plan_never_writes_through_links_or_over_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let files = ["a/b", "c"];
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

    /// The attacker: a local user who can write to the output folder. A store over a
    /// [`MemoryStore`] that, on the first read after the folder `watch` appears (the download
    /// has created its folders and is fetching the files), moves it away and puts a symbolic
    /// link to `outside` in its place.
    struct SwapOnRead {
        inner: MemoryStore,
        watch: PathBuf,
        moved: PathBuf,
        outside: PathBuf,
        swapped: std::sync::atomic::AtomicBool,
    }

    impl SwapOnRead {
        fn attack(&self) {
            use std::sync::atomic::Ordering;
            let is_dir = std::fs::symlink_metadata(&self.watch).is_ok_and(|m| m.is_dir());
            if is_dir && !self.swapped.swap(true, Ordering::SeqCst) {
                std::fs::rename(&self.watch, &self.moved).unwrap();
                std::os::unix::fs::symlink(&self.outside, &self.watch).unwrap();
            }
        }
    }

    impl ObjectStore for SwapOnRead {
        fn put(&self, objects: Vec<Object>) -> BoxFuture<'_, Result<Stored, StoreError>> {
            self.inner.put(objects)
        }
        fn put_stripe(
            &self,
            stripe: voldisefs_node::crypto::EncodedStripe,
        ) -> BoxFuture<'_, Result<Stored, StoreError>> {
            self.inner.put_stripe(stripe)
        }
        fn get(
            &self,
            source: usize,
            id: [u8; 32],
            kind: ObjectKind,
        ) -> BoxFuture<'_, Result<Fetched, StoreError>> {
            self.attack();
            self.inner.get(source, id, kind)
        }
        fn delete(
            &self,
            key: voldisefs_node::crypto::DeleteKey,
            ids: Vec<[u8; 32]>,
            scope: DeleteScope,
        ) -> BoxFuture<'_, Result<(), StoreError>> {
            self.inner.delete(key, ids, scope)
        }
    }

    /// A session over `store`, with the cheapest key derivation a default build accepts.
    fn session_over(store: Arc<dyn ObjectStore>) -> Session {
        use voldisefs_node::crypto::{ChunkSize, KdfParams, MIN_M_KIB, MIN_P, MIN_T};
        let kdf = KdfParams::new(MIN_M_KIB, MIN_T, MIN_P).unwrap();
        let settings = Settings {
            kdf,
            kdf_ceiling: kdf,
            chunk_size: ChunkSize::from_bytes(64 * 1024).unwrap(),
            ..Settings::default()
        };
        let client = Client::new(store, Arc::new(Threads::new(1).unwrap()), settings).unwrap();
        let info = voldisefs_node::NodeInfo {
            chunk_size: 64 * 1024,
            kdf_m_kib: MIN_M_KIB,
            kdf_t: MIN_T,
            kdf_p: MIN_P,
            replicas: 1,
            redundancy: "replicas:1".into(),
            live_nodes: 1,
            default_expiry: None,
            max_expiry: None,
            max_object: 1 << 20,
            max_batch_bytes: 1 << 20,
            max_batch_objects: 64,
            max_delete_ids: 64,
        };
        Session { client, info }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_folder_swapped_for_a_link_mid_download_lets_nothing_out() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let store = Arc::new(SwapOnRead {
            inner: MemoryStore::new(),
            watch: out.join("a"),
            moved: tmp.path().join("moved"),
            outside: outside.clone(),
            swapped: Default::default(),
        });
        let session = session_over(store.clone());
        let client = &session.client;
        let key = client.derive(Password::new("pw")).await.unwrap();
        let mut upload = client.collection_upload(key, 0, Redundancy::Replicas(1));
        for path in ["a/x.txt", "a/y.txt"] {
            let bytes = Plaintext::new(path.as_bytes().to_vec());
            upload.add_bytes(path, bytes).await.unwrap();
        }
        let receipt = upload.finish("evil").await.unwrap();
        let opened = client
            .open(receipt.id, Access::ReadKey(receipt.read_key.clone()))
            .await
            .unwrap();
        let id = hex(&receipt.id);
        let cli = crate::cli::Cli::try_parse_from([
            "voldisefs",
            "get",
            &id,
            "-o",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .unwrap();
        let crate::cli::Command::Get(args) = cli.command else {
            panic!("not a get");
        };

        let result = get(args, session, opened).await;
        assert!(store.swapped.load(std::sync::atomic::Ordering::SeqCst));
        let escaped: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(escaped.is_empty(), "written outside: {escaped:?}");
        // Nothing half-written is left behind either.
        let moved = std::fs::read_dir(tmp.path().join("moved")).unwrap().count();
        assert_eq!(moved, 0);
        let err = result.unwrap_err().to_string();
        let shown = out.join("a").display().to_string();
        assert!(
            err.contains("symbolic link") && err.contains(&shown) && !err.contains(".part"),
            "{err}"
        );
    }
}

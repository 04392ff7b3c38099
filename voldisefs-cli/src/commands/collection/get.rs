//! `get` of a collection id (recreating its folders, or one tar archive on standard output)
//! and `ls ID`: the listing is checked and the targets planned before anything is written.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _};
use voldisefs_node::crypto::client::{Access, Opened};
use voldisefs_node::crypto::{Collection, CollectionEntry, FileKind, Password};

use super::printable;
use crate::cli::{GetArgs, LsArgs};
use crate::commands::download::Download;
use crate::folder::Folder;
use crate::names::safe_file_name;
use crate::password;
use crate::progress::TransferBar;
use crate::size::format_size;
use crate::store::hex;
use crate::store::{Session, crypto_error};
use crate::table::render;

/// Files of a collection downloaded at once.
const PARALLEL_GETS: usize = 8;

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
pub(in crate::commands) async fn get(
    args: GetArgs,
    session: Session,
    opened: Opened,
) -> anyhow::Result<()> {
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
            crate::commands::download::to_file(
                download,
                &folder,
                OsStr::new(name),
                target,
                force,
                true,
            )
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
pub(in crate::commands) async fn list(args: LsArgs, id: &str) -> anyhow::Result<()> {
    let password = password::obtain(args.password.password_file.as_deref(), false)?;
    let session = Session::open(&args.node).await?;
    let opened = session
        .client
        .open_kind(
            crate::commands::download::parse_id(id)?,
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
    use voldisefs_node::crypto::client::{
        BoxFuture, Client, DeleteScope, Fetched, MemoryStore, Object, ObjectKind, ObjectStore,
        Settings, StoreError, Stored, Threads,
    };
    use voldisefs_node::crypto::{Plaintext, Redundancy};

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

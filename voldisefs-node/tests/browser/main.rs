//! The web page end to end in headless Chromium: `e2e.mjs` (playwright-core) drives the pages of
//! a real local network of in-process nodes, and saves a screenshot of each step under
//! `target/browser-screenshots/`; `leak.mjs` loads two nodes' pages through recording proxies
//! and checks that no secret (password, names, share-link key, plaintext) crosses either.
//! The two run one after the other (each starts a Chromium; the machine may have two cores).
//!
//! Needs `node`, Chromium (`/usr/bin/chromium`, or `$VOLDISEFS_CHROMIUM`) and `npm ci` run in
//! `voldisefs-node/tests/browser`. Without them the test says why and passes, unless
//! `VOLDISEFS_BROWSER_TESTS=1` (as `.ci/run` sets), which makes anything missing a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::sync::Arc;

use common::{CHUNK, data, pw};
use voldisefs_node::crypto::client::{Access, Client, Keying, PutOptions, Settings, Threads};
use voldisefs_node::crypto::{ChunkSize, Redundancy};
use voldisefs_node::{Node, NodeConfig, RemoteStore};

/// Non-ASCII on purpose: the page must send the same bytes as the CLI.
const PASSWORD: &str = "corr\u{e9}ct h\u{f6}rse \u{2713} battery";
/// The uploaded file's name, non-ASCII too (Content-Disposition round trip).
const FILE_NAME: &str = "r\u{e9}sum\u{e9} \u{2713} test.bin";
/// Capacity of the lone node that must answer "full", and the size of the file that overflows it.
const TINY_CAPACITY: u64 = 256 << 10;
const BIG: usize = 1 << 20;

/// Says something on the real stderr, past the test harness's capture.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// What is missing to run the browser test, if anything.
fn missing_tools(dir: &Path, chromium: &Path) -> Option<String> {
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("`node` is not installed".into());
    }
    if !chromium.exists() {
        return Some(format!("Chromium is not at {}", chromium.display()));
    }
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Some(format!(
            "playwright-core is not installed (run `npm ci` in {})",
            dir.display()
        ));
    }
    None
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

fn url(node: &Node) -> String {
    format!("http://{}/", node.http_addr().unwrap())
}

/// Serialises the browser tests: each starts a Chromium.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where the scripts live and the browser, or `None` (the test is skipped) when something is
/// missing and `VOLDISEFS_BROWSER_TESTS` is not `1`.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let required = std::env::var("VOLDISEFS_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let chromium = PathBuf::from(
        std::env::var("VOLDISEFS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if let Some(missing) = missing_tools(&dir, &chromium) {
        assert!(!required, "VOLDISEFS_BROWSER_TESTS=1 but {missing}");
        say(&format!(
            "SKIPPED browser test: {missing}. `.ci/run` installs what it needs; \
             set VOLDISEFS_BROWSER_TESTS=1 to make this an error."
        ));
        return None;
    }
    Some((dir, chromium))
}

/// Runs `node SCRIPT` in `dir` with `envs` (at most 180 s), echoes its output and returns its
/// stdout; fails the test when it fails. std::process (tokio's needs a feature this crate does
/// not enable): output goes to files, and the child is polled so the nodes keep serving on
/// this runtime meanwhile.
async fn run_script(dir: &Path, script: &str, envs: &[(&str, String)]) -> String {
    let work = target_dir().join("browser-e2e");
    std::fs::create_dir_all(&work).unwrap();
    let stdout_path = work.join(format!("{script}.stdout"));
    let stderr_path = work.join(format!("{script}.stderr"));
    let started = Instant::now();
    let mut command = std::process::Command::new("node");
    command.arg(dir.join(script)).current_dir(dir);
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("spawn node");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} did not finish within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    say(&format!(
        "{script} ({:.1} s):\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    ));
    assert!(status.success(), "{script} failed: {status}");
    stdout
}

fn hex(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client as the CLI runs it: sealing on this machine, over a node's object API, with the
/// default Argon2id parameters (what the page uses too).
fn cli_client(node: &Node) -> Client {
    let store = RemoteStore::new(&[url(node).parse().unwrap()], None).unwrap();
    Client::new(
        Arc::new(store),
        Arc::new(Threads::new(2).unwrap()),
        Settings {
            chunk_size: ChunkSize::from_bytes(CHUNK as u64).unwrap(),
            ..Settings::default()
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_end_to_end_in_chromium() {
    let Some((dir, chromium)) = tools() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let target = target_dir();
    let shots = target.join("browser-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let work = target.join("browser-e2e");
    std::fs::create_dir_all(&work).unwrap();
    let input = work.join(FILE_NAME);
    let bytes = data(32 * CHUNK + 123, 11);
    std::fs::write(&input, &bytes).unwrap();
    // A folder for the page's folder upload: nested, an empty file, non-ASCII names.
    let folder = work.join("album");
    let _ = std::fs::remove_dir_all(&folder);
    let mut tree = std::collections::BTreeMap::new();
    for (rel, content) in [
        ("cover.jpg", data(3 * CHUNK + 7, 12)),
        ("empty", Vec::new()),
        ("sub dir/\u{e9}t\u{e9} \u{65e5}.txt", b"unicode".to_vec()),
        ("sub dir/deep/x.bin", data(1000, 13)),
    ] {
        let path = folder.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &content).unwrap();
        tree.insert(format!("album/{rel}"), content);
    }
    let archive = work.join("album-download.tar");
    let _ = std::fs::remove_file(&archive);

    // A network of three, and a lone node too small for BIG bytes.
    let nodes = common::network_with(3, |c| NodeConfig {
        replicas: 2,
        capacity: 64 << 20,
        ..c
    })
    .await;
    let tiny = Node::start(NodeConfig {
        replicas: 1,
        capacity: TINY_CAPACITY,
        ..common::config()
    })
    .await
    .unwrap();

    // A file sealed as the CLI seals it (on this machine, through the object API): the page
    // must open it.
    let cli_bytes = data(5 * CHUNK + 77, 14);
    let cli_path = work.join("sealed-by-the-cli.bin");
    std::fs::write(&cli_path, &cli_bytes).unwrap();
    let cli = cli_client(&nodes[2]);
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(
        cli_bytes.clone(),
    ))]);
    let cli_file = cli
        .put(
            Keying::Password(pw(PASSWORD)),
            PutOptions::file("sealed-by-the-cli.bin", Redundancy::Replicas(2)),
            body,
        )
        .await
        .unwrap()
        .id;

    let stdout = run_script(
        &dir,
        "e2e.mjs",
        &[
            ("VOLDISEFS_NODE_A", url(&nodes[0])),
            ("VOLDISEFS_NODE_B", url(&nodes[1])),
            ("VOLDISEFS_NODE_FULL", url(&tiny)),
            ("VOLDISEFS_BIG_SIZE", BIG.to_string()),
            ("VOLDISEFS_INPUT_FILE", input.display().to_string()),
            ("VOLDISEFS_INPUT_DIR", folder.display().to_string()),
            ("VOLDISEFS_ARCHIVE_OUT", archive.display().to_string()),
            ("VOLDISEFS_PASSWORD", PASSWORD.into()),
            ("VOLDISEFS_SCREENSHOTS", shots.display().to_string()),
            ("VOLDISEFS_CHROMIUM", chromium.display().to_string()),
            ("VOLDISEFS_CLI_FILE_ID", hex(&cli_file)),
            ("VOLDISEFS_CLI_FILE", cli_path.display().to_string()),
        ],
    )
    .await;

    // The file the page uploaded opens, outside any browser, with the same password: the page
    // sends the password's UTF-8 bytes just as the CLI does.
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("e2e.mjs printed no RESULT line");
    let result: serde_json::Value = serde_json::from_str(result).unwrap();
    let id = result["id"].as_str().unwrap().parse().unwrap();
    let (name, got) = nodes[2].download_bytes(id, pw(PASSWORD)).await.unwrap();
    assert_eq!(name, FILE_NAME);
    assert!(got[..] == bytes[..], "bytes differ");
    // And as the CLI opens it: on this machine, from the object API.
    let opened = cli
        .open(*id.as_bytes(), Access::Password(pw(PASSWORD)))
        .await
        .unwrap();
    assert_eq!(opened.manifest().name(), FILE_NAME);
    assert!(
        cli.read_all(&opened, 1 << 30).await.unwrap() == bytes,
        "bytes differ"
    );

    // The archive the page downloaded holds the folder, file by file.
    let tar_bytes = std::fs::read(&archive).unwrap();
    let mut unpacked = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(&tar_bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        unpacked.insert(path, content);
    }
    assert_eq!(
        unpacked, tree,
        "the archive differs from the uploaded folder"
    );
    let collection = result["collection"].as_str().unwrap().parse().unwrap();
    let listing = nodes[2].collection(collection, pw(PASSWORD)).await.unwrap();
    assert_eq!(listing.name, "album");
    assert_eq!(listing.files.len(), tree.len());

    tiny.shutdown().await;
    common::shutdown(nodes).await;
}

/// No secret crosses a proxy in front of either node: leak.mjs uploads a file and a folder on
/// node A's page and downloads them through links and the password on node B's page, both
/// pages loaded through recording proxies, then searches every recorded byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_crosses_a_proxy_in_front_of_either_node() {
    let Some((dir, chromium)) = tools() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let target = target_dir();
    let shots = target.join("browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let work = target.join("browser-leak");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let input = work.join("quarterly-r\u{e9}sults-draft.bin");
    std::fs::write(&input, data(9 * CHUNK + 5, 21)).unwrap();
    let folder = work.join("private-holiday-photos");
    for (rel, content) in [
        ("beach-sunrise.jpg", data(2 * CHUNK + 3, 22)),
        (
            "notes/passport-number.txt",
            b"a few private words, in the clear".to_vec(),
        ),
    ] {
        let path = folder.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &content).unwrap();
    }
    let nodes = common::network_with(2, |c| NodeConfig {
        replicas: 2,
        capacity: 64 << 20,
        ..c
    })
    .await;
    run_script(
        &dir,
        "leak.mjs",
        &[
            ("VOLDISEFS_NODE_A", url(&nodes[0])),
            ("VOLDISEFS_NODE_B", url(&nodes[1])),
            ("VOLDISEFS_INPUT_FILE", input.display().to_string()),
            ("VOLDISEFS_INPUT_DIR", folder.display().to_string()),
            ("VOLDISEFS_PASSWORD", PASSWORD.into()),
            ("VOLDISEFS_SCREENSHOTS", shots.display().to_string()),
            ("VOLDISEFS_CHROMIUM", chromium.display().to_string()),
        ],
    )
    .await;
    common::shutdown(nodes).await;
}

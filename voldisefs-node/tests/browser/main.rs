//! The web page end to end in headless Chromium: `e2e.mjs` (playwright-core) drives the pages of
//! a real local network of in-process nodes, and saves a screenshot of each step under
//! `target/browser-screenshots/`.
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

use common::{CHUNK, data, pw};
use voldisefs_node::{Node, NodeConfig};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_end_to_end_in_chromium() {
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
        return;
    }

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

    let started = Instant::now();
    // std::process (tokio's needs a feature this crate does not enable): output goes to files,
    // and the child is polled so the nodes keep serving on this runtime meanwhile.
    let stdout_path = work.join("e2e.stdout");
    let stderr_path = work.join("e2e.stderr");
    let mut child = std::process::Command::new("node")
        .arg(dir.join("e2e.mjs"))
        .current_dir(&dir)
        .env("VOLDISEFS_NODE_A", url(&nodes[0]))
        .env("VOLDISEFS_NODE_B", url(&nodes[1]))
        .env("VOLDISEFS_NODE_FULL", url(&tiny))
        .env("VOLDISEFS_BIG_SIZE", BIG.to_string())
        .env("VOLDISEFS_INPUT_FILE", &input)
        .env("VOLDISEFS_INPUT_DIR", &folder)
        .env("VOLDISEFS_ARCHIVE_OUT", &archive)
        .env("VOLDISEFS_PASSWORD", PASSWORD)
        .env("VOLDISEFS_SCREENSHOTS", &shots)
        .env("VOLDISEFS_CHROMIUM", &chromium)
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
            panic!("the browser test did not finish within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    say(&format!(
        "browser test ({:.1} s):\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    ));
    assert!(status.success(), "e2e.mjs failed: {status}");

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

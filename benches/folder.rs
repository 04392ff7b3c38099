//! Many small files (issue 12): a folder of 1,000 files of 4 KiB put and fetched as one
//! collection through the `voldisefs` CLI on a 3-node network, against the same files put and
//! fetched one `voldisefs put` / `get` at a time, side by side in one run.
//!
//! The nodes run in this process on `127.0.0.1` with the default (real) Argon2id parameters and
//! HTTP APIs; every CLI invocation is a separate process, as a user would run it. The folder
//! goes up through node 0 and comes back through node 1 (so the reading node derives the
//! password key itself, once); separate files likewise, each paying its own Argon2id run on
//! both sides. Every byte fetched is compared with what was put.
//!
//! ```sh
//! cargo bench --bench folder                       # 1,000 files; 40 separate ones
//! cargo bench --bench folder -- --files 5000 --separate 100
//! ```
//! Without `--bench` it does a smoke run (20 files, 3 separate). It builds the CLI first
//! (`cargo build -p voldisefs-cli`, same profile as the bench).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use voldisefs::node::NodeConfig;

type Error = Box<dyn std::error::Error + Send + Sync>;

const PASSWORD: &str = "a folder bench password";
const FILE_LEN: usize = 4096;

/// `--name N` from the command line, else `default`.
fn option(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Builds the CLI in this bench's profile and returns its path.
fn cli() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/folder-<hash> -> target/<profile>/voldisefs
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "voldisefs-cli"]);
    if release {
        build.arg("--release");
    }
    if !build.status()?.success() {
        return Err("building the CLI failed".into());
    }
    Ok(profile_dir.join("voldisefs"))
}

/// Runs the CLI with `args` and returns its last line of output.
fn run(cli: &Path, args: &[&str]) -> Result<String, Error> {
    let output = Command::new(cli)
        .args(args)
        .env("VOLDISEFS_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "voldisefs {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    Ok(stdout.lines().last().unwrap_or_default().to_owned())
}

/// The bytes of file `i`.
fn content(i: usize) -> Vec<u8> {
    support::pseudo_random(FILE_LEN, i as u64 + 1)
}

fn rate(files: usize, secs: f64) -> f64 {
    files as f64 / secs
}

fn main() -> Result<(), Error> {
    let bench = std::env::args().any(|a| a == "--bench");
    let files = option("--files", if bench { 1000 } else { 20 });
    let separate = option("--separate", if bench { 40 } else { 3 });
    let cli = cli()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let nodes = rt.block_on(support::network(3, NodeConfig::ephemeral));
    let url = |i: usize| format!("http://{}", nodes[i].http_addr().expect("HTTP is on"));

    let work = tempfile_dir()?;
    let folder = work.join("folder");
    for i in 0..files {
        let dir = folder.join(format!("d{:02}", i % 10));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("f{i:05}.bin")), content(i))?;
    }

    // The folder, as one collection.
    let started = Instant::now();
    let id = run(
        &cli,
        &[
            "put",
            folder.to_str().ok_or("path")?,
            "--quiet",
            "--node",
            &url(0),
        ],
    )?;
    let folder_put = started.elapsed().as_secs_f64();
    let out = work.join("out");
    let started = Instant::now();
    run(
        &cli,
        &[
            "get",
            &id,
            "-o",
            out.to_str().ok_or("path")?,
            "--quiet",
            "--node",
            &url(1),
        ],
    )?;
    let folder_get = started.elapsed().as_secs_f64();
    for i in 0..files {
        let path = out.join(format!("folder/d{:02}/f{i:05}.bin", i % 10));
        if std::fs::read(&path)? != content(i) {
            return Err(format!("{} differs", path.display()).into());
        }
    }

    // The same kind of files, one command each.
    let mut ids = Vec::new();
    let started = Instant::now();
    for i in 0..separate {
        let path = folder.join(format!("d{:02}/f{i:05}.bin", i % 10));
        ids.push(run(
            &cli,
            &[
                "put",
                path.to_str().ok_or("path")?,
                "--quiet",
                "--node",
                &url(0),
            ],
        )?);
    }
    let single_put = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let target = work.join(format!("single{i}"));
        run(
            &cli,
            &[
                "get",
                id,
                "-o",
                target.to_str().ok_or("path")?,
                "--quiet",
                "--node",
                &url(1),
            ],
        )?;
        if std::fs::read(&target)? != content(i) {
            return Err(format!("file {i} differs").into());
        }
    }
    let single_get = started.elapsed().as_secs_f64();

    println!("3 nodes, replicas 3, files of {FILE_LEN} B, default Argon2id, through the CLI");
    println!("| how | files | put s | put files/s | get s | get files/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| one folder (`put DIR`, `get ID -o DIR`) | {files} | {folder_put:.2} | {:.0} | {folder_get:.2} | {:.0} |",
        rate(files, folder_put),
        rate(files, folder_get)
    );
    println!(
        "| separate `put FILE` / `get ID` | {separate} | {single_put:.2} | {:.1} | {single_get:.2} | {:.1} |",
        rate(separate, single_put),
        rate(separate, single_get)
    );
    println!(
        "folder / separate: put {:.0}x, get {:.0}x",
        rate(files, folder_put) / rate(separate, single_put),
        rate(files, folder_get) / rate(separate, single_get)
    );
    rt.block_on(async {
        for node in nodes {
            node.shutdown().await;
        }
    });
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> Result<PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!("voldisefs-folder-bench-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

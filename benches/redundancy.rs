//! Replication against erasure coding (issue 14), side by side in one run: the same files on
//! two fresh networks of 8 in-process nodes on loopback, one keeping `replicas:3`, the other
//! `rs:4+2`. For each it measures:
//!
//! 1. bytes stored across the network (every node's store, entry overhead included) against
//!    the files' size, once repair has nothing left to do;
//! 2. PUT throughput (files uploaded one after another through node 0) and GET throughput
//!    (downloaded through node 1, every byte compared with what was put);
//! 3. repair time after the node holding the most is lost abruptly: from the crash until the
//!    last object is rebuilt or copied (repair idle and nothing changing for 3 s after it;
//!    detection included; default repair settings, the same for both), with the objects held
//!    before and after.
//!
//! It prints a table and the ratios rs:4+2 / replicas:3 (targets: at most 1.55x the files'
//! size stored; PUT and GET at least 90 % of replication's; repair at most 1.5x its time).
//! The data path is measured, not Argon2id: the nodes use the insecure test KDF.
//!
//! ```sh
//! cargo bench --bench redundancy                   # 1 GiB: 8 files of 128 MiB
//! cargo bench --bench redundancy -- --mib 256 --files 4
//! ```
//! Without `--bench` (as `cargo test --benches` runs it) it does a small smoke run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use voldisefs::crypto::{FileKind, KdfParams, Password, Redundancy};
use voldisefs::node::{Node, NodeConfig, UploadOptions};
use voldisefs::proto::FileId;

const NODES: usize = 8;
const MIB: u64 = 1 << 20;
const PASSWORD: &str = "a redundancy bench password";

fn config(redundancy: Redundancy) -> NodeConfig {
    NodeConfig {
        http: None,
        capacity: 8 << 30,
        kdf: KdfParams::insecure_test(),
        replicas: 3,
        redundancy: Some(redundancy),
        ..NodeConfig::ephemeral()
    }
}

/// File `i`'s bytes: cheap to make, different in every chunk.
fn file_bytes(i: u64, len: u64) -> Bytes {
    Bytes::from(support::pseudo_random(len as usize, i + 1))
}

/// Waits until repair is idle everywhere and the object count is stable for a second.
async fn settled(nodes: &[Node]) -> u64 {
    let mut last = u64::MAX;
    let mut stable_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(
            Instant::now() < deadline,
            "repair did not settle in 10 minutes"
        );
        let held: u64 = nodes.iter().map(|n| n.status().store.chunks).sum();
        let idle = nodes.iter().all(|n| n.status().repair.backlog == 0);
        if held != last || !idle {
            last = held;
            stable_since = Instant::now();
        } else if stable_since.elapsed() > Duration::from_secs(1) {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Row {
    spec: Redundancy,
    stored: f64,
    put: f64,
    get: f64,
    repair: Duration,
}

async fn run(spec: Redundancy, files: u64, file_len: u64) -> Row {
    let nodes = support::network(NODES, || config(spec)).await;
    let total = files * file_len;
    let mut ids: Vec<FileId> = Vec::new();
    let started = Instant::now();
    for i in 0..files {
        let body = futures_util::stream::iter(
            file_bytes(i, file_len)
                .chunks(256 << 10)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let options = UploadOptions {
            redundancy: Some(spec),
            ..UploadOptions::default()
        };
        let r = nodes[0]
            .upload_with_options(
                &format!("f{i}"),
                Password::new(PASSWORD),
                FileKind::File,
                options,
                body,
            )
            .await
            .unwrap();
        ids.push(r.id);
    }
    let put = total as f64 / MIB as f64 / started.elapsed().as_secs_f64();
    let objects = settled(&nodes).await;
    let stored: u64 = nodes.iter().map(|n| n.status().store.bytes).sum();

    let started = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let download = nodes[1]
            .download(*id, Password::new(PASSWORD))
            .await
            .unwrap();
        let expected = file_bytes(i as u64, file_len);
        let mut at = 0usize;
        let mut body = download.body;
        while let Some(piece) = body.next().await {
            let piece = piece.unwrap();
            assert_eq!(
                &piece[..],
                &expected[at..at + piece.len()],
                "file {i} at {at}"
            );
            at += piece.len();
        }
        assert_eq!(at as u64, file_len);
    }
    let get = total as f64 / MIB as f64 / started.elapsed().as_secs_f64();

    // Lose the node holding the most, abruptly; time until everything is held again.
    let victim = nodes
        .iter()
        .skip(2)
        .max_by_key(|n| n.status().store.bytes)
        .unwrap()
        .clone();
    let survivors: Vec<Node> = nodes
        .iter()
        .filter(|n| n.id() != victim.id())
        .cloned()
        .collect();
    let lost_at = Instant::now();
    victim.crash().await;
    // Done when the lost node is gone everywhere, repair is idle and nothing changed for
    // three seconds; the repair time is when the last change happened.
    let deadline = lost_at + Duration::from_secs(600);
    let (mut last, mut changed_at) = ((0u64, 0u64), Instant::now());
    let held = loop {
        assert!(
            Instant::now() < deadline,
            "repair did not finish in 10 minutes"
        );
        let gone = survivors
            .iter()
            .all(|n| !n.live_nodes().contains(&victim.id()));
        let held: u64 = survivors.iter().map(|n| n.status().store.chunks).sum();
        let pushed: u64 = survivors.iter().map(|n| n.status().repair.pushed).sum();
        let idle = survivors.iter().all(|n| n.status().repair.backlog == 0);
        if (held, pushed) != last || !gone {
            // Repair starts once the loss is known everywhere: count from then at the latest.
            if (held, pushed) != last {
                last = (held, pushed);
            }
            changed_at = Instant::now();
        } else if idle && changed_at.elapsed() > Duration::from_secs(3) {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let repair = changed_at - lost_at;
    println!(
        "{spec}: {objects} objects before the loss, {held} after repair ({:.3})",
        held as f64 / objects as f64
    );
    for (i, id) in ids.iter().enumerate().take(2) {
        let (_, got) = survivors[1]
            .download_bytes(*id, Password::new(PASSWORD))
            .await
            .unwrap();
        assert_eq!(got, file_bytes(i as u64, file_len), "after repair");
    }
    for node in survivors {
        node.shutdown().await;
    }
    Row {
        spec,
        stored: stored as f64 / total as f64,
        put,
        get,
        repair,
    }
}

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (files, mib) = if bench {
        (arg("--files").unwrap_or(8), arg("--mib").unwrap_or(128))
    } else {
        (2, 4)
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<Row> = runtime.block_on(async {
        let mut rows = Vec::new();
        for spec in [
            Redundancy::Replicas(3),
            Redundancy::ErasureCoded { data: 4, parity: 2 },
        ] {
            rows.push(run(spec, files, mib * MIB).await);
        }
        rows
    });
    println!(
        "{files} files of {mib} MiB on {NODES} in-process nodes (chunks of 1 MiB, insecure test KDF)"
    );
    println!("| redundancy | stored / size | PUT MiB/s | GET MiB/s | repair after one node lost |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.3}x | {:.0} | {:.0} | {:.1?} |",
            r.spec, r.stored, r.put, r.get, r.repair
        );
    }
    let (a, b) = (&rows[0], &rows[1]);
    println!(
        "rs:4+2 / replicas:3: stored {:.3}, PUT {:.2}, GET {:.2}, repair time {:.2}",
        b.stored / a.stored,
        b.put / a.put,
        b.get / a.get,
        b.repair.as_secs_f64() / a.repair.as_secs_f64()
    );
}

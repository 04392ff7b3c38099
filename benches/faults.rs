//! Reads that must not wait on one bad peer, measured on real in-process nodes on loopback:
//!
//! 1. read latency: 7 nodes, replicas 3, 30 files of 2 MiB (1 MiB chunks); 200 sequential
//!    downloads through two healthy gateways with no fault, then 200 more while one holder is
//!    frozen (accepts connections, answers nothing, as under SIGSTOP); p50, p99 and max of each;
//! 2. requests per download chunk: networks of 5, 20 and 50 nodes; the chunk requests
//!    (`get_chunk`, `has_chunks`, `prove_chunks`, `put_chunk`, `delete_chunks`) a gateway
//!    sends while downloading 8 files of 4 chunks, per chunk (records included).
//!
//! The fast test KDF is used so the numbers show the data path, not Argon2id.
//! Run with `cargo bench --bench faults` (`-- --latency` or `-- --requests` for one part).
//! Without `--bench` (as `cargo test --benches` runs it) it does a small smoke run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use voldisefs::crypto::{KdfParams, Password};
use voldisefs::node::{Node, NodeConfig};
use voldisefs::proto::FileId;

fn config() -> NodeConfig {
    NodeConfig {
        http: None,
        kdf: KdfParams::insecure_test(),
        ..NodeConfig::ephemeral()
    }
}

async fn network(n: usize) -> Vec<Node> {
    support::network(n, config).await
}

fn bytes(len: usize, seed: u64) -> Bytes {
    Bytes::from(support::pseudo_random(len, seed))
}

async fn upload(node: &Node, files: usize, len: usize) -> Vec<FileId> {
    let mut ids = Vec::new();
    for i in 0..files {
        let r = node
            .upload_bytes("f", Password::new("pw"), bytes(len, i as u64))
            .await
            .unwrap();
        ids.push(r.id);
    }
    ids
}

/// p50, p99 and max of `samples`.
fn summary(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort_unstable();
    let at = |q: usize| samples[(samples.len() * q).div_ceil(100).saturating_sub(1)];
    (at(50), at(99), samples[samples.len() - 1])
}

/// How many reads per phase, and which network sizes to count requests on.
struct Scale {
    reads: usize,
    sizes: &'static [usize],
}

async fn reads(gateways: &[Node], ids: &[FileId], n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        gateways[i % gateways.len()]
            .download_bytes(ids[(i * 7) % ids.len()], Password::new("pw"))
            .await
            .unwrap();
        took.push(started.elapsed());
    }
    took
}

async fn latency(scale: &Scale) {
    let nodes = network(7).await;
    let ids = upload(&nodes[0], 30, 2 << 20).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // upload settling done
    let gateways = [nodes[0].clone(), nodes[1].clone()];
    let mut healthy = reads(&gateways, &ids, scale.reads).await;
    nodes[2].network().set_frozen(true);
    let mut frozen = reads(&gateways, &ids, scale.reads).await;
    nodes[2].network().set_frozen(false);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (what, samples) in [
        ("no fault", &mut healthy),
        ("one holder frozen", &mut frozen),
    ] {
        let (p50, p99, max) = summary(samples);
        println!(
            "read latency, 7 nodes, 2 MiB files, {what:<17}: p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
    for n in nodes {
        n.shutdown().await;
    }
}

/// Chunk requests `node` has sent so far.
fn chunk_requests(node: &Node) -> u64 {
    const KINDS: [&str; 5] = [
        "get_chunk",
        "has_chunks",
        "prove_chunks",
        "put_chunk",
        "delete_chunks",
    ];
    node.network()
        .request_stats()
        .iter()
        .filter(|s| s.direction == "out" && KINDS.contains(&s.kind))
        .map(|s| s.count)
        .sum()
}

async fn requests(n: usize) {
    let nodes = network(n).await;
    let ids = upload(&nodes[0], 8, 4 << 20).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gateway = &nodes[1];
    let before = chunk_requests(gateway);
    for id in &ids {
        gateway
            .download_bytes(*id, Password::new("pw"))
            .await
            .unwrap();
    }
    let sent = chunk_requests(gateway) - before;
    let chunks = ids.len() as u64 * (4 + 1);
    println!(
        "requests per download chunk, {n:>2} nodes: {:>5.2} ({sent} requests for {chunks} chunks and records)",
        sent as f64 / chunks as f64
    );
    for n in nodes {
        n.shutdown().await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only = |flag: &str| args.iter().any(|a| a == flag);
    let all = !only("--latency") && !only("--requests");
    let scale = if only("--bench") {
        Scale {
            reads: 200,
            sizes: &[5, 20, 50],
        }
    } else {
        Scale {
            reads: 10,
            sizes: &[5],
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if all || only("--latency") {
            latency(&scale).await;
        }
        if all || only("--requests") {
            for &n in scale.sizes {
                requests(n).await;
            }
        }
    });
}

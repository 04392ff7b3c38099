//! Transfers over slow links (issue 16): PUT and GET throughput of one large file and the
//! tail latency of small reads, at 0, 20 and 80 ms round-trip time between nodes, on networks
//! of 3 and 8 in-process nodes (replicas 3), side by side in one run.
//!
//! The kernel here has no netem, so the delay comes from the network layer's drill setting
//! [`NetConfig::drill_rtt`]: every request a node sends to a peer waits that long before it
//! goes out, as over a link with that round-trip time and unlimited bandwidth. The file is
//! uploaded through node 0 and read through node 1 (every byte compared); the small reads are
//! 40 downloads of a 64 KiB file through node 1. The insecure test KDF keeps Argon2id out of
//! the numbers. Target: at 80 ms, at least half the 0 ms throughput.
//!
//! `--loss PERCENT` adds, on the slow links, [`NetConfig::drill_loss`]: that share of requests
//! meets a lost segment and waits a TCP retransmission timeout more (what loss costs a TCP
//! link: delay, not lost data).
//!
//! ```sh
//! cargo bench --bench latency                      # 256 MiB, 3 and 8 nodes, 0/20/80 ms
//! cargo bench --bench latency -- --mib 64 --nodes 3 --rtts 0,80 --window 4
//! cargo bench --bench latency -- --nodes 8 --rtts 0,80 --loss 1
//! ```
//! Without `--bench` it does a small smoke run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use voldisefs::crypto::{KdfParams, Password};
use voldisefs::net::NetConfig;
use voldisefs::node::NodeConfig;

const MIB: u64 = 1 << 20;
const PASSWORD: &str = "a latency bench password";

fn config(rtt: Duration, loss: f64, window: Option<usize>) -> NodeConfig {
    let defaults = NodeConfig::default();
    NodeConfig {
        http: None,
        capacity: 8 << 30,
        kdf: KdfParams::insecure_test(),
        transfer_parallelism: window.unwrap_or(defaults.transfer_parallelism),
        net: NetConfig {
            drill_rtt: rtt,
            drill_loss: if rtt.is_zero() { 0.0 } else { loss },
            ..NetConfig::default()
        },
        ..NodeConfig::ephemeral()
    }
}

/// The file's bytes: cheap to make, different in every chunk.
fn bytes(len: u64) -> Bytes {
    Bytes::from(support::pseudo_random(len as usize, 0x2545_f491_4f6c_dd1d))
}

struct Row {
    nodes: usize,
    rtt: Duration,
    put: f64,
    get: f64,
    /// Time to the first byte of the large GET.
    ttfb: Duration,
    p50: Duration,
    p99: Duration,
}

async fn run(nodes: usize, rtt: Duration, loss: f64, file: &Bytes, window: Option<usize>) -> Row {
    let net = support::network(nodes, || config(rtt, loss, window)).await;
    let started = Instant::now();
    let body = futures_util::stream::iter(
        file.chunks(256 << 10)
            .map(|c| Ok::<_, std::io::Error>(file.slice_ref(c)))
            .collect::<Vec<_>>(),
    );
    let big = net[0]
        .upload("big", Password::new(PASSWORD), body)
        .await
        .unwrap();
    let put = file.len() as f64 / MIB as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut body = net[1]
        .download(big.id, Password::new(PASSWORD))
        .await
        .unwrap()
        .body;
    let mut at = 0usize;
    let mut first_byte = None;
    while let Some(piece) = body.next().await {
        first_byte.get_or_insert_with(|| started.elapsed());
        let piece = piece.unwrap();
        assert_eq!(&piece[..], &file[at..at + piece.len()], "at {at}");
        at += piece.len();
    }
    assert_eq!(at, file.len());
    let get = file.len() as f64 / MIB as f64 / started.elapsed().as_secs_f64();

    let small = net[0]
        .upload_bytes("small", Password::new(PASSWORD), file.slice(..64 << 10))
        .await
        .unwrap();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..40 {
        let started = Instant::now();
        let (_, got) = net[1]
            .download_bytes(small.id, Password::new(PASSWORD))
            .await
            .unwrap();
        times.push(started.elapsed());
        assert_eq!(got.len(), 64 << 10);
    }
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    for node in net {
        node.shutdown().await;
    }
    Row {
        nodes,
        rtt,
        put,
        get,
        ttfb: first_byte.unwrap_or_default(),
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn list(name: &str, default: &str) -> Vec<u64> {
    arg(name)
        .unwrap_or_else(|| default.into())
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mib: u64 = if bench {
        arg("--mib").map_or(256, |v| v.parse().unwrap())
    } else {
        4
    };
    let node_counts = list("--nodes", if bench { "3,8" } else { "3" });
    let rtts = list("--rtts", if bench { "0,20,80" } else { "0,20" });
    let window: Option<usize> = arg("--window").map(|v| v.parse().unwrap());
    let loss: f64 = arg("--loss").map_or(0.0, |v| v.parse::<f64>().unwrap() / 100.0);
    let file = bytes(mib * MIB);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<Row> = runtime.block_on(async {
        let mut rows = Vec::new();
        for &n in &node_counts {
            // A first run per network size warms the process up (page faults, allocator, a
            // heap grown to that many nodes): its numbers are dropped.
            if bench {
                run(n as usize, Duration::ZERO, 0.0, &file, window).await;
            }
            for &ms in &rtts {
                let rtt = Duration::from_millis(ms);
                rows.push(run(n as usize, rtt, loss, &file, window).await);
            }
        }
        rows
    });
    println!(
        "{mib} MiB file, replicas 3, in-process nodes, window {}, loss {}% on slow links",
        window.map_or_else(|| "default".into(), |w| w.to_string()),
        loss * 100.0
    );
    println!(
        "| nodes | RTT | PUT MiB/s | GET MiB/s | PUT vs 0 ms | GET vs 0 ms | GET first byte | 64 KiB read p50 | p99 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let base = rows
            .iter()
            .find(|b| b.nodes == r.nodes && b.rtt.is_zero())
            .unwrap_or(r);
        println!(
            "| {} | {} ms | {:.0} | {:.0} | {:.2} | {:.2} | {:.1?} | {:.1?} | {:.1?} |",
            r.nodes,
            r.rtt.as_millis(),
            r.put,
            r.get,
            r.put / base.put,
            r.get / base.get,
            r.ttfb,
            r.p50,
            r.p99
        );
    }
}

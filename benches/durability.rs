//! Durability costs, measured on real in-process nodes on loopback:
//!
//! 1. probe traffic: what failure detection and discovery send per node while a network of 5
//!    and of 50 nodes sits idle (default `NetConfig`: one ping per peer every 2 s);
//! 2. repair time: a 5-node network with replicas 3 loses, abruptly, a node that held about
//!    1 GiB; how long until every chunk has 3 copies again (default repair settings).
//!
//! Run with `cargo bench --bench durability` (add `-- --probe` or `-- --repair` for one part,
//! `--gib X` to change the amount the lost node holds, `--seconds S` for the probe window).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use voldisefs::crypto::Password;
use voldisefs::node::{Node, NodeConfig};

fn config() -> NodeConfig {
    NodeConfig {
        http: None,
        capacity: 8 << 30,
        ..NodeConfig::ephemeral()
    }
}

async fn network(n: usize) -> Vec<Node> {
    support::network(n, config).await
}

async fn probe_traffic(n: usize, window: Duration) {
    let nodes = network(n).await;
    // Let bootstrap traffic die down, then measure a quiet window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before: Vec<_> = nodes.iter().map(|x| x.network().traffic()).collect();
    tokio::time::sleep(window).await;
    let after: Vec<_> = nodes.iter().map(|x| x.network().traffic()).collect();
    let secs = window.as_secs_f64();
    let (mut bytes, mut frames) = (0u64, 0u64);
    for (b, a) in before.iter().zip(&after) {
        bytes += a.bytes_out - b.bytes_out;
        frames += a.frames_out - b.frames_out;
    }
    let per_node_bytes = bytes as f64 / n as f64 / secs;
    let per_node_frames = frames as f64 / n as f64 / secs;
    println!(
        "probe traffic, {n:>2} idle nodes: {per_node_frames:>7.1} frames/s and {:>8.2} KiB/s sent per node (frame bytes; TCP/IP headers add ~66 B per frame)",
        per_node_bytes / 1024.0
    );
    for node in nodes {
        node.shutdown().await;
    }
}

async fn repair_time(gib: f64) {
    let nodes = network(5).await;
    // With replicas 3 over 5 nodes each node holds 3/5 of the copies: upload enough that
    // the node that will be lost holds about `gib`.
    let total = (gib * 5.0 / 3.0 * (1u64 << 30) as f64) as u64;
    let file = 64u64 << 20;
    let files = total.div_ceil(file);
    let started = Instant::now();
    for i in 0..files {
        let mut data = vec![0u8; file as usize];
        for (j, b) in data.iter_mut().enumerate().step_by(4096) {
            *b = (i as usize ^ j) as u8;
        }
        nodes[i as usize % 5]
            .upload_bytes(&format!("f{i}"), Password::new("pw"), Bytes::from(data))
            .await
            .unwrap();
    }
    let upload = started.elapsed();
    let victim = nodes
        .iter()
        .max_by_key(|x| x.status().store.bytes)
        .unwrap()
        .clone();
    let held = victim.status().store;
    let survivors: Vec<Node> = nodes
        .iter()
        .filter(|x| x.id() != victim.id())
        .cloned()
        .collect();
    let copies: u64 = nodes.iter().map(|x| x.status().store.chunks).sum();
    println!(
        "repair: uploaded {files} files of 64 MiB in {upload:.1?}; victim holds {} chunks, {:.2} GiB",
        held.chunks,
        held.bytes as f64 / (1u64 << 30) as f64
    );
    let lost_at = Instant::now();
    victim.crash().await;
    let mut declared = None;
    let deadline = lost_at + Duration::from_secs(600);
    loop {
        let now = Instant::now();
        assert!(now < deadline, "repair did not finish in 10 minutes");
        if declared.is_none()
            && survivors
                .iter()
                .all(|x| !x.live_nodes().contains(&victim.id()))
        {
            declared = Some(now - lost_at);
        }
        let held: u64 = survivors.iter().map(|x| x.status().store.chunks).sum();
        let idle = survivors.iter().all(|x| x.status().repair.backlog == 0);
        if declared.is_some() && held == copies && idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total_time = lost_at.elapsed();
    let declared = declared.unwrap_or_default();
    let pushed: u64 = survivors.iter().map(|x| x.status().repair.pushed).sum();
    println!(
        "repair: declared dead after {declared:.1?}; 3 copies of everything again after {total_time:.1?} \
         ({:.1?} of copying, {pushed} chunks pushed, {:.0} MiB/s)",
        total_time - declared,
        held.bytes as f64 / (1 << 20) as f64 / (total_time - declared).as_secs_f64()
    );
    for node in survivors {
        node.shutdown().await;
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only_probe = args.iter().any(|a| a == "--probe");
    let only_repair = args.iter().any(|a| a == "--repair");
    let gib = arg(&args, "--gib").unwrap_or(1.0);
    let window = Duration::from_secs(arg(&args, "--seconds").unwrap_or(20));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        if !only_repair {
            probe_traffic(5, window).await;
            probe_traffic(50, window).await;
        }
        if !only_probe {
            repair_time(gib).await;
        }
    });
}

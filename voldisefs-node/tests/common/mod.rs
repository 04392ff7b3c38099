//! Shared helpers: start real networks of in-process nodes on loopback.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use voldisefs_node::crypto::{ChunkSize, KdfParams, Password};
use voldisefs_node::{Node, NodeConfig};

/// 64 KiB: the smallest chunk size, so multi-chunk files stay small.
pub const CHUNK: usize = 64 * 1024;

/// A loopback node config with OS-assigned ports, the fast test KDF and small chunks.
pub fn config() -> NodeConfig {
    NodeConfig {
        kdf: KdfParams::insecure_test(),
        chunk_size: ChunkSize::from_bytes(CHUNK as u64).unwrap(),
        ..NodeConfig::ephemeral()
    }
}

/// Starts `n` nodes with `replicas`; each later node bootstraps from the first. Waits until
/// every node knows every other.
pub async fn network(n: usize, replicas: usize) -> Vec<Node> {
    network_with(n, |c| NodeConfig { replicas, ..c }).await
}

/// Like [`network`], with a config tweak applied to every node.
pub async fn network_with(n: usize, tweak: impl Fn(NodeConfig) -> NodeConfig) -> Vec<Node> {
    let first = Node::start(tweak(config())).await.unwrap();
    let mut nodes = vec![first.clone()];
    for _ in 1..n {
        let c = tweak(NodeConfig {
            bootstrap: vec![first.peer_addr()],
            ..config()
        });
        nodes.push(Node::start(c).await.unwrap());
    }
    eventually("full membership", || {
        nodes.iter().all(|node| node.live_nodes().len() == n)
    })
    .await;
    nodes
}

/// Polls `cond` every 20 ms until it holds, failing after 10 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The value of `node`'s metric line starting with `prefix`.
pub fn metric(node: &Node, prefix: &str) -> u64 {
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .expect("the metric is there")
}

/// Chunks (and records) held by all of `nodes` together.
pub fn total_chunks(nodes: &[Node]) -> u64 {
    nodes.iter().map(|n| n.status().store.chunks).sum()
}

/// Opens a raw HTTP upload to `http` that announces `announced` body bytes and sends only the
/// first `sent` of them; returns the connection, still open.
pub async fn partial_upload(
    http: std::net::SocketAddr,
    announced: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut client = tokio::net::TcpStream::connect(http).await.unwrap();
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Voldisefs-Password: pw\r\n\
         Content-Length: {announced}\r\n\r\n"
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(&data(sent, 1)).await.unwrap();
    client
}

/// Waits until every node in `nodes` completed `n` more repair sweeps.
pub async fn more_sweeps(nodes: &[Node], n: u64) {
    let sweeps = |node: &Node| node.status().repair.sweeps;
    let start: Vec<u64> = nodes.iter().map(sweeps).collect();
    eventually(&format!("{n} more repair sweeps on every node"), || {
        nodes
            .iter()
            .zip(&start)
            .all(|(node, s)| sweeps(node) >= s + n)
    })
    .await;
}

/// Failure detection and repair fast enough for tests that lose nodes on purpose.
pub fn fast_repair(c: NodeConfig) -> NodeConfig {
    NodeConfig {
        repair_interval: Duration::from_millis(500),
        handoff_deadline: Duration::from_secs(10),
        net: voldisefs_node::net::NetConfig {
            probe_interval: Duration::from_millis(50),
            probe_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_millis(300),
            dead_after: 3,
            dead_probe_every: 2,
            discovery_interval: Duration::from_millis(200),
            ..voldisefs_node::net::NetConfig::default()
        },
        ..c
    }
}

/// A file a test uploaded (with password `pw`).
pub struct File {
    pub id: voldisefs_node::proto::FileId,
    pub bytes: Vec<u8>,
    pub chunks: u64,
}

/// Every one of `files` reads back byte for byte through every node.
pub async fn check_all(nodes: &[Node], files: &[File]) {
    for node in nodes {
        for f in files {
            let (_, got) = node.download_bytes(f.id, pw("pw")).await.unwrap();
            assert_eq!(got, f.bytes, "file {} via {}", f.id, node.id());
        }
    }
}

/// Waits until no node of `survivors` counts any of `gone` among the live nodes.
pub async fn wait_dead_everywhere(survivors: &[Node], gone: &[&Node]) {
    eventually("the lost nodes leave placement everywhere", || {
        survivors
            .iter()
            .all(|n| gone.iter().all(|g| !n.live_nodes().contains(&g.id())))
    })
    .await;
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn pw(s: &str) -> Password {
    Password::new(s)
}

pub async fn shutdown(nodes: Vec<Node>) {
    for n in nodes {
        n.shutdown().await;
    }
}

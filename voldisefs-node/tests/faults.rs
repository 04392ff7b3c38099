//! Hostile and broken peers: a lying member speaking the real protocol, hung holders, deletes
//! that must stick, cancelled uploads, and nodes started before their seed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{CHUNK, data, eventually, pw, shutdown};
use voldisefs_node::net::{Handler, NetConfig, Network, Payload};
use voldisefs_node::proto::{ChunkProof, Message, NodeId, ProofDigest};
use voldisefs_node::{Node, NodeConfig};

/// A member that says it holds everything, acknowledges every put and keeps nothing, answers
/// proofs with made-up digests, and never answers a get.
struct Liar;

impl Handler for Liar {
    async fn handle(&self, _from: NodeId, request: Payload) -> Payload {
        let message = match request.message {
            Message::PutChunk { chunk } => Message::PutOk { chunk },
            Message::HasChunks { chunks } => Message::Have {
                present: vec![true; chunks.len()],
            },
            Message::ProveChunks { chunks, .. } => Message::Proofs {
                proofs: vec![
                    ChunkProof::Held {
                        proof: ProofDigest::from_bytes([0x5a; 32]),
                    };
                    chunks.len()
                ],
            },
            Message::DeleteChunks { .. } => Message::Ack,
            // Hang: the requester's own deadline is all it gets.
            _ => std::future::pending().await,
        };
        Payload::new(message)
    }
}

/// Fast repair and failure detection; a long request timeout, so a read that waited for a hung
/// holder's timeout would show.
fn fast(c: NodeConfig) -> NodeConfig {
    NodeConfig {
        replicas: 3,
        repair_interval: Duration::from_millis(300),
        attempt_timeout: Duration::from_secs(20),
        hedge_max: Duration::from_millis(500),
        net: NetConfig {
            request_timeout: Duration::from_secs(60),
            probe_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            discovery_interval: Duration::from_millis(200),
            ..NetConfig::default()
        },
        ..c
    }
}

/// Starts a lying member and has it join through `seed`.
async fn liar(seed: std::net::SocketAddr) -> Network {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let net = Network::start(listener, None, Arc::new(Liar), NetConfig::default()).unwrap();
    net.bootstrap(&[seed]).await.unwrap();
    net
}

/// Chunks held by each node.
fn held(nodes: &[Node]) -> Vec<u64> {
    nodes.iter().map(|n| n.status().store.chunks).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_member_neither_erases_copies_nor_stalls_reads() {
    let nodes = common::network_with(2, fast).await;
    let liar = liar(nodes[0].peer_addr()).await;
    eventually("the liar is a member", || {
        nodes.iter().all(|n| n.live_nodes().len() == 3)
    })
    .await;
    let mut files = Vec::new();
    for i in 0..6u64 {
        let bytes = data((i as usize % 3) * CHUNK + 10, 40 + i);
        let r = nodes[i as usize % 2]
            .upload_bytes(&format!("f{i}"), pw("pw"), Bytes::from(bytes.clone()))
            .await
            .unwrap();
        files.push((r, bytes));
    }
    // Every chunk and record on both honest nodes (the liar's acknowledgement is worth nothing).
    let expected: u64 = files.iter().map(|(r, _)| r.chunks + 1).sum();
    eventually("both honest nodes hold everything", || {
        held(&nodes) == vec![expected, expected]
    })
    .await;
    // Several repair sweeps later, no honest copy was dropped for the liar's claims.
    let sweeps = |n: &Node| n.status().repair.sweeps;
    let start: Vec<u64> = nodes.iter().map(sweeps).collect();
    eventually("three more sweeps on each node", || {
        nodes.iter().zip(&start).all(|(n, s)| sweeps(n) >= s + 3)
    })
    .await;
    assert_eq!(held(&nodes), vec![expected, expected]);
    // The liar is found out and reported.
    for node in &nodes {
        let status = node.status();
        let reported = status.peers.iter().find(|p| p.id == liar.local().id).unwrap();
        assert!(reported.failures > 0, "{reported:?}");
        assert!(node.metrics_text().contains("voldisefs_holder_failures_total"));
    }
    // Every read succeeds, and none waits for the liar's hung gets to time out (20 s).
    for node in &nodes {
        for (r, bytes) in &files {
            let read = tokio::time::timeout(
                Duration::from_secs(10),
                node.download_bytes(r.id, pw("pw")),
            )
            .await
            .expect("a read stalled behind the liar")
            .unwrap();
            assert_eq!(&read.1, bytes);
        }
    }
    liar.shutdown().await;
    shutdown(nodes).await;
}

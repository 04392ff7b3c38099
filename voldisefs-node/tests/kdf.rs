//! Key-derivation admission control: a record planted with costly Argon2id parameters is
//! refused before any work, and concurrent password checks beyond the node's slots are
//! refused as busy instead of piling up memory.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{data, pw, shutdown};
use voldisefs_node::crypto::{Error as CryptoError, KdfParams, MIN_M_KIB};
use voldisefs_node::{Node, NodeConfig, NodeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_costlier_than_the_reader_ceiling_are_refused_before_any_work() {
    // One more pass than this version writes: within the format's limits, above the default
    // reader ceiling.
    let costly = KdfParams::new(MIN_M_KIB, 4, 1).unwrap();
    let nodes = common::network_with(3, |c| c).await;
    let writer = Node::start(NodeConfig {
        kdf: costly,
        bootstrap: vec![nodes[0].peer_addr()],
        ..common::config()
    })
    .await
    .unwrap();
    common::eventually("the writer joined", || {
        nodes.iter().all(|n| n.live_nodes().len() == 4)
    })
    .await;
    let r = writer
        .upload_bytes("costly", pw("pw"), Bytes::from(data(100, 1)))
        .await
        .unwrap();
    // A node with the default ceiling refuses it at once, whatever the password.
    let started = Instant::now();
    let refused = nodes[1].download_bytes(r.id, pw("pw")).await.unwrap_err();
    assert!(
        matches!(
            refused,
            NodeError::Crypto(CryptoError::KdfParamsTooExpensive { t: 4, .. })
        ),
        "{refused}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The writer reads its own files (its ceiling covers its own parameters); a node whose
    // operator raised the ceiling reads it too.
    assert_eq!(
        writer.download_bytes(r.id, pw("pw")).await.unwrap().1,
        data(100, 1)
    );
    let raised = Node::start(NodeConfig {
        kdf_max: costly,
        bootstrap: vec![nodes[0].peer_addr()],
        ..common::config()
    })
    .await
    .unwrap();
    assert_eq!(
        raised.download_bytes(r.id, pw("pw")).await.unwrap().1,
        data(100, 1)
    );
    raised.shutdown().await;
    writer.shutdown().await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_beyond_the_slots_are_refused_as_busy() {
    let node = Node::start(NodeConfig {
        kdf: KdfParams::new(MIN_M_KIB, 2, 1).unwrap(),
        kdf_concurrency: 1,
        kdf_queue_timeout: Duration::from_millis(1),
        ..common::config()
    })
    .await
    .unwrap();
    let r = node
        .upload_bytes("f", pw("right"), Bytes::from(data(10, 2)))
        .await
        .unwrap();
    let url = format!("http://{}/api/v1/files/{}", node.http_addr().unwrap(), r.id);
    let client = reqwest::Client::new();
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (client, url) = (client.clone(), url.clone());
        asks.spawn(async move {
            client
                .get(url)
                .header("x-voldisefs-password", format!("wrong {i}"))
                .send()
                .await
                .unwrap()
        });
    }
    let (mut busy, mut checked) = (0, 0);
    while let Some(answer) = asks.join_next().await {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            503 => {
                assert_eq!(answer.headers()["retry-after"], "1");
                let body: serde_json::Value = answer.json().await.unwrap();
                assert_eq!(body["error"], "busy");
                busy += 1;
            }
            401 => checked += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        busy > 0,
        "twelve concurrent checks through one slot: some must be refused"
    );
    assert!(checked > 0, "the slot still serves");
    assert!(node.metrics_text().contains("voldisefs_kdf_busy_total"));
    node.shutdown().await;
}

/// `voldisefs_kdf_cache_hits_total` in a node's metrics.
fn cache_hits(node: &Node) -> u64 {
    common::metric(node, "voldisefs_kdf_cache_hits_total ")
}

/// A cached password key leaves RAM within a second of its maximum age while the node sits
/// idle (no later read or upload evicts it), and at once when the node stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_leave_ram_at_their_age_even_when_idle_and_at_stop() {
    let nodes = common::network_with(2, |c| NodeConfig {
        kdf_cache_age: Duration::from_millis(1500),
        expiry_sweep: Duration::from_millis(100),
        ..c
    })
    .await;
    let r = nodes[0]
        .upload_bytes("f", pw("right"), Bytes::from(data(1000, 5)))
        .await
        .unwrap();
    let keys = |n: &Node| common::metric(n, "voldisefs_kdf_cache_keys ");
    nodes[1].download_bytes(r.id, pw("right")).await.unwrap();
    assert_eq!(keys(&nodes[1]), 1);
    common::eventually("the idle cache forgets the key", || keys(&nodes[1]) == 0).await;
    // A fresh key goes at stop.
    nodes[0].download_bytes(r.id, pw("right")).await.unwrap();
    assert!(keys(&nodes[0]) >= 1);
    nodes[0].shutdown().await;
    assert_eq!(keys(&nodes[0]), 0);
    shutdown(nodes).await;
}

/// A second read of a file with the same password takes the password key from the reading
/// node's cache (no Argon2id run); a wrong password never does, and is still refused; a node
/// configured without a cache derives every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_file_again_skips_the_key_derivation() {
    let nodes = common::network_with(3, |c| c).await;
    let uncached = Node::start(NodeConfig {
        kdf_cache_entries: 0,
        bootstrap: vec![nodes[0].peer_addr()],
        ..common::config()
    })
    .await
    .unwrap();
    let r = nodes[0]
        .upload_bytes("f", pw("right"), Bytes::from(data(200_000, 4)))
        .await
        .unwrap();
    let reader = &nodes[1];
    assert_eq!(cache_hits(reader), 0);
    for round in 1..=3 {
        let (_, got) = reader.download_bytes(r.id, pw("right")).await.unwrap();
        assert_eq!(got, data(200_000, 4));
        assert_eq!(cache_hits(reader), round - 1, "round {round}");
    }
    let refused = reader.download_bytes(r.id, pw("wrong")).await.unwrap_err();
    assert!(matches!(refused, NodeError::WrongPassword), "{refused}");
    assert_eq!(cache_hits(reader), 2);
    for _ in 0..2 {
        let (_, got) = uncached.download_bytes(r.id, pw("right")).await.unwrap();
        assert_eq!(got, data(200_000, 4));
    }
    assert_eq!(cache_hits(&uncached), 0);
    uncached.shutdown().await;
    shutdown(nodes).await;
}

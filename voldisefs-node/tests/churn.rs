//! Churn: nodes frozen (as by SIGSTOP), crashed and replaced while readers and writers run
//! through healthy gateways. No read or write may fail, no file may be lost, and a file
//! deleted during the churn stays deleted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{CHUNK, data, eventually, pw, shutdown};
use tokio::sync::Mutex;
use voldisefs_node::net::NetConfig;
use voldisefs_node::proto::FileId;
use voldisefs_node::{Node, NodeConfig, NodeError};

fn fast(c: NodeConfig) -> NodeConfig {
    NodeConfig {
        replicas: 3,
        repair_interval: Duration::from_millis(500),
        attempt_timeout: Duration::from_secs(2),
        hedge_max: Duration::from_millis(300),
        handoff_deadline: Duration::from_secs(5),
        net: NetConfig {
            // Long: a transfer that waited for a frozen holder's request timeout would fail
            // the per-operation deadline below.
            request_timeout: Duration::from_secs(60),
            probe_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(400),
            connect_timeout: Duration::from_millis(400),
            dead_after: 3,
            dead_probe_every: 2,
            discovery_interval: Duration::from_millis(200),
            ..NetConfig::default()
        },
        ..c
    }
}

/// Longest any one read or write may take: far below the 60 s request timeout, so a
/// transfer stuck behind a frozen holder fails the test.
const OP_DEADLINE: Duration = Duration::from_secs(8);

type Files = Arc<Mutex<Vec<(FileId, Vec<u8>)>>>;

/// Reads random files through the gateways until `stop`; counts reads and failures.
async fn reader(
    gateways: Vec<Node>,
    files: Files,
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
) {
    let mut i = 0usize;
    // Bounded: at most 10,000 reads even if `stop` never came.
    while !stop.load(Ordering::Relaxed) && i < 10_000 {
        let (id, bytes) = {
            let files = files.lock().await;
            files[(i * 7919) % files.len()].clone()
        };
        let node = &gateways[i % gateways.len()];
        i += 1;
        match tokio::time::timeout(OP_DEADLINE, node.download_bytes(id, pw("pw"))).await {
            Ok(Ok((_, got))) if got == bytes => {}
            other => {
                let what = match other {
                    Ok(Ok(_)) => "wrong bytes".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "stalled".to_string(),
                };
                eprintln!("read of {id} through {} failed: {what}", node.id());
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        reads.fetch_add(1, Ordering::Relaxed);
    }
}

/// Uploads new files through the gateways until `stop`; counts failures.
async fn writer(
    gateways: Vec<Node>,
    files: Files,
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) && i < 500 {
        let bytes = data((i as usize % 3) * CHUNK + 77, 10_000 + i);
        let node = &gateways[i as usize % gateways.len()];
        let upload = node.upload_bytes("w", pw("pw"), Bytes::from(bytes.clone()));
        match tokio::time::timeout(OP_DEADLINE, upload).await {
            Ok(Ok(r)) => files.lock().await.push((r.id, bytes)),
            other => {
                eprintln!("write through {} failed: {other:?}", node.id());
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `reads` grew by `n` (the readers made progress through a phase).
async fn reads_advance(reads: &AtomicU64, n: u64) {
    let start = reads.load(Ordering::Relaxed);
    eventually("readers make progress", || {
        reads.load(Ordering::Relaxed) >= start + n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_survive_freezes_crashes_and_replacements_and_deletes_stick() {
    let mut nodes = common::network_with(6, fast).await;
    let gateways = vec![nodes[0].clone(), nodes[1].clone()];
    let files: Files = Arc::default();
    for i in 0..12u64 {
        let bytes = data((i as usize % 4) * CHUNK + 5, i);
        let r = gateways[i as usize % 2]
            .upload_bytes("f", pw("pw"), Bytes::from(bytes.clone()))
            .await
            .unwrap();
        files.lock().await.push((r.id, bytes));
    }
    let doomed = gateways[0]
        .upload_bytes("doomed", pw("pw"), Bytes::from(data(2 * CHUNK, 99)))
        .await
        .unwrap()
        .id;
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, read_failures, write_failures) = (
        Arc::<AtomicU64>::default(),
        Arc::<AtomicU64>::default(),
        Arc::<AtomicU64>::default(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..2 {
        tasks.spawn(reader(
            gateways.clone(),
            files.clone(),
            stop.clone(),
            reads.clone(),
            read_failures.clone(),
        ));
    }
    tasks.spawn(writer(
        gateways.clone(),
        files.clone(),
        stop.clone(),
        write_failures.clone(),
    ));

    // 1. A holder freezes (accepts connections, answers nothing) and thaws.
    nodes[2].network().set_frozen(true);
    reads_advance(&reads, 40).await;
    // The delete runs while that node is frozen: it misses it.
    gateways[1].delete(doomed, pw("pw")).await.unwrap();
    reads_advance(&reads, 20).await;
    nodes[2].network().set_frozen(false);
    reads_advance(&reads, 20).await;

    // 2. A node crashes and a new one takes its place.
    nodes[3].crash().await;
    let fresh = Node::start(fast(NodeConfig {
        bootstrap: vec![gateways[0].peer_addr()],
        ..common::config()
    }))
    .await
    .unwrap();
    nodes[3] = fresh;
    reads_advance(&reads, 40).await;

    // 3. Another holder freezes for longer than failure detection needs, and thaws.
    nodes[4].network().set_frozen(true);
    let frozen_id = nodes[4].id();
    eventually("the frozen node is declared dead", || {
        !gateways[0].live_nodes().contains(&frozen_id)
    })
    .await;
    reads_advance(&reads, 20).await;
    nodes[4].network().set_frozen(false);
    eventually("the thawed node is alive again", || {
        gateways[0].live_nodes().contains(&frozen_id)
    })
    .await;
    reads_advance(&reads, 40).await;

    stop.store(true, Ordering::Relaxed);
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(read_failures.load(Ordering::Relaxed), 0, "reads failed");
    assert_eq!(write_failures.load(Ordering::Relaxed), 0, "writes failed");
    assert!(reads.load(Ordering::Relaxed) >= 180);

    // No file lost: every file reads back through every node.
    let files = files.lock().await.clone();
    for node in &nodes {
        for (id, bytes) in &files {
            let (_, got) = node.download_bytes(*id, pw("pw")).await.unwrap();
            assert_eq!(&got, bytes);
        }
    }
    // The file deleted while a holder was frozen stays deleted through its return and repair.
    common::more_sweeps(&nodes, 2).await;
    for node in &nodes {
        let err = node.download_bytes(doomed, pw("pw")).await.unwrap_err();
        assert!(matches!(err, NodeError::NotFound(_)), "{err}");
    }
    shutdown(nodes).await;
}

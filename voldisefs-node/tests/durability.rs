//! Files survive peers coming and going: failure detection, repair and graceful hand-off on
//! five in-process nodes with replicas 3.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{CHUNK, File, check_all, data, eventually, pw, shutdown, wait_dead_everywhere};
use voldisefs_node::{Node, NodeConfig};

const REPLICAS: usize = 3;

/// Fast failure detection and repair, so the tests run in seconds.
fn fast(c: NodeConfig) -> NodeConfig {
    NodeConfig {
        replicas: REPLICAS,
        ..common::fast_repair(c)
    }
}

/// Uploads 20 files of 1 to 4 chunks through the nodes in turn.
async fn upload_files(nodes: &[Node]) -> Vec<File> {
    let mut files = Vec::new();
    for i in 0..20u64 {
        let bytes = data((i as usize % 4) * CHUNK + 100 + i as usize, 500 + i);
        let r = nodes[i as usize % nodes.len()]
            .upload_bytes(&format!("f{i}"), pw("pw"), Bytes::from(bytes.clone()))
            .await
            .unwrap();
        files.push(File {
            id: r.id,
            bytes,
            chunks: r.chunks,
        });
    }
    files
}

/// Waits until every chunk and record has exactly `min(REPLICAS, nodes)` copies among
/// `nodes` and no node has repair work left.
async fn wait_replicated(nodes: &[Node], files: &[File]) {
    let distinct: u64 = files.iter().map(|f| f.chunks + 1).sum();
    let want = distinct * REPLICAS.min(nodes.len()) as u64;
    let mut held = 0;
    for _ in 0..1500 {
        held = nodes.iter().map(|n| n.status().store.chunks).sum::<u64>();
        let idle = nodes.iter().all(|n| n.status().repair.backlog == 0);
        if held == want && idle {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not fully replicated: {held} copies held, {want} wanted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_losses_one_after_another() {
    let mut nodes = common::network_with(5, fast).await;
    let files = upload_files(&nodes).await;
    wait_replicated(&nodes, &files).await;

    let lost = nodes.remove(1);
    lost.crash().await;
    wait_dead_everywhere(&nodes, &[&lost]).await;
    wait_replicated(&nodes, &files).await;

    let lost = nodes.remove(2);
    lost.crash().await;
    wait_dead_everywhere(&nodes, &[&lost]).await;
    wait_replicated(&nodes, &files).await;
    check_all(&nodes, &files).await;
    assert!(nodes.iter().map(|n| n.status().repair.pushed).sum::<u64>() > 0);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_lost_at_the_same_moment() {
    let mut nodes = common::network_with(5, fast).await;
    let files = upload_files(&nodes).await;
    wait_replicated(&nodes, &files).await;
    let (a, b) = (nodes.remove(0), nodes.remove(2));
    tokio::join!(a.crash(), b.crash());
    // Readable at once, before any repair: r - 1 losses are survivable.
    check_all(&nodes[..1], &files).await;
    wait_dead_everywhere(&nodes, &[&a, &b]).await;
    wait_replicated(&nodes, &files).await;
    check_all(&nodes, &files).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_of_five_shut_down_gracefully_one_by_one() {
    let mut nodes = common::network_with(5, fast).await;
    let files = upload_files(&nodes).await;
    wait_replicated(&nodes, &files).await;
    for _ in 0..3 {
        let leaving = nodes.remove(0);
        leaving.shutdown().await;
        // The hand-off already happened: everything is readable right away.
        check_all(&nodes, &files).await;
        wait_replicated(&nodes, &files).await;
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_ends_up_holding_its_share() {
    let mut nodes = common::network_with(5, fast).await;
    let files = upload_files(&nodes).await;
    wait_replicated(&nodes, &files).await;
    let newcomer = Node::start(fast(NodeConfig {
        bootstrap: vec![nodes[3].peer_addr()],
        ..common::config()
    }))
    .await
    .unwrap();
    nodes.push(newcomer.clone());
    eventually("the newcomer receives chunks", || {
        newcomer.status().store.chunks > 0
    })
    .await;
    let distinct: u64 = files.iter().map(|f| f.chunks + 1).sum();
    // About half of the chunks (3 copies over 6 nodes); rendezvous spreads them evenly. It
    // may take a while: on a loaded machine a push to the newcomer can time out while it is
    // starting, and the pusher then leaves it out for a demotion (10 s), so "replicated"
    // (every chunk at 3 copies, no work left) can hold before the newcomer has its share.
    for _ in 0..1500 {
        if newcomer.status().store.chunks > distinct / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_replicated(&nodes, &files).await;
    let share = newcomer.status().store.chunks;
    assert!(
        share > distinct / 4 && share < distinct,
        "{share} of {distinct}"
    );
    check_all(&[newcomer], &files).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_is_readmitted() {
    let nodes = common::network_with(5, fast).await;
    let files = upload_files(&nodes).await;
    wait_replicated(&nodes, &files).await;
    let cut = nodes[4].clone();
    cut.network().set_isolated(true);
    wait_dead_everywhere(&nodes[..4], &[&cut]).await;
    wait_replicated(&nodes[..4], &files).await;
    cut.network().set_isolated(false);
    eventually("the healed node is alive everywhere", || {
        nodes.iter().all(|n| n.live_nodes().len() == 5)
    })
    .await;
    check_all(&nodes, &files).await;
    // Repair settles again on five nodes: extra copies are dropped.
    wait_replicated(&nodes, &files).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_holder_is_skipped_and_reads_still_find_the_chunks() {
    let small = 2 * (CHUNK as u64 + 16);
    let first = Node::start(fast(common::config())).await.unwrap();
    let mut nodes = vec![first.clone()];
    for i in 1..4 {
        let capacity = if i == 3 { small } else { 1 << 30 };
        let c = fast(NodeConfig {
            bootstrap: vec![first.peer_addr()],
            capacity,
            ..common::config()
        });
        nodes.push(Node::start(c).await.unwrap());
    }
    eventually("membership", || {
        nodes.iter().all(|n| n.live_nodes().len() == 4)
    })
    .await;
    let files = upload_files(&nodes[..3]).await;
    let full = nodes[3].status().store;
    assert!(full.bytes <= full.capacity);
    wait_replicated(&nodes, &files).await;
    check_all(&nodes, &files).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_under_a_new_id() {
    let mut nodes = common::network_with(5, fast).await;
    let files = upload_files(&nodes).await;
    wait_replicated(&nodes, &files).await;
    let old = nodes.remove(2);
    let addr = old.peer_addr();
    old.crash().await;
    // Same address, new process: a new node that bootstraps from any member.
    let restarted = Node::start(fast(NodeConfig {
        listen: addr,
        bootstrap: vec![nodes[0].peer_addr()],
        ..common::config()
    }))
    .await
    .unwrap();
    assert_ne!(restarted.id(), old.id());
    nodes.push(restarted.clone());
    eventually(
        "everyone sees the new id, and not the old one, as live",
        || {
            nodes.iter().all(|n| {
                let live = n.live_nodes();
                live.len() == 5 && live.contains(&restarted.id()) && !live.contains(&old.id())
            })
        },
    )
    .await;
    eventually("the restarted node receives its share again", || {
        restarted.status().store.chunks > 0
    })
    .await;
    wait_replicated(&nodes, &files).await;
    check_all(&nodes, &files).await;
    shutdown(nodes).await;
}

//! Upload and download through real in-process networks on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{CHUNK, data, eventually, network, pw, shutdown};
use voldisefs_node::NodeError;
use voldisefs_node::proto::FileId;

const SIZES: [usize; 7] = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    5 * CHUNK,
    5 * CHUNK + 123,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_node_stores_on_itself() {
    let nodes = network(1, 3).await;
    let node = &nodes[0];
    for (i, size) in SIZES.into_iter().enumerate() {
        let bytes = data(size, i as u64);
        let receipt = node
            .upload_bytes("f.bin", pw("pw"), Bytes::from(bytes.clone()))
            .await
            .unwrap();
        assert_eq!(receipt.size, size as u64);
        assert_eq!(receipt.chunks, (size.max(1)).div_ceil(CHUNK) as u64);
        // One node cannot hold three copies: the receipt says so.
        assert_eq!((receipt.copies, receipt.replicas), (1, 3));
        let (name, got) = node.download_bytes(receipt.id, pw("pw")).await.unwrap();
        assert_eq!(name, "f.bin");
        assert_eq!(got, bytes, "size {size}");
    }
    assert_eq!(node.files().len(), SIZES.len());
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_every_size_through_every_node() {
    let nodes = network(3, 3).await;
    for (i, size) in SIZES.into_iter().enumerate() {
        let bytes = data(size, 100 + i as u64);
        let uploader = &nodes[i % 3];
        let receipt = uploader
            .upload_bytes("x", pw("secret"), Bytes::from(bytes.clone()))
            .await
            .unwrap();
        for node in &nodes {
            let (_, got) = node.download_bytes(receipt.id, pw("secret")).await.unwrap();
            assert_eq!(got, bytes, "size {size} via {}", node.id());
        }
    }
    // replicas 3 on 3 nodes: everyone holds everything.
    let stats: Vec<_> = nodes.iter().map(|n| n.status().store).collect();
    assert!(
        stats
            .windows(2)
            .all(|w| w[0].chunks == w[1].chunks && w[0].bytes == w[1].bytes)
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_keep_exactly_three_copies_and_serve_from_anywhere() {
    let nodes = network(5, 3).await;
    let bytes = data(20 * CHUNK + 5, 7);
    let receipt = nodes[0]
        .upload_bytes("big", pw("pw"), Bytes::from(bytes.clone()))
        .await
        .unwrap();
    assert_eq!((receipt.copies, receipt.replicas), (3, 3));
    let copies = || common::total_chunks(&nodes);
    // The gateway keeps its own copy until the holders proved theirs; then exactly 3 remain.
    assert!(copies() >= 3 * (receipt.chunks + 1));
    eventually("3 copies of every chunk and of the record", || {
        copies() == 3 * (receipt.chunks + 1)
    })
    .await;
    // Peers that are not the uploader hold only ciphertext; the gateway alone has plaintext.
    for node in &nodes[1..] {
        let (_, got) = node.download_bytes(receipt.id, pw("pw")).await.unwrap();
        assert_eq!(got, bytes);
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_transfers_do_not_cross_talk() {
    let nodes = network(3, 2).await;
    let mut uploads = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let node = nodes[i as usize % 3].clone();
        uploads.spawn(async move {
            let bytes = data(3 * CHUNK + i as usize * 1000, 1000 + i);
            let password = format!("pw-{i}");
            let r = node
                .upload_bytes(
                    &format!("file-{i}"),
                    pw(&password),
                    Bytes::from(bytes.clone()),
                )
                .await
                .unwrap();
            (i, r.id, password, bytes)
        });
    }
    let mut files = Vec::new();
    while let Some(done) = uploads.join_next().await {
        files.push(done.unwrap());
    }
    let mut downloads = tokio::task::JoinSet::new();
    for (i, id, password, bytes) in files {
        let node = nodes[(i as usize + 1) % 3].clone();
        downloads.spawn(async move {
            let (name, got) = node.download_bytes(id, pw(&password)).await.unwrap();
            assert_eq!(name, format!("file-{i}"));
            assert_eq!(got, bytes);
        });
    }
    while let Some(done) = downloads.join_next().await {
        done.unwrap();
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_name_twice_gives_two_ids_each_with_its_own_password() {
    let nodes = network(3, 3).await;
    let a = nodes[0]
        .upload_bytes("same.txt", pw("alpha"), Bytes::from_static(b"first"))
        .await
        .unwrap();
    let b = nodes[0]
        .upload_bytes("same.txt", pw("beta"), Bytes::from_static(b"first"))
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(
        nodes[1].download_bytes(a.id, pw("alpha")).await.unwrap().1,
        b"first"
    );
    assert_eq!(
        nodes[2].download_bytes(b.id, pw("beta")).await.unwrap().1,
        b"first"
    );
    assert!(matches!(
        nodes[1].download(a.id, pw("beta")).await,
        Err(NodeError::WrongPassword)
    ));
    assert!(matches!(
        nodes[1].download(b.id, pw("alpha")).await,
        Err(NodeError::WrongPassword)
    ));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_id_fail_fast() {
    let nodes = network(3, 3).await;
    let r = nodes[0]
        .upload_bytes("f", pw("right"), Bytes::from(data(2 * CHUNK, 1)))
        .await
        .unwrap();
    let started = Instant::now();
    assert!(matches!(
        nodes[1].download(r.id, pw("wrong")).await,
        Err(NodeError::WrongPassword)
    ));
    let unknown = FileId::digest(b"no such record");
    assert!(matches!(
        nodes[2].download(unknown, pw("right")).await,
        Err(NodeError::NotFound(id)) if id == unknown
    ));
    assert!(matches!(
        nodes[2].delete(r.id, pw("wrong")).await,
        Err(NodeError::WrongPassword)
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    // A plain open says what the file is, fetching no chunk; it fails like a download.
    let stat = nodes[2].stat(r.id, pw("right").into()).await.unwrap();
    assert_eq!((stat.name.as_str(), stat.size), ("f", 2 * CHUNK as u64));
    assert_eq!(stat.kind, voldisefs_node::crypto::FileKind::File);
    assert!(matches!(
        nodes[2].stat(r.id, pw("wrong").into()).await,
        Err(NodeError::WrongPassword)
    ));
    assert!(matches!(
        nodes[2].stat(unknown, pw("right").into()).await,
        Err(NodeError::NotFound(_))
    ));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_whose_only_holders_are_gone_is_reported_unavailable_quickly() {
    let mut nodes = network(3, 1).await;
    let bytes = data(30 * CHUNK, 9);
    let r = nodes[0]
        .upload_bytes("lost", pw("pw"), Bytes::from(bytes))
        .await
        .unwrap();
    // With 30 chunks on 3 nodes and one copy each, some chunks live on nodes[2] only (once the
    // gateway dropped the extra copies it keeps until the holders proved theirs).
    eventually("one copy of everything", || {
        common::total_chunks(&nodes) == r.chunks + 1
    })
    .await;
    let victim = nodes.remove(2);
    assert!(victim.status().store.chunks > 0);
    victim.crash().await;
    let started = Instant::now();
    let result = nodes[0].download(r.id, pw("pw")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    match result {
        // The record itself may have lived on the victim.
        Err(NodeError::NotFound(_)) => {}
        Err(NodeError::Unavailable { missing, total }) => {
            assert!(missing > 0 && missing < total, "{missing} of {total}");
            assert_eq!(total, r.chunks);
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_every_copy() {
    let nodes = network(3, 2).await;
    let r = nodes[0]
        .upload_bytes("gone", pw("pw"), Bytes::from(data(4 * CHUNK, 3)))
        .await
        .unwrap();
    assert_eq!(nodes[0].files().len(), 1);
    let deleted = nodes[1].delete(r.id, pw("pw")).await.unwrap();
    assert_eq!(deleted, r.chunks + 1);
    let held: u64 = nodes.iter().map(|n| n.status().store.chunks).sum();
    assert_eq!(held, 0);
    assert!(matches!(
        nodes[2].download(r.id, pw("pw")).await,
        Err(NodeError::NotFound(_))
    ));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_network_refuses_with_a_clear_error() {
    let nodes = common::network_with(2, |c| voldisefs_node::NodeConfig {
        capacity: 3 * CHUNK as u64,
        replicas: 2,
        ..c
    })
    .await;
    let err = nodes[0]
        .upload_bytes("too big", pw("pw"), Bytes::from(data(8 * CHUNK, 4)))
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::Full(_)), "{err}");
    // The failed upload's chunks were removed again, so smaller files still fit.
    let held: u64 = nodes.iter().map(|n| n.status().store.bytes).sum();
    assert_eq!(held, 0, "a failed upload leaves no garbage");
    let small = nodes[1]
        .upload_bytes("small", pw("pw"), Bytes::from_static(b"tiny"))
        .await
        .unwrap();
    assert_eq!(
        nodes[0].download_bytes(small.id, pw("pw")).await.unwrap().1,
        b"tiny"
    );
    shutdown(nodes).await;
}

/// Over a slow link, transfers grow their windows beyond the configured chunks in flight, but
/// all of a node's transfers together never by more than its budget, and every byte of it is
/// given back when they end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_link_windows_grow_within_the_node_budget() {
    let budget = 16 * CHUNK;
    let nodes = common::network(4, 2).await;
    let reader = voldisefs_node::Node::start(voldisefs_node::NodeConfig {
        bootstrap: vec![nodes[0].peer_addr()],
        replicas: 2,
        transfer_window_budget: budget,
        net: voldisefs_node::net::NetConfig {
            drill_rtt: Duration::from_millis(30),
            ..common::config().net
        },
        ..common::config()
    })
    .await
    .unwrap();
    eventually("the reader joined", || {
        nodes.iter().all(|n| n.live_nodes().len() == 5)
    })
    .await;
    let bytes = data(48 * CHUNK + 7, 31);
    let file = nodes[0]
        .upload_bytes("slow", pw("pw"), Bytes::from(bytes.clone()))
        .await
        .unwrap();
    let growth = || common::metric(&reader, "voldisefs_transfer_window_growth_bytes ");
    let reads =
        futures_util::future::join_all((0..4).map(|_| reader.download_bytes(file.id, pw("pw"))));
    tokio::pin!(reads);
    let mut most = 0;
    let results = loop {
        tokio::select! {
            results = &mut reads => break results,
            () = tokio::time::sleep(Duration::from_millis(5)) => most = most.max(growth()),
        }
    };
    for result in results {
        assert_eq!(result.unwrap().1, bytes);
    }
    assert!(most > 0, "no window grew over a 30 ms link");
    assert!(
        most <= budget as u64,
        "{most} bytes of growth, budget {budget}"
    );
    assert_eq!(growth(), 0, "a finished transfer kept its growth");
    reader.shutdown().await;
    shutdown(nodes).await;
}

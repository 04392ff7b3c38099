//! Expiring files through real nodes: a file (and a collection with its files) put with
//! `X-Voldisefs-Expires` reads back until then and is "not found" everywhere after, with every
//! holder's copy gone; a node's default and maximum expiry apply.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{data, shutdown};
use voldisefs_node::{Node, NodeConfig};

fn url(node: &Node, path: &str) -> String {
    format!("http://{}{path}", node.http_addr().unwrap())
}

async fn put(node: &Node, expires: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url(node, "/api/v1/files"))
        .header("x-voldisefs-password", "pw")
        .body(data(150_000, 51));
    if let Some(expires) = expires {
        request = request.header("x-voldisefs-expires", expires);
    }
    request.send().await.unwrap()
}

async fn status(node: &Node, path: &str) -> u16 {
    reqwest::Client::new()
        .get(url(node, path))
        .header("x-voldisefs-password", "pw")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_files_are_gone_everywhere() {
    let nodes = common::network(3, 3).await;
    let before = common::total_chunks(&nodes);
    let response = put(&nodes[0], Some("2")).await;
    assert_eq!(response.status(), 201);
    let receipt: serde_json::Value = response.json().await.unwrap();
    let id = receipt["id"].as_str().unwrap().to_owned();
    let expires = receipt["expires"].as_u64().unwrap();
    assert!(expires > now() + 1 && expires <= now() + 4, "{expires}");
    let form = reqwest::multipart::Form::new().text("path", "d/a").part(
        "file",
        reqwest::multipart::Part::bytes(b"short-lived".to_vec()),
    );
    let collection: serde_json::Value = reqwest::Client::new()
        .post(url(&nodes[0], "/api/v1/collections"))
        .header("x-voldisefs-password", "pw")
        .header("x-voldisefs-expires", "2")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = collection["id"].as_str().unwrap().to_owned();
    let member = collection["files"][0]["id"].as_str().unwrap().to_owned();
    let index: serde_json::Value = reqwest::get(url(&nodes[0], "/api/v1/files"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index["files"][0]["expires"], expires);

    // Until then, it reads through any node.
    for node in &nodes {
        assert_eq!(status(node, &format!("/api/v1/files/{id}")).await, 200);
    }
    assert_eq!(
        status(&nodes[1], &format!("/api/v1/collections/{cid}")).await,
        200
    );
    // Then it is not found through any node, and no holder keeps a byte of it.
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut all = common::total_chunks(&nodes) == before;
        for node in &nodes {
            all &= status(node, &format!("/api/v1/files/{id}")).await == 404;
        }
        if all {
            gone = true;
            break;
        }
    }
    assert!(gone, "the file outlived its expiry");
    for node in &nodes {
        assert_eq!(
            status(node, &format!("/api/v1/collections/{cid}")).await,
            404
        );
        assert_eq!(status(node, &format!("/api/v1/files/{member}")).await, 404);
    }
    // Bad expiries are refused.
    for bad in ["0", "1", "-1", "soon"] {
        assert_eq!(put(&nodes[0], Some(bad)).await.status(), 400, "{bad}");
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_applies_its_default_and_maximum_expiry() {
    let nodes = common::network_with(3, |c| NodeConfig {
        default_expiry: Some(Duration::from_secs(60)),
        max_expiry: Some(Duration::from_secs(3600)),
        ..c
    })
    .await;
    let receipt: serde_json::Value = put(&nodes[0], None).await.json().await.unwrap();
    let expires = receipt["expires"].as_u64().unwrap();
    assert!(expires >= now() + 59 && expires <= now() + 62, "{expires}");
    let receipt: serde_json::Value = put(&nodes[0], Some("600")).await.json().await.unwrap();
    assert!(receipt["expires"].as_u64().unwrap() >= now() + 599);
    let refused = put(&nodes[0], Some("7200")).await;
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("3600"), "{body}");
    shutdown(nodes).await;
}

/// A node that has not swept its store yet still holds an expired file: its repair pushes
/// copies to the others and its graceful leave hands them off, and every other node refuses
/// them, so nothing comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_and_hand_off_never_revive_an_expired_file() {
    let nodes = common::network_with(4, |c| NodeConfig {
        replicas: 3,
        repair_interval: Duration::from_millis(300),
        ..c
    })
    .await;
    // One more node that never sweeps on its own.
    let stale = Node::start(NodeConfig {
        bootstrap: vec![nodes[0].peer_addr()],
        replicas: 3,
        repair_interval: Duration::from_millis(300),
        expiry_sweep: Duration::from_secs(3600),
        ..common::config()
    })
    .await
    .unwrap();
    common::eventually("the stale node joined", || {
        nodes.iter().all(|n| n.live_nodes().len() == 5)
    })
    .await;
    // Upload through the stale node until it holds a copy itself.
    let mut id = None;
    for _ in 0..10 {
        let response = put(&stale, Some("2")).await;
        let receipt: serde_json::Value = response.json().await.unwrap();
        if stale.status().store.chunks > 0 {
            id = Some(receipt["id"].as_str().unwrap().to_owned());
            break;
        }
    }
    let id = id.expect("the stale node never held a copy");
    // Expired: the others drop their copies; the stale node keeps its own.
    common::eventually("the other holders swept the file", || {
        common::total_chunks(&nodes) == 0
    })
    .await;
    // The stale node usually still holds its copy here; its own repair may already have
    // dropped it (holders refused its pushes as expired), which is fine too. Either way:
    // A few repair rounds of the stale node: its pushes are refused.
    common::more_sweeps(std::slice::from_ref(&stale), 3).await;
    assert_eq!(
        common::total_chunks(&nodes),
        0,
        "repair revived an expired file"
    );
    // Its graceful leave hands off what it holds: refused too.
    stale.shutdown().await;
    assert_eq!(
        common::total_chunks(&nodes),
        0,
        "hand-off revived an expired file"
    );
    for node in &nodes {
        assert_eq!(status(node, &format!("/api/v1/files/{id}")).await, 404);
    }
    shutdown(nodes).await;
}

/// A node cut off before a file expires, which never sweeps on its own, comes back after the
/// expiry still holding its copies: it serves nothing, its repair and the others' refuse to
/// bring the file back, and it is "not found" everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_rejoining_after_the_expiry_brings_nothing_back() {
    let tweak = |c: NodeConfig| NodeConfig {
        replicas: 4,
        ..common::fast_repair(c)
    };
    let mut nodes = common::network_with(3, tweak).await;
    let away = Node::start(NodeConfig {
        bootstrap: vec![nodes[0].peer_addr()],
        expiry_sweep: Duration::from_secs(3600),
        ..tweak(common::config())
    })
    .await
    .unwrap();
    common::eventually("the fourth node joined", || {
        nodes.iter().all(|n| n.live_nodes().len() == 4)
    })
    .await;
    let response = put(&nodes[0], Some("3")).await;
    assert_eq!(response.status(), 201);
    let receipt: serde_json::Value = response.json().await.unwrap();
    let id = receipt["id"].as_str().unwrap().to_owned();
    common::eventually("every node holds a copy", || {
        nodes
            .iter()
            .chain([&away])
            .all(|n| n.status().store.chunks > 0)
    })
    .await;
    let held = away.status().store.chunks;
    away.network().set_isolated(true);
    common::eventually("the others swept the file", || {
        common::total_chunks(&nodes) == 0
    })
    .await;
    // Still cut off after the expiry: its copies are all there (it never swept).
    assert_eq!(away.status().store.chunks, held);
    away.network().set_isolated(false);
    nodes.push(away.clone());
    common::eventually("the node is back everywhere", || {
        nodes.iter().all(|n| n.live_nodes().len() == 4)
    })
    .await;
    common::more_sweeps(&nodes, 3).await;
    assert_eq!(
        common::total_chunks(&nodes[..3]),
        0,
        "the rejoining node's repair revived an expired file"
    );
    for node in &nodes {
        assert_eq!(status(node, &format!("/api/v1/files/{id}")).await, 404);
    }
    shutdown(nodes).await;
}

/// A node whose clock runs an hour late follows its peers' time: it drops and refuses an
/// expired file on time, answers "not found" for it, and stamps its own uploads' expiry by
/// the right time (else the others would refuse them as long expired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_runs_late_keeps_no_file_past_its_expiry() {
    let tweak = |c: NodeConfig| NodeConfig {
        replicas: 4,
        clock_check_interval: Duration::from_millis(200),
        ..c
    };
    let mut nodes = common::network_with(3, tweak).await;
    let late = Node::start(NodeConfig {
        bootstrap: vec![nodes[0].peer_addr()],
        drill_clock_offset: -3600,
        ..tweak(common::config())
    })
    .await
    .unwrap();
    nodes.push(late.clone());
    common::eventually("the late node follows its peers' clocks", || {
        common::metric(&late, "voldisefs_clock_correction_seconds ") >= 3599
    })
    .await;
    for node in &nodes[..3] {
        assert_eq!(
            common::metric(node, "voldisefs_clock_correction_seconds "),
            0
        );
    }
    // Once it has heard from its peers, their membership datagrams tell it their time: its
    // rounds (every 200 ms here, for the seconds this test goes on) ask none of them.
    let asked = |n: &Node| -> u64 {
        n.network()
            .request_stats()
            .iter()
            .filter(|s| s.direction == "out" && s.kind == "get_stats")
            .map(|s| s.count)
            .sum()
    };
    common::eventually("the late node heard every peer's time", || {
        late.network().peer_times(Duration::from_secs(30)).len() == 3
    })
    .await;
    // (A round may be under way.)
    let asked_before = asked(&late) + 3;
    // It stamps by its own clock, an hour late: an upload expiring in a minute would be
    // expired on arrival, and is refused with a word about the clock...
    let response = put(&late, Some("60")).await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("clock"), "{text}");
    // ...and a longer one lives shorter than asked, never longer; every holder takes it.
    let response = put(&late, Some("7200")).await;
    assert_eq!(response.status(), 201);
    let receipt: serde_json::Value = response.json().await.unwrap();
    let expires = receipt["expires"].as_u64().unwrap();
    assert!(
        expires > now() + 3590 && expires <= now() + 3605,
        "{expires}"
    );
    let held = |n: &Node| n.status().store.chunks;
    common::eventually("every node holds the late node's file", || {
        nodes.iter().all(|n| held(n) > 0 && held(n) == held(&late))
    })
    .await;
    let base = held(&late);
    // A short-lived file uploaded elsewhere leaves the late node on time too.
    let response = put(&nodes[0], Some("2")).await;
    let receipt: serde_json::Value = response.json().await.unwrap();
    let id = receipt["id"].as_str().unwrap().to_owned();
    let expires = receipt["expires"].as_u64().unwrap();
    common::eventually("the late node holds both files", || held(&late) > base).await;
    common::eventually("the short-lived file left every node", || {
        now() > expires + 1 && nodes.iter().all(|n| held(n) == base)
    })
    .await;
    assert_eq!(status(&late, &format!("/api/v1/files/{id}")).await, 404);
    assert!(
        asked(&late) <= asked_before,
        "the late node asked its peers for their time: {} questions",
        asked(&late) - asked_before + 3
    );
    assert!(common::metric(&late, "voldisefs_clock_correction_seconds ") >= 3599);
    shutdown(nodes).await;
}

/// Lying clocks (issue 25, point 2): members that store honestly but report their clock a
/// year ahead may move a node's judging clock by at most an hour, never its stamps: an upload
/// is stamped by the gateway's own clock, `max_expiry` bounds objects by it, and the
/// correction fades once the liars are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_that_lie_ahead_can_neither_stretch_a_stamp_nor_stick() {
    let year: i64 = 365 * 86_400;
    let tweak = |c: NodeConfig| NodeConfig {
        replicas: 2,
        clock_check_interval: Duration::from_millis(200),
        max_expiry: Some(Duration::from_secs(86_400)),
        ..c
    };
    let honest = common::network_with(2, tweak).await;
    let mut liars = Vec::new();
    for _ in 0..4 {
        liars.push(
            Node::start(NodeConfig {
                bootstrap: vec![honest[0].peer_addr()],
                drill_clock_offset: year,
                ..tweak(common::config())
            })
            .await
            .unwrap(),
        );
    }
    let correction = |n: &Node| common::metric(n, "voldisefs_clock_correction_seconds ");
    common::eventually("the honest nodes hear the liars", || {
        honest.iter().all(|n| correction(n) > 0)
    })
    .await;
    for n in &honest {
        assert_eq!(correction(n), 3600, "moved by the cap, not by a year");
    }
    // A gateway upload asking for two hours is stamped two hours from the true time (before
    // the fix: a year). Judged an hour ahead, one asking for a minute is refused outright.
    let response = put(&honest[0], Some("7200")).await;
    assert_eq!(response.status(), 201);
    let receipt: serde_json::Value = response.json().await.unwrap();
    let expires = receipt["expires"].as_u64().unwrap();
    assert!(
        expires <= now() + 7202,
        "stamped {} s ahead",
        expires - now()
    );
    assert_eq!(put(&honest[0], Some("60")).await.status(), 400);
    // An object a client sealed to live a year is refused: max_expiry counts from the node's
    // own clock.
    // (An object is any bytes whose public trailer holds the expiry.)
    let mut bytes = data(200, 77);
    let at = bytes.len() - voldisefs_crypto::TRAILER_LEN;
    bytes[at..at + 8].copy_from_slice(&(now() + year as u64 - 3600).to_be_bytes());
    let id = voldisefs_crypto::content_id(&bytes);
    let response = reqwest::Client::new()
        .put(url(
            &honest[0],
            &format!("/api/v1/objects/{}", hex::encode(id)),
        ))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "{}", response.text().await.unwrap());
    // The liars leave: with too few answers, the correction fades.
    shutdown(liars).await;
    common::eventually("the correction fades once the liars are gone", || {
        honest.iter().all(|n| correction(n) == 0)
    })
    .await;
    shutdown(honest).await;
}

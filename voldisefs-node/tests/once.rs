//! Burn after reading through real nodes: a file put with `X-Voldisefs-Once: true` is deleted
//! everywhere after its first complete download (or a range that covers all of it; a part is
//! refused, and `HEAD` and tickets never burn it); under two concurrent downloads at least one
//! completes, and the file is gone afterwards either way.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{data, shutdown};
use voldisefs_node::Node;

fn url(node: &Node, path: &str) -> String {
    format!("http://{}{path}", node.http_addr().unwrap())
}

async fn put_once(node: &Node, bytes: &[u8]) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(url(node, "/api/v1/files"))
        .header("x-voldisefs-password", "pw")
        .header("x-voldisefs-once", "true")
        .header("x-voldisefs-link", "true")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn get(node: &Node, id: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url(node, &format!("/api/v1/files/{id}")));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

/// Waits (at most 10 s) until no node serves `id` and the stores are back to `chunks`.
async fn gone(nodes: &[Node], id: &str, chunks: u64) {
    for _ in 0..100 {
        let mut all = common::total_chunks(nodes) == chunks;
        for node in nodes {
            all &= get(node, id, &[("x-voldisefs-password", "pw")])
                .await
                .status()
                == 404;
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the file outlived its reading");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_file_is_gone_after_its_first_complete_download() {
    let nodes = common::network(3, 3).await;
    let before = common::total_chunks(&nodes);
    let bytes = data(200_000, 61);
    let receipt = put_once(&nodes[0], &bytes).await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    // A part is refused: nobody reads it piece by piece without burning it.
    let part = get(
        &nodes[1],
        &id,
        &[("x-voldisefs-password", "pw"), ("range", "bytes=0-9")],
    )
    .await;
    assert_eq!(part.status(), 400);
    assert!(part.text().await.unwrap().contains("read whole"));
    // A HEAD reads nothing and burns nothing.
    let head = reqwest::Client::new()
        .head(url(&nodes[2], &format!("/api/v1/files/{id}")))
        .header("x-voldisefs-password", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    // The whole file: once.
    let whole = get(&nodes[1], &id, &[("x-voldisefs-password", "pw")]).await;
    assert_eq!(&whole.bytes().await.unwrap()[..], &bytes[..]);
    gone(&nodes, &id, before).await;

    // Read through a share link, it burns as well (the manifest carries the delete key).
    let receipt = put_once(&nodes[0], &bytes).await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    let key = receipt["read_key"].as_str().unwrap();
    let whole = get(&nodes[2], &id, &[("x-voldisefs-read-key", key)]).await;
    assert_eq!(&whole.bytes().await.unwrap()[..], &bytes[..]);
    gone(&nodes, &id, before).await;

    // A range that covers all of it is the reading: it burns the file (it used to serve it
    // again and again).
    let receipt = put_once(&nodes[0], &bytes).await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    let all = get(
        &nodes[1],
        &id,
        &[("x-voldisefs-password", "pw"), ("range", "bytes=0-")],
    )
    .await;
    assert_eq!(all.status(), 206);
    assert_eq!(&all.bytes().await.unwrap()[..], &bytes[..]);
    gone(&nodes, &id, before).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_never_burn_an_empty_once_file() {
    let nodes = common::network(3, 3).await;
    let before = common::total_chunks(&nodes);
    let receipt = put_once(&nodes[0], b"").await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    // A HEAD, and a download ticket (which only opens the file), read nothing.
    let head = http
        .head(url(&nodes[1], &format!("/api/v1/files/{id}")))
        .header("x-voldisefs-password", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let ticket: serde_json::Value = http
        .post(url(&nodes[1], &format!("/api/v1/files/{id}/ticket")))
        .header("x-voldisefs-password", "pw")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ticket["ticket"].is_string(), "{ticket}");
    // Nothing was burned meanwhile: the records and chunk are all still held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        common::total_chunks(&nodes) > before,
        "a probe burned the file"
    );
    let whole = get(&nodes[2], &id, &[("x-voldisefs-password", "pw")]).await;
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.unwrap().is_empty());
    // The real (empty) reading burns it.
    gone(&nodes, &id, before).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_downloads_of_a_once_file() {
    let nodes = common::network(3, 3).await;
    let before = common::total_chunks(&nodes);
    let bytes = data(40 * common::CHUNK, 62);
    let receipt = put_once(&nodes[0], &bytes).await;
    let id = receipt["id"].as_str().unwrap().to_owned();
    let read = |node: &Node| {
        let (url, bytes) = (url(node, &format!("/api/v1/files/{id}")), bytes.clone());
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .header("x-voldisefs-password", "pw")
                .send()
                .await
                .unwrap();
            if response.status() != 200 {
                return false;
            }
            response
                .bytes()
                .await
                .is_ok_and(|body| body[..] == bytes[..])
        }
    };
    let (a, b) = tokio::join!(read(&nodes[1]), read(&nodes[2]));
    // Both may complete (both started before the first finished) or only one; never none.
    assert!(a || b, "neither download completed");
    gone(&nodes, &id, before).await;
    shutdown(nodes).await;
}

//! Share links through real nodes: an upload asked for its read key gets it; the key opens the
//! file through any node without the password and without an Argon2id run; it opens no other
//! file, fails closed when tampered with, and cannot delete.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{data, shutdown};
use voldisefs_node::Node;

fn url(node: &Node, path: &str) -> String {
    format!("http://{}{path}", node.http_addr().unwrap())
}

fn counter(node: &Node, name: &str) -> u64 {
    let prefix = format!("voldisefs_{name}_total ");
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .expect("the metric is there")
}

async fn upload(node: &Node, bytes: Vec<u8>, link: bool) -> serde_json::Value {
    let mut request = reqwest::Client::new()
        .post(url(node, "/api/v1/files"))
        .header("x-voldisefs-password", "pw")
        .body(bytes);
    if link {
        request = request.header("x-voldisefs-link", "true");
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn get_with_key(node: &Node, id: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url(node, &format!("/api/v1/files/{id}")))
        .header("x-voldisefs-read-key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_key_opens_its_file_and_nothing_else() {
    let nodes = common::network(3, 3).await;
    let (a_bytes, b_bytes) = (data(200_000, 31), data(1000, 32));
    let a = upload(&nodes[0], a_bytes.clone(), true).await;
    let b = upload(&nodes[0], b_bytes.clone(), true).await;
    let plain = upload(&nodes[0], b"x".to_vec(), false).await;
    assert!(plain.get("read_key").is_none(), "{plain}");
    let (a_id, a_key) = (a["id"].as_str().unwrap(), a["read_key"].as_str().unwrap());
    let (b_id, b_key) = (b["id"].as_str().unwrap(), b["read_key"].as_str().unwrap());
    assert_eq!(a_key.len(), 64);

    // Through another node, with the key alone: the bytes, and no Argon2id run there.
    let reader = &nodes[2];
    let response = get_with_key(reader, a_id, a_key).await;
    assert_eq!(response.status(), 200);
    assert_eq!(&response.bytes().await.unwrap()[..], &a_bytes[..]);
    assert_eq!(counter(reader, "kdf_runs"), 0);
    let response = get_with_key(reader, b_id, &b_key.to_uppercase()).await;
    assert_eq!(&response.bytes().await.unwrap()[..], &b_bytes[..]);
    // With a range too.
    let response = reqwest::Client::new()
        .get(url(reader, &format!("/api/v1/files/{a_id}")))
        .header("x-voldisefs-read-key", a_key)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(&response.bytes().await.unwrap()[..], &a_bytes[100..200]);

    // A's key on B, and a tampered key: refused like a wrong password.
    for (id, key) in [
        (b_id, a_key.to_string()),
        (
            a_id,
            format!(
                "{}{}",
                &a_key[..63],
                if a_key.ends_with('0') { '1' } else { '0' }
            ),
        ),
    ] {
        let response = get_with_key(reader, id, &key).await;
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "wrong_password");
    }
    // Not a key at all: a bad request.
    assert_eq!(get_with_key(reader, a_id, "nope").await.status(), 400);
    // A key is not a password: it cannot delete.
    let deleted = reqwest::Client::new()
        .delete(url(reader, &format!("/api/v1/files/{a_id}")))
        .header("x-voldisefs-password", a_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 401);
    assert_eq!(get_with_key(reader, a_id, a_key).await.status(), 200);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_link_opens_the_collection_and_its_files() {
    let nodes = common::network(3, 3).await;
    let form = reqwest::multipart::Form::new()
        .text("path", "album/a.txt")
        .part("file", reqwest::multipart::Part::bytes(b"first".to_vec()))
        .text("path", "album/sub/b.bin")
        .part("file", reqwest::multipart::Part::bytes(data(100_000, 33)));
    let uploaded: serde_json::Value = reqwest::Client::new()
        .post(url(&nodes[0], "/api/v1/collections"))
        .header("x-voldisefs-password", "pw")
        .header("x-voldisefs-filename", "album")
        .header("x-voldisefs-link", "true")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, key) = (
        uploaded["id"].as_str().unwrap(),
        uploaded["read_key"].as_str().unwrap(),
    );
    let reader = &nodes[2];
    let get = |path: String| {
        reqwest::Client::new()
            .get(url(reader, &path))
            .header("x-voldisefs-read-key", key)
            .send()
    };
    let listing: serde_json::Value = get(format!("/api/v1/collections/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["files"].as_array().unwrap().len(), 2);
    assert!(listing.get("read_key").is_none());
    // Each file opens with the read key the listing gives.
    let member = &listing["files"][0];
    let body = get_with_key(
        reader,
        member["id"].as_str().unwrap(),
        member["read_key"].as_str().unwrap(),
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert_eq!(&body[..], b"first");
    let file = get(format!(
        "/api/v1/collections/{id}/file?path=album%2Fsub%2Fb.bin"
    ))
    .await
    .unwrap();
    assert_eq!(&file.bytes().await.unwrap()[..], &data(100_000, 33)[..]);
    let tar = get(format!("/api/v1/collections/{id}/archive"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    assert_eq!(archive.entries().unwrap().count(), 2);
    // All of it without one Argon2id run on the reading node.
    assert_eq!(counter(reader, "kdf_runs"), 0);
    // The collection's key opens no file of it directly, and a member's key no collection.
    assert_eq!(
        get_with_key(reader, member["id"].as_str().unwrap(), key)
            .await
            .status(),
        401
    );
    shutdown(nodes).await;
}

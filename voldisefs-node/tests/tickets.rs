//! Download tickets through real nodes: issued behind the API (token, password or read key),
//! redeemed by a plain GET with nothing but the ticket (what a browser's download manager or
//! a `<video>` element sends), with `Range`; unknown tickets are 404; a collection's ticket
//! serves its archive.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{data, shutdown};
use voldisefs_node::{ApiToken, Node, NodeConfig};

const TOKEN: &str = "ticket-test-token";

fn url(node: &Node, path: &str) -> String {
    format!("http://{}{path}", node.http_addr().unwrap())
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Key derivations `node` ran (its `voldisefs_kdf_runs_total`).
fn kdf_runs(node: &Node) -> u64 {
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("voldisefs_kdf_runs_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the metric is there")
}

async fn ticket(node: &Node, id: &str, header: (&str, &str)) -> reqwest::Response {
    client()
        .post(url(node, &format!("/api/v1/files/{id}/ticket")))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_hand_a_download_to_a_plain_request() {
    let nodes = common::network_with(3, |c| NodeConfig {
        api_token: Some(ApiToken::new(TOKEN).unwrap()),
        // No password-key cache: a ticket that kept the password would derive again.
        kdf_cache_entries: 0,
        ..c
    })
    .await;
    let bytes = data(300_000, 41);
    let uploaded: serde_json::Value = client()
        .post(url(&nodes[0], "/api/v1/files"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-voldisefs-password", "pw")
        .header("x-voldisefs-filename", "movie.webm")
        .header("x-voldisefs-link", "true")
        .body(bytes.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = uploaded["id"].as_str().unwrap();
    let reader = &nodes[1];

    // Without the token, no ticket; with the wrong password, none either.
    let refused = client()
        .post(url(reader, &format!("/api/v1/files/{id}/ticket")))
        .header("x-voldisefs-password", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        ticket(reader, id, ("x-voldisefs-password", "pW"))
            .await
            .status(),
        401
    );

    let issued: serde_json::Value = ticket(reader, id, ("x-voldisefs-password", "pw"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(issued["kind"], "file");
    assert_eq!(issued["expires_in"], 600);
    let link = issued["url"].as_str().unwrap();
    assert_eq!(
        link,
        format!("/download/{}", issued["ticket"].as_str().unwrap())
    );
    // Nothing but the ticket: no token, no password. Twice (a media element seeks). The ticket
    // holds the file's read key, not the password: redeeming it runs no key derivation.
    let runs = kdf_runs(reader);
    for _ in 0..2 {
        let response = client().get(url(reader, link)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("movie.webm")
        );
        assert_eq!(&response.bytes().await.unwrap()[..], &bytes[..]);
    }
    let part = client()
        .get(url(reader, link))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(&part.bytes().await.unwrap()[..], &bytes[1000..2000]);
    assert_eq!(kdf_runs(reader), runs, "a ticket redeemed with Argon2id");
    // A ticket is valid on the node that issued it only, and unknown ones are 404.
    assert_eq!(
        client()
            .get(url(&nodes[2], link))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let unknown = client()
        .get(url(reader, &format!("/download/{}", "0".repeat(64))))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // From a share link's read key too.
    let key = uploaded["read_key"].as_str().unwrap();
    let issued: serde_json::Value = ticket(reader, id, ("x-voldisefs-read-key", key))
        .await
        .json()
        .await
        .unwrap();
    let response = client()
        .get(url(reader, issued["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(&response.bytes().await.unwrap()[..], &bytes[..]);

    // A collection's ticket serves its archive.
    let form = reqwest::multipart::Form::new()
        .text("path", "dir/a.txt")
        .part("file", reqwest::multipart::Part::bytes(b"hello".to_vec()));
    let collection: serde_json::Value = client()
        .post(url(&nodes[0], "/api/v1/collections"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-voldisefs-password", "pw")
        .header("x-voldisefs-filename", "dir")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = collection["id"].as_str().unwrap();
    let issued: serde_json::Value = ticket(reader, cid, ("x-voldisefs-password", "pw"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(issued["kind"], "archive");
    let tar = client()
        .get(url(reader, issued["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(tar.headers()["content-type"], "application/x-tar");
    let tar = tar.bytes().await.unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut entries = archive.entries().unwrap();
    let mut entry = entries.next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("dir/a.txt"));
    let mut content = String::new();
    std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
    assert_eq!(content, "hello");
    shutdown(nodes).await;
}

//! Download tickets are accounted per client (issue 25, point 9): one client flooding a node
//! with ticket requests evicts only its own tickets, never another client's. The victim
//! connects from 127.0.0.2, the flooder from 127.0.0.1 (both loopback on Linux).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{data, shutdown};
use futures_util::StreamExt;
use voldisefs_node::{MAX_TICKETS, Node};

fn url(node: &Node, path: &str) -> String {
    format!("http://{}{path}", node.http_addr().unwrap())
}

/// A client whose connections come from `ip`.
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap()
}

/// A ticket for file `id` opened with read key `key`, asked by `client`.
async fn ticket(client: &reqwest::Client, node: &Node, id: &str, key: &str) -> String {
    let response = client
        .post(url(node, &format!("/api/v1/files/{id}/ticket")))
        .header("x-voldisefs-read-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let issued: serde_json::Value = response.json().await.unwrap();
    issued["ticket"].as_str().unwrap().to_owned()
}

/// The status of `GET /download/{ticket}` by `client`.
async fn redeem(client: &reqwest::Client, node: &Node, ticket: &str) -> u16 {
    client
        .get(url(node, &format!("/download/{ticket}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_flood_does_not_evict_another_clients_ticket() {
    let nodes = common::network(1, 1).await;
    let node = &nodes[0];
    let bytes = data(2_000, 7);
    let uploaded: serde_json::Value = reqwest::Client::new()
        .post(url(node, "/api/v1/files"))
        .header("x-voldisefs-password", "pw")
        .header("x-voldisefs-link", "true")
        .body(bytes.clone())
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

    let victim = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let attacker = client_from(Ipv4Addr::LOCALHOST);
    let kept = ticket(&victim, node, id, key).await;
    let first = ticket(&attacker, node, id, key).await;
    // More requests than the node holds tickets in all (1,024): before the per-client quota,
    // these pushed the victim's ticket out.
    let flood = MAX_TICKETS + 76;
    let issued: Vec<String> = futures_util::stream::iter(0..flood)
        .map(|_| ticket(&attacker, node, id, key))
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(issued.len(), flood);

    assert_eq!(
        redeem(&victim, node, &kept).await,
        200,
        "a flood from another client evicted the victim's ticket"
    );
    // The flooder's tickets went first, its own oldest first (it may hold 64): its latest
    // still work.
    assert_eq!(redeem(&attacker, node, &first).await, 404);
    // A ticket is a bearer capability: any client may redeem it.
    let response = victim
        .get(url(node, &format!("/download/{}", issued[flood - 1])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(&response.bytes().await.unwrap()[..], &bytes[..]);
    shutdown(nodes).await;
}

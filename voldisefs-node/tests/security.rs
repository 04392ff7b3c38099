//! Node-level protection: keyed networks, the open-mode report, and the HTTP API token.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use bytes::Bytes;
use common::{data, pw, shutdown};
use reqwest::StatusCode;
use serde_json::Value;
use voldisefs_node::net::{NetConfig, NetworkKey};
use voldisefs_node::{ApiToken, Node, NodeConfig, NodeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_network_stores_and_serves_files() {
    let key = NetworkKey::generate().unwrap();
    let nodes = common::network_with(3, |c| NodeConfig {
        net: NetConfig {
            network_key: Some(key.clone()),
            ..c.net
        },
        ..c
    })
    .await;
    let bytes = data(5 * common::CHUNK + 3, 77);
    let r = nodes[0]
        .upload_bytes("k", pw("pw"), Bytes::from(bytes.clone()))
        .await
        .unwrap();
    assert_eq!(
        nodes[2].download_bytes(r.id, pw("pw")).await.unwrap().1,
        bytes
    );
    assert!(nodes.iter().all(|n| n.status().security == "keyed"));
    // A node without the key cannot join: it keeps trying and says so.
    let outsider = Node::start(NodeConfig {
        bootstrap: vec![nodes[0].peer_addr()],
        ..common::config()
    })
    .await
    .unwrap();
    assert!(outsider.is_joining());
    assert_eq!(outsider.status().state, "joining");
    assert_eq!(outsider.live_nodes(), vec![outsider.id()]);
    assert!(nodes.iter().all(|n| n.live_nodes().len() == 3));
    outsider.shutdown().await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_is_reported() {
    let nodes = common::network(1, 1).await;
    assert_eq!(nodes[0].status().security, "open");
    let url = format!("http://{}/api/v1/network", nodes[0].http_addr().unwrap());
    let net: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(net["security"], "open");
    shutdown(nodes).await;
}

#[tokio::test]
async fn a_public_http_api_without_a_token_refuses_to_start() {
    let config = NodeConfig {
        http: Some("0.0.0.0:0".parse().unwrap()),
        ..common::config()
    };
    match Node::start(config).await {
        Err(NodeError::Config(why)) => assert!(why.contains("API token"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn replicas_outside_what_a_redundancy_names_refuse_to_start() {
    // One limit everywhere: 1 to 32 copies, as `replicas:N` and the CLI's --replicas allow.
    for replicas in [0, voldisefs_node::crypto::MAX_SHARDS + 1] {
        let config = NodeConfig {
            replicas,
            ..common::config()
        };
        match Node::start(config).await {
            Err(NodeError::Config(why)) => assert!(why.contains("replicas"), "{why}"),
            other => panic!("expected a refusal of {replicas} replicas, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_api_requests_without_it_are_refused() {
    let token = ApiToken::new("s3cret-token").unwrap();
    assert_eq!(format!("{token:?}"), "ApiToken(..)");
    let node = Node::start(NodeConfig {
        api_token: Some(token),
        ..common::config()
    })
    .await
    .unwrap();
    let base = format!("http://{}", node.http_addr().unwrap());
    let http = reqwest::Client::new();
    let files = format!("{base}/api/v1/files");
    let res = http.get(&files).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "token_required"
    );
    let res = http.get(&files).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "bad_token");
    let res = http
        .post(&files)
        .header("X-Voldisefs-Password", "pw")
        .body("no token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(node.files().is_empty(), "nothing was stored");
    let res = http
        .get(&files)
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The page and the health check stay public.
    for path in ["/", "/healthz"] {
        let res = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    assert!(ApiToken::new("  ").is_err());
    assert!(ApiToken::new("has space").is_err());
    node.shutdown().await;
}

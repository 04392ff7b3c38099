//! The HTTP API against a hostile web page and hostile clients: DNS rebinding (foreign `Host`),
//! cross-site requests (foreign `Origin`), half-sent requests, stalled upload bodies and
//! connection floods, on raw TCP against a real node.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{CHUNK, data, eventually, pw, shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use voldisefs_node::{Node, NodeConfig};

/// Sends one raw request and returns the status code of the answer.
async fn status_of(addr: SocketAddr, request: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The status line is in the first bytes; read until it is complete.
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

fn post(host: &str, origin: Option<&str>, body: &[u8]) -> String {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {host}\r\n{origin}X-Voldisefs-Password: pw\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(body)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_own_host_names_and_origin_are_answered() {
    let node = Node::start(NodeConfig {
        http_hosts: vec!["files.example".into()],
        ..common::config()
    })
    .await
    .unwrap();
    let addr = node.http_addr().unwrap();
    let own = addr.to_string();
    let port = addr.port();
    // A rebinding page's own name is refused, on the API and the page alike.
    for path in ["/api/v1/files", "/api/v1/network", "/", "/healthz"] {
        assert_eq!(
            status_of(addr, &get(path, "evil.example")).await,
            403,
            "{path}"
        );
        assert_eq!(
            status_of(addr, &get(path, &format!("evil.example:{port}"))).await,
            403
        );
    }
    // Its address, localhost and configured names are fine.
    for host in [
        own.clone(),
        format!("localhost:{port}"),
        "LOCALHOST".into(),
        format!("files.example:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            status_of(addr, &get("/api/v1/files", &host)).await,
            200,
            "{host}"
        );
    }
    // State changes from another site's page are refused; from the node's own page they work.
    let foreign = status_of(addr, &post(&own, Some("http://evil.example"), b"x")).await;
    assert_eq!(foreign, 403);
    let null = status_of(addr, &post(&own, Some("null"), b"x")).await;
    assert_eq!(null, 403);
    // The right host under another scheme is another site's page, not this node's.
    for scheme in ["evil", "file", "chrome-extension"] {
        let other = status_of(addr, &post(&own, Some(&format!("{scheme}://{own}")), b"x")).await;
        assert_eq!(other, 403, "{scheme}");
    }
    let same = status_of(addr, &post(&own, Some(&format!("http://{own}")), b"x")).await;
    assert_eq!(same, 201);
    let no_origin = status_of(addr, &post(&own, None, b"x")).await;
    assert_eq!(
        no_origin, 201,
        "clients that are not browsers send no Origin"
    );
    assert_eq!(
        node.files().len(),
        2,
        "only the two allowed uploads happened"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_and_floods_are_bounded() {
    let node = Node::start(NodeConfig {
        http_header_timeout: Duration::from_millis(500),
        http_max_connections: 20,
        ..common::config()
    })
    .await
    .unwrap();
    let addr = node.http_addr().unwrap();
    // 60 clients each send half a request head and stop.
    let mut slow = Vec::new();
    for _ in 0..60 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /api/v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // Every one of them is closed by the node: beyond the cap at once, the rest when the
    // header timeout passes.
    for s in &mut slow {
        let mut buf = [0u8; 1024];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // a 408 answer, then the close
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a half-sent request kept its connection");
    }
    // Honest requests are served again.
    assert_eq!(
        status_of(addr, &get("/api/v1/files", "127.0.0.1")).await,
        200
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_body_fails_and_leaves_nothing() {
    let nodes = common::network_with(2, |c| NodeConfig {
        http_body_idle_timeout: Duration::from_millis(500),
        ..c
    })
    .await;
    let mut client =
        common::partial_upload(nodes[0].http_addr().unwrap(), 10 * CHUNK, 3 * CHUNK).await;
    // The client keeps the connection open and sends nothing more: the node gives up on it.
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut answer))
        .await
        .expect("the stalled upload was not ended")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    eventually("nothing stored after the stalled upload", || {
        common::total_chunks(&nodes) == 0
    })
    .await;
    // And the node keeps serving.
    let r = nodes[0]
        .upload_bytes("ok", pw("pw"), bytes::Bytes::from(data(100, 1)))
        .await
        .unwrap();
    assert_eq!(
        nodes[1].download_bytes(r.id, pw("pw")).await.unwrap().1,
        data(100, 1)
    );
    shutdown(nodes).await;
}

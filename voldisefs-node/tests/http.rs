//! The HTTP API (voldisefs-node/src/openapi.json) against real nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{CHUNK, data, network, shutdown};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

fn url(node: &voldisefs_node::Node, path: &str) -> String {
    format!("http://{}{path}", node.http_addr().unwrap())
}

/// Uploads `body` through `node` and returns the new file's id.
async fn upload(
    http: &reqwest::Client,
    node: &voldisefs_node::Node,
    password: &str,
    body: impl Into<reqwest::Body>,
) -> String {
    let res = http
        .post(url(node, "/api/v1/files"))
        .header("X-Voldisefs-Password", password)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What `GET /api/v1/files` on `node` answers.
async fn listing(http: &reqwest::Client, node: &voldisefs_node::Node) -> Value {
    http.get(url(node, "/api/v1/files"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The response's content type.
fn content_type(res: &reqwest::Response) -> &str {
    res.headers()["content-type"].to_str().unwrap()
}

async fn error_code(res: reqwest::Response) -> String {
    let v: Value = res.json().await.unwrap();
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v["error"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_download_list_delete_over_http() {
    let nodes = network(3, 2).await;
    let http = reqwest::Client::new();
    let bytes = data(3 * CHUNK + 17, 5);
    // Stream the body in small pieces, as a real client would.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let res = http
        .post(url(&nodes[0], "/api/v1/files"))
        .header("X-Voldisefs-Password", "hunter2")
        .header("X-Voldisefs-Filename", "r%C3%A9sum%C3%A9.pdf")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let receipt: Value = res.json().await.unwrap();
    let id = receipt["id"].as_str().unwrap().to_string();
    assert_eq!(receipt["size"], bytes.len());
    assert_eq!(receipt["chunks"], 4);

    let res = http
        .get(url(&nodes[1], &format!("/api/v1/files/{id}")))
        .header("X-Voldisefs-Password", "hunter2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.content_length(), Some(bytes.len() as u64));
    let cd = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cd.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%2Epdf"),
        "{cd}"
    );
    let mut got = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(piece) = stream.next().await {
        got.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(got, bytes);

    let list = listing(&http, &nodes[0]).await;
    assert_eq!(list["files"][0]["id"], id);
    assert_eq!(list["files"][0]["size"], bytes.len());
    assert_eq!(
        list["files"][0]["name"], "résumé.pdf",
        "the uploading node's index keeps the name"
    );

    let res = http
        .delete(url(&nodes[2], &format!("/api/v1/files/{id}")))
        .header("X-Voldisefs-Password", "hunter2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http
        .get(url(&nodes[1], &format!("/api/v1/files/{id}")))
        .header("X-Voldisefs-Password", "hunter2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(res).await, "not_found");
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_status_and_stable_codes() {
    let nodes = network(1, 1).await;
    let http = reqwest::Client::new();
    let node = &nodes[0];
    let id = upload(&http, node, "pw", "hello").await;
    let file = url(node, &format!("/api/v1/files/{id}"));

    let cases = [
        (
            http.get(&file).header("X-Voldisefs-Password", "nope"),
            401,
            "wrong_password",
        ),
        (http.get(&file), 401, "password_required"),
        (
            http.get(url(node, "/api/v1/files/not-an-id"))
                .header("X-Voldisefs-Password", "pw"),
            400,
            "bad_request",
        ),
        (
            http.get(url(node, &format!("/api/v1/files/{}", "ab".repeat(32))))
                .header("X-Voldisefs-Password", "pw"),
            404,
            "not_found",
        ),
        (
            http.post(url(node, "/api/v1/files")).body("x"),
            401,
            "password_required",
        ),
        (
            http.post(url(node, "/api/v1/files"))
                .header("X-Voldisefs-Password", "pw")
                .header("X-Voldisefs-Filename", "a".repeat(5000))
                .body("x"),
            400,
            "bad_request",
        ),
        (
            http.delete(&file).header("X-Voldisefs-Password", "nope"),
            401,
            "wrong_password",
        ),
    ];
    for (request, status, code) in cases {
        let res = request.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{code}");
        assert_eq!(error_code(res).await, code);
    }
    // The file is still there and readable after all that.
    let res = http
        .get(&file)
        .header("X-Voldisefs-Password", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap(), "hello");
    shutdown(nodes).await;
}

/// A name that is not UTF-8 once percent-decoded is kept with U+FFFD in place of the odd
/// bytes (a name is a label), not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_is_not_utf8_is_kept_lossily() {
    let nodes = common::network(1, 1).await;
    let node = &nodes[0];
    let http = reqwest::Client::new();
    let res = http
        .post(url(node, "/api/v1/files"))
        .header("X-Voldisefs-Password", "pw")
        .header("X-Voldisefs-Filename", "a%FF%FEb.txt")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let listed = listing(&http, node).await;
    assert_eq!(listed["files"][0]["name"], "a\u{FFFD}\u{FFFD}b.txt");
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_health_and_page() {
    let nodes = network(3, 3).await;
    let http = reqwest::Client::new();
    let net: Value = http
        .get(url(&nodes[0], "/api/v1/network"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(net["node"]["id"], nodes[0].id().to_string());
    assert_eq!(net["node"]["addr"], nodes[0].peer_addr().to_string());
    let peers = net["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2);
    assert!(
        peers
            .iter()
            .all(|p| p["state"] == "alive" && p["addr"].is_string())
    );
    assert_eq!(net["store"]["capacity"], 1u64 << 30);
    assert!(net["repair"]["backlog"].is_u64(), "{net}");

    let health = http.get(url(&nodes[1], "/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let page = http.get(url(&nodes[2], "/")).send().await.unwrap();
    assert!(content_type(&page).starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("/assets/page.js"));
    shutdown(nodes).await;
}

/// The page and everything it loads come from the binary, each under a Content-Security-Policy
/// that allows scripts from the node only (no inline script, no eval; WebAssembly compiles) and
/// connections to the node only; an unknown asset is a JSON 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_come_from_the_binary_under_a_strict_csp() {
    let nodes = network(1, 1).await;
    let http = reqwest::Client::new();
    let page = http.get(url(&nodes[0], "/")).send().await.unwrap();
    let csp = |r: &reqwest::Response| {
        r.headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let policy = csp(&page);
    for directive in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval';",
        "connect-src 'self';",
        "frame-ancestors 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{directive} missing from {policy}"
        );
    }
    let scripts = policy
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap()
        .replace("'wasm-unsafe-eval'", "");
    assert!(
        !scripts.contains("unsafe") && !scripts.contains("data:") && !scripts.contains('*'),
        "scripts: {scripts}"
    );
    let html = page.text().await.unwrap();
    for (path, kind) in [
        ("/assets/page.js", "text/javascript"),
        ("/assets/page.css", "text/css"),
        ("/assets/client.js", "text/javascript"),
        ("/assets/worker.js", "text/javascript"),
        ("/assets/voldisefs_crypto.js", "text/javascript"),
        ("/assets/voldisefs_crypto_bg.wasm", "application/wasm"),
        ("/sw.js", "text/javascript"),
    ] {
        let r = http.get(url(&nodes[0], path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            content_type(&r).starts_with(kind),
            "{path}: {}",
            content_type(&r)
        );
        assert_eq!(csp(&r), policy, "{path} runs under the page's policy");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let body = r.bytes().await.unwrap();
        assert!(!body.is_empty(), "{path}");
        if kind == "application/wasm" {
            assert_eq!(&body[..4], b"\0asm", "{path} is WebAssembly");
        }
    }
    assert!(html.contains("/assets/page.css") && html.contains("/assets/page.js"));
    let missing = http
        .get(url(&nodes[0], "/assets/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json::<serde_json::Value>().await.unwrap()["error"],
        "not_found"
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_peer_port_does_not_disturb_the_node() {
    let nodes = network(2, 2).await;
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xff; 64][..],
        &[0, 0, 0, 0][..],
    ] {
        let mut s = tokio::net::TcpStream::connect(nodes[0].peer_addr())
            .await
            .unwrap();
        s.write_all(junk).await.unwrap();
        drop(s);
    }
    let r = nodes[1]
        .upload_bytes(
            "after",
            common::pw("pw"),
            bytes::Bytes::from_static(b"still fine"),
        )
        .await
        .unwrap();
    assert_eq!(
        nodes[0]
            .download_bytes(r.id, common::pw("pw"))
            .await
            .unwrap()
            .1,
        b"still fine"
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_store_peers_requests_and_transfers() {
    let nodes = network(3, 3).await;
    let http = reqwest::Client::new();
    let id = upload(&http, &nodes[0], "pw", data(2 * CHUNK, 1)).await;
    let res = http
        .get(url(&nodes[0], &format!("/api/v1/files/{id}")))
        .header("X-Voldisefs-Password", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().len(), 2 * CHUNK);
    let wrong = http
        .get(url(&nodes[0], &format!("/api/v1/files/{id}")))
        .header("X-Voldisefs-Password", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let res = http.get(url(&nodes[0], "/metrics")).send().await.unwrap();
    assert!(content_type(&res).starts_with("application/openmetrics-text"));
    let text = res.text().await.unwrap();
    for line in [
        "voldisefs_store_chunks 3",
        "voldisefs_store_capacity_bytes 1073741824",
        "voldisefs_peers{state=\"alive\"} 2",
        "voldisefs_peers{state=\"dead\"} 0",
        "voldisefs_upload_duration_seconds_count{outcome=\"ok\"} 1",
        "voldisefs_download_duration_seconds_count{outcome=\"ok\"} 1",
        "voldisefs_download_duration_seconds_count{outcome=\"error\"} 1",
        "voldisefs_peer_requests_total{direction=\"out\",kind=\"put_chunk\",outcome=\"ok\"} 6",
        "voldisefs_repair_backlog_chunks 0",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(text.contains("voldisefs_peer_traffic_bytes_total{direction=\"out\"}"));
    assert!(text.contains("voldisefs_store_bytes "));
    // Served requests show up on the peers.
    let peer = http
        .get(url(&nodes[1], "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        peer.contains(
            "voldisefs_peer_requests_total{direction=\"in\",kind=\"put_chunk\",outcome=\"ok\"} 3"
        ),
        "{peer}"
    );
    shutdown(nodes).await;
}

/// An upload refused on its headers (here a redundancy the network does not offer) answers the
/// refusal even while the client is still sending a 6 MiB body: the node reads the body (up to
/// 8 MiB, for up to a second) before it answers, instead of closing under the client's write.
/// The same for a folder upload refused on its headers (`X-Voldisefs-Once` is for files).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_is_answered_while_its_body_is_still_arriving() {
    let nodes = network(1, 1).await;
    let http = reqwest::Client::new();
    let node = &nodes[0];
    let mut folder =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n"
            .to_vec();
    folder.extend_from_slice(&data(6 << 20, 10));
    folder.extend_from_slice(b"\r\n--XyZ--\r\n");
    for _ in 0..3 {
        let res = http
            .post(url(node, "/api/v1/files"))
            .header("X-Voldisefs-Password", "pw")
            .header("X-Voldisefs-Redundancy", "replicas:3")
            .body(data(6 << 20, 9))
            .send()
            .await
            .expect("the refusal, not a broken connection");
        assert!(res.status().is_client_error(), "{}", res.status());
        let v: Value = res.json().await.unwrap();
        assert!(
            v["message"].as_str().unwrap().contains("keeps 1 copies"),
            "{v}"
        );
        let res = http
            .post(url(node, "/api/v1/collections"))
            .header("X-Voldisefs-Password", "pw")
            .header("X-Voldisefs-Once", "true")
            .header("Content-Type", "multipart/form-data; boundary=XyZ")
            .body(folder.clone())
            .send()
            .await
            .expect("the refusal, not a broken connection");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let v: Value = res.json().await.unwrap();
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("works for single files"),
            "{v}"
        );
    }
    shutdown(nodes).await;
}

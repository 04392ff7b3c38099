//! Slow readers (issue 25, point 6): clients that ask for a file with its read key (no
//! Argon2id) and never read the answer, on raw TCP with a small receive buffer, against a real
//! node. The bytes held for them stay within the node-wide budget, an honest client still
//! downloads the file during the attack, and the stalled connections are closed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{data, shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use voldisefs_node::crypto::ChunkSize;
use voldisefs_node::{Node, NodeConfig};

/// The node-wide budget of bytes held ahead of slow clients (`RESPONSE_BUDGET`).
const BUDGET: u64 = 256 << 20;
/// The file: larger than what the kernel buffers of one connection take (4 MiB send buffer
/// at most here), so a client that reads nothing stalls the node's writes.
const FILE_LEN: usize = 24 << 20;
/// A short idle write deadline for the test.
const WRITE_IDLE: Duration = Duration::from_secs(12);

/// A node with 1 MiB chunks and a full read-ahead window (16 chunks).
async fn node(max_connections: usize) -> Node {
    Node::start(NodeConfig {
        replicas: 1,
        chunk_size: ChunkSize::default(),
        transfer_parallelism: 16,
        http_max_connections: max_connections,
        http_write_idle_timeout: WRITE_IDLE,
        ..common::config()
    })
    .await
    .unwrap()
}

/// Uploads `bytes` asking for a share link; returns the id and the read key.
async fn upload(addr: SocketAddr, bytes: Vec<u8>) -> (String, String) {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/files"))
        .header("x-voldisefs-password", "pw")
        .header("x-voldisefs-link", "true")
        .body(bytes)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let field = |name: &str| answer[name].as_str().unwrap().to_string();
    (field("id"), field("read_key"))
}

/// Opens a connection with a 4 KiB receive buffer that asks for the file and never reads.
async fn attacker(addr: SocketAddr, id: &str, key: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /api/v1/files/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Voldisefs-Read-Key: {key}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// One GET over its own connection: the status, the headers and the body (or `None` when
/// the connection was closed or reset before an answer).
async fn get(addr: SocketAddr, path: &str, key: Option<&str>) -> Option<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let key = key.map_or(String::new(), |k| format!("X-Voldisefs-Read-Key: {k}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{key}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head, answer[end + 4..].to_vec()))
}

/// The value of metric `name` from `GET /metrics`, if the node answered.
async fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    let (status, _, body) = get(addr, "/metrics", None).await?;
    if status != 200 {
        return None;
    }
    let prefix = format!("{name} ");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Downloads the file honestly, retrying as a 503's `Retry-After` asks; the body and the time
/// it took. Fails after `within`.
async fn honest_download(addr: SocketAddr, id: &str, key: &str, within: Duration) -> Vec<u8> {
    let started = Instant::now();
    let path = format!("/api/v1/files/{id}");
    loop {
        assert!(
            started.elapsed() < within,
            "no honest download within {within:?}"
        );
        match get(addr, &path, Some(key)).await {
            Some((200, _, body)) => return body,
            Some((503, head, _)) => {
                assert!(head.contains("retry-after: 1"), "{head}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // Reset or closed without an answer (what happened before): try again shortly.
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Stalled connections the node closed so far (to make room, or by the write deadline).
async fn closed(addr: SocketAddr) -> Option<u64> {
    Some(
        metric(addr, "voldisefs_http_stalled_closed_total").await?
            + metric(addr, "voldisefs_http_stalled_evicted_total").await?,
    )
}

/// Waits (at most `within`) until the node counts every one of `attackers` closed, then checks
/// each is closed from the client's side: reading gives what the kernel buffered, then the
/// end or a reset, never the whole file.
async fn all_closed(addr: SocketAddr, attackers: Vec<TcpStream>, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let n = attackers.len() as u64;
    let closed = loop {
        match closed(addr).await {
            Some(closed) if closed >= n => break closed,
            _ => {}
        }
        assert!(Instant::now() < deadline, "stalled connections still open");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for mut stream in attackers {
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0usize;
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
        let got = drained.expect("a stalled connection was still open");
        assert!(got < FILE_LEN, "a stalled connection got the whole file");
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_hold_bytes_within_the_budget_and_are_closed() {
    const ATTACKERS: usize = 64;
    let node = node(256).await;
    let addr = node.http_addr().unwrap();
    let file = data(FILE_LEN, 6);
    let (id, key) = upload(addr, file.clone()).await;
    let rss_before = rss();

    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        attackers.push(attacker(addr, &id, &key).await);
    }
    // (a) While the attack runs, the bytes held for it stay within the budget, and it does
    // take the budget (64 clients would want 16 MiB of read-ahead each).
    let mut peak = 0;
    let mut peak_rss = 0;
    for _ in 0..100 {
        let held = metric(addr, "voldisefs_http_response_held_bytes")
            .await
            .expect("the held-bytes metric");
        assert!(held <= BUDGET, "{held} bytes held, over the budget");
        peak = peak.max(held);
        peak_rss = peak_rss.max(rss());
        if peak >= BUDGET / 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(peak >= BUDGET / 2, "the attack held only {peak} bytes");

    // (b) An honest client downloads the whole file meanwhile, the held bytes still bounded.
    let started = Instant::now();
    let honest =
        tokio::spawn(
            async move { honest_download(addr, &id, &key, Duration::from_secs(30)).await },
        );
    while !honest.is_finished() {
        let held = metric(addr, "voldisefs_http_response_held_bytes")
            .await
            .expect("the held-bytes metric");
        assert!(held <= BUDGET, "{held} bytes held, over the budget");
        peak = peak.max(held);
        peak_rss = peak_rss.max(rss());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = honest.await.unwrap();
    let took = started.elapsed();
    assert!(body == file, "the honest download is not the file");

    // (c) The stalled connections are closed (made room for others, or by the deadline), and
    // what they held is given back.
    let closed = all_closed(addr, attackers, WRITE_IDLE + Duration::from_secs(10)).await;
    let mut held = u64::MAX;
    for _ in 0..100 {
        held = metric(addr, "voldisefs_http_response_held_bytes")
            .await
            .unwrap();
        if held == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held, 0, "bytes still held after the attack");
    eprintln!(
        "{ATTACKERS} stalled readers: peak held {} MiB of a {} MiB budget; process RSS {} MiB \
         before, {} MiB at the peak; honest download of {} MiB in {took:?}; {closed} closed",
        peak >> 20,
        BUDGET >> 20,
        rss_before >> 20,
        peak_rss >> 20,
        FILE_LEN >> 20,
    );
    shutdown(vec![node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_at_the_connection_cap_do_not_lock_the_api_out() {
    const CAP: usize = 32;
    let node = node(CAP).await;
    let addr = node.http_addr().unwrap();
    let file = data(FILE_LEN, 7);
    let (id, key) = upload(addr, file.clone()).await;
    let mut attackers = Vec::new();
    for _ in 0..CAP {
        attackers.push(attacker(addr, &id, &key).await);
    }
    // Every slot is taken: a new connection gets a clear refusal, not a reset. (Once the
    // stalled ones have read nothing for a while, a new one makes room instead.)
    let refused = get(addr, "/healthz", None).await;
    let (status, head, _) = refused.expect("an answer, not a reset");
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");

    // The honest client gets through during the attack, well before the write deadline
    // would close the stalled connections.
    let started = Instant::now();
    let body = honest_download(addr, &id, &key, Duration::from_secs(30)).await;
    assert!(body == file, "the honest download is not the file");
    let took = started.elapsed();
    assert!(took < WRITE_IDLE, "the honest download took {took:?}");
    all_closed(addr, attackers, WRITE_IDLE + Duration::from_secs(10)).await;
    eprintln!("{CAP} stalled readers at the cap: honest download in {took:?}");
    shutdown(vec![node]).await;
}

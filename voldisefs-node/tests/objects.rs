//! The object API (`/api/v1/info`, `/api/v1/objects`, `/api/v1/stripes`, object deletes)
//! against real nodes over real HTTP, with clients that seal files themselves
//! (`voldisefs_crypto::FileSealer`, `Stripe::encode`): sealed objects round-trip byte for byte
//! (and open as files), stripes come back joined, deletes need the file's delete key and leave
//! tombstones. Hostile clients (wrong and malformed ids, short, huge, expired and too
//! long-lived objects, oversized, overfull and truncated batches, stripes that do not match
//! their descriptor, oversized deletes, stalled bodies, a flood of stalled large bodies) each
//! get a clear refusal and store nothing, and the node keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{CHUNK, data, network, network_with, shutdown, total_chunks};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use voldisefs_crypto::{
    ChunkSize, EncodedStripe, FileKind, FileOpener, FileSealer, KdfParams, MIN_STORED_LEN,
    ManifestInfo, Password, SealedChunk, SealedRecord, Stripe, TRAILER_LEN, chunk_count_for,
    content_id,
};
use voldisefs_node::proto::objects::encode_batch;
use voldisefs_node::{
    BUDGET_WAIT, DELETE_KEY_HEADER, EXPIRY_SKEW_SECS, MAX_BATCH_BYTES, MAX_BATCH_OBJECTS,
    MAX_DELETE_IDS, MAX_OBJECT_LEN, Node, NodeConfig, OBJECT_BODY_BUDGET,
};

const PASSWORD: &str = "correct horse battery staple";

/// How long any single answer may take before a test fails (never a synchronisation).
const ANSWER: Duration = Duration::from_secs(10);

fn url(node: &Node, path: &str) -> String {
    format!("http://{}{path}", node.http_addr().unwrap())
}

fn object_url(node: &Node, id: &[u8; 32]) -> String {
    url(node, &format!("/api/v1/objects/{}", hex::encode(id)))
}

fn stripe_url(node: &Node, id: &[u8; 32]) -> String {
    url(node, &format!("/api/v1/stripes/{}", hex::encode(id)))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A file sealed by the client: its sealer (which holds the delete key), its plaintext, its
/// sealed chunks and its record.
struct Sealed {
    sealer: FileSealer,
    plaintext: Vec<u8>,
    chunks: Vec<SealedChunk>,
    record: SealedRecord,
}

impl Sealed {
    /// Every object to store: the chunks, then the record.
    fn objects(&self) -> Vec<([u8; 32], &[u8])> {
        self.chunks
            .iter()
            .map(|c| (c.id, &c.bytes[..]))
            .chain([(self.record.id, &self.record.bytes[..])])
            .collect()
    }

    fn ids(&self) -> Vec<[u8; 32]> {
        self.objects().into_iter().map(|(id, _)| id).collect()
    }

    fn delete_key(&self) -> String {
        hex::encode(self.sealer.delete_key().as_bytes())
    }
}

/// Seals `len` (> 0) pseudo-random bytes with the test KDF and 64 KiB chunks, every object
/// expiring at `expires` (0: never).
fn seal(len: usize, seed: u64, expires: u64) -> Sealed {
    assert!(len > 0);
    let chunk_size = ChunkSize::from_bytes(CHUNK as u64).unwrap();
    let sealer = FileSealer::new(
        &Password::new(PASSWORD),
        KdfParams::insecure_test(),
        chunk_size,
    )
    .unwrap()
    .with_expiry(expires);
    let plaintext = data(len, seed);
    let count = chunk_count_for(len as u64, chunk_size);
    let chunks: Vec<SealedChunk> = plaintext
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, piece)| {
            let i = i as u64;
            sealer.seal_chunk(i, i + 1 == count, piece).unwrap()
        })
        .collect();
    let record = sealer
        .finish(&ManifestInfo {
            name: format!("file-{seed}.bin"),
            size: len as u64,
            created: unix_now(),
            kind: FileKind::File,
            chunks: chunks.iter().map(|c| c.id).collect(),
        })
        .unwrap();
    Sealed {
        sealer,
        plaintext,
        chunks,
        record,
    }
}

/// A hand-made object of `len` bytes whose public trailer says it expires at `expires`: the
/// node checks an object's id, length and trailer, never its (here absent) cryptography.
fn object(len: usize, seed: u64, expires: u64) -> ([u8; 32], Vec<u8>) {
    let mut bytes = data(len, seed);
    let at = len - TRAILER_LEN;
    bytes[at..at + 8].copy_from_slice(&expires.to_be_bytes());
    (content_id(&bytes), bytes)
}

/// The batch framing of `objects`.
fn batch(objects: &[([u8; 32], &[u8])]) -> Vec<u8> {
    encode_batch(objects.iter().map(|(id, bytes)| (id, *bytes))).unwrap()
}

/// The body of `PUT /api/v1/stripes/{id}`: the descriptor under the stripe id, then every
/// shard under its content id.
fn stripe_body(stripe: &EncodedStripe) -> Vec<u8> {
    let ids: Vec<[u8; 32]> = stripe.shards.iter().map(|s| content_id(s)).collect();
    let mut objects = vec![(stripe.id, &stripe.descriptor[..])];
    objects.extend(ids.into_iter().zip(stripe.shards.iter().map(|s| &s[..])));
    batch(&objects)
}

async fn put(http: &reqwest::Client, node: &Node, id: &[u8; 32], body: &[u8]) -> reqwest::Response {
    http.put(object_url(node, id))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn post_batch(http: &reqwest::Client, node: &Node, body: Vec<u8>) -> reqwest::Response {
    http.post(url(node, "/api/v1/objects"))
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn post_delete(http: &reqwest::Client, node: &Node, request: &Value) -> reqwest::Response {
    http.post(url(node, "/api/v1/objects/delete"))
        .json(request)
        .send()
        .await
        .unwrap()
}

/// Status and body of a GET.
async fn fetch(http: &reqwest::Client, url: String) -> (StatusCode, Vec<u8>) {
    let res = http.get(url).send().await.unwrap();
    let status = res.status();
    (status, res.bytes().await.unwrap().to_vec())
}

/// Asserts a 201 receipt for `stored` objects with `copies` copies each (of `copies` wanted).
async fn assert_stored(res: reqwest::Response, stored: usize, copies: usize) {
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let receipt: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        receipt,
        json!({"stored": stored, "copies": copies, "replicas": copies}),
        "{text}"
    );
}

/// Asserts the answer is `status` with the JSON error `code` and a message; returns the message.
async fn assert_refused(res: reqwest::Response, status: u16, code: &str) -> String {
    let got = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(v["error"], code, "{text}");
    let message = v["message"].as_str().unwrap().to_string();
    assert!(!message.is_empty(), "{text}");
    message
}

/// Asserts every node answers `id` with exactly `bytes`.
async fn assert_readable(http: &reqwest::Client, nodes: &[Node], id: &[u8; 32], bytes: &[u8]) {
    for node in nodes {
        let (status, got) = fetch(http, object_url(node, id)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{} via {}",
            hex::encode(id),
            node.id()
        );
        assert!(
            got == bytes,
            "{} via {}: other bytes",
            hex::encode(id),
            node.id()
        );
    }
}

/// Asserts no node serves `id` (404 `not_found`).
async fn assert_gone(http: &reqwest::Client, nodes: &[Node], id: &[u8; 32]) {
    for node in nodes {
        let res = http.get(object_url(node, id)).send().await.unwrap();
        assert_refused(res, 404, "not_found").await;
    }
}

/// Store counts every node reports on `/api/v1/network`, summed.
async fn network_chunks(http: &reqwest::Client, nodes: &[Node]) -> u64 {
    let mut total = 0;
    for node in nodes {
        let v: Value = http
            .get(url(node, "/api/v1/network"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        total += v["store"]["chunks"].as_u64().unwrap();
    }
    total
}

// ---- Raw HTTP, for clients that announce one thing and do another. ----

/// Opens a connection to `addr` and sends `request` (head and whatever body bytes it holds).
async fn send_raw(addr: SocketAddr, request: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream
}

/// A request head with `Host` and the given extra header lines.
fn head(method: &str, path: &str, headers: &[String]) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

/// Reads the next response head from `stream` within `limit`: its status and its text. Bytes
/// after it stay in `buf`.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, limit: Duration) -> (u16, String) {
    tokio::time::timeout(limit, async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = buf.drain(..end + 4).collect();
                let text = String::from_utf8_lossy(&head).into_owned();
                let status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("no status line: {text}"));
                return (status, text);
            }
            let mut piece = [0u8; 4096];
            let n = stream.read(&mut piece).await.unwrap();
            assert!(
                n > 0,
                "the connection closed without an answer: {}",
                String::from_utf8_lossy(buf)
            );
            buf.extend_from_slice(&piece[..n]);
        }
    })
    .await
    .expect("no answer in time")
}

/// Reads a whole final answer (head and `Content-Length` body) within `limit`.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>, limit: Duration) -> (u16, String) {
    let deadline = Instant::now() + limit;
    let (status, text) = read_head(stream, buf, limit).await;
    let len: usize = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), async {
        while buf.len() < len {
            let mut piece = [0u8; 4096];
            let n = stream.read(&mut piece).await.unwrap();
            assert!(n > 0, "the answer's body was cut short");
            buf.extend_from_slice(&piece[..n]);
        }
    })
    .await
    .expect("no complete answer in time");
    let body = String::from_utf8_lossy(&buf[..len]).into_owned();
    buf.drain(..len);
    (status, body)
}

// ---- Round trips. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_files_round_trip_through_the_object_api() {
    let nodes = network(3, 3).await;
    let http = reqwest::Client::new();

    // What a client needs to seal for this network.
    let info: Value = http
        .get(url(&nodes[0], "/api/v1/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["chunk_size"], CHUNK);
    assert_eq!(info["replicas"], 3);
    assert_eq!(info["live_nodes"], 3);
    assert_eq!(info["max_object"], MAX_OBJECT_LEN);
    assert_eq!(info["max_batch_bytes"], MAX_BATCH_BYTES);
    assert_eq!(info["max_batch_objects"], MAX_BATCH_OBJECTS);
    assert_eq!(info["max_delete_ids"], MAX_DELETE_IDS);
    assert!(info.get("max_expiry").is_none(), "{info}");

    // One object per request, through node 0.
    let file = seal(2 * CHUNK + 1000, 1, 0);
    assert_eq!(file.chunks.len(), 3);
    for (id, bytes) in file.objects() {
        assert_stored(put(&http, &nodes[0], &id, bytes).await, 1, 3).await;
    }
    assert_eq!(total_chunks(&nodes), 3 * 4, "three copies of each object");
    // Byte for byte back through every other node.
    for (id, bytes) in file.objects() {
        assert_readable(&http, &nodes[1..], &id, bytes).await;
    }
    // What came back opens as the file: the client's own reader...
    let (_, record) = fetch(&http, object_url(&nodes[1], &file.record.id)).await;
    let opener = FileOpener::open(&file.record.id, &record, &Password::new(PASSWORD)).unwrap();
    assert_eq!(opener.manifest().name(), "file-1.bin");
    let mut plaintext = Vec::new();
    for (i, chunk) in file.chunks.iter().enumerate() {
        let (_, bytes) = fetch(&http, object_url(&nodes[2], &chunk.id)).await;
        plaintext.extend_from_slice(&opener.open_chunk(i as u64, bytes).unwrap());
    }
    assert_eq!(plaintext, file.plaintext);
    // ... and the node's own file API with the password.
    let res = http
        .get(url(
            &nodes[2],
            &format!("/api/v1/files/{}", hex::encode(file.record.id)),
        ))
        .header("X-Voldisefs-Password", PASSWORD)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), file.plaintext);
    // Storing an object again is harmless.
    let (id, bytes) = file.objects()[0];
    assert_stored(put(&http, &nodes[1], &id, bytes).await, 1, 3).await;
    assert_eq!(total_chunks(&nodes), 3 * 4);

    // Several small files in one batch, through node 1 (uppercase hex ids work as well).
    let small: Vec<Sealed> = (0..4).map(|i| seal(1000 + i, 10 + i as u64, 0)).collect();
    let objects: Vec<([u8; 32], &[u8])> = small.iter().flat_map(Sealed::objects).collect();
    assert_eq!(objects.len(), 8);
    assert_stored(post_batch(&http, &nodes[1], batch(&objects)).await, 8, 3).await;
    for (id, bytes) in &objects {
        assert_readable(&http, &nodes, id, bytes).await;
    }
    let upper = url(
        &nodes[0],
        &format!(
            "/api/v1/objects/{}",
            hex::encode(objects[0].0).to_uppercase()
        ),
    );
    assert_eq!(
        fetch(&http, upper).await,
        (StatusCode::OK, objects[0].1.to_vec())
    );
    assert_eq!(total_chunks(&nodes), 3 * (4 + 8));
    assert_eq!(network_chunks(&http, &nodes).await, 3 * (4 + 8));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_is_stored_as_shards_and_read_back_joined() {
    let nodes = network(3, 3).await;
    let http = reqwest::Client::new();
    let file = seal(CHUNK + 10, 2, 0);
    let chunk = &file.chunks[0];
    assert_eq!(chunk.bytes.len(), CHUNK + 56);
    let stripe = Stripe::encode(2, 1, &chunk.bytes).unwrap();
    let res = http
        .put(stripe_url(&nodes[0], &stripe.id))
        .body(stripe_body(&stripe))
        .send()
        .await
        .unwrap();
    assert_stored(res, 1, 3).await;
    // Each of the three nodes keeps the descriptor and one shard.
    assert_eq!(total_chunks(&nodes), 6);
    for node in &nodes {
        assert_eq!(node.status().store.chunks, 2, "{}", node.id());
        let (status, joined) = fetch(&http, stripe_url(node, &stripe.id)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            joined == chunk.bytes,
            "the joined stripe is the sealed chunk"
        );
    }
    // The file's delete key deletes the stripe, shards and all.
    let res = post_delete(
        &http,
        &nodes[1],
        &json!({"delete_key": file.delete_key(), "ids": [hex::encode(stripe.id)], "spread": 3}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(total_chunks(&nodes), 0);
    for node in &nodes {
        let res = http.get(stripe_url(node, &stripe.id)).send().await.unwrap();
        assert_refused(res, 404, "not_found").await;
    }
    shutdown(nodes).await;
}

// ---- Deletes. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_need_the_delete_key_and_leave_tombstones() {
    let nodes = network(3, 3).await;
    let http = reqwest::Client::new();
    let file = seal(CHUNK + 500, 3, 0);
    let objects = file.objects();
    assert_stored(post_batch(&http, &nodes[0], batch(&objects)).await, 3, 3).await;
    let ids: Vec<String> = file.ids().iter().map(hex::encode).collect();

    // A wrong key is answered but erases nothing.
    let wrong = hex::encode([7u8; 32]);
    let res = post_delete(
        &http,
        &nodes[1],
        &json!({"delete_key": wrong, "ids": ids, "everywhere": true}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    for (id, bytes) in &objects {
        assert_readable(&http, &nodes, id, bytes).await;
    }
    assert_eq!(total_chunks(&nodes), 9);
    // Nothing to delete is done at once, either scope (no node is asked, so none confirms;
    // schemathesis found it answered 503).
    for everywhere in [false, true] {
        let res = post_delete(
            &http,
            &nodes[1],
            &json!({"delete_key": file.delete_key(), "ids": [], "everywhere": everywhere}),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "everywhere: {everywhere}");
    }
    // A request that is partly malformed deletes nothing, even with the right key.
    let mut bad_ids = ids.clone();
    bad_ids.push("not an id".into());
    let res = post_delete(
        &http,
        &nodes[1],
        &json!({"delete_key": file.delete_key(), "ids": bad_ids}),
    )
    .await;
    assert_refused(res, 400, "bad_request").await;
    let res = post_delete(
        &http,
        &nodes[1],
        &json!({"delete_key": file.delete_key(), "ids": ids, "also": 1}),
    )
    .await;
    assert_refused(res, 400, "bad_request").await;
    let res = post_delete(
        &http,
        &nodes[1],
        &json!({"delete_key": file.delete_key(), "ids": ids, "spread": 33}),
    )
    .await;
    assert_refused(res, 400, "bad_request").await;
    assert_eq!(total_chunks(&nodes), 9);

    // The sealer's delete key erases them on every node.
    let res = post_delete(
        &http,
        &nodes[2],
        &json!({"delete_key": file.delete_key(), "ids": ids, "everywhere": true}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["nodes"], 3, "{answer}");
    for id in file.ids() {
        assert_gone(&http, &nodes, &id).await;
    }
    assert_eq!(total_chunks(&nodes), 0);

    // Tombstones: storing them again, one by one or in a batch, through any node, does not
    // bring them back.
    for (i, (id, bytes)) in objects.iter().enumerate() {
        let res = put(&http, &nodes[i % 3], id, bytes).await;
        assert!(
            !res.status().is_success(),
            "a deleted object was stored again: {}",
            res.text().await.unwrap()
        );
    }
    let res = post_batch(&http, &nodes[1], batch(&objects)).await;
    assert!(!res.status().is_success(), "{}", res.text().await.unwrap());
    for id in file.ids() {
        assert_gone(&http, &nodes, &id).await;
    }
    assert_eq!(total_chunks(&nodes), 0);

    // One object: `DELETE /api/v1/objects/{id}` with the key in a header.
    let other = seal(700, 4, 0);
    let (chunk_id, chunk) = other.objects()[0];
    assert_stored(put(&http, &nodes[0], &chunk_id, chunk).await, 1, 3).await;
    let target = object_url(&nodes[1], &chunk_id);
    let res = http.delete(&target).send().await.unwrap();
    assert_refused(res, 400, "bad_request").await;
    for key in ["zz", "", &"a".repeat(63), &"g".repeat(64)] {
        let res = http
            .delete(&target)
            .header(DELETE_KEY_HEADER, key)
            .send()
            .await
            .unwrap();
        assert_refused(res, 400, "bad_request").await;
    }
    let res = http
        .delete(format!("{target}?spread=1000"))
        .header(DELETE_KEY_HEADER, other.delete_key())
        .send()
        .await
        .unwrap();
    assert_refused(res, 400, "bad_request").await;
    let res = http
        .delete(&target)
        .header(DELETE_KEY_HEADER, file.delete_key())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "another file's key");
    assert_readable(&http, &nodes, &chunk_id, chunk).await;
    let res = http
        .delete(&target)
        .header(DELETE_KEY_HEADER, other.delete_key())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_gone(&http, &nodes, &chunk_id).await;
    assert_eq!(total_chunks(&nodes), 0);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_naming_too_many_ids_deletes_nothing() {
    let nodes = network(2, 2).await;
    let http = reqwest::Client::new();
    let file = seal(300, 5, 0);
    let objects = file.objects();
    assert_stored(post_batch(&http, &nodes[0], batch(&objects)).await, 2, 2).await;
    // The right key and the real ids, padded past the limit: refused as a whole.
    let mut ids: Vec<String> = file.ids().iter().map(hex::encode).collect();
    ids.extend((0..MAX_DELETE_IDS).map(|i| format!("{i:064x}")));
    assert!(ids.len() > MAX_DELETE_IDS);
    let request = json!({"delete_key": file.delete_key(), "ids": ids, "everywhere": true});
    let res = post_delete(&http, &nodes[1], &request).await;
    let message = assert_refused(res, 400, "bad_request").await;
    assert!(message.contains(&MAX_DELETE_IDS.to_string()), "{message}");
    for (id, bytes) in &objects {
        assert_readable(&http, &nodes, id, bytes).await;
    }
    // Exactly at the limit is fine.
    ids.truncate(MAX_DELETE_IDS);
    let request = json!({"delete_key": file.delete_key(), "ids": ids, "everywhere": true});
    let res = post_delete(&http, &nodes[1], &request).await;
    assert_eq!(res.status(), StatusCode::OK);
    for id in file.ids() {
        assert_gone(&http, &nodes, &id).await;
    }
    shutdown(nodes).await;
}

// ---- Hostile objects and batches. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_mismatched_objects_are_refused_and_store_nothing() {
    let nodes = network(3, 3).await;
    let http = reqwest::Client::new();
    let node = &nodes[0];
    let file = seal(CHUNK + 100, 6, 0);
    let [a, b] = [&file.chunks[0], &file.chunks[1]];

    // Bytes that do not hash to the id they are put under.
    let message = assert_refused(put(&http, node, &b.id, &a.bytes).await, 400, "bad_request").await;
    assert!(message.contains("does not match its id"), "{message}");
    // Malformed ids, on every route that takes one.
    let malformed = [
        "xyz".to_string(),
        "a".repeat(63),
        "a".repeat(65),
        "g".repeat(64),
        format!("{}zz", &hex::encode(a.id)[..62]),
        "%C3%A9".repeat(32),
    ];
    for id in &malformed {
        let path = format!("/api/v1/objects/{id}");
        let res = http
            .put(url(node, &path))
            .body(a.bytes.clone())
            .send()
            .await
            .unwrap();
        assert_refused(res, 400, "bad_request").await;
        let res = http.get(url(node, &path)).send().await.unwrap();
        assert_refused(res, 400, "bad_request").await;
        let stripe = format!("/api/v1/stripes/{id}");
        let res = http.get(url(node, &stripe)).send().await.unwrap();
        assert_refused(res, 400, "bad_request").await;
        let res = http
            .put(url(node, &stripe))
            .body(batch(&[(a.id, &a.bytes[..])]))
            .send()
            .await
            .unwrap();
        assert_refused(res, 400, "bad_request").await;
    }
    // Shorter than any stored object (the tag and trailer), empty.
    for len in [MIN_STORED_LEN - 1, TRAILER_LEN, 1] {
        let (id, bytes) = object(len.max(TRAILER_LEN), 7, 0);
        let bytes = &bytes[..len];
        let id = if len < TRAILER_LEN {
            content_id(bytes)
        } else {
            id
        };
        let message = assert_refused(put(&http, node, &id, bytes).await, 400, "bad_request").await;
        assert!(message.contains(&MIN_STORED_LEN.to_string()), "{message}");
    }
    let empty = content_id(b"");
    assert_refused(put(&http, node, &empty, b"").await, 400, "bad_request").await;
    // The shortest object there is, by contrast, is taken.
    let (shortest, shortest_bytes) = object(MIN_STORED_LEN, 8, 0);
    assert_stored(put(&http, node, &shortest, &shortest_bytes).await, 1, 3).await;
    let before = total_chunks(&nodes);
    assert_eq!(before, 3);

    // Objects whose trailer says they expired already.
    let expired = seal(500, 9, 1);
    for (id, bytes) in expired.objects() {
        let message = assert_refused(put(&http, node, &id, bytes).await, 400, "bad_request").await;
        assert!(message.contains("expiry"), "{message}");
    }
    let just_expired = seal(500, 10, unix_now() - 5);
    let (id, bytes) = just_expired.objects()[0];
    assert_refused(put(&http, node, &id, bytes).await, 400, "bad_request").await;

    // Batches are all or nothing: a good object next to a bad one is not stored either.
    let (good, good_bytes) = object(200, 11, 0);
    let refused_batches = [
        batch(&[(good, &good_bytes[..]), (a.id, &b.bytes[..])]),
        batch(&[
            (good, &good_bytes[..]),
            (expired.chunks[0].id, &expired.chunks[0].bytes[..]),
        ]),
        batch(&[
            (good, &good_bytes[..]),
            (content_id(&[1u8; 10]), &[1u8; 10][..]),
        ]),
    ];
    for body in refused_batches {
        assert_refused(post_batch(&http, node, body).await, 400, "bad_request").await;
    }
    // Framing that is cut short, has bytes after its last object, or holds nothing.
    let whole = batch(&[(good, &good_bytes[..]), (a.id, &a.bytes[..])]);
    let mut trailing = whole.clone();
    trailing.push(0);
    let mut overlong = batch(&[(good, &good_bytes[..])]);
    overlong[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
    let framings = [
        whole[..whole.len() - 1].to_vec(),
        whole[..10].to_vec(),
        whole[..36 + good_bytes.len() + 20].to_vec(),
        trailing,
        overlong,
        Vec::new(),
    ];
    for body in framings {
        assert_refused(post_batch(&http, node, body).await, 400, "bad_request").await;
    }
    // More objects than a batch may hold (each of them fine on its own).
    let many: Vec<([u8; 32], Vec<u8>)> = (0..=MAX_BATCH_OBJECTS as u64)
        .map(|i| object(MIN_STORED_LEN, 1000 + i, 0))
        .collect();
    let refs: Vec<([u8; 32], &[u8])> = many.iter().map(|(id, b)| (*id, &b[..])).collect();
    assert!(refs.len() > MAX_BATCH_OBJECTS);
    let message = assert_refused(
        post_batch(&http, node, batch(&refs)).await,
        400,
        "bad_request",
    )
    .await;
    assert!(
        message.contains(&MAX_BATCH_OBJECTS.to_string()),
        "{message}"
    );

    // Nothing of that was stored anywhere.
    assert_eq!(total_chunks(&nodes), before);
    assert_eq!(network_chunks(&http, &nodes).await, before);
    for id in [
        a.id,
        b.id,
        good,
        expired.record.id,
        refs[0].0,
        refs[MAX_BATCH_OBJECTS].0,
    ] {
        assert_gone(&http, &nodes, &id).await;
    }
    assert_readable(&http, &nodes, &shortest, &shortest_bytes).await;
    // And honest objects are still taken.
    assert_stored(put(&http, node, &a.id, &a.bytes).await, 1, 3).await;
    shutdown(nodes).await;
}

/// Sends only the head of a request announcing `announced` body bytes and returns the final
/// answer's status and body, and whether the node first asked for the body (100 Continue).
async fn announce(
    addr: SocketAddr,
    method: &str,
    path: &str,
    announced: usize,
    expect: bool,
) -> (u16, String, bool) {
    let mut headers = vec![format!("Content-Length: {announced}")];
    if expect {
        headers.push("Expect: 100-continue".into());
    }
    let mut stream = send_raw(addr, head(method, path, &headers).as_bytes()).await;
    let mut buf = Vec::new();
    let mut continued = false;
    loop {
        let (status, body) = read_answer(&mut stream, &mut buf, ANSWER).await;
        if status != 100 {
            return (status, body, continued);
        }
        assert!(!continued, "two interim answers");
        continued = true;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_on_their_announced_length() {
    // A long idle timeout: a refusal here can only come from the announced length.
    let nodes = network_with(1, |c| NodeConfig {
        replicas: 1,
        http_body_idle_timeout: Duration::from_secs(60),
        ..c
    })
    .await;
    let node = &nodes[0];
    let addr = node.http_addr().unwrap();
    let id = hex::encode([1u8; 32]);
    let cases = [
        ("PUT", format!("/api/v1/objects/{id}"), MAX_OBJECT_LEN + 1),
        ("POST", "/api/v1/objects".to_string(), MAX_BATCH_BYTES + 1),
        ("PUT", format!("/api/v1/stripes/{id}"), MAX_BATCH_BYTES + 1),
        ("POST", "/api/v1/objects/delete".to_string(), 4 << 20),
        ("PUT", format!("/api/v1/objects/{id}"), 1 << 40),
    ];
    // All at once, each sending its head only: every one is refused long before its idle
    // timeout, none of them sent a body byte.
    let started = Instant::now();
    let answers = futures_util::future::join_all(cases.iter().flat_map(|(method, path, n)| {
        [false, true].map(|expect| announce(addr, method, path, *n, expect))
    }))
    .await;
    for ((status, body, _continued), (method, path, n)) in answers
        .iter()
        .zip(cases.iter().flat_map(|case| [case, case]))
    {
        assert_eq!(*status, 413, "{method} {path} {n}: {body}");
        assert!(body.contains("\"too_large\""), "{body}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Lengths no machine has are refused before the node sees them.
    for announced in ["99999999999999999999999999", "18446744073709551615", "-1"] {
        let huge = vec![format!("Content-Length: {announced}")];
        let mut stream = send_raw(addr, head("POST", "/api/v1/objects", &huge).as_bytes()).await;
        let (status, text) = read_head(&mut stream, &mut Vec::new(), ANSWER).await;
        assert!((400..500).contains(&status), "{announced}: {text}");
    }
    // A body sent without a length is cut off once it passes the limit.
    let pieces =
        (0..=MAX_OBJECT_LEN / (1 << 20) + 1).map(|_| Ok::<_, std::io::Error>(vec![0u8; 1 << 20]));
    let res = reqwest::Client::new()
        .put(url(node, &format!("/api/v1/objects/{id}")))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await;
    if let Ok(res) = res {
        // (The node may close the connection before the client finished sending.)
        assert_refused(res, 413, "too_large").await;
    }
    assert_eq!(total_chunks(&nodes), 0);
    // The node goes on serving.
    let (id, bytes) = object(100, 1, 0);
    assert_stored(put(&reqwest::Client::new(), node, &id, &bytes).await, 1, 1).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_checked_against_the_node_max_expiry() {
    let nodes = network_with(1, |c| NodeConfig {
        replicas: 1,
        max_expiry: Some(Duration::from_secs(60)),
        ..c
    })
    .await;
    let node = &nodes[0];
    let http = reqwest::Client::new();
    let info: Value = http
        .get(url(node, "/api/v1/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["max_expiry"], 60);
    let now = unix_now();

    // Within the limit: taken.
    let soon = seal(1000, 20, now + 30);
    for (id, bytes) in soon.objects() {
        assert_stored(put(&http, node, &id, bytes).await, 1, 1).await;
    }
    // A client clock a little ahead is tolerated.
    let (skewed, skewed_bytes) = object(100, 21, now + 60 + EXPIRY_SKEW_SECS - 120);
    assert_stored(put(&http, node, &skewed, &skewed_bytes).await, 1, 1).await;
    let stored = total_chunks(&nodes);
    assert_eq!(stored, 3);

    // Beyond it, and never: refused, alone or in a batch.
    let late = seal(1000, 22, now + 3600);
    let never = seal(1000, 23, 0);
    let (past_skew, past_skew_bytes) = object(100, 24, now + 60 + EXPIRY_SKEW_SECS + 120);
    for (id, bytes) in late
        .objects()
        .into_iter()
        .chain(never.objects())
        .chain([(past_skew, &past_skew_bytes[..])])
    {
        let message = assert_refused(put(&http, node, &id, bytes).await, 400, "bad_request").await;
        assert!(message.contains("60 s"), "{message}");
    }
    let (ok, ok_bytes) = object(100, 25, now + 30);
    let body = batch(&[(ok, &ok_bytes[..]), never.objects()[0]]);
    assert_refused(post_batch(&http, node, body).await, 400, "bad_request").await;
    assert_eq!(total_chunks(&nodes), stored);
    for id in late
        .ids()
        .into_iter()
        .chain(never.ids())
        .chain([past_skew, ok])
    {
        assert_gone(&http, &nodes, &id).await;
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripes_must_match_their_descriptor() {
    let nodes = network(3, 3).await;
    let http = reqwest::Client::new();
    let node = &nodes[0];
    let file = seal(CHUNK + 10, 30, 0);
    let chunk = &file.chunks[0];
    let stripe = Stripe::encode(2, 1, &chunk.bytes).unwrap();
    let ids: Vec<[u8; 32]> = stripe.shards.iter().map(|s| content_id(s)).collect();
    let parts = |shards: &[([u8; 32], &[u8])]| {
        let mut objects = vec![(stripe.id, &stripe.descriptor[..])];
        objects.extend_from_slice(shards);
        batch(&objects)
    };
    let shard = |j: usize| (ids[j], &stripe.shards[j][..]);
    let mut flipped = stripe.shards[1].clone();
    flipped[5] ^= 1;
    let other = Stripe::encode(2, 1, &file.chunks[1].bytes).unwrap();

    let bodies = [
        // A shard whose bytes changed, under its new id and under the listed one.
        parts(&[shard(0), (content_id(&flipped), &flipped[..]), shard(2)]),
        parts(&[shard(0), (ids[1], &flipped[..]), shard(2)]),
        // Shards out of order, one missing, one too many, one of another stripe.
        parts(&[shard(1), shard(0), shard(2)]),
        parts(&[shard(0), shard(1)]),
        parts(&[shard(0), shard(1), shard(2), shard(2)]),
        parts(&[
            shard(0),
            shard(1),
            (content_id(&other.shards[2]), &other.shards[2][..]),
        ]),
        // No descriptor, or not a descriptor.
        batch(&[shard(0), shard(1), shard(2)]),
        batch(&[(chunk.id, &chunk.bytes[..]), shard(0), shard(1), shard(2)]),
    ];
    for body in bodies {
        let res = http
            .put(stripe_url(node, &stripe.id))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_refused(res, 400, "bad_request").await;
    }
    // The right stripe under another stripe's id.
    let res = http
        .put(stripe_url(node, &other.id))
        .body(stripe_body(&stripe))
        .send()
        .await
        .unwrap();
    assert_refused(res, 400, "bad_request").await;
    // More shards than there are nodes to keep them apart.
    let wide = Stripe::encode(3, 1, &chunk.bytes).unwrap();
    let res = http
        .put(stripe_url(node, &wide.id))
        .body(stripe_body(&wide))
        .send()
        .await
        .unwrap();
    assert_refused(res, 409, "too_few_nodes").await;
    // More objects than any stripe has.
    let crowd: Vec<([u8; 32], &[u8])> = std::iter::once((stripe.id, &stripe.descriptor[..]))
        .chain(std::iter::repeat_n(
            shard(0),
            voldisefs_crypto::MAX_SHARDS + 1,
        ))
        .collect();
    let res = http
        .put(stripe_url(node, &stripe.id))
        .body(batch(&crowd))
        .send()
        .await
        .unwrap();
    assert_refused(res, 400, "bad_request").await;

    // Nothing was stored.
    assert_eq!(total_chunks(&nodes), 0);
    for id in [stripe.id, other.id, wide.id] {
        let res = http.get(stripe_url(&nodes[1], &id)).send().await.unwrap();
        assert_refused(res, 404, "not_found").await;
    }
    // The honest stripe is then taken.
    let res = http
        .put(stripe_url(node, &stripe.id))
        .body(stripe_body(&stripe))
        .send()
        .await
        .unwrap();
    assert_stored(res, 1, 3).await;
    shutdown(nodes).await;
}

// ---- Stalled bodies and the node-wide body budget. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_object_body_gets_408_while_the_node_keeps_serving() {
    const IDLE: Duration = Duration::from_secs(2);
    let nodes = network_with(1, |c| NodeConfig {
        replicas: 1,
        http_body_idle_timeout: IDLE,
        ..c
    })
    .await;
    let node = &nodes[0];
    let addr = node.http_addr().unwrap();
    let http = reqwest::Client::new();
    let (id, bytes) = object(1000, 40, 0);
    let path = format!("/api/v1/objects/{}", hex::encode(id));
    let length = |n: usize| vec![format!("Content-Length: {n}")];
    let chunked = vec!["Transfer-Encoding: chunked".to_string()];

    // Each announces more than it sends, then sends nothing more.
    let started = Instant::now();
    let requests = [
        [head("PUT", &path, &length(1000)).as_bytes(), &bytes[..10]].concat(),
        [
            head("PUT", &path, &chunked).as_bytes(),
            b"a\r\n",
            &bytes[..10],
            b"\r\n",
        ]
        .concat(),
        [
            head("POST", "/api/v1/objects", &length(5000)).as_bytes(),
            &bytes[..10],
        ]
        .concat(),
        [
            head("POST", "/api/v1/objects/delete", &length(1000)).as_bytes(),
            b"{\"ids\"",
        ]
        .concat(),
    ];
    let mut stalled = Vec::new();
    for request in &requests {
        stalled.push(send_raw(addr, request).await);
    }
    // Meanwhile the node answers others.
    let res = http.get(url(node, "/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (other, other_bytes) = object(500, 41, 0);
    assert_stored(put(&http, node, &other, &other_bytes).await, 1, 1).await;
    assert!(
        started.elapsed() < IDLE,
        "the other requests were served while the bodies stalled"
    );
    for stream in &stalled {
        let mut probe = [0u8; 1];
        assert!(
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a stalled body was answered before its idle timeout"
        );
    }
    // Each stalled body is refused once it has been idle that long.
    for (i, stream) in stalled.iter_mut().enumerate() {
        let (status, body) = read_answer(stream, &mut Vec::new(), ANSWER).await;
        assert_eq!(status, 408, "request {i}: {body}");
        assert!(body.contains("\"timeout\""), "{body}");
        assert!(started.elapsed() >= IDLE - Duration::from_millis(20));
    }
    assert!(started.elapsed() < IDLE + Duration::from_secs(8));
    assert_gone(&http, &nodes, &id).await;
    assert_eq!(total_chunks(&nodes), 1);
    // The object sent whole is taken.
    assert_stored(put(&http, node, &id, &bytes).await, 1, 1).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_hold_only_what_they_sent_and_trickles_are_cut() {
    const IDLE: Duration = Duration::from_secs(1);
    const STALLS: usize = OBJECT_BODY_BUDGET / MAX_BATCH_BYTES;
    assert_eq!(STALLS, 8);
    assert!(BUDGET_WAIT > 3 * IDLE, "no 503 in this test");
    let nodes = network_with(1, |c| NodeConfig {
        replicas: 1,
        http_body_idle_timeout: IDLE,
        ..c
    })
    .await;
    let node = nodes[0].clone();
    let addr = node.http_addr().unwrap();
    let http = reqwest::Client::new();
    let large = head(
        "POST",
        "/api/v1/objects",
        &[
            format!("Content-Length: {MAX_BATCH_BYTES}"),
            "Expect: 100-continue".into(),
        ],
    );

    // Twice as many clients as the budget could hold announce the largest batch, send ten
    // bytes and stall: each holds what it sent (one budget step), not what it announced, so a
    // small object is stored at once meanwhile.
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..2 * STALLS {
        let mut stream = send_raw(addr, large.as_bytes()).await;
        let mut buf = Vec::new();
        let (status, text) = read_head(&mut stream, &mut buf, ANSWER).await;
        assert_eq!(status, 100, "{text}");
        stream.write_all(&[0u8; 10]).await.unwrap();
        stalled.push((stream, buf));
    }
    let (small, small_bytes) = object(1000, 50, 0);
    assert_stored(put(&http, &node, &small, &small_bytes).await, 1, 1).await;
    assert!(
        started.elapsed() < IDLE,
        "the small object waited for the stalled bodies"
    );
    for (stream, buf) in &mut stalled {
        let (status, body) = read_answer(stream, buf, ANSWER).await;
        assert_eq!(status, 408, "{body}");
    }

    // A body that trickles (a byte every 300 ms, never idle for the timeout) is cut once it is
    // slower than the minimum rate allows: after twice the idle timeout, within a second more.
    let trickle = head(
        "PUT",
        &format!("/api/v1/objects/{}", hex::encode(small)),
        &["Content-Length: 1000".into()],
    );
    let mut stream = send_raw(addr, trickle.as_bytes()).await;
    let begun = Instant::now();
    let mut answer = None;
    for _ in 0..40 {
        if stream.write_all(&[1u8]).await.is_err() {
            break;
        }
        let mut byte = [0u8; 1];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), stream.peek(&mut byte)).await
        {
            if n > 0 {
                answer = Some(begun.elapsed());
                break;
            }
        }
    }
    let answered = answer.expect("a trickling body was never cut");
    let mut buf = Vec::new();
    let (status, body) = read_answer(&mut stream, &mut buf, ANSWER).await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("slower than"), "{body}");
    assert!(
        answered >= 2 * IDLE - Duration::from_millis(50),
        "{answered:?}"
    );
    assert!(answered < 2 * IDLE + Duration::from_secs(2), "{answered:?}");

    // Bodies that really sent the whole budget hold it: a small object waits until they time
    // out, then is stored; the budget is all back afterwards.
    let mut full = Vec::new();
    // When the first full body sent its last byte: none times out (and gives its share back)
    // before this plus the idle timeout.
    let mut first_sent = None;
    for _ in 0..STALLS {
        let mut stream = send_raw(addr, large.as_bytes()).await;
        let mut buf = Vec::new();
        let (status, text) = read_head(&mut stream, &mut buf, ANSWER).await;
        assert_eq!(status, 100, "{text}");
        stream
            .write_all(&vec![0u8; MAX_BATCH_BYTES - 1])
            .await
            .unwrap();
        first_sent.get_or_insert_with(Instant::now);
        full.push((stream, buf));
    }
    let first_sent = first_sent.unwrap();
    let deadline = Instant::now() + ANSWER;
    while node.object_budget_free() >= voldisefs_node::BUDGET_STEP {
        assert!(
            Instant::now() < deadline,
            "the full bodies never held the budget"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = Instant::now();
    let (other, other_bytes) = object(1000, 52, 0);
    let waited = tokio::spawn({
        let (http, node) = (http.clone(), node.clone());
        async move {
            let res = put(&http, &node, &other, &other_bytes).await;
            (res.status(), held.elapsed())
        }
    });
    for (stream, buf) in &mut full {
        let (status, body) = read_answer(stream, buf, ANSWER).await;
        assert_eq!(status, 408, "{body}");
    }
    let (status, after) = tokio::time::timeout(ANSWER, waited).await.unwrap().unwrap();
    assert_eq!(status, StatusCode::CREATED);
    // Stored only once a full body timed out (its share given back), never while all held
    // theirs: no earlier than the idle timeout after the first one's last byte (less a
    // timer's slack).
    let since_first = held.duration_since(first_sent) + after;
    assert!(
        since_first >= IDLE - Duration::from_millis(100),
        "stored {since_first:?} after the first full body, while the budget was held"
    );
    let (id, bytes) = object(2000, 51, 0);
    let res = post_batch(&http, &node, batch(&[(id, &bytes[..])])).await;
    assert_stored(res, 1, 1).await;
    assert_eq!(total_chunks(&nodes), 3, "the stalled bodies stored nothing");
    assert_eq!(
        node.object_budget_free(),
        OBJECT_BODY_BUDGET,
        "the budget is all back"
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_stored_through_the_api_settle_like_uploads() {
    // No repair sweep during the test: only the settling after the put can drop copies.
    let nodes = network_with(5, |c| NodeConfig {
        replicas: 3,
        repair_interval: Duration::from_secs(3600),
        ..c
    })
    .await;
    let http = reqwest::Client::new();
    // The sweeps the joins started are over once no node starts another for a second.
    let sweeps =
        |nodes: &[Node]| -> Vec<u64> { nodes.iter().map(|n| n.status().repair.sweeps).collect() };
    let mut last = sweeps(&nodes);
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + ANSWER;
    while quiet_since.elapsed() < Duration::from_secs(1) {
        assert!(Instant::now() < deadline, "repair never went quiet");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = sweeps(&nodes);
        if now != last {
            (last, quiet_since) = (now, Instant::now());
        }
    }
    let objects: Vec<([u8; 32], Vec<u8>)> = (0..20).map(|i| object(3000, 100 + i, 0)).collect();
    for (id, bytes) in &objects {
        assert_stored(put(&http, &nodes[0], id, bytes).await, 1, 3).await;
    }
    // The node the objects came through kept a copy of those it does not rank for: proved
    // holders let it drop them within a settling round or two.
    let want = 3 * objects.len() as u64;
    assert!(total_chunks(&nodes) > want, "no extra copies to settle");
    let deadline = Instant::now() + ANSWER;
    while total_chunks(&nodes) != want {
        assert!(
            Instant::now() < deadline,
            "{} copies held, {want} wanted",
            total_chunks(&nodes)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sweeps(&nodes),
        last,
        "a repair sweep, not the settling, dropped them"
    );
    shutdown(nodes).await;
}

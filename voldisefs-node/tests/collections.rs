//! Collections through the real HTTP API of real nodes: a folder uploaded as one multipart
//! request under one key derivation, listed, read file by file and as a streamed tar archive
//! through another node, refused where a file is expected, deleted with its files; hostile
//! collections (planted with the library, as any writer could) are refused by every reader.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use bytes::Bytes;
use common::{data, pw, shutdown};
use voldisefs_node::crypto::{Collection, Error as CryptoError, FileKind};
use voldisefs_node::{Node, NodeError};

/// A counter of a node's metrics, by name (without the `voldisefs_` prefix and `_total`).
fn counter(node: &Node, name: &str) -> u64 {
    let prefix = format!("voldisefs_{name}_total ");
    node.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .expect("the metric is there")
}

fn url(node: &Node, path: &str) -> String {
    format!("http://{}{path}", node.http_addr().unwrap())
}

/// The folder the tests upload: nested, an empty file, unicode and spaces, a multi-chunk file.
fn folder() -> Vec<(String, Vec<u8>)> {
    vec![
        ("photos/a.txt".into(), b"hello".to_vec()),
        ("photos/empty".into(), Vec::new()),
        (
            "photos/sub dir/\u{e9}t\u{e9} \u{65e5}.bin".into(),
            data(150_000, 3),
        ),
        ("photos/sub dir/deeper/z".into(), data(4096, 4)),
    ]
}

fn form(files: &[(String, Vec<u8>)]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for (path, bytes) in files {
        form = form.text("path", path.clone()).part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name("f"),
        );
    }
    form
}

async fn post_collection(
    node: &Node,
    password: &str,
    files: &[(String, Vec<u8>)],
) -> reqwest::Response {
    reqwest::Client::new()
        .post(url(node, "/api/v1/collections"))
        .header("x-voldisefs-password", password)
        .header("x-voldisefs-filename", "photos")
        .multipart(form(files))
        .send()
        .await
        .unwrap()
}

async fn get(node: &Node, path: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url(node, path))
        .header("x-voldisefs-password", password)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_round_trips_with_one_key_derivation_per_node() {
    let nodes = common::network(3, 3).await;
    let (gateway, reader) = (&nodes[0], &nodes[1]);
    let files = folder();
    let response = post_collection(gateway, "pw", &files).await;
    assert_eq!(response.status(), 201);
    let listing: serde_json::Value = response.json().await.unwrap();
    let id = listing["id"].as_str().unwrap().to_string();
    assert_eq!(listing["name"], "photos");
    assert_eq!(listing["files"].as_array().unwrap().len(), files.len());
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(listing["size"], total as u64);
    // One Argon2id run for four files and the collection record.
    assert_eq!(counter(gateway, "kdf_runs"), 1);

    // The index shows the collection, not its files.
    let index = gateway.files();
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].id.to_string(), id);
    assert_eq!(index[0].files, Some(files.len() as u64));
    let json: serde_json::Value = reqwest::get(url(gateway, "/api/v1/files"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["files"][0]["kind"], "collection");

    // Another node lists it and reads every file, by path and by its own id.
    let listed: serde_json::Value = get(reader, &format!("/api/v1/collections/{id}"), "pw")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["files"], listing["files"]);
    for (path, bytes) in &files {
        let encoded: String = url_encode(path);
        let response = get(
            reader,
            &format!("/api/v1/collections/{id}/file?path={encoded}"),
            "pw",
        )
        .await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(&response.bytes().await.unwrap()[..], &bytes[..], "{path}");
        let member = listed["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path.as_str())
            .unwrap();
        let by_id = get(
            reader,
            &format!("/api/v1/files/{}", member["id"].as_str().unwrap()),
            "pw",
        )
        .await;
        assert_eq!(&by_id.bytes().await.unwrap()[..], &bytes[..], "{path}");
    }

    // The archive holds every file, byte for byte, and is as long as announced.
    let response = get(reader, &format!("/api/v1/collections/{id}/archive"), "pw").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let announced = response.content_length().unwrap();
    let tar = response.bytes().await.unwrap();
    assert_eq!(tar.len() as u64, announced);
    let mut archive = tar::Archive::new(&tar[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        seen.push((path, bytes));
    }
    let mut expected = files.clone();
    expected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    assert_eq!(seen, expected);
    // All of it with one key derivation on the reading node too.
    assert_eq!(counter(reader, "kdf_runs"), 1);

    // A collection is not a file and a file is not a collection; the password still counts.
    let as_file = get(reader, &format!("/api/v1/files/{id}"), "pw").await;
    assert_eq!(as_file.status(), 409);
    let body: serde_json::Value = as_file.json().await.unwrap();
    assert_eq!(body["error"], "collection");
    let member = listed["files"][0]["id"].as_str().unwrap();
    let as_collection = get(reader, &format!("/api/v1/collections/{member}"), "pw").await;
    assert_eq!(as_collection.status(), 409);
    let wrong = get(reader, &format!("/api/v1/collections/{id}"), "pW").await;
    assert_eq!(wrong.status(), 401);
    let missing = get(
        reader,
        &format!("/api/v1/collections/{id}/file?path=nope"),
        "pw",
    )
    .await;
    assert_eq!(missing.status(), 404);

    // Deleting the collection deletes its files (and its entry in the gateway's index).
    let deleted = reqwest::Client::new()
        .delete(url(gateway, &format!("/api/v1/files/{id}")))
        .header("x-voldisefs-password", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let member: voldisefs_node::proto::FileId = member.parse().unwrap();
    let gone = reader.download_bytes(member, pw("pw")).await.unwrap_err();
    assert!(matches!(gone, NodeError::NotFound(_)), "{gone}");
    assert!(gateway.files().is_empty());
    shutdown(nodes).await;
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Encodes entries as given, bypassing every writer check (what a hostile writer stores).
fn raw_listing(entries: &[&str]) -> Vec<u8> {
    let mut out = (entries.len() as u32).to_be_bytes().to_vec();
    for path in entries {
        out.extend_from_slice(&(path.len() as u16).to_be_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&[7; 32]);
        out.extend_from_slice(&[8; 32]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_collections_are_refused_by_every_reader() {
    let nodes = common::network(3, 3).await;
    for (entries, reason) in [
        (&["../escape"][..], "`.` or `..` in path"),
        (&["/etc/passwd"], "absolute path"),
        (&["a", "a"], "duplicate path"),
        (&["a", "a/b"], "a file and a folder share a path"),
        (&["sub/../../x"], "`.` or `..` in path"),
    ] {
        let listing = Bytes::from(raw_listing(entries));
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(listing)]);
        let r = nodes[0]
            .upload_kind("evil", pw("pw"), FileKind::Collection, body)
            .await
            .unwrap();
        // Refused for what is wrong with it, not for being malformed.
        let why = |e: &CryptoError| match e {
            CryptoError::InvalidCollection { reason, .. } => *reason,
            _ => "another error",
        };
        let decoded = Collection::decode(&raw_listing(entries)).unwrap_err();
        assert_eq!(why(&decoded), reason, "{entries:?}");
        let refused = nodes[1].collection(r.id, pw("pw")).await.unwrap_err();
        assert!(
            matches!(&refused, NodeError::Crypto(e) if why(e) == reason),
            "{entries:?}: {refused}"
        );
        let response = get(&nodes[2], &format!("/api/v1/collections/{}", r.id), "pw").await;
        assert_eq!(response.status(), 422, "{entries:?}");
        let archive = get(
            &nodes[2],
            &format!("/api/v1/collections/{}/archive", r.id),
            "pw",
        )
        .await;
        assert_eq!(archive.status(), 422, "{entries:?}");
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_leaves_nothing_behind() {
    let nodes = common::network(3, 3).await;
    let before = common::total_chunks(&nodes);
    for files in [
        // The same path twice: refused when the second arrives.
        vec![
            ("a/x".to_string(), data(1000, 1)),
            ("a/x".to_string(), data(1000, 2)),
        ],
        // A file and a folder at one path: refused when the listing is sealed.
        vec![
            ("a".to_string(), data(1000, 1)),
            ("a/b".to_string(), data(1000, 2)),
        ],
        // A path escaping the folder.
        vec![
            ("ok".to_string(), data(1000, 1)),
            ("../x".to_string(), data(1000, 2)),
        ],
    ] {
        let response = post_collection(&nodes[0], "pw", &files).await;
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "bad_request");
    }
    // What the refused batches stored is deleted again.
    common::eventually("the refused batches' chunks are gone", || {
        common::total_chunks(&nodes) == before
    })
    .await;
    assert!(nodes[0].files().is_empty());
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_parts_may_be_named_by_their_file_name() {
    let nodes = common::network(3, 3).await;
    let send = |form: reqwest::multipart::Form| {
        reqwest::Client::new()
            .post(url(&nodes[0], "/api/v1/collections"))
            .header("x-voldisefs-password", "pw")
            .multipart(form)
            .send()
    };
    // No `path` parts: each file part's own (raw, unencoded) file name is its path.
    let form = reqwest::multipart::Form::new()
        .percent_encode_noop()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"one".to_vec()).file_name("dir/a.txt"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"two".to_vec()).file_name("b.txt"),
        );
    let response = send(form).await.unwrap();
    assert_eq!(response.status(), 201);
    let listing: serde_json::Value = response.json().await.unwrap();
    assert_eq!(listing["name"], "2 files");
    let paths: Vec<&str> = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["b.txt", "dir/a.txt"]);
    // A `path` part with no file after it, a file with no path at all, an unknown part: 400.
    for form in [
        reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x"),
            )
            .text("path", "dangling"),
        reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(b"x".to_vec())),
        reqwest::multipart::Form::new().text("other", "x"),
    ] {
        let response = send(form).await.unwrap();
        assert_eq!(response.status(), 400);
    }
    shutdown(nodes).await;
}

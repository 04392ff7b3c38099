//! `Range` on `GET /api/v1/files/{id}` through real nodes: first and last byte, a range across
//! a chunk boundary, suffix and open ranges, byte for byte; unsatisfiable ranges (416 with
//! `Content-Range: bytes */size`); what is ignored (several ranges, another unit, a stale
//! `If-Range`); and that a small range fetches only the chunks it touches.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use bytes::Bytes;
use common::{CHUNK, data, pw, shutdown};
use voldisefs_node::Node;

async fn get(node: &Node, id: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(format!(
            "http://{}/api/v1/files/{id}",
            node.http_addr().unwrap()
        ))
        .header("x-voldisefs-password", "pw");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_are_served_byte_for_byte() {
    let nodes = common::network(3, 3).await;
    let size = 20 * CHUNK + 100;
    let bytes = data(size, 21);
    let id = nodes[0]
        .upload_bytes("r.bin", pw("pw"), Bytes::from(bytes.clone()))
        .await
        .unwrap()
        .id
        .to_string();
    let reader = &nodes[1];

    let full = get(reader, &id, &[]).await;
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{id}\""));
    assert_eq!(&full.bytes().await.unwrap()[..], &bytes[..]);

    let last = size - 1;
    let cases = [
        ("bytes=0-0", 0, 0),
        (&*format!("bytes={last}-{last}"), last, last),
        ("bytes=-1", last, last),
        (
            &*format!("bytes={}-{}", CHUNK - 10, CHUNK + 9),
            CHUNK - 10,
            CHUNK + 9,
        ),
        (
            &*format!("bytes={}-{}", 3 * CHUNK, 5 * CHUNK - 1),
            3 * CHUNK,
            5 * CHUNK - 1,
        ),
        ("bytes=-1000", size - 1000, last),
        (&*format!("bytes={}-", size - 70_000), size - 70_000, last),
        (&*format!("bytes=5-{}", size * 2), 5, last),
        (&*format!("bytes=-{}", size * 2), 0, last),
    ]
    .map(|(h, a, b)| (h.to_owned(), a, b));
    for (range, first, last_byte) in cases {
        let response = get(reader, &id, &[("range", &range)]).await;
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {first}-{last_byte}/{size}").as_str(),
            "{range}"
        );
        assert_eq!(
            response.content_length(),
            Some((last_byte - first + 1) as u64),
            "{range}"
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..], &bytes[first..=last_byte], "{range}");
    }

    // Past the end: 416, with the size.
    for range in [format!("bytes={size}-"), "bytes=-0".to_owned()] {
        let response = get(reader, &id, &[("range", &range)]).await;
        assert_eq!(response.status(), 416, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes */{size}").as_str()
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "range_not_satisfiable");
    }
    // Ignored: several ranges, another unit, a reversed range, an If-Range for another file.
    for headers in [
        vec![("range", "bytes=0-0,5-9")],
        vec![("range", "items=0-1")],
        vec![("range", "bytes=9-5")],
        vec![("range", "bytes=0-0"), ("if-range", "\"another\"")],
    ] {
        let response = get(reader, &id, &headers).await;
        assert_eq!(response.status(), 200, "{headers:?}");
        assert_eq!(response.content_length(), Some(size as u64));
    }
    let response = get(reader, &id, &[("range", "bytes=0-0"), ("if-range", &etag)]).await;
    assert_eq!(response.status(), 206);

    // A one-byte range in the middle fetches one chunk (and the record), not the file.
    let before = nodes[2].network().traffic().bytes_in;
    let response = get(
        &nodes[2],
        &id,
        &[("range", &format!("bytes={}-{}", 10 * CHUNK, 10 * CHUNK))],
    )
    .await;
    assert_eq!(
        &response.bytes().await.unwrap()[..],
        &bytes[10 * CHUNK..=10 * CHUNK]
    );
    let fetched = nodes[2].network().traffic().bytes_in - before;
    assert!(
        fetched < 4 * CHUNK as u64,
        "a 1-byte range pulled {fetched} bytes"
    );

    // An empty file has no byte to serve.
    let empty = nodes[0]
        .upload_bytes("e", pw("pw"), Bytes::new())
        .await
        .unwrap()
        .id
        .to_string();
    assert_eq!(
        get(reader, &empty, &[("range", "bytes=0-")]).await.status(),
        416
    );
    assert_eq!(get(reader, &empty, &[]).await.status(), 200);
    shutdown(nodes).await;
}

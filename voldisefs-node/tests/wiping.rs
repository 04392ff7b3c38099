//! Secrets do not linger: after an upload and a download through the HTTP API, this process's
//! memory (read through `/proc/self/mem`) holds no copy of the plaintext, the password or the
//! file name. The test binary installs the same zero-on-free allocator as the `voldisefs`
//! binary, so what is measured is what a node run by `voldisefs node start` keeps.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::time::{Duration, Instant};

use voldisefs_node::{Node, NodeConfig};
use zeroize::Zeroizing;

#[global_allocator]
static ALLOC: zeroizing_alloc::ZeroAlloc<tikv_jemallocator::Jemalloc> =
    zeroizing_alloc::ZeroAlloc(tikv_jemallocator::Jemalloc);

/// Bytes of the file: 64 Ki blocks of 32 bytes, each holding the marker.
const BLOCKS: usize = 64 * 1024;

/// Addresses in this process's readable memory where `needle` occurs, except inside `skip`
/// (the scanner's own buffers). `None` where `/proc/self/mem` cannot be read.
fn occurrences(needle: &[u8], skip: &[Range<usize>]) -> Option<Vec<usize>> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let mut mem = std::fs::File::open("/proc/self/mem").ok()?;
    let mut buf = Zeroizing::new(vec![0u8; 1 << 20]);
    let own = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let mut found = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or("");
        if !perms.starts_with('r') || path.starts_with("[v") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // Overlapping windows so a needle across a window boundary is still seen.
        let mut at = start;
        while at < end {
            let len = buf.len().min(end - at);
            if mem.seek(SeekFrom::Start(at as u64)).is_err() {
                break;
            }
            let Ok(n) = mem.read(&mut buf[..len]) else {
                break;
            };
            for i in memchr::memmem::find_iter(&buf[..n], needle) {
                let addr = at + i;
                let inside = |r: &Range<usize>| r.contains(&addr);
                if !inside(&own) && !skip.iter().any(inside) {
                    found.push(addr);
                }
            }
            if n < needle.len() || at + n >= end {
                break;
            }
            at += n - (needle.len() - 1);
        }
    }
    found.sort_unstable();
    found.dedup();
    Some(found)
}

fn random_hex(bytes: usize) -> Zeroizing<String> {
    let mut raw = vec![0u8; bytes];
    for b in raw.iter_mut() {
        *b = rand_byte();
    }
    Zeroizing::new(hex::encode(raw))
}

fn rand_byte() -> u8 {
    voldisefs_node::proto::NodeId::random().as_bytes()[0]
}

/// Scans until at most `allowed` copies of each needle remain or 10 s passed (buffers of a
/// finished connection are freed by tasks that may still be winding down); returns the counts.
async fn settle(needles: &[(&str, &[u8])], skip: &[Range<usize>], allowed: usize) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts: Vec<usize> = needles
            .iter()
            .map(|(_, n)| occurrences(n, skip).map_or(0, |f| f.len()))
            .collect();
        if counts.iter().all(|c| *c <= allowed) || Instant::now() >= deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_name_or_password_lingers_after_a_transfer() {
    if occurrences(b"probe", &[]).is_none() {
        eprintln!("skipped: /proc/self/mem cannot be read here");
        return;
    }
    let node = Node::start(NodeConfig {
        replicas: 1,
        ..common::config()
    })
    .await
    .unwrap();
    let base = format!("http://{}/api/v1/files", node.http_addr().unwrap());
    // Secrets made at run time, kept in buffers the scan skips.
    let marker = Zeroizing::new(random_hex(8).as_bytes().to_vec()); // 16 bytes
    let password = random_hex(12);
    let name = random_hex(10);
    let skip = vec![
        marker.as_ptr() as usize..marker.as_ptr() as usize + marker.len(),
        password.as_ptr() as usize..password.as_ptr() as usize + password.len(),
        name.as_ptr() as usize..name.as_ptr() as usize + name.len(),
    ];
    let needles: [(&str, &[u8]); 3] = [
        ("plaintext", &marker),
        ("password", password.as_bytes()),
        ("name", name.as_bytes()),
    ];
    let id = {
        let mut body = Zeroizing::new(Vec::with_capacity(BLOCKS * 32));
        for i in 0..BLOCKS as u32 {
            body.extend_from_slice(&marker);
            body.extend_from_slice(&i.to_be_bytes());
            body.extend_from_slice(&[0u8; 12]);
        }
        let client = reqwest::Client::new();
        let answer = client
            .post(&base)
            .header("X-Voldisefs-Password", password.as_str())
            .header("X-Voldisefs-Filename", name.as_str())
            .header("Connection", "close")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        let receipt: serde_json::Value = answer.json().await.unwrap();
        receipt["id"].as_str().unwrap().to_string()
    };
    let after_upload = settle(&needles, &skip, 0).await;
    eprintln!("copies after the upload (plaintext blocks, password, name): {after_upload:?}");

    {
        let client = reqwest::Client::new();
        let answer = client
            .get(format!("{base}/{id}"))
            .header("X-Voldisefs-Password", password.as_str())
            .header("Connection", "close")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let body = Zeroizing::new(answer.bytes().await.unwrap().to_vec());
        assert_eq!(body.len(), BLOCKS * 32);
        assert_eq!(&body[..16], &marker[..]);
    }
    let after_download = settle(&needles, &skip, 0).await;
    eprintln!("copies after the download (plaintext blocks, password, name): {after_download:?}");

    // A few stray copies may sit in stack frames or in a buffer still being reused; before
    // the zero-on-free allocator and the node's own wiping there were thousands.
    for (counts, when) in [(&after_upload, "upload"), (&after_download, "download")] {
        for ((what, _), n) in needles.iter().zip(counts.iter()) {
            assert!(*n <= 4, "{n} copies of the {what} remain after the {when}");
        }
    }
    node.shutdown().await;
}

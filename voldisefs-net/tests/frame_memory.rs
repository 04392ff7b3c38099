//! Incoming frames cannot take the node's memory (issue 25, point 5): raw open-mode peers
//! written here on the real wire format say `hello`, send all but the last byte of a maximal
//! `put_chunk` frame and stall, from one address and then from several; the victim's frame
//! memory stays within its budget throughout, and an honest peer's 16 MiB chunk still goes
//! through during the attack.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{quiet, start_with};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::{Encoder, FramedRead};
use voldisefs_net::{CancellationToken, NetConfig, Network, Payload};
use voldisefs_proto::{
    ChunkId, Frame, FrameCodec, MAX_FRAME_LEN, Message, NodeId, PROTOCOL_VERSION,
};

const MIB: usize = 1024 * 1024;
/// The largest chunk body a frame carries.
const CHUNK: usize = 16 * MIB;

/// The wire bytes of one open-mode frame.
fn wire(frame: Frame) -> BytesMut {
    let mut out = BytesMut::new();
    FrameCodec::new().encode(frame, &mut out).unwrap();
    out
}

/// Connects from `source` on raw TCP, says hello (open mode) and reads the node's answer.
async fn raw_member(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let hello = wire(Frame::new(
        0,
        Message::Hello {
            version: PROTOCOL_VERSION,
            node_id: NodeId::random(),
            listen_addr: "127.0.0.1:9".parse().unwrap(),
        },
    ));
    stream.write_all(&hello).await.unwrap();
    let mut frames = FramedRead::new(&mut stream, FrameCodec::new());
    let answer = tokio::time::timeout(Duration::from_secs(5), frames.next())
        .await
        .expect("the node answers a hello")
        .unwrap()
        .unwrap();
    assert!(matches!(answer.envelope.message, Message::Hello { .. }));
    stream
}

/// `links` attackers from `source`, each sending `partial` (all but the last byte of a
/// maximal frame) and then holding its connection until `stop`.
async fn attack(
    source: IpAddr,
    addr: SocketAddr,
    links: usize,
    partial: &Bytes,
    stop: &CancellationToken,
) {
    for _ in 0..links {
        let mut stream = raw_member(source, addr).await;
        let partial = partial.clone();
        let stop = stop.clone();
        // The node stops reading when the budget refuses it: the write blocks until `stop`.
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                _ = stream.write_all(&partial) => stop.cancelled().await,
            }
        });
    }
}

/// The resident memory of this process.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Waits (at most 20 s) until the victim holds at least `bytes` of frame memory.
async fn holds_at_least(node: &Network, bytes: usize) {
    for _ in 0..2000 {
        if node.frame_memory().buffered >= bytes {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the attack never took {bytes} bytes: {:?}",
        node.frame_memory()
    );
}

/// An honest peer's 16 MiB `put_chunk`, which must be answered within 8 s (the victim's
/// frame timeout is 30 s, so no stalled attacker is closed meanwhile).
async fn honest_put(honest: &Network, node: &Network, fill: u8) -> Duration {
    let body = Bytes::from(vec![fill; CHUNK]);
    let put = Payload::with_body(
        Message::PutChunk {
            chunk: ChunkId::digest(&body),
        },
        body,
    );
    let start = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(8), honest.request(node.local(), put))
        .await
        .expect("the honest chunk goes through during the attack");
    assert_eq!(answer.unwrap().message, Message::Ack);
    start.elapsed()
}

/// 100 links from 127.0.0.2, then 4 links from each of 127.0.0.3 to 127.0.0.6, each with
/// 16 MiB - 1 of a maximal `put_chunk` frame, against a node with a 96 MiB budget (32 MiB per
/// address). Sampled every 2 ms and by the node's own high-water mark, its frame memory never
/// exceeds the budget (before the fix it held 100 × 16 MiB); its resident memory grows by
/// less than the budget plus room for the honest chunk and the attackers' shared frame. An
/// honest peer at 127.0.0.1 puts a 16 MiB chunk during each phase: beside the one address
/// (which holds its 32 MiB share), and when the addresses together spend the budget (one of
/// the largest holders' links is closed to make room for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_maximal_frames_stay_within_the_frame_memory_budget() {
    let budget = 96 * MIB;
    let per_ip = 32 * MIB;
    let node = start_with(NetConfig {
        frame_memory: budget,
        frame_memory_per_ip: per_ip,
        frame_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        ..quiet()
    })
    .await;
    let addr = node.local().addr;
    let honest = start_with(quiet()).await;
    honest.join(&[addr]).await.unwrap();

    // A maximal put_chunk frame on the wire, all but its last byte.
    let body = Bytes::from(vec![7u8; CHUNK]);
    let chunk = ChunkId::digest(&body);
    let full = wire(Frame::with_body(1, Message::PutChunk { chunk }, body));
    assert!(full.len() - 4 <= MAX_FRAME_LEN);
    let partial = full.freeze().slice(..);
    let partial = partial.slice(..partial.len() - 1);

    let rss_before = rss();
    let peak_rss = Arc::new(AtomicUsize::new(rss_before));
    let over = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (node, peak_rss, over, sampling) = (
            node.clone(),
            peak_rss.clone(),
            over.clone(),
            sampling.clone(),
        );
        tokio::spawn(async move {
            // Bounded: at most 60 s of samples.
            for _ in 0..30_000 {
                if !sampling.load(Ordering::SeqCst) {
                    return;
                }
                let buffered = node.frame_memory().buffered;
                if buffered > budget {
                    over.fetch_max(buffered, Ordering::SeqCst);
                }
                peak_rss.fetch_max(rss(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let stop = CancellationToken::new();
    // Phase 1: 100 links from one address take its share, no more.
    attack("127.0.0.2".parse().unwrap(), addr, 100, &partial, &stop).await;
    // Growth steps double, so the last refused one may leave part of the share unused.
    holds_at_least(&node, per_ip * 3 / 4).await;
    let took = honest_put(&honest, &node, 1).await;
    eprintln!(
        "one address: honest chunk in {took:?}; {:?}",
        node.frame_memory()
    );
    assert!(node.frame_memory().buffered <= per_ip + MIB);

    // Phase 2: four more addresses spend the whole budget.
    for last in 3..=6u8 {
        attack(IpAddr::from([127, 0, 0, last]), addr, 4, &partial, &stop).await;
    }
    holds_at_least(&node, budget - 8 * MIB).await;
    let took = honest_put(&honest, &node, 2).await;
    let stats = node.frame_memory();
    eprintln!("five addresses: honest chunk in {took:?}; {stats:?}");
    assert!(stats.reclaimed >= 1, "room was made for the honest peer");

    sampling.store(false, Ordering::SeqCst);
    sampler.await.unwrap();
    let stats = node.frame_memory();
    let grew = peak_rss.load(Ordering::SeqCst).saturating_sub(rss_before);
    eprintln!(
        "peak frame memory {} MiB (budget {} MiB), resident memory grew by {} MiB",
        stats.peak / MIB,
        budget / MIB,
        grew / MIB
    );
    assert_eq!(
        over.load(Ordering::SeqCst),
        0,
        "a sample exceeded the budget"
    );
    assert!(stats.peak <= budget, "{stats:?}");
    assert_eq!(stats.budget, budget);
    // The budget, the honest chunk on both sides, the attackers' shared frame, and slack.
    assert!(
        grew < budget + 160 * MIB,
        "resident memory grew by {} MiB",
        grew / MIB
    );
    stop.cancel();
    node.shutdown().await;
    honest.shutdown().await;
}

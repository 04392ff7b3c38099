//! Helpers shared by the integration tests of membership and lifecycle.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use voldisefs_net::{CancellationToken, Handler, NetConfig, Network, Payload};
use voldisefs_proto::{Message, NodeId};

/// Answers every request the network layer passes on with `ack`; `has_chunks` after 200 ms.
pub(crate) struct Ack;

impl Handler for Ack {
    async fn handle(&self, _from: NodeId, req: Payload) -> Payload {
        if matches!(req.message, Message::HasChunks { .. }) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Payload::new(Message::Ack)
    }
}

/// A request [`Ack`] answers after 200 ms.
pub(crate) fn slow() -> Payload {
    Payload::new(Message::HasChunks { chunks: vec![] })
}

/// Probe and discovery loops slow enough to stay out of the way of a test's own traffic, and
/// no gossip (the classic membership, whose table changes only when the test acts).
pub(crate) fn quiet() -> NetConfig {
    NetConfig {
        gossip: None,
        probe_interval: Duration::from_secs(600),
        discovery_interval: Duration::from_secs(600),
        connect_timeout: Duration::from_millis(300),
        handshake_timeout: Duration::from_millis(500),
        ..NetConfig::default()
    }
}

/// Starts a network on `listener` answering with [`Ack`].
pub(crate) async fn start_on(
    listener: TcpListener,
    config: NetConfig,
    token: CancellationToken,
) -> Network {
    Network::start(listener, None, Arc::new(Ack), config, token).unwrap()
}

/// Starts a network on a fresh 127.0.0.1:0 listener answering with [`Ack`].
pub(crate) async fn start_with(config: NetConfig) -> Network {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(listener, config, CancellationToken::new()).await
}

/// Polls `cond` every 20 ms until it holds, failing after 10 s.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Asserts that `cond` holds at every poll for `window` (a bounded check that something does
/// not happen).
pub(crate) async fn throughout(what: &str, window: Duration, mut cond: impl FnMut() -> bool) {
    let polls = window.as_millis() / 20;
    for _ in 0..polls {
        assert!(cond(), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A ping.
pub(crate) fn ping() -> Payload {
    Payload::new(Message::Ping)
}

/// Classic liveness loops (no gossip) fast enough for tests to watch them work.
pub(crate) fn fast() -> NetConfig {
    NetConfig {
        gossip: None,
        probe_interval: Duration::from_millis(50),
        probe_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        discovery_interval: Duration::from_millis(100),
        ..NetConfig::default()
    }
}

/// Successful pings `net` has sent.
pub(crate) fn pings_sent(net: &Network) -> u64 {
    net.request_stats()
        .iter()
        .filter(|s| s.direction == "out" && s.kind == "ping" && s.outcome == "ok")
        .map(|s| s.count)
        .sum()
}

//! Open mode, where a `hello` proves nothing: a host elsewhere cannot take over a live node's
//! id, nor mark it as left. The attacker speaks the real framing from another loopback
//! address (127.0.0.2), so the node sees it as another host.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_util::codec::Framed;
use voldisefs_net::PeerState;
use voldisefs_proto::{Frame, FrameCodec, Message, PROTOCOL_VERSION, PeerInfo};

/// Connects to `target` from 127.0.0.2, says hello as `claim`, then sends `then`; returns the
/// answers (hello's, then the request's), or fewer if the node closed the connection.
async fn from_elsewhere(target: SocketAddr, claim: PeerInfo, then: Message) -> Vec<Message> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(target).await.unwrap();
    let mut framed = Framed::new(stream, FrameCodec::new());
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        node_id: claim.id,
        listen_addr: claim.addr,
    };
    let mut answers = Vec::new();
    for (id, message) in [(1, hello), (2, then)] {
        if framed.send(Frame::new(id, message)).await.is_err() {
            break;
        }
        match framed.next().await {
            Some(Ok(frame)) => answers.push(frame.envelope.message),
            _ => break,
        }
    }
    answers
}

#[tokio::test]
async fn another_host_cannot_speak_for_a_live_node() {
    let target = common::start_with(common::quiet()).await;
    let victim = common::start_with(common::quiet()).await;
    victim.bootstrap(&[target.local().addr]).await.unwrap();
    let state = || target.membership().get(&victim.local().id).map(|e| e.state);
    assert_eq!(state(), Some(PeerState::Alive));

    // Claiming the victim's id with another listen address: refused at hello.
    let elsewhere = PeerInfo {
        id: victim.local().id,
        addr: "127.0.0.2:9".parse().unwrap(),
    };
    let answers = from_elsewhere(target.local().addr, elsewhere, Message::Ping).await;
    assert!(
        matches!(answers.first(), Some(Message::Error { .. })),
        "{answers:?}"
    );
    assert_eq!(
        target
            .membership()
            .get(&victim.local().id)
            .unwrap()
            .info
            .addr,
        victim.local().addr
    );

    // Claiming it with the victim's own address, then announcing its leave: refused too.
    let answers = from_elsewhere(
        target.local().addr,
        victim.local(),
        Message::Leave {
            node_id: victim.local().id,
        },
    )
    .await;
    assert!(
        matches!(answers.get(1), Some(Message::Error { .. })),
        "{answers:?}"
    );
    assert_eq!(state(), Some(PeerState::Alive));

    // The real node's own leave is accepted.
    victim.announce_leave().await;
    common::eventually("the victim's own leave counted", || {
        state() == Some(PeerState::Left)
    })
    .await;
    victim.shutdown().await;
    target.shutdown().await;
}

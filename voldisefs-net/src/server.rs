//! Inbound side: the accept loop and one task per connection.
//!
//! A connection must open with `hello`; membership messages (`get_peers`, `ping`, `leave`) are
//! answered here, everything else goes to the node's [`Handler`]. A malformed, unknown,
//! oversized or out-of-order frame closes that one connection with a logged reason, and so do
//! a frame that does not arrive whole within the frame timeout and an idle timeout.
//!
//! Until its handshake is done a connection holds a pre-handshake slot (bounded in all and per
//! address; beyond, connections are closed on accept); its `hello` then takes an established
//! slot or is refused, and frees the pre-handshake one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use voldisefs_proto::{
    ErrorCode, Frame, MAX_PEERS_PER_ANSWER, Message, NodeId, PROTOCOL_VERSION, PeerInfo,
};

use crate::link::{Activity, Busy, FrameReader, LinkCodec, LinkWriter, next_frame};
use crate::noise::{self, NoiseCodec};
use crate::payload::{Handler, Payload};
use crate::pool;
use crate::shared::Shared;
use crate::socket::{Listener, ReadHalf, Stream, WriteHalf};

/// Accepts connections until the network's token is cancelled.
pub(crate) async fn accept_loop<H: Handler>(
    listener: Listener,
    shared: Arc<Shared>,
    handler: Arc<H>,
) {
    let config = &shared.config;
    let limits = Limits {
        established: Arc::new(Semaphore::new(config.max_connections)),
        handshaking: Arc::new(Semaphore::new(config.max_handshaking)),
    };
    let per_ip = PerIp::default();
    let handshaking_per_ip = PerIp::default();
    let mut backoff = Duration::from_millis(10);
    let mut freeze = shared.freeze_watch();
    loop {
        // A frozen node accepts nothing: connections wait in the listen backlog.
        tokio::select! {
            () = shared.token.cancelled() => return,
            () = freeze.thawed() => {}
        }
        let accepted = tokio::select! {
            () = shared.token.cancelled() => return,
            () = freeze.frozen() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, from)) if shared.is_isolated() => {
                tracing::trace!(%from, "isolated: dropping inbound connection");
                drop(stream);
            }
            Ok((stream, from)) => {
                backoff = Duration::from_millis(10);
                let Some(slot) = per_ip.admit(from.ip(), config.max_connections_per_ip) else {
                    tracing::warn!(%from, "too many connections from this address; refusing");
                    continue;
                };
                // Pre-handshake slots: bounded in all and per address, never the established
                // ones, so junk that never finishes its handshake cannot keep members out.
                let Some(ip_handshake) =
                    handshaking_per_ip.admit(from.ip(), handshakes_per_ip(config, from.ip()))
                else {
                    tracing::warn!(%from, "too many handshakes from this address; refusing");
                    continue;
                };
                let Ok(handshake_permit) = limits.handshaking.clone().try_acquire_owned() else {
                    tracing::warn!(%from, "too many connections in their handshake; refusing");
                    continue;
                };
                let handshaking = (ip_handshake, handshake_permit);
                let shared2 = shared.clone();
                let handler = handler.clone();
                let established = limits.established.clone();
                shared.tracker.spawn(async move {
                    let admission = Admission {
                        established,
                        handshaking,
                    };
                    if let Err(reason) =
                        serve_connection(stream, from, &shared2, handler, admission).await
                    {
                        tracing::warn!(%from, %reason, "closing peer connection");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                // Running out of file descriptors and similar: wait, then try again.
                tracing::warn!(error = %e, "accept failed; backing off {backoff:?}");
                tokio::select! {
                    () = shared.token.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Why a connection was closed by us.
type CloseReason = String;

/// The node-wide connection caps of the accept loop.
struct Limits {
    /// Established connections ([`NetConfig::max_connections`](crate::NetConfig)).
    established: Arc<Semaphore>,
    /// Connections in their handshake ([`NetConfig::max_handshaking`](crate::NetConfig)).
    handshaking: Arc<Semaphore>,
}

/// What one accepted connection holds: a pre-handshake slot (freed when the handshake ends)
/// and the cap it must take an established slot from.
struct Admission {
    established: Arc<Semaphore>,
    handshaking: (IpSlot, OwnedSemaphorePermit),
}

/// Open inbound connections per remote IP address.
#[derive(Debug, Clone, Default)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One admitted connection; frees its place when dropped.
struct IpSlot {
    table: PerIp,
    ip: IpAddr,
}

impl PerIp {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more connection from `ip`, unless it already has `max`.
    fn admit(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut table = self.lock();
        let count = table.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut table = self.table.lock();
        if let Some(count) = table.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                table.remove(&self.ip);
            }
        }
    }
}

async fn serve_connection<H: Handler>(
    stream: Stream,
    from: SocketAddr,
    shared: &Arc<Shared>,
    handler: Arc<H>,
    admission: Admission,
) -> Result<(), CloseReason> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let config = &shared.config;
    // Isolation (see `Network::set_isolated`) cancels this generation's connections.
    let generation = shared.generation();
    let mut freeze = shared.freeze_watch();
    let Admission {
        established,
        handshaking,
    } = admission;
    let setup = async {
        let mut stream = stream;
        let (codec, expected) = match &shared.keyed {
            None => (LinkCodec::Open(shared.codec()), None),
            Some(keyed) => {
                let session =
                    noise::handshake(&mut stream, &keyed.key, &keyed.identity, false).await?;
                let expected = session.remote_id;
                let codec = NoiseCodec::new(session, shared.codec());
                (LinkCodec::Noise(Box::new(codec)), Some(expected))
            }
        };
        let (read, write) = stream.into_split();
        let mut link = Link {
            reader: FrameReader::new(read, codec.clone(), shared.frame_memory.lease(from.ip())),
            writer: LinkWriter::new(write, codec),
        };
        let (peer, permit) = handshake(&mut link, shared, expected, &established).await?;
        Ok::<_, CloseReason>((link, peer, permit))
    };
    tokio::select! {
        () = generation.cancelled() => return Ok(()),
        () = freeze.thawed() => {}
    }
    let (link, peer, _established) = tokio::select! {
        () = generation.cancelled() => return Ok(()),
        setup = tokio::time::timeout(config.handshake_timeout, setup) =>
            setup.map_err(|_| "handshake timed out".to_string())??,
    };
    // Established: the pre-handshake slot is free for the next newcomer.
    drop(handshaking);
    claim(shared, peer);
    tracing::debug!(%from, peer = %peer.id, "peer connected");

    let Link {
        reader: mut stream,
        writer: mut sink,
    } = link;
    let activity = Activity::new();
    let (tx, mut rx) = mpsc::channel::<(Frame, Option<Busy>)>(config.max_in_flight_per_connection);
    let writer = async {
        while let Some((frame, busy)) = rx.recv().await {
            sink.send(frame).await?;
            // The request ends (and counts as activity) once its answer is written.
            drop(busy);
        }
        Ok::<(), voldisefs_proto::CodecError>(())
    };
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight_per_connection));
    let mut tasks = JoinSet::new();
    let reader = async {
        loop {
            // Waiting for a slot (every one held by a request its handler has not answered: a
            // hostile peer's requests may hang it) must not outlast the network: a shutdown
            // waits for this task.
            let permit = tokio::select! {
                () = generation.cancelled() => return Ok(()),
                permit = in_flight.clone().acquire_owned() => {
                    permit.map_err(|_| "closing".to_string())?
                }
            };
            // Frozen: read nothing; the peer's requests wait here or time out on its side.
            tokio::select! {
                () = generation.cancelled() => return Ok(()),
                () = freeze.thawed() => {}
            }
            let idle = Some((&*activity, config.idle_timeout));
            let frame = tokio::select! {
                () = generation.cancelled() => return Ok(()),
                // Reading is cancel-safe: a partly read frame stays buffered.
                () = freeze.frozen() => continue,
                frame = next_frame(&mut stream, config.frame_timeout, idle) => match frame {
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                    Ok(Some(frame)) => frame,
                },
            };
            activity.touch();
            // Reap finished request tasks so the set stays small.
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(%from, error = %e, "request task failed");
                }
            }
            let id = frame.envelope.id;
            let request = Payload {
                message: frame.envelope.message,
                body: frame.body,
            };
            if !request.message.is_request() || matches!(request.message, Message::Hello { .. }) {
                let kind = request.message.kind();
                // Tell the peer why before closing; it may be gone already.
                let _ = tx
                    .send((
                        Frame::new(
                            id,
                            Message::error(
                                ErrorCode::UnexpectedMessage,
                                format!("unexpected {kind}"),
                            ),
                        ),
                        None,
                    ))
                    .await;
                return Err(format!("unexpected {kind} message"));
            }
            let tx = tx.clone();
            let handler = handler.clone();
            let counters = shared.counters.clone();
            let mut task_freeze = freeze.clone();
            let response = answer_membership(shared, peer, from.ip(), &request.message);
            let busy = activity.busy();
            tasks.spawn(async move {
                let kind = request.message.kind();
                let response = match response {
                    Some(response) => response,
                    None => handler.handle(peer.id, request).await,
                };
                let outcome = if matches!(response.message, Message::Error { .. }) {
                    "error"
                } else {
                    "ok"
                };
                counters.request("in", kind, outcome);
                let frame = Frame {
                    envelope: voldisefs_proto::Envelope::new(id, response.message),
                    body: response.body,
                };
                // Read before a freeze: the answer still waits for the thaw.
                task_freeze.thawed().await;
                // A closed writer means the connection is going away: nothing to answer to.
                let _ = tx.send((frame, Some(busy))).await;
                drop(permit);
            });
        }
    };
    let result = tokio::select! {
        r = reader => r,
        w = writer => w.map_err(|e| format!("write failed: {e}")),
    };
    tasks.shutdown().await;
    result
}

/// Both halves of one inbound connection.
struct Link {
    reader: FrameReader<ReadHalf>,
    writer: LinkWriter<WriteHalf>,
}

/// Reads the peer's `hello`, checks it, takes an established slot and answers with ours.
async fn handshake(
    link: &mut Link,
    shared: &Shared,
    expected: Option<NodeId>,
    established: &Arc<Semaphore>,
) -> Result<(PeerInfo, OwnedSemaphorePermit), CloseReason> {
    let first = link
        .reader
        .next()
        .await
        .ok_or_else(|| "closed before hello".to_string())?
        .map_err(|e| format!("bad frame: {e}"))?;
    let id = first.envelope.id;
    let framed = &mut link.writer;
    let refuse = |code, message: String| Frame::new(id, Message::error(code, message));
    match first.envelope.message {
        Message::Hello {
            version,
            node_id,
            listen_addr,
        } => {
            if version != PROTOCOL_VERSION {
                let reason =
                    format!("peer speaks protocol v{version}, this node v{PROTOCOL_VERSION}");
                let _ = framed
                    .send(refuse(ErrorCode::IncompatibleVersion, reason.clone()))
                    .await;
                return Err(reason);
            }
            let local = shared.membership.local();
            if let Some(expected) = expected.filter(|id| *id != node_id) {
                let reason = format!("peer claims id {node_id} but its key is that of {expected}");
                let _ = framed
                    .send(refuse(ErrorCode::BadRequest, reason.clone()))
                    .await;
                return Err(reason);
            }
            if expected.is_none() {
                // Open mode: a hello proves nothing, so an id that is live at one address cannot
                // be claimed from another (a node keeps its address for its whole run).
                let taken = shared
                    .membership
                    .get(&node_id)
                    .filter(|e| e.state.is_live() && e.info.addr != listen_addr);
                if let Some(entry) = taken {
                    let reason = format!(
                        "node id {node_id} is live at {}, not at {listen_addr}",
                        entry.info.addr
                    );
                    let _ = framed
                        .send(refuse(ErrorCode::BadRequest, reason.clone()))
                        .await;
                    return Err(reason);
                }
            }
            if node_id == local.id {
                let reason = "peer claims this node's own id".to_string();
                let _ = framed
                    .send(refuse(ErrorCode::BadRequest, reason.clone()))
                    .await;
                return Err(reason);
            }
            let Ok(permit) = established.clone().try_acquire_owned() else {
                let reason = "too many established peer connections".to_string();
                let _ = framed
                    .send(refuse(ErrorCode::Unavailable, reason.clone()))
                    .await;
                return Err(reason);
            };
            framed
                .send(Frame::new(
                    id,
                    Message::Hello {
                        version: PROTOCOL_VERSION,
                        node_id: local.id,
                        listen_addr: local.addr,
                    },
                ))
                .await
                .map_err(|e| format!("write failed: {e}"))?;
            Ok((
                PeerInfo {
                    id: node_id,
                    addr: listen_addr,
                },
                permit,
            ))
        }
        other => {
            let reason = format!("expected hello, got {}", other.kind());
            let _ = framed
                .send(refuse(ErrorCode::UnexpectedMessage, reason.clone()))
                .await;
            Err(reason)
        }
    }
}

/// Inbound connections from `ip` that may be in their handshake at once: the configured
/// `max_handshaking_per_ip`, or, from a loopback address, up to half of `max_handshaking`.
/// Every peer on this machine (a local network of several nodes, a test network) comes from
/// the same loopback address, so the per-address cap would let only 8 of them join or dial
/// at once; half the slots stay for other addresses whatever loopback does.
fn handshakes_per_ip(config: &crate::NetConfig, ip: IpAddr) -> usize {
    if ip.is_loopback() {
        config
            .max_handshaking_per_ip
            .max(config.max_handshaking / 2)
    } else {
        config.max_handshaking_per_ip
    }
}

/// Records `peer`, known from the `hello` of an inbound connection, as a claim, and starts the
/// verification dial of its address if one is due: the address in a `hello` is only what the
/// peer says, it counts once this node has dialled it and found the peer there.
fn claim(shared: &Arc<Shared>, peer: PeerInfo) {
    if shared.membership.claim(peer) {
        pool::verify_claim(shared, peer.addr);
    }
}

/// Answers the membership requests the network layer owns; `None` for everything else.
/// `source` is the IP address the connection comes from.
///
/// A `ping` from a peer this node does not count as live renews its claim (see
/// [`Membership::claim`](crate::Membership::claim)), so a peer whose first verification was
/// not dialled (bounds full) or failed is verified again while it keeps probing this node.
/// How long after a peer became live its `get_peers` still counts as a join (its list is
/// pulled back): the verification of its `hello` may finish before its question arrives.
const JOINING_FOR: std::time::Duration = std::time::Duration::from_secs(5);

fn answer_membership(
    shared: &Arc<Shared>,
    from: PeerInfo,
    source: std::net::IpAddr,
    message: &Message,
) -> Option<Payload> {
    let message = match message {
        Message::Ping => {
            claim(shared, from);
            Message::Pong
        }
        // Live peers only, at most what a receiver accepts.
        Message::GetPeers => {
            // A peer this node does not count as live, or only since moments ago (the dial
            // that verified its `hello` can beat its question here), is joining (or rejoining
            // after a cut): with gossip, its list is pulled back (push-pull, as memberlist
            // joins), so what it knew reaches this side as fast as this side's list reaches it.
            if shared.gossip.get().is_some()
                && !shared
                    .membership
                    .get(&from.id)
                    .is_some_and(|e| e.state.is_live() && e.since.elapsed() >= JOINING_FOR)
            {
                shared.pull_hint.hint(from.addr);
            }
            Message::Peers {
                peers: shared
                    .membership
                    .peers_answer(from.id, MAX_PEERS_PER_ANSWER),
            }
        }
        Message::Leave { node_id } if *node_id == from.id => {
            // Open mode: the hello proved nothing, so the leave must at least come from the
            // address the node is known at (keyed mode: the id is bound to the link's key).
            let known_ip = shared.membership.get(&from.id).map(|e| e.info.addr.ip());
            if shared.keyed.is_none() && known_ip.is_some_and(|ip| ip != source) {
                return Some(Payload::new(Message::error(
                    ErrorCode::BadRequest,
                    "a leave must come from the leaving node's own address",
                )));
            }
            shared.membership.mark_left(from.id);
            Message::Ack
        }
        Message::Leave { .. } => Message::error(
            ErrorCode::BadRequest,
            "a node can only announce its own leave",
        ),
        _ => return None,
    };
    Some(Payload::new(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_slots_are_capped_per_address_and_freed_on_drop() {
        let table = PerIp::default();
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let honest: IpAddr = "198.51.100.7".parse().unwrap();
        let held: Vec<IpSlot> = (0..8).map(|_| table.admit(attacker, 8).unwrap()).collect();
        assert!(
            table.admit(attacker, 8).is_none(),
            "the ninth from one address"
        );
        // Another address is not affected by the first one's slots.
        let other = table.admit(honest, 8).unwrap();
        drop(held);
        assert!(table.admit(attacker, 8).is_some(), "freed on drop");
        drop(other);
        assert!(
            table.lock().is_empty(),
            "no entry left once every slot is freed"
        );
    }
}

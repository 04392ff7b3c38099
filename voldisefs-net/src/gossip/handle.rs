//! What the rest of the network holds of the gossip: the [`Gossip`] handle, a queue of
//! [`Command`]s to the gossip task. It depends on the member identity only, so the pool, the
//! liveness loops and bootstrap can reach the gossip without depending on its driver.

use std::net::SocketAddr;

use foca::Timer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voldisefs_proto::PeerInfo;

use super::identity::GossipId;

/// Requests to the gossip task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Announce this node to a member (a seed reached over TCP).
    Announce(PeerInfo),
    /// Members learned from a seed's peer list: taken as alive, to be probed.
    Learned(Vec<PeerInfo>),
    /// A member a third party named, whose address a check has just verified (open mode):
    /// taken as alive and, unlike [`Command::Learned`], gossiped on as news, as keyed mode's
    /// gossip spreads a join (the screen keeps third parties' news of unknown members from
    /// foca until they are verified).
    Verified(PeerInfo),
    /// Send an address check's request (open mode, see `check.rs`) to `addr`.
    CheckAddress { addr: SocketAddr, nonce: [u8; 16] },
    /// Tell the members this node leaves, then confirm.
    Leave(tokio::sync::oneshot::Sender<()>),
    /// The outcome of a direct check of a suspect member: before this node's own suspicion
    /// timer declares it down (`then`: that timer, handed to foca only if the check failed),
    /// or after it stayed suspect too long (see [`Suspicions`](super::swim::Suspicions)).
    Checked {
        id: GossipId,
        incarnation: foca::Incarnation,
        answered: bool,
        then: Option<Timer<GossipId>>,
    },
}

/// Most commands waiting for the gossip task.
const COMMAND_QUEUE: usize = 64;

/// The handle the network keeps: where to send commands.
#[derive(Debug, Clone)]
pub(crate) struct Gossip {
    commands: mpsc::Sender<Command>,
}

impl Gossip {
    /// A handle and the receiving end of its queue (at most [`COMMAND_QUEUE`] commands), which
    /// the gossip task reads.
    pub(crate) fn channel() -> (Gossip, mpsc::Receiver<Command>) {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        (Gossip { commands }, rx)
    }

    /// Queues `command` (dropped with a debug log when the queue is full or the task ended).
    pub(crate) fn send(&self, command: Command) {
        if let Err(e) = self.commands.try_send(command) {
            tracing::debug!(error = %e, "gossip command dropped");
        }
    }

    /// Hands `command` to the gossip task, waiting for room in its queue (not past shutdown).
    pub(crate) async fn send_waiting(&self, command: Command, token: &CancellationToken) {
        tokio::select! {
            () = token.cancelled() => {}
            _ = self.commands.send(command) => {}
        }
    }
}

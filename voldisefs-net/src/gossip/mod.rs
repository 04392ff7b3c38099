//! SWIM gossip membership: [`foca`] (sans-IO) driven over a UDP socket on the peer port.
//!
//! foca decides whom to probe, when to suspect and when to declare a member down, and what
//! news to piggyback; this module owns everything else: the socket, the sealing of every
//! datagram ([`crate::datagram`]: encrypted and authenticated with the network key in keyed
//! mode, replays refused), the timer queue (foca needs its timers delivered in order), and
//! the translation of foca's notifications into the [`Membership`](crate::Membership) table
//! that placement, repair and the status pages read:
//!
//! - a member up: alive in keyed mode (only holders of the network key can speak on the
//!   socket); in open mode only a claim, verified by an address check over UDP (`check.rs`)
//!   or, when that gets no answer, a TCP dial like an inbound `hello`;
//! - a member down: dead (it leaves placement until it is heard from again).
//!
//! Identities are (node id, address, generation): a member wrongly declared down (after a
//! partition, say) renews its identity with the next generation and rejoins by itself.
//!
//! Files: `handle.rs` (what the rest of the network holds: the command queue), `driver.rs`
//! (the task), `swim.rs` (foca's configuration and bookkeeping), `screen.rs` (what a packet's
//! sender may claim), `identity.rs` (what foca knows a member by), `check.rs` (open mode's
//! address checks).

pub(crate) mod check;
mod driver;
mod handle;
pub(crate) mod identity;
pub(crate) mod screen;
#[cfg(test)]
mod sim;
mod swim;

use std::net::SocketAddr;
use std::sync::Arc;

use foca::{Foca, PostcardCodec};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use driver::Driver;
pub(crate) use handle::{Command, Gossip};
pub(crate) use identity::GossipId;
use swim::foca_config;
pub(crate) use swim::{Swim, sync_pause};

use crate::config::GossipConfig;
use crate::datagram::Datagrams;
use crate::error::NetError;
use crate::shared::Shared;

/// Binds the gossip socket beside the peer listener (same address, UDP) and starts the task.
pub(crate) fn start(
    shared: &Arc<Shared>,
    bind: SocketAddr,
    settings: GossipConfig,
) -> Result<Gossip, NetError> {
    let socket = shared.transport.bind_udp(bind)?;
    let run: [u8; 16] = voldisefs_proto::entropy::bytes()
        .map_err(|_| NetError::Key("the system random generator failed".into()))?;
    let datagrams = match &shared.config.network_key {
        Some(key) => Datagrams::keyed(key, run, shared.config.max_peers)
            .ok_or_else(|| NetError::Key("cannot derive the gossip key".into()))?,
        None => Datagrams::open(),
    };
    let seed: [u8; 32] = voldisefs_proto::entropy::bytes()
        .map_err(|_| NetError::Key("the system random generator failed".into()))?;
    let local = shared.membership.local();
    let mode = if shared.config.network_key.is_some() {
        screen::Mode::Keyed
    } else {
        screen::Mode::Open
    };
    let config = foca_config(&settings, 1, datagrams.overhead());
    let swim = Foca::new(
        GossipId::new(local, 0),
        config,
        SmallRng::from_seed(seed),
        PostcardCodec,
    );
    let (gossip, commands) = Gossip::channel();
    let driver = Driver::new(shared.clone(), socket, datagrams, swim, settings, mode);
    shared.tracker.spawn(driver.run(commands));
    Ok(gossip)
}

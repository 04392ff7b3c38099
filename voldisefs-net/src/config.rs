//! Tunables of the network layer.

use std::time::Duration;

use voldisefs_proto::MAX_FRAME_LEN;

use crate::NetworkKey;
use crate::peer_time::WallClock;

/// Default of [`NetConfig::max_peers`].
pub(crate) const DEFAULT_MAX_PEERS: usize = 4096;
/// Default of [`NetConfig::forget_after`].
pub(crate) const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(10 * 60);
/// Default of [`NetConfig::unverified_forget_after`].
pub(crate) const DEFAULT_UNVERIFIED_FORGET_AFTER: Duration = Duration::from_secs(30);

/// Timeouts and limits of the network layer. `Default` gives values fit for a LAN.
///
/// Failure detection follows garage's scheme: every peer is pinged every `probe_interval`; one
/// failed probe makes it suspect, `dead_after` consecutive failures dead (it then leaves
/// placement); any successful probe or `hello` makes it alive again. With the defaults a
/// crashed peer is declared dead within about 7 s, and each node sends one small ping per
/// peer every 2 s. A peer that announced its leave stays left for good: neither its `hello`
/// nor a successful probe revives it (a restarted node has a new id).
///
/// Everything peers can make this node remember is bounded:
///
/// - the membership table holds at most `max_peers` peers; when it is full, a new peer evicts
///   the unverified entry that has been in that state longest, else the dead or left one,
///   and is refused (not added) if there is none;
/// - dead and left entries are forgotten `forget_after` after they entered that state;
/// - a peer known only from its inbound `hello` claims an address nobody checked: it is
///   unverified (not live, in no placement nor peer list) until this node dials that address
///   and finds the claimed id there, and is forgotten `unverified_forget_after` after it
///   became unverified. The verification dials are bounded: at most `max_verifying` at once,
///   each done within `probe_timeout`, and at most `max_verify_pending` addresses waiting for
///   one (one dial per address however many ids claim it); claims beyond are not dialled
///   (the probe loop retries unverified entries each round, within the same bounds);
/// - the ids of nodes that announced their leave are remembered (so they are never revived)
///   even after their entry is forgotten, at most `max_peers` of them, oldest forgotten first;
/// - a `peers` answer longer than [`MAX_PEERS_PER_ANSWER`](voldisefs_proto::MAX_PEERS_PER_ANSWER)
///   is refused as a whole, and invalid entries (this node's id, an unspecified, multicast or
///   broadcast address, port 0, a repeated id) are dropped; this node's own answer lists at
///   most that many live peers;
/// - one bootstrap contacts at most `max_peers` addresses besides its seeds;
/// - one discovery round introduces this node to at most `discovery_fanout` new peers.
///
/// Connections are bounded too, so that neither stalled frames, idle sockets nor junk that
/// never finishes its handshake can hold the node's memory or keep peers out:
///
/// - a connection that has not finished its handshake (the Noise handshake in keyed mode, and
///   the `hello` exchange) holds one of `max_handshaking` pre-handshake slots, at most
///   `max_handshaking_per_ip` of them per address; a connection accepted beyond either is
///   closed at once; the handshake must finish within `handshake_timeout`;
/// - an established inbound connection holds one of `max_connections` slots (a peer whose
///   `hello` arrives when they are all taken is answered with an `unavailable` error and
///   closed); pre-handshake connections never take these slots, so junk cannot keep members
///   out; all inbound connections from one address, in either phase, are capped by
///   `max_connections_per_ip`;
/// - once the first byte of a frame has arrived, the whole frame must arrive within
///   `frame_timeout`, on inbound and outbound connections, in open and keyed mode;
/// - an inbound connection with no request in flight that receives no frame for
///   `idle_timeout` is closed; the dialing side re-dials on its next request, and does so
///   already once its pooled connection has been unused for `idle_timeout / 2`;
/// - a frame is at most `max_frame_len` bytes, and its buffer grows with the bytes that arrive,
///   never with what its length prefix announces (see
///   [`GROWTH_STEP`](voldisefs_proto::codec::GROWTH_STEP)), except that all connections
///   together may allocate up to `frame_reserve_budget` bytes for large frames whose length
///   is known before their bytes arrive (so those are read without copies; see
///   [`ReserveBudget`](voldisefs_proto::ReserveBudget)).
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Time allowed to open a TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for the `hello` exchange, on either side.
    pub handshake_timeout: Duration,
    /// Time allowed for one request to be answered (a whole chunk transfer included).
    pub request_timeout: Duration,
    /// The network's shared key. `Some`: keyed mode, every link is a Noise handshake keyed by
    /// it and only nodes holding it can join. `None`: open mode, as the seed was (anyone who
    /// can reach the port can join); keyed and open nodes never talk to each other.
    pub network_key: Option<NetworkKey>,
    /// Established inbound connections (handshake and `hello` done) served at once; a peer
    /// whose `hello` arrives when all are taken is refused with an `unavailable` error.
    /// Default 1024.
    pub max_connections: usize,
    /// Inbound connections from one IP address, before and after their handshake; further ones
    /// are closed on accept. Default 256.
    pub max_connections_per_ip: usize,
    /// Inbound connections still in their handshake (Noise and `hello`) at once; further ones
    /// are closed on accept. They do not count against `max_connections`. Default 64.
    pub max_handshaking: usize,
    /// Inbound connections from one IP address still in their handshake; further ones are
    /// closed on accept, so one address cannot take every pre-handshake slot. Default 8.
    /// Loopback (every peer on the same machine) may take up to half of `max_handshaking`.
    pub max_handshaking_per_ip: usize,
    /// Time allowed for a whole frame to arrive once its first byte has; a connection that
    /// exceeds it is closed. Applies to inbound and outbound connections. Default 10 s.
    pub frame_timeout: Duration,
    /// Time after which an inbound connection with no request in flight and no frame received
    /// is closed. The dialing side does not reuse a pooled connection unused for half this
    /// time (it dials afresh), so a request is not sent just as the peer closes the link; give
    /// every node of a network the same value. Default 15 s: with gossip membership nothing
    /// else keeps links open, so a node holds connections only to the peers it currently
    /// exchanges chunks or requests with.
    pub idle_timeout: Duration,
    /// Drill and benchmark setting: every request this node sends to a peer waits this long
    /// before it goes out, as over a link with this round-trip time (bandwidth is not
    /// limited; datagrams are not delayed). Default 0: none. The benches use it to measure
    /// transfers over slow links; the kernel's netem is not always available.
    pub drill_rtt: Duration,
    /// Drill and benchmark setting: the share of requests (0 to 1) that meet a lost segment
    /// on the way, as over a lossy link: such a request waits a TCP retransmission timeout
    /// more (twice `drill_rtt`, at least 200 ms, Linux's minimum) before it goes out.
    /// Default 0: none.
    pub drill_loss: f64,
    /// Requests of one inbound connection handled at once; the connection stops reading beyond.
    pub max_in_flight_per_connection: usize,
    /// Largest frame accepted or sent.
    pub max_frame_len: usize,
    /// Bytes all connections together may allocate for incoming large frames (64 KiB and up)
    /// as soon as their length is known, so their bytes are read straight into one exact
    /// buffer. Frames that find it spent grow their buffer with the bytes that arrive (one
    /// copy more). A peer that announces frames and stalls holds its share until
    /// `frame_timeout` closes it. Default 64 MiB; 0 turns it off.
    pub frame_reserve_budget: usize,
    /// Bytes all peer connections together may hold in buffers of incoming frames not yet
    /// complete: inbound and outbound, open and keyed mode (the ciphertext read and the
    /// decrypted bytes), before and after the `hello`; reservations of
    /// `frame_reserve_budget` count too. Every such buffer is granted before it is allocated,
    /// at its exact size, so this bounds them (see [`Network::frame_memory`]). A connection
    /// refused a buffer reads nothing more until memory frees, under `frame_timeout`; when the
    /// budget is spent, the address holding the most gives back its largest connection (closed)
    /// if it holds more than the refused address would, so addresses share it fairly.
    /// Complete frames handed to the handler (and answers being written) are not counted.
    /// Give at least `max_frame_len` + 128 KiB. Default 256 MiB.
    ///
    /// [`Network::frame_memory`]: crate::Network::frame_memory
    pub frame_memory: usize,
    /// The most of `frame_memory` the connections of one address (an IPv4 address, an IPv6
    /// /64) hold together; a connection beyond waits as above. A frame needs at most its own
    /// size + 64 KiB, so give at least `max_frame_len` + 128 KiB (with the default, one
    /// address holds at most 3 maximal frames at once). Default 64 MiB.
    pub frame_memory_per_ip: usize,
    /// Peers contacted at once during bootstrap.
    pub bootstrap_parallelism: usize,
    /// Time between two probe rounds; every known peer is pinged once per round.
    pub probe_interval: Duration,
    /// Time one probe may take before it counts as failed.
    pub probe_timeout: Duration,
    /// Consecutive failed probes after which a peer is declared dead (the first failure makes
    /// it suspect).
    pub dead_after: u32,
    /// Dead peers are probed once every this many rounds, so a healed partition is noticed.
    pub dead_probe_every: u32,
    /// Time between two discovery rounds, each asking one live peer (in turn) for its peers
    /// and introducing this node to any it did not know.
    pub discovery_interval: Duration,
    /// Most new peers one discovery round introduces this node to; the rest wait for later
    /// rounds. Default 16.
    pub discovery_fanout: usize,
    /// Most peers in the membership table, in any state. When full, a new peer evicts the
    /// oldest dead or left entry, or is refused if there is none. Also caps the remembered
    /// ids of left nodes and the addresses one bootstrap contacts. Default 4096.
    pub max_peers: usize,
    /// Time after which a dead or left peer is forgotten (removed from the table by the probe
    /// loop). A dead peer heard from before that is alive again; a left one never is.
    /// Default 10 minutes.
    pub forget_after: Duration,
    /// Time after which a peer still unverified (known only from its own inbound `hello`, its
    /// address not yet found to hold it) is forgotten. Default 30 s.
    pub unverified_forget_after: Duration,
    /// Verification dials (of the address an inbound `hello` claims) running at once; each
    /// ends within `probe_timeout`. Default 16.
    pub max_verifying: usize,
    /// Addresses waiting for a verification dial (running ones included); claims of further
    /// addresses are not dialled until a place frees (the probe loop retries unverified
    /// entries each round). Default 256.
    pub max_verify_pending: usize,
    /// First pause of [`Network::join`](crate::Network::join) after a round in which no seed
    /// answered; each further failure doubles it up to `join_retry_max`. Default 500 ms.
    pub join_retry_initial: Duration,
    /// Longest pause between two join attempts. Default 10 s.
    pub join_retry_max: Duration,
    /// SWIM gossip membership (see [`GossipConfig`]), the default. `None`: the classic
    /// all-to-all probe and discovery loops (every peer pinged every `probe_interval`), whose
    /// cost grows with the square of the network's size.
    pub gossip: Option<GossipConfig>,
    /// Where this node reads its own time of day, stamped on every membership datagram so
    /// members learn each other's time without asking (see [`Network::peer_times`]). Default:
    /// the system clock; a node sets its own (with its drill offset).
    ///
    /// [`Network::peer_times`]: crate::Network::peer_times
    pub wall_clock: WallClock,
}

/// Settings of SWIM gossip membership ([`foca`] over UDP on the peer port): every
/// `probe_period` a node probes one random member directly, then through
/// `indirect_probes` others when no answer came within `probe_rtt`; a member that stays
/// silent is suspect and, unless it refutes within `suspect_after` times
/// `max(1, log10 N)`, down. News (joins, suspicions, deaths) ride on the probes and on a
/// gossip round every `gossip_every` to `gossip_fanout` members, so each node sends a few
/// small packets a second whatever the network's size. With the defaults a crashed node is
/// marked down everywhere within about 5 s on a LAN.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// Time between two probes of a random member. Default 1 s.
    pub probe_period: Duration,
    /// Time a direct probe may take before indirect probes are sent (less than
    /// `probe_period`). Default 300 ms.
    pub probe_rtt: Duration,
    /// Members asked to probe a silent one on this node's behalf. Default 3.
    pub indirect_probes: usize,
    /// Base of the suspicion timeout, multiplied by `max(1, log10 N)` for N members. Default
    /// 2 s (4.6 s at 200 members, 6 s at 1,000).
    pub suspect_after: Duration,
    /// Time between two gossip rounds (sent only while there is news). Default 200 ms.
    pub gossip_every: Duration,
    /// Members one gossip round sends news to. Default 3.
    pub gossip_fanout: usize,
    /// Time between two announcements of this node to a random member (so two halves of a
    /// network that were apart find each other). Default 10 s.
    pub announce_every: Duration,
    /// Largest membership datagram, envelope included. Default 1400 bytes.
    pub max_packet: usize,
    /// Time between two anti-entropy rounds: a `get_peers` to one random member over TCP, whose
    /// answer fills in members gossip has not brought (after a mass join, say). Default 2 s.
    pub sync_every: Duration,
    /// Shortest time between two member-list pulls started by news rather than by the
    /// `sync_every` round: a member gossiped of a member this node did not know (its list is
    /// pulled at once), or a joiner asked for this node's list (push-pull). Bounds those pulls
    /// to one per `pull_gap` whatever the news rate. Default 250 ms.
    pub pull_gap: Duration,
    /// Most datagrams the gossip reads a second. Beyond, it stops reading until the next
    /// second and the kernel drops the rest, so a flood of junk costs a bounded share of a
    /// core (a member of a 1,000-node network receives well under 100 a second). Default
    /// 5,000.
    pub max_datagrams_per_sec: u32,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_secs(1),
            probe_rtt: Duration::from_millis(300),
            indirect_probes: 3,
            suspect_after: Duration::from_secs(2),
            gossip_every: Duration::from_millis(200),
            gossip_fanout: 3,
            announce_every: Duration::from_secs(10),
            max_packet: 1400,
            sync_every: Duration::from_secs(2),
            pull_gap: Duration::from_millis(250),
            max_datagrams_per_sec: 5_000,
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            network_key: None,
            max_connections: 1024,
            max_connections_per_ip: 256,
            max_handshaking: 64,
            max_handshaking_per_ip: 8,
            frame_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            drill_rtt: Duration::ZERO,
            drill_loss: 0.0,
            max_in_flight_per_connection: 64,
            max_frame_len: MAX_FRAME_LEN,
            frame_reserve_budget: 64 << 20,
            frame_memory: 256 << 20,
            frame_memory_per_ip: 64 << 20,
            bootstrap_parallelism: 16,
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            dead_after: 3,
            dead_probe_every: 5,
            discovery_interval: Duration::from_secs(10),
            discovery_fanout: 16,
            max_peers: DEFAULT_MAX_PEERS,
            forget_after: DEFAULT_FORGET_AFTER,
            unverified_forget_after: DEFAULT_UNVERIFIED_FORGET_AFTER,
            max_verifying: 16,
            max_verify_pending: 256,
            join_retry_initial: Duration::from_millis(500),
            join_retry_max: Duration::from_secs(10),
            gossip: Some(GossipConfig::default()),
            wall_clock: WallClock::system(),
        }
    }
}

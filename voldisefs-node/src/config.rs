//! [`NodeConfig`]: everything a node is started with.

use std::net::SocketAddr;
use std::time::Duration;

use voldisefs_crypto::{ChunkSize, KdfParams};
use voldisefs_net::NetConfig;
use zeroize::Zeroizing;

/// How a node is started. `Default` matches `voldisefs node start` without options.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Address of the peer TCP server (port 0: any free port).
    pub listen: SocketAddr,
    /// Address of the HTTP API, or `None` for no HTTP server.
    pub http: Option<SocketAddr>,
    /// Address peers should dial; default: the bound `listen` address.
    pub advertise: Option<SocketAddr>,
    /// Known peers to join through; empty starts a new network.
    pub bootstrap: Vec<SocketAddr>,
    /// Copies kept of every chunk and manifest record (fewer only while the network is
    /// smaller): 1 to [`MAX_SHARDS`](voldisefs_crypto::MAX_SHARDS), as `replicas:N` allows;
    /// [`Node::start`](crate::Node::start) refuses any other count.
    pub replicas: usize,
    /// How files uploaded through this node keep their chunks unless an upload says
    /// otherwise: `None` for `replicas:N` with this network's `replicas`, or
    /// [`Redundancy::ErasureCoded`](voldisefs_crypto::Redundancy::ErasureCoded) for K + M Reed-Solomon shards on K + M distinct nodes.
    pub redundancy: Option<voldisefs_crypto::Redundancy>,
    /// Bytes this node's store may hold, each chunk charged
    /// [`ENTRY_OVERHEAD`](voldisefs_store::ENTRY_OVERHEAD) bytes on top of its length so the
    /// bound holds for memory whatever the chunk sizes.
    pub capacity: u64,
    /// Chunk size for files uploaded through this node.
    pub chunk_size: ChunkSize,
    /// Argon2id cost for files uploaded through this node.
    pub kdf: KdfParams,
    /// The costliest Argon2id parameters this node runs for a record it reads (any peer can
    /// plant a record asking for more): records above it are refused before any work. Default:
    /// what this version writes (64 MiB, 3 passes, 1 lane); raised to `kdf` if that is higher.
    pub kdf_max: KdfParams,
    /// Key derivations run at once (each takes up to `kdf_max`'s memory); default: the number
    /// of cores.
    pub kdf_concurrency: usize,
    /// Longest wait of a request for a free key-derivation slot; it is then refused as busy
    /// (HTTP 503 with `Retry-After`).
    pub kdf_queue_timeout: Duration,
    /// Password keys (Argon2id outputs) kept in RAM so that reading a file again does not
    /// run Argon2id again; 0 keeps none. Found by an HMAC under a random per-node key, never
    /// by the password or a plain hash of it; only keys of correct passwords are kept; zeroed
    /// on eviction and when the node stops. Default 64.
    pub kdf_cache_entries: usize,
    /// How long a cached password key is kept after its derivation. Default 10 min.
    pub kdf_cache_age: Duration,
    /// How long files uploaded through this node live when the upload names no expiry
    /// (`None`: forever, unless `max_expiry` is set). Default `None`.
    pub default_expiry: Option<Duration>,
    /// The longest expiry an upload through this node may ask for; uploads that ask for none
    /// get it when there is no `default_expiry`. Default `None` (no limit).
    pub max_expiry: Option<Duration>,
    /// How often the store drops expired objects (reads drop an expired object at once, and
    /// puts of one are refused, whatever this is). Default 1 s.
    pub expiry_sweep: Duration,
    /// How often the node asks its peers for their time, to follow them when its own clock
    /// runs late (see the node crate's clock docs: expiry is never extended by a late clock
    /// by more than 2 s and one such round). Default 30 s.
    pub clock_check_interval: Duration,
    /// Seconds added to this node's system clock: a drill setting for tests of clock skew.
    /// Default 0.
    pub drill_clock_offset: i64,
    /// Where the node reads the time of day (expiry, clock following): the system clock
    /// unless a program running nodes under simulated time gives its own.
    pub wall_clock: crate::clock::WallClock,
    /// Chunks in flight per upload or download (sealing, transfer, read-ahead), to begin
    /// with: a transfer's window grows by the bandwidth-delay product of the median latency
    /// of this node's recent chunk puts or gets (sized for 2 GiB/s), up to 128 MiB of chunks,
    /// so slow links stay busy; all transfers of a node together grow by at most
    /// `transfer_window_budget`. Memory per transfer is about twice the window's chunks.
    pub transfer_parallelism: usize,
    /// Bytes by which all of a node's transfers together may grow their windows beyond
    /// `transfer_parallelism` chunks each (see there). Default 512 MiB.
    pub transfer_window_budget: usize,
    /// Time between two anti-entropy sweeps (repair also runs after every membership change).
    pub repair_interval: Duration,
    /// Bytes per second repair and hand-off may send (a quarter of it while users transfer
    /// files through this node).
    pub repair_bandwidth: u64,
    /// How long a graceful shutdown may spend handing chunks to their next holders.
    pub handoff_deadline: Duration,
    /// Longest wait for one holder's answer to one request (a get, put, proof or delete);
    /// the next holder is tried after it. Long enough for a whole chunk on a slow link.
    pub attempt_timeout: Duration,
    /// Shortest wait before a read or write also asks the next holder (hedging). The wait is
    /// the observed p99 latency of such requests, kept within `[hedge_min, hedge_max]`.
    pub hedge_min: Duration,
    /// Longest wait before a read or write also asks the next holder; used as the wait until
    /// enough latencies are observed. Bounds what one hung holder costs a transfer.
    pub hedge_max: Duration,
    /// How long a deleted chunk's id is remembered (tombstone), so a late put or a holder
    /// that missed the delete cannot bring it back. Longer than any repair round.
    pub tombstone_ttl: Duration,
    /// Most tombstones kept (at most a quarter of them unverified; the oldest go first, an
    /// unverified one before any verified one): about 230 bytes each, with the hash table's
    /// slack (64 MiB at most for the default 262,144).
    pub max_tombstones: usize,
    /// Token every `/api/...` request must carry (`Authorization: Bearer <token>`). Required
    /// when `http` is not a loopback address.
    pub api_token: Option<ApiToken>,
    /// Host names the HTTP API answers to besides IP addresses and `localhost` (DNS-rebinding
    /// guard): requests whose `Host` is any other name are refused with 403.
    pub http_hosts: Vec<String>,
    /// HTTP connections served at once; further ones are closed at once.
    pub http_max_connections: usize,
    /// Time a client has to send a request's headers (also bounds an idle keep-alive
    /// connection); a connection that takes longer is closed.
    pub http_header_timeout: Duration,
    /// Longest pause in an upload's body; an upload whose client sends nothing for this long
    /// fails (and removes what it stored).
    pub http_body_idle_timeout: Duration,
    /// Longest a response may wait for its client to accept a byte: a connection whose client
    /// reads nothing for this long is closed, freeing its slot and the bytes its response held
    /// (see the HTTP module's slow-reader bounds). Default 30 s.
    pub http_write_idle_timeout: Duration,
    /// Peer networking: the network key (keyed mode), timeouts, limits, failure detection.
    pub net: NetConfig,
}

/// The secret that guards a node's HTTP API. Wiped when dropped; its `Debug` shows nothing;
/// compared in constant time.
#[derive(Clone)]
pub struct ApiToken(Zeroizing<String>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl ApiToken {
    /// Wraps a token; surrounding whitespace is dropped. Fails if it is empty or not visible
    /// ASCII (it travels in an HTTP header).
    pub fn new(token: &str) -> Result<Self, crate::NodeError> {
        let token = token.trim();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(crate::NodeError::Config(
                "an API token must be non-empty visible ASCII without spaces".into(),
            ));
        }
        Ok(Self(Zeroizing::new(token.to_string())))
    }

    /// Whether `candidate` is this token, in time independent of both the token's content and
    /// its length (the SHA-256 digests of both are compared in constant time).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let digest = |bytes: &[u8]| ring::digest::digest(&ring::digest::SHA256, bytes);
        let (ours, theirs) = (digest(self.0.as_bytes()), digest(candidate));
        ours.as_ref().ct_eq(theirs.as_ref()).into()
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4100)),
            http: Some(SocketAddr::from(([127, 0, 0, 1], 4200))),
            advertise: None,
            bootstrap: Vec::new(),
            replicas: 3,
            redundancy: None,
            capacity: 1 << 30,
            chunk_size: ChunkSize::default(),
            kdf: KdfParams::default(),
            kdf_max: KdfParams::default(),
            kdf_concurrency: cores,
            kdf_queue_timeout: Duration::from_secs(10),
            kdf_cache_entries: 64,
            kdf_cache_age: Duration::from_secs(600),
            default_expiry: None,
            max_expiry: None,
            expiry_sweep: Duration::from_secs(1),
            clock_check_interval: Duration::from_secs(30),
            drill_clock_offset: 0,
            wall_clock: crate::clock::WallClock::system(),
            transfer_parallelism: (2 * cores).clamp(4, 16),
            transfer_window_budget: 512 * 1024 * 1024,
            repair_interval: Duration::from_secs(60),
            repair_bandwidth: 256 << 20,
            handoff_deadline: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(5),
            hedge_min: Duration::from_millis(20),
            hedge_max: Duration::from_secs(1),
            tombstone_ttl: Duration::from_secs(24 * 3600),
            max_tombstones: 262_144,
            api_token: None,
            http_hosts: Vec::new(),
            http_max_connections: 256,
            http_header_timeout: Duration::from_secs(10),
            http_body_idle_timeout: Duration::from_secs(30),
            http_write_idle_timeout: Duration::from_secs(30),
            net: NetConfig::default(),
        }
    }
}

impl NodeConfig {
    /// A node on loopback with OS-assigned ports for both servers (tests, demos).
    pub fn ephemeral() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Self::default()
        }
    }

    /// How long a whole chunk fetch may take across all its holders before it counts as
    /// unavailable.
    pub(crate) fn fetch_deadline(&self) -> Duration {
        self.net.request_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves_whatever_the_length() {
        let token = ApiToken::new("s3cret-token").unwrap();
        assert!(token.matches(b"s3cret-token"));
        for wrong in [&b""[..], b"s3cret", b"s3cret-token ", b"s3cret-tokeN", b"x"] {
            assert!(!token.matches(wrong));
        }
        assert!(ApiToken::new("  ").is_err());
        assert!(ApiToken::new("a b").is_err());
    }
}

//! Tunables of the network layer.

use std::time::Duration;

use voldisefs_proto::MAX_FRAME_LEN;

/// Timeouts and limits of the network layer. `Default` gives values fit for a LAN.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Time allowed to open a TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for the `hello` exchange, on either side.
    pub handshake_timeout: Duration,
    /// Time allowed for one request to be answered (a whole chunk transfer included).
    pub request_timeout: Duration,
    /// Inbound connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Requests of one inbound connection handled at once; the connection stops reading beyond.
    pub max_in_flight_per_connection: usize,
    /// Largest frame accepted or sent.
    pub max_frame_len: usize,
    /// Peers contacted at once during bootstrap.
    pub bootstrap_parallelism: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_in_flight_per_connection: 64,
            max_frame_len: MAX_FRAME_LEN,
            bootstrap_parallelism: 16,
        }
    }
}

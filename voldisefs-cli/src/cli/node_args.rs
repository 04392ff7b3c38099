//! The options of `voldisefs node start` (and `node config`), `keygen`'s, and the log format.

use std::path::PathBuf;

use clap::Args;
use voldisefs_node::crypto::{ChunkSize, Redundancy};

use super::values::{
    HostPort, MAX_REPLICAS, parse_chunk_size, parse_duration, parse_redundancy, parse_size_arg,
};
use crate::size::SIZE_HELP;

/// Options of `voldisefs node start` (and `node config`). Every option can also come from
/// the environment (`VOLDISEFS_` and its name in capitals, `-` as `_`; lists comma-separated)
/// or from the `--config` file (a TOML key of the same name); the command line wins over the
/// environment, which wins over the file.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct NodeStartArgs {
    /// A TOML file with any of these options as keys of the same name (`listen = "..."`,
    /// `chunk-size = "1MiB"`, `bootstrap = ["a:4100", "b:4100"]`, ...); see
    /// `deploy/voldisefs.toml`.
    #[arg(long, value_name = "FILE", env = "VOLDISEFS_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address of the peer-to-peer TCP server (port 0: any free port) [default:
    /// 127.0.0.1:4100].
    #[arg(long, value_name = "HOST:PORT", env = "VOLDISEFS_LISTEN")]
    pub(crate) listen: Option<HostPort>,
    /// Address of the HTTP API used by the CLI and the web page (port 0: any free port)
    /// [default: 127.0.0.1:4200].
    #[arg(long, value_name = "HOST:PORT", env = "VOLDISEFS_HTTP")]
    pub(crate) http: Option<HostPort>,
    /// A peer of an existing network to join through (repeatable).
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "VOLDISEFS_BOOTSTRAP",
        value_delimiter = ','
    )]
    pub(crate) bootstrap: Vec<HostPort>,
    /// The address other peers should dial, if not the listen address (behind NAT, 0.0.0.0).
    #[arg(long, value_name = "HOST:PORT", env = "VOLDISEFS_ADVERTISE")]
    pub(crate) advertise: Option<HostPort>,
    /// Copies kept of every chunk, 1 to 32 (the most a redundancy names) [default: 3].
    #[arg(long, value_name = "N", env = "VOLDISEFS_REPLICAS",
          value_parser = clap::value_parser!(u16).range(1..=MAX_REPLICAS))]
    pub(crate) replicas: Option<u16>,
    /// How files uploaded through this node keep their chunks unless an upload says
    /// otherwise: `replicas:N` (sets --replicas too) or `rs:K+M` (K data and M parity
    /// Reed-Solomon shards on K + M distinct nodes; needs K + M live nodes)
    /// [default: replicas:<--replicas>].
    #[arg(long, value_name = "SPEC", env = "VOLDISEFS_REDUNDANCY", value_parser = parse_redundancy)]
    pub(crate) redundancy: Option<Redundancy>,
    /// RAM this node may use for stored chunks [default: 1GiB].
    #[arg(long, value_name = "SIZE", env = "VOLDISEFS_CAPACITY", value_parser = parse_size_arg,
          long_help = format!("RAM this node may use for stored chunks [default: 1GiB].\nSIZE: {SIZE_HELP}."))]
    pub(crate) capacity: Option<u64>,
    /// Chunk size of files uploaded through this node: a power of two from 64KiB to 16MiB
    /// [default: 1MiB].
    #[arg(long, value_name = "SIZE", env = "VOLDISEFS_CHUNK_SIZE", value_parser = parse_chunk_size)]
    pub(crate) chunk_size: Option<ChunkSize>,
    /// How long files uploaded through this node live when an upload names no expiry
    /// (DURATION: `10m`, `24h`, `7d`, ...) [default: forever, or --max-expiry if set].
    #[arg(long, value_name = "DURATION", env = "VOLDISEFS_DEFAULT_EXPIRY", value_parser = parse_duration)]
    pub(crate) default_expiry: Option<std::time::Duration>,
    /// The longest expiry an upload through this node may ask for (DURATION) [default: no
    /// limit].
    #[arg(long, value_name = "DURATION", env = "VOLDISEFS_MAX_EXPIRY", value_parser = parse_duration)]
    pub(crate) max_expiry: Option<std::time::Duration>,
    /// The network key (written by `voldisefs keygen`): peer links are encrypted and
    /// authenticated and only nodes with the same key can join. Without it the node runs in
    /// open mode.
    #[arg(long, value_name = "FILE", env = "VOLDISEFS_NETWORK_KEY_FILE", value_hint = clap::ValueHint::FilePath)]
    pub(crate) network_key_file: Option<PathBuf>,
    /// A token every API request must carry (`Authorization: Bearer`); required when --http
    /// is not a loopback address.
    #[arg(long, value_name = "FILE", env = "VOLDISEFS_API_TOKEN_FILE", value_hint = clap::ValueHint::FilePath)]
    pub(crate) api_token_file: Option<PathBuf>,
    /// A host name the HTTP API answers to (repeatable; e.g. the name of a proxy in front of
    /// it). IP addresses, `localhost` and the name given to `--http` always work; requests
    /// naming any other host are refused, so a web page cannot reach the node through a
    /// DNS-rebinding domain.
    #[arg(
        long = "http-host",
        value_name = "NAME",
        env = "VOLDISEFS_HTTP_HOST",
        value_delimiter = ','
    )]
    pub(crate) http_hosts: Vec<String>,
    /// Log format on stderr: human-readable text, or one JSON object per line [default: text].
    #[arg(long, value_enum, env = "VOLDISEFS_LOG_FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
    /// What the command line and environment set ([`parse`] fills it in), so the `--config`
    /// file fills only the rest (`node_config.rs`).
    #[arg(skip)]
    pub(crate) given: clap::ArgMatches,
}

/// How `node start` and `demo` write their logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    #[default]
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Options of `voldisefs keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// The file to write the new network key to (created with mode 0600).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    pub(crate) force: bool,
}

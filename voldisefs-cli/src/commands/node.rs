//! `voldisefs node start`: run one node until Ctrl-C or SIGTERM.
//!
//! Once both servers are bound it prints exactly three lines on stdout, which scripts and
//! tests parse: `node <id>`, `peer <addr>`, `http http://<addr>`. Logs go to stderr
//! (`RUST_LOG` is honoured; default `info`).

use std::net::SocketAddr;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;
use voldisefs_node::crypto::Redundancy;
use voldisefs_node::net::{NetConfig, NetworkKey};
use voldisefs_node::{ApiToken, Node, NodeConfig};

use crate::cli::{HostPort, LogFormat, NodeStartArgs};
use crate::signals::StopSignals;

/// Starts the node, prints its addresses, serves until a stop signal, then shuts it down
/// (a second signal cuts the graceful shutdown short).
pub(crate) async fn start(args: NodeStartArgs) -> anyhow::Result<()> {
    let args = crate::node_config::merge(args)?;
    init_logging("info", args.log_format.unwrap_or_default());
    let config = config_from(&args).await?;
    let mut signals = StopSignals::install()?;
    let node = Node::start(config).await.context("cannot start the node")?;

    println!("node {}", node.id());
    println!("peer {}", node.peer_addr());
    if let Some(http) = node.http_addr() {
        println!("http http://{http}");
    }

    let signal = signals.next().await;
    tracing::info!("{signal} received, shutting down (again to stop at once)");
    tokio::select! {
        () = node.shutdown() => tracing::info!("node stopped"),
        signal = signals.next() => tracing::warn!("{signal} received again, stopping at once"),
    }
    Ok(())
}

/// `voldisefs node config`: checks the configuration as `node start` would (addresses
/// resolved, key and token files read) and prints it as a `--config` file, without the
/// contents of those files.
pub(crate) async fn print_config(args: NodeStartArgs) -> anyhow::Result<()> {
    let args = crate::node_config::merge(args)?;
    config_from(&args).await?;
    print!("{}", crate::node_config::render(&args));
    Ok(())
}

/// The node configuration for the command-line options; host names are resolved here.
async fn config_from(args: &NodeStartArgs) -> anyhow::Result<NodeConfig> {
    let defaults = NodeConfig::default();
    let redundancy = args.redundancy;
    let replicas = match (redundancy, args.replicas) {
        (Some(Redundancy::Replicas(n)), Some(r)) if u16::from(n) != r => {
            anyhow::bail!("--redundancy replicas:{n} and --replicas {r} disagree: give one of them")
        }
        (Some(Redundancy::Replicas(n)), _) => usize::from(n),
        (_, Some(r)) => usize::from(r),
        (_, None) => defaults.replicas,
    };
    let mut bootstrap = Vec::with_capacity(args.bootstrap.len());
    for peer in &args.bootstrap {
        bootstrap.push(resolve(peer).await?);
    }
    let advertise = match &args.advertise {
        Some(addr) => Some(resolve(addr).await?),
        None => None,
    };
    let network_key = match &args.network_key_file {
        Some(path) => {
            let text = crate::secrets::read_secret_file(path, "network key")?;
            Some(
                NetworkKey::from_hex(&text)
                    .with_context(|| format!("{} holds no valid network key", path.display()))?,
            )
        }
        None => None,
    };
    let api_token = match &args.api_token_file {
        Some(path) => Some(ApiToken::new(&crate::secrets::read_secret_file(
            path,
            "API token",
        )?)?),
        None => None,
    };
    let mut http_hosts = args.http_hosts.clone();
    let http = args.http_addr();
    if http.host.parse::<std::net::IpAddr>().is_err() {
        http_hosts.push(http.host.clone());
    }
    Ok(NodeConfig {
        listen: resolve(&args.listen_addr()).await?,
        api_token,
        http_hosts,
        net: NetConfig {
            network_key,
            ..defaults.net.clone()
        },
        http: Some(resolve(&http).await?),
        advertise,
        bootstrap,
        replicas,
        redundancy: match redundancy {
            Some(spec @ Redundancy::ErasureCoded { .. }) => Some(spec),
            _ => None,
        },
        capacity: args.capacity.unwrap_or(defaults.capacity),
        chunk_size: args.chunk_size.unwrap_or(defaults.chunk_size),
        default_expiry: args.default_expiry,
        max_expiry: args.max_expiry,
        ..defaults
    })
}

/// Resolves `HOST:PORT` to its first socket address.
pub(crate) async fn resolve(addr: &HostPort) -> anyhow::Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host((addr.host.as_str(), addr.port))
        .await
        .with_context(|| format!("cannot resolve {addr}"))?;
    addrs
        .next()
        .with_context(|| format!("{addr} resolves to no address"))
}

/// Sends `tracing` output to stderr in `format`, filtered by `RUST_LOG` or else `default`.
pub(crate) fn init_logging(default: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a terminal: redirected logs (files, journald) stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // Fails only when a subscriber is already installed, which is then fine to keep.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_names_and_literals() {
        let literal = resolve(&"127.0.0.1:4100".parse().unwrap()).await.unwrap();
        assert_eq!(literal, SocketAddr::from(([127, 0, 0, 1], 4100)));
        let v6 = resolve(&"[::1]:80".parse().unwrap()).await.unwrap();
        assert!(v6.is_ipv6());
        let named = resolve(&"localhost:4200".parse().unwrap()).await.unwrap();
        assert!(named.ip().is_loopback());
        assert_eq!(named.port(), 4200);
    }
}

//! `voldisefs demo`: a small network of nodes in this one process, on loopback.
//!
//! Node `i` (from 0) uses peer port 4100+i and HTTP port 4200+i when they are free, else
//! ports chosen by the system; every node after the first joins through the first. It prints
//! the nodes' URLs and commands to paste into another terminal, serves until Ctrl-C or
//! SIGTERM, then shuts every node down.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use anyhow::Context as _;
use voldisefs_node::net::{NetConfig, NetworkKey};
use voldisefs_node::{Node, NodeConfig};

use crate::cli::DemoArgs;
use crate::commands::node::init_logging;
use crate::signals::StopSignals;

/// First peer port; node `i` tries this plus `i`.
const BASE_PEER_PORT: u16 = 4100;
/// First HTTP port; node `i` tries this plus `i`.
const BASE_HTTP_PORT: u16 = 4200;

/// Runs the demo network until a stop signal.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    // Warnings, and the one line per upload and download the README promises.
    init_logging("warn,voldisefs::transfer=info", args.log_format);
    let mut signals = StopSignals::install()?;
    let mut nodes: Vec<Node> = Vec::with_capacity(usize::from(args.nodes));
    let result = start_all(args.nodes, &mut nodes).await;
    if let Err(err) = result {
        shutdown_all(&nodes, &mut signals).await;
        return Err(err);
    }
    print!("{}", instructions(&nodes));

    let signal = signals.next().await;
    eprintln!(
        "{signal} received, stopping {} nodes (again to stop at once)",
        nodes.len()
    );
    shutdown_all(&nodes, &mut signals).await;
    Ok(())
}

/// Starts `count` nodes, pushing each onto `nodes` as soon as it runs.
async fn start_all(count: u16, nodes: &mut Vec<Node>) -> anyhow::Result<()> {
    // The demo's nodes share a fresh network key that lives only in this process: their
    // links are encrypted and nothing else can join.
    let key = NetworkKey::generate()?;
    for i in 0..count {
        let bootstrap: Vec<SocketAddr> = nodes.first().map(Node::peer_addr).into_iter().collect();
        let peer_port = preferred_port(BASE_PEER_PORT + i);
        let http_port = preferred_port(BASE_HTTP_PORT + i);
        if peer_port == 0 || http_port == 0 {
            eprintln!(
                "note: node {}: port {} or {} is taken; using ports chosen by the system",
                i + 1,
                BASE_PEER_PORT + i,
                BASE_HTTP_PORT + i
            );
        }
        let node = match Node::start(config(peer_port, http_port, bootstrap.clone(), &key)).await {
            Ok(node) => node,
            // Someone took a preferred port between the probe and the bind.
            Err(first) if peer_port != 0 || http_port != 0 => {
                eprintln!(
                    "note: node {}: {first}; using ports chosen by the system",
                    i + 1
                );
                Node::start(config(0, 0, bootstrap, &key))
                    .await
                    .with_context(|| format!("cannot start node {}", i + 1))?
            }
            Err(err) => {
                return Err(anyhow::Error::new(err).context(format!("cannot start node {}", i + 1)));
            }
        };
        nodes.push(node);
    }
    Ok(())
}

/// `port` if it can be bound on loopback right now, else 0 (any free port).
fn preferred_port(port: u16) -> u16 {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_probe) => port,
        Err(_) => 0,
    }
}

/// A loopback node configuration in the demo's keyed network.
fn config(
    peer_port: u16,
    http_port: u16,
    bootstrap: Vec<SocketAddr>,
    key: &NetworkKey,
) -> NodeConfig {
    let defaults = NodeConfig::default();
    NodeConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, peer_port)),
        http: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, http_port))),
        bootstrap,
        net: NetConfig {
            network_key: Some(key.clone()),
            ..defaults.net.clone()
        },
        ..defaults
    }
}

/// Shuts the nodes down, last started first; a second signal stops waiting.
async fn shutdown_all(nodes: &[Node], signals: &mut StopSignals) {
    let all = async {
        for node in nodes.iter().rev() {
            node.shutdown().await;
        }
    };
    tokio::select! {
        () = all => eprintln!("all nodes stopped"),
        _ = signals.next() => eprintln!("stopping at once"),
    }
}

/// What the demo prints once every node runs.
fn instructions(nodes: &[Node]) -> String {
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| {
            n.http_addr()
                .map_or_else(|| "(no HTTP)".to_owned(), |a| format!("http://{a}"))
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Voldisefs demo: {} node{} in this process (RAM only: everything is gone when it stops).\n",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" }
    );
    for (i, (node, url)) in nodes.iter().zip(&urls).enumerate() {
        let _ = writeln!(
            out,
            "  node {}  {url}  peer {}  id {}",
            i + 1,
            node.peer_addr(),
            node.id()
        );
    }
    out.push_str(&example(&urls));
    out
}

/// Commands to paste: upload through the first node, download through another.
fn example(urls: &[String]) -> String {
    let first = urls.first().map_or("http://127.0.0.1:4200", String::as_str);
    let other = urls.get(1).map_or(first, String::as_str);
    let last = urls.last().map_or(first, String::as_str);
    format!(
        "\nTry it from another terminal (if `voldisefs` is not installed, use\n\
         `cargo run --release -p voldisefs-cli --` in its place):\n\n\
         \x20 echo 'secret' > pw.txt\n\
         \x20 voldisefs put README.md --password-file pw.txt --node {first}\n\
         \x20 voldisefs get <ID> --password-file pw.txt --node {other} -o README.copy.md\n\
         \x20 voldisefs ls --node {first}\n\
         \x20 voldisefs network --node {last}\n\n\
         or open {first}/ in a browser. Press Ctrl-C to stop every node.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_uses_two_nodes_when_there_are() {
        let urls = vec![
            "http://127.0.0.1:4200".to_owned(),
            "http://127.0.0.1:4201".to_owned(),
        ];
        let text = example(&urls);
        assert!(text.contains("put README.md --password-file pw.txt --node http://127.0.0.1:4200"));
        assert!(text.contains("--node http://127.0.0.1:4201 -o README.copy.md"));
        assert!(text.contains("cargo run --release -p voldisefs-cli --"));
        let single = example(&urls[..1]);
        assert!(single.contains("get <ID> --password-file pw.txt --node http://127.0.0.1:4200"));
    }

    #[test]
    fn taken_ports_fall_back_to_zero() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        assert_eq!(preferred_port(port), 0);
    }
}

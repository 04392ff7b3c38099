//! Starting a node: the composition root, the one file that knows both the node
//! (`crate::node`) and the HTTP API (`crate::http`). It binds the listeners, assembles the
//! node on them, starts the HTTP server on the node's public API and joins the network. The
//! node never names the HTTP layer, so the two form no circle (ARCHITECTURE.md).

use tokio::net::TcpListener;

use crate::{Node, NodeConfig, NodeError};

impl Node {
    /// Binds the peer and HTTP listeners, starts serving, and joins the network through
    /// `config.bootstrap` (if any). Fails if a listener cannot be bound or if bootstrap peers
    /// were given and none could be reached.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        Self::check(&config)?;
        let peer_listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| NodeError::Io {
                    context: format!("cannot listen for peers on {}", config.listen),
                    source,
                })?;
        let http_listener = match config.http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| NodeError::Io {
                        context: format!("cannot serve HTTP on {addr}"),
                        source,
                    })?,
            ),
            None => None,
        };
        let http_addr = match &http_listener {
            Some(l) => Some(l.local_addr().map_err(|source| NodeError::Io {
                context: "cannot read the HTTP address".into(),
                source,
            })?),
            None => None,
        };
        let node = Node::assemble(
            config,
            peer_listener.into(),
            http_addr,
            crate::http::OBJECT_BODY_BUDGET,
        )?;
        if let Some(listener) = http_listener {
            node.spawn_work(|node, work| crate::http::serve(listener, node, work));
        }
        node.join_and_announce().await;
        Ok(node)
    }

    /// Starts a node on a peer listener bound by the caller, without the HTTP API
    /// (`config.listen` and `config.http` are not used), and joins the network through
    /// `config.bootstrap`. A listener of a simulated network
    /// ([`Listener::Sim`](voldisefs_net::Listener), the `sim` feature of `voldisefs-net`) runs
    /// the whole node on that network: this is how the whole-node simulation starts nodes.
    pub async fn start_on(
        config: NodeConfig,
        peer_listener: impl Into<voldisefs_net::Listener>,
    ) -> Result<Node, NodeError> {
        Self::check(&config)?;
        let peer_listener = peer_listener.into();
        if peer_listener.is_simulated() {
            crate::cpu::run_inline_on_this_thread();
        }
        let node = Node::assemble(config, peer_listener, None, crate::http::OBJECT_BODY_BUDGET)?;
        node.join_and_announce().await;
        Ok(node)
    }

    /// Refuses a configuration no node may start with.
    fn check(config: &NodeConfig) -> Result<(), NodeError> {
        if let Some(addr) = config.http.filter(|a| !a.ip().is_loopback()) {
            if config.api_token.is_none() {
                return Err(NodeError::Config(format!(
                    "refusing to serve the HTTP API on {addr} without an API token: anyone who \
                     can reach that address could list this node's files, see the network and \
                     use its storage; give an API token (--api-token-file) or bind the API to \
                     127.0.0.1"
                )));
            }
        }
        let most = voldisefs_crypto::MAX_SHARDS;
        if !(1..=most).contains(&config.replicas) {
            return Err(NodeError::Config(format!(
                "replicas must be 1 to {most} (the most a redundancy names), not {}",
                config.replicas
            )));
        }
        Ok(())
    }
}

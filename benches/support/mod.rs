//! What the in-process benches share: starting a network of nodes on loopback.

use std::time::{Duration, Instant};

use voldisefs::node::{Node, NodeConfig};

/// Starts `n` nodes with `config()` (each later one bootstrapping from the first) and waits,
/// at most two minutes, until every node knows every other.
pub(crate) async fn network(n: usize, config: impl Fn() -> NodeConfig) -> Vec<Node> {
    let first = Node::start(config()).await.unwrap();
    let mut nodes = vec![first.clone()];
    for _ in 1..n {
        let c = NodeConfig {
            bootstrap: vec![first.peer_addr()],
            ..config()
        };
        nodes.push(Node::start(c).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !nodes.iter().all(|x| x.live_nodes().len() == n) {
        assert!(Instant::now() < deadline, "membership did not converge");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes
}

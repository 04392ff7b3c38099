//! What the benches share: starting a network of nodes on loopback, reading CPU time.

use std::time::{Duration, Instant};

use voldisefs::node::{Node, NodeConfig};

/// Starts `n` nodes with `config()` (each later one bootstrapping from the first) and waits,
/// at most two minutes, until every node knows every other.
#[allow(dead_code, clippy::unwrap_used)] // The process benches start their own nodes.
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

/// Linux's fixed `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat`.
const TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU seconds a process (all its threads; `None`: this one) has used so far,
/// 0 when it cannot be read.
#[allow(dead_code)] // Not every bench that includes this module reads CPU time.
pub(crate) fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / TICKS_PER_SEC
}

/// Stops child processes that serve until their stdin closes: closes every stdin (a graceful
/// shutdown), waits for them until `grace` has passed, then kills whoever is left.
#[allow(dead_code)] // Only the process benches have children.
pub(crate) fn stop_children<'a>(
    children: impl IntoIterator<Item = &'a mut std::process::Child>,
    grace: Duration,
) {
    let mut children: Vec<&mut std::process::Child> = children.into_iter().collect();
    for child in children.iter_mut() {
        drop(child.stdin.take());
    }
    let deadline = Instant::now() + grace;
    for child in children {
        loop {
            match child.try_wait() {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(Some(_)) => break,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}

/// `len` pseudo-random bytes from `seed` (xorshift64, a word at a time): cheap to make,
/// different for every seed and in every chunk, so nothing deduplicates or compresses.
#[allow(dead_code)] // Not every bench that includes this module makes data.
pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for word in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
    data
}

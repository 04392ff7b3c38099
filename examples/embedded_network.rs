//! A whole Voldisefs network inside one program, through the library API only.
//!
//! Starts three nodes on loopback (OS-assigned ports, [`NodeConfig::ephemeral`]), the second and
//! third joining through the first; uploads a few MiB through node A and downloads them,
//! streaming, through node C; checks the bytes are equal; shows where the ciphertext went and
//! that a wrong password is refused; then shuts the nodes down (which wipes their memory).
//! Uses the real default Argon2id parameters, so every upload and download spends ~0.3 s in
//! the KDF.
//!
//! ```sh
//! cargo run --example embedded_network            # add --release for realistic speed
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use voldisefs::crypto::Password;
use voldisefs::node::{Node, NodeConfig, NodeError};

/// Size of the demo file: a few chunks of the default 1 MiB chunk size, plus a partial one.
const FILE_SIZE: usize = 5 * 1024 * 1024 + 12_345;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Node A starts a new network; B and C join through A's peer address.
    let a = Node::start(NodeConfig::ephemeral()).await?;
    let joining = || NodeConfig {
        bootstrap: vec![a.peer_addr()],
        ..NodeConfig::ephemeral()
    };
    let b = Node::start(joining()).await?;
    let c = Node::start(joining()).await?;
    let nodes = [("A", &a), ("B", &b), ("C", &c)];
    for (label, node) in nodes {
        println!(
            "node {label}: id {} peers on {} HTTP on {}",
            node.id(),
            node.peer_addr(),
            node.http_addr().map_or("-".into(), |h| h.to_string()),
        );
    }
    let result = demo(&nodes).await;
    for (_, node) in nodes {
        node.shutdown().await;
    }
    println!("all nodes stopped; their memory is wiped");
    result
}

async fn demo(nodes: &[(&str, &Node); 3]) -> Result<(), Box<dyn std::error::Error>> {
    let [(_, a), _, (_, c)] = *nodes;
    wait_for_full_membership(nodes).await?;
    println!("every node sees all {} nodes", nodes.len());

    let data = Bytes::from(pseudo_random(FILE_SIZE));
    let password = "correct horse battery staple";
    let started = Instant::now();
    let receipt = a
        .upload_bytes("demo.bin", Password::new(password), data.clone())
        .await?;
    println!(
        "put {} bytes through A in {:.2?}: file id {} ({} chunks)",
        receipt.size,
        started.elapsed(),
        receipt.id,
        receipt.chunks
    );
    for (label, node) in nodes {
        let store = node.status().store;
        println!(
            "  node {label} holds {} chunks, {} bytes of ciphertext",
            store.chunks, store.bytes
        );
    }

    // Download through another node, piece by piece, comparing as the pieces arrive.
    let started = Instant::now();
    let download = c.download(receipt.id, Password::new(password)).await?;
    println!(
        "C opened {:?}: {} bytes in {} chunks",
        download.name, download.size, download.chunks
    );
    let mut body = download.body;
    let mut offset = 0usize;
    while let Some(piece) = body.next().await {
        let piece = piece?;
        let end = offset + piece.len();
        if data.get(offset..end) != Some(&piece[..]) {
            return Err(
                format!("downloaded bytes differ from the upload at offset {offset}").into(),
            );
        }
        offset = end;
    }
    if offset != data.len() {
        return Err(format!("downloaded {offset} bytes, uploaded {}", data.len()).into());
    }
    println!(
        "got {offset} bytes through C in {:.2?}: identical to what A was given",
        started.elapsed()
    );

    match c
        .download(receipt.id, Password::new("wrong password"))
        .await
    {
        Err(NodeError::WrongPassword) => println!("a wrong password is refused: as expected"),
        Err(e) => return Err(format!("a wrong password gave an unexpected error: {e}").into()),
        Ok(_) => return Err("a wrong password opened the file".into()),
    }
    Ok(())
}

/// Waits (bounded) until every node counts every node as live.
async fn wait_for_full_membership(
    nodes: &[(&str, &Node)],
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes
        .iter()
        .any(|(_, n)| n.live_nodes().len() < nodes.len())
    {
        if Instant::now() > deadline {
            return Err("the nodes did not all see each other within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Deterministic, incompressible-looking bytes (xorshift64).
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

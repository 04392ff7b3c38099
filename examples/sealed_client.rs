//! Sealing on your own machine: a program that encrypts and decrypts files itself and hands the
//! nodes only ciphertext, through the facade crate.
//!
//! Starts a network of three nodes on loopback in this process (or talks to the nodes whose
//! HTTP URLs are given as arguments, e.g. a running `voldisefs demo`), then, as a client would:
//! seals a file locally under a password ([`Client::put`]) and stores its objects through the
//! nodes' object API ([`RemoteStore`]); opens it again by password and by its read key (what a
//! share link carries) and checks the bytes; and deletes it with the delete key only a reader
//! derives. No node sees the password, the name, the plaintext or the read key.
//!
//! ```sh
//! cargo run --example sealed_client                                    # its own network
//! cargo run --example sealed_client -- http://127.0.0.1:4200 http://127.0.0.1:4201
//! ```

use bytes::Bytes;
use futures_util::StreamExt;
use voldisefs::crypto::client::{Access, Client, Keying, PutOptions};
use voldisefs::crypto::{Password, Redundancy};
use voldisefs::node::{Node, NodeConfig, RemoteStore, Url, remote_client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given: Vec<Url> = std::env::args()
        .skip(1)
        .map(|a| Url::parse(&a))
        .collect::<Result<_, _>>()?;
    let mut nodes = Vec::new();
    let urls = if given.is_empty() {
        let first = Node::start(NodeConfig::ephemeral()).await?;
        for _ in 0..2 {
            let joining = NodeConfig {
                bootstrap: vec![first.peer_addr()],
                ..NodeConfig::ephemeral()
            };
            nodes.push(Node::start(joining).await?);
        }
        nodes.insert(0, first);
        let mut urls = Vec::new();
        for node in &nodes {
            let addr = node.http_addr().ok_or("a node without HTTP")?;
            urls.push(Url::parse(&format!("http://{addr}/"))?);
        }
        urls
    } else {
        given
    };
    let result = demo(&urls).await;
    for node in &nodes {
        node.shutdown().await;
    }
    result
}

async fn demo(urls: &[Url]) -> Result<(), Box<dyn std::error::Error>> {
    // Writes go to the first node that answers; reads take each object from the next node
    // when one is down or serves bytes that fail their check.
    let store = RemoteStore::new(urls, None)?;
    let info = store.info().await?;
    println!(
        "network: {} live nodes, {} copies, chunks of {} bytes",
        info.live_nodes, info.replicas, info.chunk_size
    );
    let client: Client = remote_client(store, &info)?;

    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 11) as u8).collect();
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data.clone()))]);
    let password = Password::new("correct horse battery staple");
    let options = PutOptions::file("notes.bin", Redundancy::Replicas(info.replicas as u8));
    // Argon2id, sealing and hashing run here, on this machine's cores.
    let receipt = client
        .put(Keying::Password(password.clone()), options, body)
        .await?;
    let id: String = receipt.id.iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "sealed here and stored: file {id}, {} chunks, {} of {} copies",
        receipt.chunks, receipt.stored.copies, receipt.stored.wanted
    );

    for (how, access) in [
        ("password", Access::Password(password.clone())),
        ("read key", Access::ReadKey(receipt.read_key.clone())),
    ] {
        let opened = client.open(receipt.id, access).await?;
        let mut body = std::pin::pin!(client.read(&opened, None)?);
        let mut back = Vec::with_capacity(data.len());
        while let Some(piece) = body.next().await {
            back.extend_from_slice(&piece?);
        }
        assert_eq!(back, data);
        println!(
            "opened here by {how}: {} ({} bytes), identical",
            opened.manifest().name(),
            back.len()
        );
    }
    let deleted = client.delete(receipt.id, password).await?;
    println!("deleted everywhere ({deleted} objects)");
    Ok(())
}

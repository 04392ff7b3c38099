//! The CLI's session: the client pipelines (`voldisefs_crypto::client`) over the nodes'
//! object API ([`voldisefs_node::RemoteStore`]), with every `--node` as a source, and the
//! mapping of their errors to exit codes.
//!
//! Only sealed objects, stripe descriptors and delete keys cross the wire: the password, the
//! names, the plaintext and the link keys stay in this process. Writes go to the first node that
//! answers; reads try the nodes in order, and the pipeline verifies every answer, so a node that
//! serves wrong bytes is named on stderr and the object is taken from the next one.

use anyhow::Context as _;
use reqwest::Url;
use voldisefs_node::crypto::client::{Client, StoreError, StoreErrorKind};
use voldisefs_node::{NodeInfo, RemoteStore, remote_client};

use crate::error::CliError;

/// A client that seals and opens on this machine, over the nodes `--node` names, with the
/// network's settings.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) info: NodeInfo,
}

impl Session {
    /// Connects to the nodes (the first reachable one tells the network's settings).
    pub(crate) async fn open(node: &crate::cli::NodeArg) -> anyhow::Result<Self> {
        Self::over(&node.node, node).await
    }

    /// Like [`Session::open`], over `nodes` (a share link's node first).
    pub(crate) async fn over(nodes: &[Url], node: &crate::cli::NodeArg) -> anyhow::Result<Self> {
        let token = node.api_token()?;
        let store = RemoteStore::new(nodes, token.as_ref().map(|t| t.as_str()))?.on_bad_bytes(
            |node, id| {
                let id = hex(id);
                eprintln!(
                    "warning: node {node} served wrong bytes for object {id}; taking it from another node"
                );
            },
        );
        let info = store.info().await.map_err(store_error)?;
        let client = remote_client(store, &info)
            .context("the node asks for settings this client does not support")?;
        Ok(Self { client, info })
    }
}

/// Lowercase hex of an id (a file's, an object's), as the CLI prints it.
pub(crate) fn hex(id: &[u8; 32]) -> String {
    voldisefs_node::proto::ChunkId::from_bytes(*id).to_string()
}

/// The CLI error (and so the exit code) for a store failure.
pub(crate) fn store_error(e: StoreError) -> anyhow::Error {
    match e.kind {
        StoreErrorKind::Unreachable => {
            let (node, reason) = e
                .message
                .strip_prefix("cannot reach node at ")
                .and_then(|rest| rest.split_once(": "))
                .map_or((String::new(), e.message.clone()), |(n, r)| {
                    (n.to_string(), r.to_string())
                });
            CliError::Unreachable { node, reason }.into()
        }
        _ => CliError::Server {
            status: 0,
            code: String::new(),
            message: e.message,
        }
        .into(),
    }
}

/// The CLI error for a pipeline failure about file `id`.
pub(crate) fn crypto_error(e: voldisefs_node::crypto::Error, id: &str) -> anyhow::Error {
    use voldisefs_node::crypto::Error;
    match e {
        Error::Decrypt => CliError::WrongPassword.into(),
        Error::NotFound => CliError::NotFound {
            message: format!("file {id} not found"),
        }
        .into(),
        Error::Store(e) => store_error(e),
        e @ (Error::BadObject { .. }
        | Error::IdMismatch
        | Error::ChunkIdMismatch { .. }
        | Error::InvalidChunk { .. }
        | Error::InvalidManifest(_)
        | Error::InvalidCollection { .. }
        | Error::Unsupported { .. }
        | Error::MalformedHeader(_)) => CliError::Corrupt {
            message: e.to_string(),
        }
        .into(),
        e => anyhow::Error::new(e),
    }
}

//! The HTTP API's JSON contract: every request and response body the node's handlers send and
//! its clients (the CLI, [`crate::RemoteStore`]) read, declared once. `src/openapi.json`
//! describes the same bodies; `tests/openapi.rs` holds each type to its schema there.
//!
//! Deserializing is lenient on purpose: unknown fields are ignored and fields older nodes did not
//! send take their defaults, so a client reads answers of older and newer nodes alike.
//!
//! Bodies of types defined beside the code that makes them ([`UploadReceipt`],
//! [`CollectionListing`], [`ObjectReceipt`]) are re-exported here; they serialize only.

use serde::{Deserialize, Serialize};
use voldisefs_proto::FileId;

pub use crate::http::{ApiErrorCode, UnknownCode};
pub use crate::status::{
    IndexEntry, IndexKind, NetworkStatus, PeerStatus, RepairStatus, StoreStatus,
};
pub use crate::{CollectionFile, CollectionListing, ObjectReceipt, UploadReceipt};
pub use voldisefs_proto::PeerInfo;

/// What a client needs to seal files for this network (`GET /api/v1/info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Chunk size new files should use, in bytes.
    pub chunk_size: u64,
    /// Argon2id memory cost new files should use, KiB.
    pub kdf_m_kib: u32,
    /// Argon2id passes.
    pub kdf_t: u32,
    /// Argon2id lanes.
    pub kdf_p: u32,
    /// Copies the network keeps of every replicated object.
    pub replicas: usize,
    /// The redundancy files get unless they ask (`replicas:N` or `rs:K+M`).
    pub redundancy: String,
    /// Live nodes now (this one included).
    pub live_nodes: usize,
    /// Expiry files get unless they ask, seconds (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_expiry: Option<u64>,
    /// Longest expiry this node stores, seconds (absent: no limit; files must then expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_expiry: Option<u64>,
    /// Longest single object, bytes.
    pub max_object: usize,
    /// Longest batch body, bytes.
    pub max_batch_bytes: usize,
    /// Most objects in a batch.
    pub max_batch_objects: usize,
    /// Most ids in one delete.
    pub max_delete_ids: usize,
}

/// Every error answer's body: `{"error": CODE, "message": ...}` (`Error` in the document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// The machine-readable code ([`ApiErrorCode`]; kept as sent, so a newer node's code a
    /// client does not know still shows).
    #[serde(default)]
    pub error: String,
    /// What went wrong, for people.
    #[serde(default)]
    pub message: String,
}

impl ApiErrorBody {
    /// The body of an error answer with `code`.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: code.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// The code, if this build knows it.
    pub fn code(&self) -> Option<ApiErrorCode> {
        self.error.parse().ok()
    }
}

/// `GET /healthz`: `{"status": "ok"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` while the node serves.
    pub status: String,
}

impl Health {
    /// The answer of a node that serves.
    pub fn ok() -> Self {
        Self {
            status: "ok".to_owned(),
        }
    }
}

/// `GET /api/v1/files`: the node's index of the files uploaded through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileList {
    /// Oldest first.
    pub files: Vec<IndexEntry>,
}

/// `DELETE /api/v1/files/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteReceipt {
    /// The deleted file.
    pub id: FileId,
    /// Always `true` (a failed delete is an error answer).
    pub deleted: bool,
    /// Chunks deleted.
    pub chunks: u64,
}

/// `DELETE /api/v1/objects/{id}` and `POST /api/v1/objects/delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDeleteReceipt {
    /// Nodes that acknowledged the delete.
    pub nodes: usize,
}

/// `POST /api/v1/objects/delete`: objects to delete with their file's delete key. Strict, unlike
/// the answers: a field the node does not know is refused (it may change what is deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectDeleteRequest {
    /// The file's delete key, 64 hex digits.
    pub delete_key: String,
    /// Ids of its objects, 64 hex digits each.
    pub ids: Vec<String>,
    /// Tombstones on every live node (a record), else on the ranked holders.
    #[serde(default)]
    pub everywhere: bool,
    /// Nodes each object is spread over (K + M for stripes; 0 for copies).
    #[serde(default, deserialize_with = "whole_number")]
    pub spread: usize,
}

/// A JSON number that is a whole number, written `3` or `3.0` (JSON Schema's `integer`).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                .map(|f| f as u64)
        })
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom("spread must be a whole number"))
}

impl Drop for ObjectDeleteRequest {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.delete_key);
    }
}

/// What a download ticket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    /// A file's bytes.
    File,
    /// A collection's tar archive.
    Archive,
}

/// `POST /api/v1/files/{id}/ticket`: a one-time download link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The ticket, 64 hex digits.
    pub ticket: String,
    /// The path that serves it: `/download/{ticket}`.
    pub url: String,
    /// A file, or a collection's archive.
    pub kind: TicketKind,
    /// The name the download is saved under (`NAME.tar` for an archive).
    pub name: String,
    /// Seconds the ticket stays valid.
    pub expires_in: u64,
}

/// The 201 answer of an upload (`answer`: an [`UploadReceipt`] or a [`CollectionListing`]),
/// with the read key when the upload asked for a share link (`x-voldisefs-link: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created<T> {
    /// The receipt or listing, its fields inline.
    #[serde(flatten)]
    pub answer: T,
    /// The read key, 64 hex digits (absent unless a link was asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_a_whole_number_written_either_way() {
        let parse = |spread: &str| {
            serde_json::from_str::<ObjectDeleteRequest>(&format!(
                r#"{{"delete_key": "00", "ids": [], "spread": {spread}}}"#
            ))
            .map(|r| r.spread)
        };
        assert_eq!(parse("3").unwrap(), 3);
        assert_eq!(parse("3.0").unwrap(), 3);
        for bad in ["3.5", "-1", "1e30", "\"3\""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

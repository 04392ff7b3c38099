//! The transfer pipelines: uploads and downloads through this node (the gateway).

pub(crate) mod download;
pub(crate) mod kdf_gate;
pub(crate) mod store;
pub(crate) mod upload;

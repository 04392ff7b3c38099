//! What travels between peers at the request level: a [`Payload`] (a message and its raw body),
//! and the [`Handler`] the node gives the network for the requests it does not answer itself.

use bytes::Bytes;
use voldisefs_proto::{Message, NodeId};

/// A message with its optional raw body: what a request or response consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The message.
    pub message: Message,
    /// Raw bytes for messages that carry them (`put_chunk`, `chunk`).
    pub body: Option<Bytes>,
}

impl Payload {
    /// A payload without body.
    pub fn new(message: Message) -> Self {
        Self {
            message,
            body: None,
        }
    }

    /// A payload with a body.
    pub fn with_body(message: Message, body: Bytes) -> Self {
        Self {
            message,
            body: Some(body),
        }
    }
}

/// What the node does with the requests the network layer does not answer itself.
///
/// `hello`, `get_peers`, `ping` and `leave` are handled by [`Network`](crate::Network); every
/// other request (chunk storage, ...) is passed here with the id of the peer that sent it. The
/// returned payload is sent back; use [`Message::Error`] for failures.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request from peer `from`.
    fn handle(
        &self,
        from: NodeId,
        request: Payload,
    ) -> impl std::future::Future<Output = Payload> + Send;
}

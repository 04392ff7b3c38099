//! The error a store reports: [`StoreError`] and its [`StoreErrorKind`]. It depends on nothing
//! else of the crate, so the crate's [`Error`](crate::Error) can wrap it.

/// What went wrong in a store (a node, or the network behind it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    /// What kind of failure it is, for the caller's exit code or retry.
    pub kind: StoreErrorKind,
    /// One readable line (never a secret).
    pub message: String,
}

impl StoreError {
    /// A failure of `kind` with `message`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Kinds of [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// No source could be reached.
    Unreachable,
    /// The store refused the request as given (bad id, expired, too large, a redundancy the
    /// network cannot keep).
    Refused,
    /// The network has no room for it.
    Full,
    /// The objects exist but too few holders answer now; trying later may succeed.
    Unavailable,
    /// Anything else.
    Other,
}

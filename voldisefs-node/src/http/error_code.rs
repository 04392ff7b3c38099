//! The machine-readable codes of the HTTP API's error answers (`{"error": CODE, "message":
//! ...}`): one enum for the handlers that answer them, the clients that read them and the
//! OpenAPI document (`components.schemas.ErrorCode`, checked against [`ApiErrorCode::ALL`] by
//! the conformance test).

use std::fmt;
use std::str::FromStr;

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal,)*) => {
        /// An error answer's code (see the module docs and the OpenAPI document).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ApiErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ApiErrorCode {
            /// Every code, in the OpenAPI document's order.
            pub const ALL: &'static [ApiErrorCode] = &[$(ApiErrorCode::$variant,)*];

            /// The code as it travels (`snake_case`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ApiErrorCode::$variant => $text,)*
                }
            }
        }

        impl FromStr for ApiErrorCode {
            type Err = UnknownCode;

            fn from_str(text: &str) -> Result<Self, UnknownCode> {
                match text {
                    $($text => Ok(ApiErrorCode::$variant),)*
                    _ => Err(UnknownCode),
                }
            }
        }
    };
}

codes! {
    /// 400: a malformed id, name or body, or an object that fails its check.
    BadRequest = "bad_request",
    /// 401: no password header.
    PasswordRequired = "password_required",
    /// 401: the password does not open the file.
    WrongPassword = "wrong_password",
    /// 401: the node's API token is missing.
    TokenRequired = "token_required",
    /// 401: the node's API token is wrong.
    BadToken = "bad_token",
    /// 403: the request names a host this node does not answer to.
    ForbiddenHost = "forbidden_host",
    /// 403: a state-changing request from another site's page.
    ForbiddenOrigin = "forbidden_origin",
    /// 503 with `Retry-After`: too much at once (password checks, bodies, connections).
    Busy = "busy",
    /// 404: no such file or object.
    NotFound = "not_found",
    /// 422: the data failed a cryptographic check.
    Corrupt = "corrupt",
    /// 503: chunks unreachable, or the node is stopping.
    Unavailable = "unavailable",
    /// 507: no capacity left.
    Full = "full",
    /// 500: a bug.
    Internal = "internal",
    /// 409: a collection's id where a file was asked for.
    Collection = "collection",
    /// 409: a file's id where a collection was asked for.
    NotCollection = "not_collection",
    /// 416: the `Range` starts past the end of the file.
    RangeNotSatisfiable = "range_not_satisfiable",
    /// 409: an `rs:K+M` upload needs K + M live nodes.
    TooFewNodes = "too_few_nodes",
    /// 409: the network cannot keep that redundancy.
    RedundancyUnavailable = "redundancy_unavailable",
    /// 413: a body longer than its limit.
    TooLarge = "too_large",
    /// 408: the client stopped sending a body.
    Timeout = "timeout",
    /// 410: the object was deleted with its key.
    Deleted = "deleted",
}

/// A code this build does not know (a newer node's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code")]
pub struct UnknownCode;

impl fmt::Display for ApiErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ApiErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in ApiErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ApiErrorCode>(), Ok(*code));
        }
        assert_eq!("nope".parse::<ApiErrorCode>(), Err(UnknownCode));
    }
}

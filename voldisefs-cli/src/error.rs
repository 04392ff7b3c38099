//! Errors that decide the process exit code, and the mapping from any error to that code.
//!
//! Commands return `anyhow::Result`; an error that carries a specific exit code is a
//! [`CliError`] somewhere in the chain (anyhow keeps it reachable through added context).
//! Everything else exits with [`EXIT_OTHER`]. Usage errors never get here: clap reports them
//! and exits with 2 itself.

use std::fmt;

/// Anything else went wrong.
pub(crate) const EXIT_OTHER: u8 = 1;
/// Wrong password, or the file failed its integrity check (HTTP 401).
pub(crate) const EXIT_WRONG_PASSWORD: u8 = 3;
/// The file id is unknown to the network (HTTP 404).
pub(crate) const EXIT_NOT_FOUND: u8 = 4;
/// The node could not be reached (connection refused, timeout).
pub(crate) const EXIT_UNREACHABLE: u8 = 5;

/// A failure with a meaning the exit code must carry.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The node said the password is wrong or the file's record is corrupted.
    WrongPassword,
    /// The node found the file's record damaged or in a format it cannot read (HTTP 422).
    Corrupt {
        /// The node's explanation.
        message: String,
    },
    /// The node knows no file with this id.
    NotFound {
        /// The node's explanation, if it gave one.
        message: String,
    },
    /// The node could not be reached or stopped answering.
    Unreachable {
        /// The node's base URL.
        node: String,
        /// Why, in a few words (`connection refused`, `timed out`).
        reason: String,
    },
    /// The node answered with an error status other than the ones above.
    Server {
        /// HTTP status code.
        status: u16,
        /// The node's machine-readable error code (`unavailable`, `full`, ...), if any.
        code: String,
        /// The node's human-readable message.
        message: String,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::WrongPassword | CliError::Corrupt { .. } => EXIT_WRONG_PASSWORD,
            CliError::NotFound { .. } => EXIT_NOT_FOUND,
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
            CliError::Server { .. } => EXIT_OTHER,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::WrongPassword => f.write_str("wrong password or corrupted file"),
            CliError::Corrupt { message } if message.is_empty() => f.write_str("corrupted file"),
            CliError::Corrupt { message } => write!(f, "corrupted file: {message}"),
            CliError::NotFound { message } if message.is_empty() => f.write_str("file not found"),
            CliError::NotFound { message } => f.write_str(message),
            CliError::Unreachable { node, reason } => {
                write!(f, "cannot reach node at {node}: {reason}")
            }
            CliError::Server {
                status,
                code,
                message,
            } => match (code.is_empty(), message.is_empty()) {
                (_, false) => write!(f, "node refused the request: {message}"),
                (false, true) => write!(f, "node refused the request: {code} (HTTP {status})"),
                (true, true) => write!(f, "node refused the request (HTTP {status})"),
            },
        }
    }
}

impl std::error::Error for CliError {}

/// The exit code for any error a command returned: the first [`CliError`] in its chain
/// decides, otherwise [`EXIT_OTHER`].
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<CliError>())
        .map_or(EXIT_OTHER, CliError::exit_code)
}

/// The one line printed on stderr for an error: its context chain joined by `: `, with
/// repeated fragments (libraries often repeat their source in their own message) dropped.
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    // One line, whatever the causes contained.
    line.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(CliError::WrongPassword.exit_code(), 3);
        let corrupt = CliError::Corrupt {
            message: "unsupported format".into(),
        };
        assert_eq!(corrupt.exit_code(), 3);
        assert_eq!(
            CliError::NotFound {
                message: String::new()
            }
            .exit_code(),
            4
        );
        let unreachable = CliError::Unreachable {
            node: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(unreachable.exit_code(), 5);
        let server = CliError::Server {
            status: 503,
            code: "unavailable".into(),
            message: "3 of 10 chunks unavailable".into(),
        };
        assert_eq!(server.exit_code(), 1);
    }

    #[test]
    fn exit_code_survives_context() {
        let err = anyhow::Error::new(CliError::WrongPassword);
        assert_eq!(exit_code(&err), 3);
        let wrapped: anyhow::Result<()> = Err(CliError::NotFound {
            message: String::new(),
        })
        .context("downloading abc");
        let wrapped = wrapped.unwrap_err();
        assert_eq!(exit_code(&wrapped), 4);
        assert_eq!(one_line(&wrapped), "downloading abc: file not found");
    }

    #[test]
    fn other_errors_exit_with_one() {
        let err = anyhow::anyhow!("disk on fire");
        assert_eq!(exit_code(&err), 1);
        let io = anyhow::Error::new(std::io::Error::other("boom")).context("writing out.bin");
        assert_eq!(exit_code(&io), 1);
    }

    #[test]
    fn messages_are_single_lines() {
        assert_eq!(
            CliError::WrongPassword.to_string(),
            "wrong password or corrupted file"
        );
        let server = CliError::Server {
            status: 503,
            code: "unavailable".into(),
            message: "3 of 10 chunks unavailable".into(),
        };
        assert_eq!(
            server.to_string(),
            "node refused the request: 3 of 10 chunks unavailable"
        );
        let err = anyhow::anyhow!("first\nsecond").context("ctx");
        assert_eq!(one_line(&err), "ctx: first second");
    }

    #[test]
    fn repeated_sources_are_not_repeated() {
        let io = std::io::Error::other("connection refused");
        let err = anyhow::Error::new(io)
            .context("tcp connect error: connection refused")
            .context("sending request");
        assert_eq!(
            one_line(&err),
            "sending request: tcp connect error: connection refused"
        );
    }
}

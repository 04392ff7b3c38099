//! What a request's `x-voldisefs-*` headers and path ask for: the password or read key (access),
//! the file name, flags, expiry and redundancy; and the file id of the path.

use std::time::Duration;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use percent_encoding::percent_decode;
use voldisefs_crypto::Password;
use voldisefs_proto::FileId;

use super::errors::{ApiError, bad_request};
use super::{
    ApiErrorCode, EXPIRES_HEADER, FILENAME_HEADER, PASSWORD_HEADER, READ_KEY_HEADER,
    REDUNDANCY_HEADER,
};

/// The password header, required and not empty (401 `password_required` otherwise).
pub(super) fn password(headers: &HeaderMap) -> Result<Password, ApiError> {
    match headers.get(PASSWORD_HEADER) {
        Some(value) if !value.as_bytes().is_empty() => Ok(Password::new(value.as_bytes())),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ApiErrorCode::PasswordRequired,
            format!("the {PASSWORD_HEADER} header must carry the file's password"),
        )),
    }
}

/// The file id of the request path (400 when it is not 64 hex digits).
pub(super) fn parse_id(id: Result<Path<String>, PathRejection>) -> Result<FileId, ApiError> {
    let bad =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, ApiErrorCode::BadRequest, message);
    let Path(id) = id.map_err(|e| bad(e.body_text()))?;
    id.parse().map_err(|e| bad(format!("{e}")))
}

/// What opens the file a request names: `X-Voldisefs-Read-Key` if given, else the password.
pub(super) fn access(headers: &HeaderMap) -> Result<crate::Access, ApiError> {
    Ok(match headers.get(READ_KEY_HEADER) {
        Some(key) => crate::Access::ReadKey(
            key.to_str()
                .ok()
                .and_then(|k| voldisefs_crypto::ReadKey::from_hex(k.trim()).ok())
                .ok_or_else(|| {
                    bad_request(format!("{READ_KEY_HEADER} must be 64 hexadecimal digits"))
                })?,
        ),
        None => crate::Access::Password(password(headers)?),
    })
}

/// The name given in the file-name header (empty without one), percent-decoded; bytes that
/// are not UTF-8 become U+FFFD (a name is a label: an odd one is kept, not refused).
pub(super) fn file_name(headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(match headers.get(FILENAME_HEADER) {
        Some(value) => percent_decode(value.as_bytes())
            .decode_utf8_lossy()
            .into_owned(),
        None => String::new(),
    })
}

/// A `true`/`false` header (absent: false).
pub(super) fn flag(headers: &HeaderMap, name: &str) -> Result<bool, ApiError> {
    match headers.get(name).map(HeaderValue::as_bytes) {
        None | Some(b"false") => Ok(false),
        Some(b"true") => Ok(true),
        Some(_) => Err(bad_request(format!("{name} is `true` or `false`"))),
    }
}

/// The expiry an upload asks for in [`EXPIRES_HEADER`] (seconds from now), if any.
pub(super) fn expires_after(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let Some(value) = headers.get(EXPIRES_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&secs| secs >= crate::MIN_EXPIRY_SECS)
        .map(|secs| Some(Duration::from_secs(secs)))
        .ok_or_else(|| {
            bad_request(format!(
                "{EXPIRES_HEADER} is a number of seconds, at least {}",
                crate::MIN_EXPIRY_SECS
            ))
        })
}

/// The upload's `X-Voldisefs-Redundancy`, if given.
pub(super) fn redundancy(
    headers: &HeaderMap,
) -> Result<Option<voldisefs_crypto::Redundancy>, ApiError> {
    let Some(value) = headers.get(REDUNDANCY_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| bad_request(format!("{REDUNDANCY_HEADER} is not ASCII")))?;
    match text.parse() {
        Ok(spec) => Ok(Some(spec)),
        // Well formed, past the bounds (K + M > 32): the network cannot keep it.
        Err(e) if well_formed_redundancy(text) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ApiErrorCode::RedundancyUnavailable,
            format!("{REDUNDANCY_HEADER}: {e}"),
        )),
        Err(e) => Err(bad_request(format!("{REDUNDANCY_HEADER}: {e}"))),
    }
}

/// `replicas:N` or `rs:K+M` with every number 1 to 32 (the document's pattern).
pub(super) fn well_formed_redundancy(text: &str) -> bool {
    let number = |s: &str| {
        !s.is_empty()
            && s.len() <= 2
            && !s.starts_with('0')
            && s.parse::<u8>().is_ok_and(|n| (1..=32).contains(&n))
    };
    if let Some(n) = text.strip_prefix("replicas:") {
        return number(n);
    }
    text.strip_prefix("rs:")
        .and_then(|km| km.split_once('+'))
        .is_some_and(|(k, m)| number(k) && number(m))
}

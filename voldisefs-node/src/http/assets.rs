//! The page and everything it loads, served from the binary: no CDN, no network at run time.
//!
//! - `/`: the page (`src/page/index.html`), markup only.
//! - `/assets/{name}`: its stylesheet and scripts (`src/page/`), and the client library
//!   compiled to WebAssembly with its wasm-bindgen bindings (built by `build.rs`).
//! - `/sw.js`: the page's Service Worker, which serves downloads decrypted in the browser
//!   (it must sit at the root to control the page).
//!
//! Every answer carries [`CSP`]: scripts only from this node (no inline script, no `eval`;
//! `wasm-unsafe-eval` lets the page compile its WebAssembly), connections only to this node,
//! frames only of this node (the hidden frame a download streams through), no framing by others.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiErrorCode;
use super::errors::ApiError;

/// The Content-Security-Policy of the page, its scripts, workers and Service Worker.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self'; \
    connect-src 'self'; worker-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// One file the page loads.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Everything under `/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "page.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../page/page.css"),
    },
    Asset {
        name: "page.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../page/page.js"),
    },
    Asset {
        name: "client.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../page/client.js"),
    },
    Asset {
        name: "worker.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../page/worker.js"),
    },
    Asset {
        name: "voldisefs_crypto.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/voldisefs_crypto.js")),
    },
    Asset {
        name: "voldisefs_crypto_bg.wasm",
        content_type: "application/wasm",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/voldisefs_crypto_bg.wasm")),
    },
];

fn serve(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /`: the web page.
pub(super) async fn page() -> Response {
    serve(
        "text/html; charset=utf-8",
        include_bytes!("../page/index.html"),
    )
}

/// `GET /sw.js`: the page's Service Worker.
pub(super) async fn service_worker() -> Response {
    serve(
        "text/javascript; charset=utf-8",
        include_bytes!("../page/sw.js"),
    )
}

/// `GET /assets/{name}`: a stylesheet, script or WebAssembly module of the page.
pub(super) async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|asset| serve(asset.content_type, asset.bytes))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ApiErrorCode::NotFound,
                "the page has no such asset",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_there_and_the_page_loads_no_inline_script() {
        for asset in ASSETS {
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.name);
        }
        let page = std::str::from_utf8(include_bytes!("../page/index.html")).unwrap();
        for tag in page.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap();
            assert!(open.contains("src="), "an inline script: <script{open}>");
        }
        assert!(
            !page.contains("onclick=") && !page.contains("onload="),
            "inline handlers"
        );
    }
}

#!/usr/bin/env bash
# Sealing and opening in headless Chromium, the two ways the page could do it (issue 27):
#   wasm:  voldisefs-crypto compiled to WebAssembly (feature `browser`, src/browser.rs);
#   js:    WebCrypto's AES-256-GCM with hash-wasm's BLAKE3 and Argon2id (maintained npm package).
# Prints throughput for a file of MIB MiB (default 256; 1 MiB chunks), one Argon2id run at the
# format's default parameters (64 MiB, 3 passes) and what the page would load (bytes, gzipped).
# Needs Debian's chromium; installs the rustup target, wasm-bindgen-cli and the npm
# packages if missing.   Usage: benches/browser/run.sh [MIB]
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
command -v wasm-bindgen >/dev/null 2>&1 || cargo install wasm-bindgen-cli --version 0.2.130
cargo rustc -p voldisefs-crypto --lib --release --target wasm32-unknown-unknown \
  --features browser --crate-type cdylib
out=target/browser-bench
rm -rf "$out" && mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out/pkg" target/wasm32-unknown-unknown/release/voldisefs_crypto.wasm
npm ci --prefix benches/browser --no-audit --no-fund --loglevel=error
node benches/browser/crypto.mjs "$out/pkg" "${1:-256}"

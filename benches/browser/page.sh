#!/usr/bin/env bash
# The page's client measured in headless Chromium against one node (issue 27): Argon2id,
# sealing and opening MIB MiB (default 256) beside WebCrypto's AES-GCM alone, an upload through
# the node, and the browser's memory while the page downloads a BIG_MIB MiB file (default 1024)
# that the CLI uploaded. Needs Debian's chromium; installs playwright-core if missing.
#   Usage: benches/browser/page.sh [MIB] [BIG_MIB]
set -euo pipefail
cd "$(dirname "$0")/../.."
mib="${1:-256}"
big="${2:-1024}"
cargo build --release -p voldisefs-cli --locked --quiet
npm ci --prefix benches/browser --no-audit --no-fund --loglevel=error
bin="$PWD/target/release/voldisefs"
work="$(mktemp -d)"
node_pid=""
cleanup() {
  status=$?
  [ "$status" -ne 0 ] && tail -n 20 "$work/node.log" >&2
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
"$bin" node start --listen 127.0.0.1:0 --http 127.0.0.1:0 --replicas 1 --capacity "$((big * 2 + mib * 2 + 256))MiB" \
  > "$work/node.out" 2> "$work/node.log" &
node_pid=$!
addr=""
for _ in $(seq 300); do
  addr="$(sed -n 's/^http //p' "$work/node.out")"
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { tail -20 "$work/node.log" >&2; exit 1; }
echo "bench password, not a secret" > "$work/pw"
head -c "$((big << 20))" /dev/urandom > "$work/big.bin"
id="$("$bin" put "$work/big.bin" --name big.bin --password-file "$work/pw" --node "$addr" | tail -n 1)"
rm -f "$work/big.bin"
head -c "$((mib << 20))" /dev/urandom > "$work/input.bin"
# WebSocket (cdp.mjs) is global from Node 22; Node 20 has it behind a flag.
ws=""
node -e "process.exit(typeof WebSocket === 'function' ? 0 : 1)" || ws="--experimental-websocket"
node $ws benches/browser/page.mjs "$addr/" "$work/input.bin" "$work/pw" "$id"

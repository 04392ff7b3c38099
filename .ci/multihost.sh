#!/usr/bin/env bash
# Multi-host test (issue 16): five hosts as Linux network namespaces on a bridge, each running
# one node exactly as the README's "A real network across machines" says (keyed, listening on
# 0.0.0.0:4100, advertising its own address, the API on the host address behind an API token),
# and a sixth namespace driving the CLI:
#   put through host 1, get through host 4; SIGKILL host 2 and read everything back through
#   host 5; stop host 3 gracefully and read everything back; an API request without the token
#   is refused.
# Everything it creates (namespaces, veth pairs, the bridge, processes, files) is removed at
# the end, also on failure. The bridge lives in a namespace of its own: the machine's own
# network is never touched. Needs root and iproute2; anywhere else it says it skipped.
#
#   bash .ci/multihost.sh            # builds the CLI (debug) first
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null 2>&1; then
  echo "multihost: skipped: needs root and iproute2 (ip netns) to create test hosts"
  exit 0
fi
tag="vd$((RANDOM % 9000 + 1000))"
if ! ip netns add "$tag-probe" 2>/dev/null; then
  echo "multihost: skipped: network namespaces are not available here"
  exit 0
fi
ip netns del "$tag-probe"

cargo build --quiet --locked -p voldisefs-cli
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/voldisefs"
work="$(mktemp -d)"
subnet="10.231.$((RANDOM % 200 + 20))"
switch="$tag-sw"
hosts=(1 2 3 4 5)
client=100
declare -A pid

cleanup() {
  local status=$?
  for n in "${!pid[@]}"; do kill -9 "${pid[$n]}" 2>/dev/null || true; done
  for n in "${hosts[@]}" "$client"; do ip netns del "$tag-h$n" 2>/dev/null || true; done
  ip netns del "$switch" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    for f in "$work"/node*.log; do
      [ -f "$f" ] && { echo "--- $f (last lines)"; tail -n 20 "$f"; }
    done
    echo "multihost: FAILED" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

fail() { echo "multihost: $*" >&2; exit 1; }

# The hosts: one namespace each, a veth pair into the switch namespace's bridge.
ip netns add "$switch"
ip -n "$switch" link add br0 type bridge
ip -n "$switch" link set br0 up
for n in "${hosts[@]}" "$client"; do
  ns="$tag-h$n"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$tag-$n" type veth peer name eth0 netns "$ns"
  ip link set "$tag-$n" netns "$switch"
  ip -n "$switch" link set "$tag-$n" master br0 up
  ip -n "$ns" addr add "$subnet.$n/24" dev eth0
  ip -n "$ns" link set eth0 up
done
in_host() { local n=$1; shift; ip netns exec "$tag-h$n" "$@"; }

# Secrets, as an operator makes them.
"$bin" keygen --output "$work/network.key" >/dev/null
head -c 32 /dev/urandom | base64 > "$work/api-token"
chmod 0600 "$work/api-token"

start_node() {
  local n=$1; shift
  # `ip netns exec` execs the node: $! is the node's own pid, for the signals below.
  ip netns exec "$tag-h$n" "$bin" node start --listen 0.0.0.0:4100 --advertise "$subnet.$n:4100" \
    --network-key-file "$work/network.key" --http "$subnet.$n:4200" \
    --api-token-file "$work/api-token" "$@" > "$work/node$n.out" 2> "$work/node$n.log" &
  pid[$n]=$!
  for _ in $(seq 1 100); do
    grep -q '^http ' "$work/node$n.out" 2>/dev/null && return 0
    kill -0 "${pid[$n]}" 2>/dev/null || fail "node on host $n exited: $(tail -n 5 "$work/node$n.log")"
    sleep 0.1
  done
  fail "node on host $n did not start"
}
start_node 1
for n in 2 3 4 5; do start_node "$n" --bootstrap "$subnet.1:4100"; done

cli() { in_host "$client" env VOLDISEFS_API_TOKEN="$(cat "$work/api-token")" \
  VOLDISEFS_PASSWORD="multi host password" "$bin" "$@"; }
url() { echo "http://$subnet.$1:4200"; }

# Every node sees the four others alive.
for n in "${hosts[@]}"; do
  ok=""
  for _ in $(seq 1 150); do
    alive=$(cli network --json --node "$(url "$n")" 2>/dev/null \
      | python3 -c 'import json,sys; print(sum(p["state"]=="alive" for p in json.load(sys.stdin)["peers"]))' 2>/dev/null || echo 0)
    [ "$alive" = 4 ] && { ok=1; break; }
    sleep 0.2
  done
  [ -n "$ok" ] || fail "host $n sees $alive live peers, not 4"
done
echo "multihost: 5 hosts up, full membership"

# Files of 0 bytes, 100 KB and 3 MB, put through host 1, read through host 4.
ids=()
for size in 0 100000 3000000; do
  head -c "$size" /dev/urandom > "$work/f$size"
  id=$(cli put --quiet "$work/f$size" --node "$(url 1)")
  ids+=("$id:$size")
done
check_all() {
  local via=$1
  for entry in "${ids[@]}"; do
    local id=${entry%%:*} size=${entry##*:}
    cli get --quiet "$id" -o "$work/back" --force --node "$(url "$via")"
    cmp -s "$work/f$size" "$work/back" || fail "file of $size bytes differs through host $via"
  done
}
check_all 4
echo "multihost: put through host 1, read back through host 4"

# SIGKILL host 2: everything still reads (through host 5).
kill -9 "${pid[2]}"; wait "${pid[2]}" 2>/dev/null || true; unset 'pid[2]'
check_all 5
echo "multihost: host 2 killed, everything read back through host 5"

# Graceful stop of host 3: it hands its data off, exits 0; everything reads.
kill -TERM "${pid[3]}"
status=0; wait "${pid[3]}" || status=$?
unset 'pid[3]'
[ "$status" -eq 0 ] || fail "host 3 exited with $status on SIGTERM"
check_all 4
echo "multihost: host 3 stopped gracefully, everything read back through host 4"

# The API refuses a request without the token (and the CLI says so).
code=$(in_host "$client" python3 -c "
import urllib.request, urllib.error
try:
    urllib.request.urlopen('$(url 1)/api/v1/files', timeout=10); print(200)
except urllib.error.HTTPError as e: print(e.code)")
[ "$code" = 401 ] || fail "a request without the token got $code, not 401"
if in_host "$client" env -u VOLDISEFS_API_TOKEN "$bin" ls --node "$(url 1)" > /dev/null 2> "$work/ls.err"; then
  fail "ls without the token succeeded"
fi
grep -qi "token" "$work/ls.err" || fail "ls without the token did not say why: $(cat "$work/ls.err")"
echo "multihost: a request without the API token is refused (401)"
echo "multihost: ok"

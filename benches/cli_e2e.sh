#!/usr/bin/env bash
# End-to-end CLI bench (issue 24): the CLI sealing and opening on this machine over the object
# API, side by side in one run with gateway mode (curl, the node seals), on 3 node processes on
# loopback. Reports seconds per transfer, files/s for a folder of small files, and the CLI's
# peak RSS on a large file.
#   bash benches/cli_e2e.sh [SIZE_MIB (256)] [BIG_MIB (1024)] [FILES (1000)]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-256}
big_mib=${2:-1024}
files=${3:-1000}
cargo build --release -p voldisefs-cli --quiet
bin="$PWD/target/release/voldisefs"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
start() {
  local out="$work/node$1.out"
  "$bin" node start --listen 127.0.0.1:0 --http 127.0.0.1:0 --capacity 6GiB "${@:2}" \
    > "$out" 2> "$work/node$1.log" &
  pids+=($!)
  for _ in $(seq 300); do
    grep -q '^http ' "$out" 2>/dev/null && break
    sleep 0.1
  done
}
start 0
peer0="$(sed -n 's/^peer //p' "$work/node0.out")"
start 1 --bootstrap "$peer0"
start 2 --bootstrap "$peer0"
url0="$(sed -n 's/^http //p' "$work/node0.out")"
url1="$(sed -n 's/^http //p' "$work/node1.out")"
sleep 2
export VOLDISEFS_PASSWORD='correct horse battery staple'
head -c $((size_mib << 20)) /dev/urandom > "$work/file.bin"
t() { local s e; s=$(date +%s.%N); "$@" > "$work/last.out"; e=$(date +%s.%N); echo "$e - $s" | bc; }
echo "== ${size_mib} MiB file, 3 nodes, $(nproc) cores, $(date -u +%F)"
gput=$(t curl -sS -f -H "X-Voldisefs-Password: $VOLDISEFS_PASSWORD" -H 'X-Voldisefs-Filename: f' \
  --data-binary @"$work/file.bin" "$url0/api/v1/files")
gid=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$work/last.out")
gget=$(t curl -sS -f -H "X-Voldisefs-Password: $VOLDISEFS_PASSWORD" -o "$work/g.bin" "$url1/api/v1/files/$gid")
cput=$(t "$bin" put -q "$work/file.bin" --node "$url0")
cid=$(tail -n1 "$work/last.out")
cget=$(t "$bin" get -q "$cid" --node "$url1" -o "$work/c.bin" --force)
cmp "$work/file.bin" "$work/g.bin"; cmp "$work/file.bin" "$work/c.bin"
printf 'gateway put %6.2f s  get %6.2f s\n' "$gput" "$gget"
printf 'CLI     put %6.2f s  get %6.2f s   (CLI/gateway: put %.2f, get %.2f)\n' "$cput" "$cget" \
  "$(echo "$cput / $gput" | bc -l)" "$(echo "$cget / $gget" | bc -l)"
rm -f "$work/file.bin" "$work/g.bin" "$work/c.bin"

echo "== folder of $files files of 4 KiB"
mkdir -p "$work/folder"
for i in $(seq "$files"); do head -c 4096 /dev/urandom > "$work/folder/f$i"; done
fput=$(t "$bin" put -q "$work/folder" --node "$url0")
fid=$(tail -n1 "$work/last.out")
fget=$(t "$bin" get -q "$fid" --node "$url1" -o "$work/back")
printf 'put %.0f files/s, get %.0f files/s\n' "$(echo "$files / $fput" | bc -l)" "$(echo "$files / $fget" | bc -l)"
rm -rf "$work/folder" "$work/back"

echo "== CLI peak RSS on a ${big_mib} MiB file"
head -c $((big_mib << 20)) /dev/urandom > "$work/big.bin"
/usr/bin/time -f '%M' -o "$work/rss" "$bin" put -q "$work/big.bin" --node "$url0" > "$work/big.id"
echo "put: peak RSS $(( $(cat "$work/rss") / 1024 )) MiB"
/usr/bin/time -f '%M' -o "$work/rss" "$bin" get -q "$(tail -n1 "$work/big.id")" --node "$url1" -o - > /dev/null
echo "get: peak RSS $(( $(cat "$work/rss") / 1024 )) MiB"

#!/usr/bin/env bash
# End-to-end CLI bench (issue 24): the CLI sealing and opening on this machine over the object
# API, side by side in one run with gateway mode (curl, the node seals), on 3 node processes on
# loopback. Reports seconds per transfer, files/s for a folder of small files, and the CLI's
# peak RSS on a large file.
# Each timing is the best of REPEAT rounds (this machine is shared: a neighbour's load only
# ever adds time), the rounds alternating gateway and CLI so both see the same machine.
# GATEWAY_BIN=path/to/an/older/voldisefs runs the gateway side on a second network of that
# binary's nodes (the previous release's gateway path, side by side with this CLI).
#   bash benches/cli_e2e.sh [SIZE_MIB (256)] [BIG_MIB (1024)] [FILES (1000)] [REPEAT (5)]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-256}
big_mib=${2:-1024}
files=${3:-1000}
repeat=${4:-5}
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
  "${node_bin:-$bin}" node start --listen 127.0.0.1:0 --http 127.0.0.1:0 --capacity 6GiB "${@:2}" \
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
gurl0="$url0"; gurl1="$url1"; gpids=("${pids[@]}")
if [ -n "${GATEWAY_BIN:-}" ]; then
  node_bin="$GATEWAY_BIN"
  start 3
  gpeer="$(sed -n 's/^peer //p' "$work/node3.out")"
  start 4 --bootstrap "$gpeer"
  start 5 --bootstrap "$gpeer"
  node_bin=""
  gurl0="$(sed -n 's/^http //p' "$work/node3.out")"
  gurl1="$(sed -n 's/^http //p' "$work/node4.out")"
  gpids=("${pids[@]:3:3}")
  echo "gateway side: $("$GATEWAY_BIN" --version) nodes; CLI side: $("$bin" --version) nodes"
fi
sleep 2
export VOLDISEFS_PASSWORD='correct horse battery staple'
head -c $((size_mib << 20)) /dev/urandom > "$work/file.bin"
t() { local s e; s=$(date +%s.%N); "$@" > "$work/last.out"; e=$(date +%s.%N); echo "$e - $s" | bc; }
echo "== ${size_mib} MiB file, 3 nodes, $(nproc) cores, $(date -u +%F), best of $repeat"
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }
best_gput=99999; best_gget=99999; best_gout=99999; best_cput=99999; best_cget=99999; best_cout=99999
best_oput=99999; best_oget=99999
gput() { curl -sS -f -H "X-Voldisefs-Password: $VOLDISEFS_PASSWORD" -H 'X-Voldisefs-Filename: f' \
  --data-binary @"$work/file.bin" "$gurl0/api/v1/files"; }
gdel() { curl -sS -f -X DELETE -H "X-Voldisefs-Password: $VOLDISEFS_PASSWORD" "$gurl0/api/v1/files/$1" > /dev/null; }
for round in $(seq "$repeat"); do
  # Every first read of a file pays one Argon2id run, on the node (gateway) or in the CLI; a
  # node caches the key after, so each read below is of its own upload.
  s=$(t gput); best_gput=$(min "$s" "$best_gput")
  gid=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$work/last.out")
  gid2=$(gput | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
  s=$(t "$bin" put -q "$work/file.bin" --node "$url0"); best_cput=$(min "$s" "$best_cput")
  cid=$(tail -n1 "$work/last.out")
  cid2=$("$bin" put -q "$work/file.bin" --node "$url0" | tail -n1)
  # To a file the CLI writes a temporary file, fsyncs it and renames it into place; curl -o
  # does not fsync. To a pipe neither touches the disk.
  s=$(t curl -sS -f -H "X-Voldisefs-Password: $VOLDISEFS_PASSWORD" -o "$work/g.bin" "$gurl1/api/v1/files/$gid")
  best_gget=$(min "$s" "$best_gget")
  s=$(t "$bin" get -q "$cid" --node "$url1" -o "$work/c.bin" --force); best_cget=$(min "$s" "$best_cget")
  s=$(t sh -c "curl -sS -f -H 'X-Voldisefs-Password: $VOLDISEFS_PASSWORD' '$gurl1/api/v1/files/$gid2' > /dev/null")
  best_gout=$(min "$s" "$best_gout")
  s=$(t sh -c "'$bin' get -q '$cid2' --node '$url1' -o - > /dev/null"); best_cout=$(min "$s" "$best_cout")
  cmp "$work/file.bin" "$work/g.bin"; cmp "$work/file.bin" "$work/c.bin"
  if [ -n "${GATEWAY_BIN:-}" ]; then
    # The previous release's CLI, which sent the file and password to its node's gateway.
    s=$(t "$GATEWAY_BIN" put -q "$work/file.bin" --node "$gurl0"); best_oput=$(min "$s" "$best_oput")
    oid=$(tail -n1 "$work/last.out")
    s=$(t "$GATEWAY_BIN" get -q "$oid" --node "$gurl1" -o "$work/o.bin" --force)
    best_oget=$(min "$s" "$best_oget")
    cmp "$work/file.bin" "$work/o.bin"
    gdel "$oid"
  fi
  gdel "$gid"; gdel "$gid2"
  "$bin" rm "$cid" --node "$url0" > /dev/null; "$bin" rm "$cid2" --node "$url0" > /dev/null
done
printf 'gateway put %6.2f s  get to a file %6.2f s  get to a pipe %6.2f s\n' "$best_gput" "$best_gget" "$best_gout"
printf 'CLI     put %6.2f s  get to a file %6.2f s  get to a pipe %6.2f s\n' "$best_cput" "$best_cget" "$best_cout"
printf 'CLI/gateway: put %.2f, get to a file %.2f (the CLI fsyncs), get to a pipe %.2f\n' \
  "$(echo "$best_cput / $best_gput" | bc -l)" "$(echo "$best_cget / $best_gget" | bc -l)" \
  "$(echo "$best_cout / $best_gout" | bc -l)"
if [ -n "${GATEWAY_BIN:-}" ]; then
  printf 'previous CLI (gateway) put %6.2f s  get to a file %6.2f s; this CLI / previous: put %.2f, get %.2f\n' \
    "$best_oput" "$best_oget" "$(echo "$best_cput / $best_oput" | bc -l)" "$(echo "$best_cget / $best_oget" | bc -l)"
fi

# Where the cycles go, one more round: CPU seconds (user + system) of the client process and
# of each node, for the same transfers.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
nodes_cpu() { echo "$(ticks "${cpu_pids[0]}") $(ticks "${cpu_pids[1]}") $(ticks "${cpu_pids[2]}")"; }
role() {  # label, then the command; prints client, node 0 (puts go here), node 1 (gets), node 2
  local label="$1"; shift
  read -r a0 a1 a2 <<< "$(nodes_cpu)"
  /usr/bin/time -f '%U %S' -o "$work/cpu" "$@" > "$work/last.out"
  read -r b0 b1 b2 <<< "$(nodes_cpu)"
  read -r u sy < "$work/cpu"
  printf '%-22s client %5.2f  node 0 %5.2f  node 1 %5.2f  node 2 %5.2f  (CPU s)\n' "$label" \
    "$(echo "$u + $sy" | bc -l)" "$(echo "($b0 - $a0) / 100" | bc -l)" \
    "$(echo "($b1 - $a1) / 100" | bc -l)" "$(echo "($b2 - $a2) / 100" | bc -l)"
}
cpu_pids=("${gpids[@]}")
role "gateway put" curl -sS -f -H "X-Voldisefs-Password: $VOLDISEFS_PASSWORD" \
  -H 'X-Voldisefs-Filename: f' --data-binary @"$work/file.bin" "$gurl0/api/v1/files"
gid=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$work/last.out")
cpu_pids=("${pids[@]:0:3}")
role "CLI put" "$bin" put -q "$work/file.bin" --node "$url0"
cid=$(tail -n1 "$work/last.out")
cpu_pids=("${gpids[@]}")
role "gateway get to a pipe" curl -sS -f -H "X-Voldisefs-Password: $VOLDISEFS_PASSWORD" -o /dev/null "$gurl1/api/v1/files/$gid"
cpu_pids=("${pids[@]:0:3}")
role "CLI get to a pipe" sh -c "'$bin' get -q '$cid' --node '$url1' -o - > /dev/null"
rm -f "$work/file.bin" "$work/g.bin" "$work/c.bin" "$work/o.bin"

echo "== folder of $files files of 4 KiB, best of $repeat"
mkdir -p "$work/folder"
form=()
for i in $(seq "$files"); do
  head -c 4096 /dev/urandom > "$work/folder/f$i"
  form+=(-F "path=folder/f$i" -F "file=@$work/folder/f$i")
done
b_gfput=99999; b_gfget=99999; b_fput=99999; b_fout=99999; b_fget=99999
for round in $(seq "$repeat"); do
  s=$(t curl -sS -H "X-Voldisefs-Password: $VOLDISEFS_PASSWORD" "${form[@]}" "$gurl0/api/v1/collections")
  grep -q '"id"' "$work/last.out" || { echo "gateway folder upload failed: $(head -c 300 "$work/last.out")"; exit 1; }
  b_gfput=$(min "$s" "$b_gfput")
  gfid=$(sed -n 's/^{"id":"\([0-9a-f]*\)".*/\1/p' "$work/last.out")
  s=$(t sh -c "curl -sS -f -H 'X-Voldisefs-Password: $VOLDISEFS_PASSWORD' '$gurl1/api/v1/collections/$gfid/archive' > /dev/null")
  b_gfget=$(min "$s" "$b_gfget")
  s=$(t "$bin" put -q "$work/folder" --node "$url0"); b_fput=$(min "$s" "$b_fput")
  fid=$(tail -n1 "$work/last.out")
  s=$(t sh -c "'$bin' get -q '$fid' --node '$url1' -o - > /dev/null"); b_fout=$(min "$s" "$b_fout")
  rm -rf "$work/back"
  s=$(t "$bin" get -q "$fid" --node "$url1" -o "$work/back"); b_fget=$(min "$s" "$b_fget")
  gdel "$gfid"; "$bin" rm "$fid" --node "$url0" > /dev/null
done
rate() { echo "$files / $1" | bc -l; }
printf 'gateway: put %.0f files/s, get as tar to a pipe %.0f files/s\n' "$(rate "$b_gfput")" "$(rate "$b_gfget")"
printf 'CLI:     put %.0f files/s, get as tar to a pipe %.0f files/s, get into a folder %.0f files/s (one fsync each)\n' \
  "$(rate "$b_fput")" "$(rate "$b_fout")" "$(rate "$b_fget")"
rm -rf "$work/folder" "$work/back"

echo "== CLI peak RSS on a ${big_mib} MiB file"
head -c $((big_mib << 20)) /dev/urandom > "$work/big.bin"
/usr/bin/time -f '%M' -o "$work/rss" "$bin" put -q "$work/big.bin" --node "$url0" > "$work/big.id"
echo "put: peak RSS $(( $(cat "$work/rss") / 1024 )) MiB"
/usr/bin/time -f '%M' -o "$work/rss" "$bin" get -q "$(tail -n1 "$work/big.id")" --node "$url1" -o - > /dev/null
echo "get: peak RSS $(( $(cat "$work/rss") / 1024 )) MiB"

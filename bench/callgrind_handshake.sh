#!/usr/bin/env bash
# Instructions per full TLS 1.3 handshake: edged (every thread, user space)
# against the in-process OpenSSL floor (server side only), both counted by
# callgrind, which is stable on a shared machine where time is not.
#
#   bench/callgrind_handshake.sh [EDGED]         # default build/bin/edged
#   HANDSHAKES=200 LOG=off TICKETS=1 bench/callgrind_handshake.sh
#
# edged: ECDSA P-256 certificate, TLS 1.3 + X25519, session tickets on (it
# sends 1), 2 workers, handshake log off (LOG=on: JSON lines + SQLite), no
# routes: each connection is a full handshake plus one request answered 404
# by edged itself, so no upstream is in the count. Counters are zeroed after
# a warm-up and dumped after exactly $HANDSHAKES connections by hsload (the
# shared harness's client: fresh SSL per connection, no resumption).
# Output: Ir per handshake for both, the ratio, and the top functions
# (inclusive) in $OUT/edged.annotate.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
shared="${EDGE_SHARED_BENCH:-$root/../shared/bench}"
edged="${1:-$root/build/bin/edged}"
N="${HANDSHAKES:-200}"
LOG="${LOG:-off}"
TICKETS="${TICKETS:-1}"
OUT="${OUT:-$(mktemp -d /tmp/edge-callgrind.XXXXXX)}"
command -v valgrind >/dev/null || { echo "callgrind: apt-get install valgrind" >&2; exit 1; }
[ -x "$edged" ] || { echo "callgrind: $edged not found" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$OUT/key.pem" -out "$OUT/cert.pem" \
  -days 2 -subj /CN=edge.test -addext "subjectAltName=DNS:edge.test,IP:127.0.0.1" 2>/dev/null
cc -O2 -o "$OUT/floor" "$here/tools/floor_instructions.c" -lssl -lcrypto
cc -O2 -o "$OUT/hsload" "$shared/hsload.c" -lssl -lcrypto -lpthread

ir_of() { awk '/^(summary|totals):/{print $2; exit}' "$1"; }

valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$OUT/floor.out" \
  "$OUT/floor" "$OUT/cert.pem" "$OUT/key.pem" "$N" "$TICKETS" > "$OUT/floor.txt" 2> "$OUT/floor.valgrind"
floor=$(( $(ir_of "$OUT/floor.out") / N ))

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log_conf="handshake_log:
  store: false"
[ "$LOG" = on ] && log_conf="handshake_log:
  file: $OUT/handshakes.jsonl"
cat > "$OUT/edge.yaml" <<YAML
store:
  path: $OUT/edge.db
workers: 2
proxy:
  listen: ["127.0.0.1:$port"]
  tls:
    mode: manual
    certificate: $OUT/cert.pem
    private_key: $OUT/key.pem
    min_protocol_version: "1.3"
    groups: [X25519]
    session_tickets: true
$log_conf
YAML
valgrind --tool=callgrind --callgrind-out-file="$OUT/edged.%p.out" "$edged" --config "$OUT/edge.yaml" \
  > "$OUT/edged.stderr" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q "edged: ready" "$OUT/edged.stderr" && break; kill -0 $pid || break; sleep 0.2; done
grep -q "edged: ready" "$OUT/edged.stderr" || { cat "$OUT/edged.stderr" >&2; exit 1; }
"$OUT/hsload" -m close -a 127.0.0.1 -p "$port" -s edge.test -c 2 -t 1 -n 20 -d 120 -w 0 > "$OUT/warm.txt" 2>&1
callgrind_control -z $pid > /dev/null 2>&1
"$OUT/hsload" -m close -a 127.0.0.1 -p "$port" -s edge.test -c 2 -t 1 -n "$N" -d 600 -w 0 > "$OUT/hs.txt" 2>&1
done_hs=$(sed -n 's/.* hs=\([0-9]*\).*/\1/p' "$OUT/hs.txt" | tail -1)
errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' "$OUT/hs.txt" | tail -1)
resumed=$(sed -n 's/.* resumed=\([0-9]*\).*/\1/p' "$OUT/hs.txt" | tail -1)
callgrind_control -d $pid > /dev/null 2>&1
sleep 1
dump=$(ls -1t "$OUT"/edged.$pid.out.* 2>/dev/null | head -1)
[ -n "$dump" ] || { echo "callgrind: no dump" >&2; exit 1; }
kill $pid; wait $pid 2>/dev/null || true
trap - EXIT
edge=$(( $(ir_of "$dump") / done_hs ))
# Whole files, not piped into head: with pipefail a SIGPIPE would end the script.
callgrind_annotate --threshold=100 --inclusive=yes "$dump" > "$OUT/edged.annotate.txt" 2>/dev/null || true
callgrind_annotate --threshold=100 "$dump" > "$OUT/edged.self.txt" 2>/dev/null || true
echo "floor (OpenSSL server side, in-process, tickets=$TICKETS): $floor instructions per full handshake ($N handshakes)"
echo "edged (all threads, user space, log $LOG, 1 request answered 404): $edge instructions per full handshake ($done_hs handshakes, $errors errors, $resumed resumed)"
awk -v e=$edge -v f=$floor 'BEGIN{printf "edged / floor = %.2f\n", e/f}'
echo "RESULT floor_ir=$floor edged_ir=$edge handshakes=$done_hs log=$LOG tickets=$TICKETS out=$OUT"

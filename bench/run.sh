#!/usr/bin/env bash
# Side-by-side benchmark, one command for every table of docs/benchmarks.md:
# nginx (and HAProxy) against edged with the handshake log on ("edge") and off
# ("edgenolog") in one run of the shared harness (../shared/bench/peers.sh,
# copied to a temp dir so our extra row and our extra test "res" can be added
# without touching it), then the physical limit (`peers.sh speed`), then 100
# certificate swaps under a full-handshake load (bench/hotswap.py), and the
# report (bench/report.py). Results land in bench/results/<stamp>-<cert>/,
# the tables in its report.md.
#
#   bench/run.sh                 # PEERS="nginx haproxy", ROUNDS=5, TESTS="idle hs ka res", IDLE_CONNS=10000
#   PEERS=nginx TESTS="hs ka" ROUNDS=3 SPEED=0 SWAPS=0 bench/run.sh
#   bench/run.sh speed           # only the physical limit (openssl speed + in-process floor)
#   bench/run.sh check           # start each peer once, one request
# Quick validation on a busy machine: ROUNDS=1 HS_SECS=3 KA_SECS=3 RES_SECS=3 IDLE_CONNS=500 SWAPS=10 bench/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
shared="${EDGE_SHARED_BENCH:-$root/../shared/bench}"
[ -f "$shared/peers.sh" ] || { echo "bench: $shared/peers.sh not found" >&2; exit 1; }

"$root/scripts/setup.sh"
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null || ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
    nginx-light haproxy wrk gcc libssl-dev iproute2 time procps >/dev/null
fi
BUILD_TYPE=Release BUILD_TARGETS="${BUILD_TARGETS:-edged edgectl}" "$root/scripts/build.sh"

harness="$(mktemp -d /tmp/edge-harness.XXXXXX)"
trap 'rm -rf "$harness"' EXIT
cp -r "$shared/peers.sh" "$shared/hsload.c" "$shared/tlsfloor.c" "$shared/conf" "$harness/"
mkdir -p "$harness/peers.d" && cp "$here/peers.d/"*.sh "$harness/peers.d/"

export EDGE_CMD="$root/build/bin/edged --config {conf}"
export EDGE_CONF_TMPL="$here/conf/edge.yaml.tmpl"
export EDGE_NOLOG_TMPL="$here/conf/edge-nolog.yaml.tmpl"
export PEERS="${PEERS:-nginx haproxy} edgenolog"
export ROUNDS="${ROUNDS:-5}"
export TESTS="${TESTS:-idle hs ka res}"
export IDLE_CONNS="${IDLE_CONNS:-10000}"
export RESULTS_DIR="$here/results"
case "${1:-run}" in
  run) ;;
  *) bash "$harness/peers.sh" "$@"; exit 0 ;;  # not exec: the trap removes the harness copy
esac

mkdir -p "$RESULTS_DIR"
before="$(ls -1d "$RESULTS_DIR"/[0-9]*-*/ 2>/dev/null | sort | tail -1 || true)"
bash "$harness/peers.sh" run
out="$(ls -1d "$RESULTS_DIR"/[0-9]*-*/ 2>/dev/null | sort | tail -1)"
[ -n "$out" ] && [ "$out" != "$before" ] || { echo "bench: peers.sh saved no results" >&2; exit 1; }
out="${out%/}"

report_args=()
if [ "${SPEED:-1}" != 0 ]; then
  RESULTS_DIR="" bash "$harness/peers.sh" speed 2>&1 | tee "$out/speed.txt"
  report_args+=(--speed "$out/speed.txt")
fi
if [ "${SWAPS:-100}" != 0 ]; then
  python3 "$here/hotswap.py" --edged "$root/build/bin/edged" --edgectl "$root/build/bin/edgectl" \
    --swaps "${SWAPS:-100}" | tee "$out/hotswap.txt" || echo "bench: hot swap reported failures (see $out/hotswap.txt)" >&2
  report_args+=(--hotswap "$out/hotswap.txt")
fi
python3 "$here/report.py" "$out/results.tsv" "${report_args[@]}" \
  --title "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, ROUNDS=$ROUNDS TESTS='$TESTS' IDLE_CONNS=$IDLE_CONNS" \
  > "$out/report.md"
cat "$out/report.md"
echo "bench: report in $out/report.md" >&2

#!/usr/bin/env bash
# Side-by-side benchmark: nginx (and optionally HAProxy) against edged with the
# handshake log on ("edge") and off ("edgenolog"), in one run of the shared
# harness (../shared/bench/peers.sh, copied to a temp dir so our extra row
# can be added without touching it). Results land in bench/results/<stamp>/.
#
#   bench/run.sh                 # PEERS="nginx haproxy", ROUNDS=5, all tests
#   PEERS=nginx TESTS="hs ka" ROUNDS=3 bench/run.sh
#   bench/run.sh speed           # the physical limit (openssl speed + in-process floor)
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
BUILD_TYPE=Release "$root/scripts/build.sh"

harness="$(mktemp -d /tmp/edge-harness.XXXXXX)"
trap 'rm -rf "$harness"' EXIT
cp -r "$shared/peers.sh" "$shared/hsload.c" "$shared/tlsfloor.c" "$shared/conf" "$harness/"
mkdir -p "$harness/peers.d" && cp "$here/peers.d/"*.sh "$harness/peers.d/"

export EDGE_CMD="$root/build/bin/edged --config {conf}"
export EDGE_CONF_TMPL="$here/conf/edge.yaml.tmpl"
export EDGE_NOLOG_TMPL="$here/conf/edge-nolog.yaml.tmpl"
export PEERS="${PEERS:-nginx haproxy} edgenolog"
export ROUNDS="${ROUNDS:-5}"
export RESULTS_DIR="$here/results"
exec bash "$harness/peers.sh" "$@"

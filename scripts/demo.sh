#!/usr/bin/env bash
# The main job, end to end on this machine: a local Pebble CA, edged obtaining
# one certificate for edge.test + 127.0.0.1 + ::1 over TLS-ALPN-01, a request
# proxied through it with curl, and edgectl's view of the store.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
BUILD_TARGETS="edged edgectl" "$root/scripts/build.sh"
exec python3 "$root/scripts/demo.py" --build "$root/build" "$@"

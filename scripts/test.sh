#!/usr/bin/env bash
# The whole test suite: set-up, build, then every unit and integration test
# (integration tests start their own Pebble, upstreams and edged on loopback).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
cd "$root/build"
ctest --output-on-failure --timeout 600 -j "$(nproc)"

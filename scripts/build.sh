#!/usr/bin/env bash
# Configures and builds into build/ (binaries in build/bin). BUILD_TYPE=Debug|Release.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_type="${BUILD_TYPE:-Release}"
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" "$@" >/dev/null
cmake --build "$root/build" -j "$(nproc)"

#!/usr/bin/env bash
# Configures and builds into build/ (binaries in build/bin).
#   BUILD_TYPE=Debug|Release (default Release)
#   BUILD_TARGETS="edged edgectl" builds only those (default: everything, tests included)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# ccache hits across clones and worktrees: paths relative to the checkout.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}" CCACHE_NOHASHDIR=1
build_type="${BUILD_TYPE:-Release}"
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" "$@" >/dev/null
targets=()
for t in ${BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$root/build" -j "$(nproc)" "${targets[@]}"

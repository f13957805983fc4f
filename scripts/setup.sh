#!/usr/bin/env bash
# Installs what building, testing and the demo need, from Debian bookworm
# packages only. Idempotent: does nothing when everything is present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config python3
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libcurl4-openssl-dev libsqlite3-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libcli11-dev
  libbenchmark-dev  # bench/certificate_registry_bench (built only when present)
  pebble openssl curl sqlite3 procps
  uacme util-linux  # bench/acme_bench.py: uacme + ualpn, unshare
  prometheus chromium  # tests/integration: promtool, a Prometheus server, the status page's browser
  systemd  # test_systemd_unit.py: systemd-analyze verify/security, systemd-sysusers, systemd-tmpfiles
  clang libclang-rt-14-dev  # scripts/fuzz: clang and its libFuzzer/sanitizer runtimes (only recommended by clang)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The status page's browser test drives Chromium with npm's playwright-core:
# Node.js and npm from Debian, unless a Node.js with its own npm is there.
if ! command -v npm >/dev/null 2>&1; then
  for p in nodejs npm; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=300 update -q
$sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"

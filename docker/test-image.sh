#!/usr/bin/env bash
# Builds the container image with podman on a machine without a Docker engine
# or registry, runs it against a Pebble on the host's loopback and checks it:
# a certificate is obtained and served (openssl s_client verifies it against
# Pebble's root), edgectl inside the container reports it, the HEALTHCHECK
# passes, edged runs as non-root. Run as root from anywhere:
#   docker/test-image.sh
# Idempotent: the debootstrap base image (tagged debian:bookworm and
# debian:bookworm-slim) and podman's build cache are reused on later runs.
# Settings: EDGE_IMAGE (default localhost/edge:test), EDGE_IMAGE_WORK (default
# /var/tmp/edge-image: rootfs, containers.conf), DEBIAN_MIRROR.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
image="${EDGE_IMAGE:-localhost/edge:test}"
work="${EDGE_IMAGE_WORK:-/var/tmp/edge-image}"
started=$(date +%s.%N)
say() { printf 'test-image: %s\n' "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Whatever this script started in the background (podman build, the checks) is
# stopped on exit or interruption; the checks then remove their own container
# and stop their Pebble by PID.
child=""
cleanup() {
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
run() { "$@" & child=$!; wait "$child"; local code=$?; child=""; return $code; }

if [ "$(id -u)" -ne 0 ]; then
  say "run as root (rootful podman; see ../shared/CONTAINER-LAB.md)"
  exit 2
fi

# 1. podman with runc (Debian's crun refuses hybrid cgroups), debootstrap for the base image.
missing=()
for p in podman runc debootstrap pebble openssl python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" >/dev/null
fi

# 2. containers.conf: runc, cgroupfs, and ulimits within the hard limits
#    (podman as root otherwise asks for more and setrlimit fails).
mkdir -p "$work"
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF="$work/containers.conf"

# 3. The base image, made locally (nothing can be pulled): debootstrap minbase,
#    imported and tagged so that an unchanged `FROM debian:bookworm` resolves.
if podman image exists docker.io/library/debian:bookworm && podman image exists docker.io/library/debian:bookworm-slim; then
  say "base image present: docker.io/library/debian:bookworm"
else
  mirror="${DEBIAN_MIRROR:-$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}"
  mirror="${mirror:-http://deb.debian.org/debian}"
  t=$(date +%s.%N)
  rm -rf "$work/rootfs"
  say "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # As Debian's own images: no package lists, no downloaded .debs (31 MB), no caches.
  rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin "$work/rootfs/var/cache/apt/archives/"*.deb
  tar --numeric-owner -C "$work/rootfs" -c . | podman import --change 'CMD ["bash"]' - localhost/debian:bookworm >/dev/null
  podman tag localhost/debian:bookworm docker.io/library/debian:bookworm
  # -slim as Debian's official images make it (debuerreotype's slimify): no
  # documentation, manual pages or translations, now or in later installs.
  cat >"$work/rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
SLIM
  find "$work/rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$work/rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$work/rootfs/usr/share/"{groff,info,linda,locale,man}/* "$work/rootfs/usr/share/lintian/overrides/"*
  tar --numeric-owner -C "$work/rootfs" -c . |
    podman import --change 'CMD ["bash"]' - localhost/debian:bookworm-slim >/dev/null
  podman tag localhost/debian:bookworm-slim docker.io/library/debian:bookworm-slim
  rm -rf "$work/rootfs"
  say "base image made in $(elapsed "$t") s"
fi

# 4. The image itself (host network for apt-get: no bridge firewall chains needed).
t=$(date +%s.%N)
say "podman build -f docker/Dockerfile -t $image"
run podman build --pull=never --format docker --network host -f "$root/docker/Dockerfile" -t "$image" "$root" >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; exit 1; }
build_seconds=$(elapsed "$t")
size=$(podman image inspect --format '{{.Size}}' "$image")
say "image built in ${build_seconds} s; size $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') MB)"

# 5. Run it against a Pebble on the host's loopback and check it.
run python3 "$root/docker/test_image.py" --image "$image"
say "passed in $(elapsed "$started") s (build ${build_seconds} s, image $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') MB)"

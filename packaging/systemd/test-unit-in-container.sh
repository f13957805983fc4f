#!/usr/bin/env bash
# Runs packaging/systemd/edged.service under a real systemd: systemd as PID 1
# in a podman container made FROM the image docker/test-image.sh builds (run
# that first; same podman set-up), with the sysusers and tmpfiles snippets
# installed and a manual certificate passed by LoadCredential=. Checks: the
# unit becomes active only through READY=1 (Type=notify) with edged's STATUS=,
# the certificate is read from $CREDENTIALS_DIRECTORY and verifies with
# openssl, the watchdog timestamp advances, edged runs as uid 10001 with only
# CAP_NET_BIND_SERVICE, no_new_privs and a seccomp filter, `systemd-analyze
# security` on the running unit, and `systemctl stop` ends it with status 0.
# Removes only its own container and image. Usage (root):
#   packaging/systemd/test-unit-in-container.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
image="${EDGE_IMAGE:-localhost/edge:test}"
work="${EDGE_IMAGE_WORK:-/var/tmp/edge-image}"
export CONTAINERS_CONF="$work/containers.conf"
name="edge-systemd-test-$$"
tag="localhost/edge-systemd-test:$$"
ctx="$(mktemp -d /tmp/edge-systemd-test.XXXXXX)"
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  podman rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$ctx"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf 'test-unit: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; podman exec "$name" journalctl -u edged --no-pager -n 30 >&2 || true; exit 1; }
[ -f "$CONTAINERS_CONF" ] && podman image exists "$image" || { say "run docker/test-image.sh first (needs $image)"; exit 2; }

cp "$root/packaging/systemd/"{edged.service,edge.sysusers,edge.tmpfiles} "$ctx/"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=edge.test \
  -addext subjectAltName=DNS:edge.test -keyout "$ctx/privkey.pem" -out "$ctx/fullchain.pem" 2>/dev/null
cat >"$ctx/edge.yaml" <<'YAML'
store: {path: /var/lib/edge/edge.db}
proxy:
  listen: ["127.0.0.1:8443"]
  tls:
    mode: manual
    certificates:
      - name: main
        certificate: /run/credentials/edged.service/tls_fullchain.pem
        private_key: /run/credentials/edged.service/tls_privkey.pem
handshake_log: {file: /var/log/edge/handshakes.jsonl}
admin: {listen: "127.0.0.1:9091", socket: /run/edge/admin.sock}
YAML
cat >"$ctx/Containerfile" <<CF
FROM $image
USER root
RUN apt-get update -q && apt-get install -y -q --no-install-recommends systemd systemd-sysv openssl >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
COPY edged.service /etc/systemd/system/edged.service
COPY edge.sysusers /etc/sysusers.d/edge.conf
COPY edge.tmpfiles /etc/tmpfiles.d/edge.conf
COPY edge.yaml /etc/edge/edge.yaml
COPY fullchain.pem privkey.pem /etc/edge/tls/
RUN chmod 0700 /etc/edge/tls && chmod 0600 /etc/edge/tls/* && systemctl enable edged
HEALTHCHECK NONE
ENTRYPOINT []
CMD ["/sbin/init"]
CF
podman build --pull=never --format docker --network host -t "$tag" "$ctx" >"$ctx/build.log" 2>&1 || { tail -20 "$ctx/build.log" >&2; exit 1; }
podman run -d --systemd=always --name "$name" "$tag" >/dev/null 2>"$ctx/run.log"
E() { podman exec "$name" "$@"; }

for _ in $(seq 1 60); do
  state=$(E systemctl is-active edged 2>/dev/null || true)
  [ "$state" = active ] || [ "$state" = failed ] && break
  sleep 0.5
done
[ "$state" = active ] || fail "edged.service is $state"
status=$(E systemctl show edged -p StatusText --value)
[[ "$status" == "serving TLS on"* ]] || fail "StatusText '$status' (READY=1 carries it)"
say "ok: active through Type=notify, status \"$status\""
E journalctl -u edged --no-pager | grep -q "imported main from /run/credentials/edged.service/tls_fullchain.pem" ||
  fail "the certificate was not read from the credentials directory"
E bash -c 'echo | openssl s_client -connect 127.0.0.1:8443 -servername edge.test -CAfile /etc/edge/tls/fullchain.pem -verify_return_error 2>&1' |
  grep -q "Verify return code: 0 (ok)" || fail "openssl s_client"
say "ok: the LoadCredential= certificate is served and verifies"
pid=$(E systemctl show edged -p MainPID --value)
uid=$(E awk '/^Uid:/ { print $2 $3 $4 $5 }' "/proc/$pid/status")
cap=$(E awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
nnp=$(E awk '/^NoNewPrivs:/ { print $2 }' "/proc/$pid/status")
sec=$(E awk '/^Seccomp:/ { print $2 }' "/proc/$pid/status")
[ "$uid" = 10001100011000110001 ] && [ "$cap" = 0000000000000400 ] && [ "$nnp" = 1 ] && [ "$sec" = 2 ] ||
  fail "uid $uid CapEff $cap NoNewPrivs $nnp Seccomp $sec"
say "ok: uid 10001, CapEff = CAP_NET_BIND_SERVICE only, no_new_privs, seccomp filter"
first=$(E systemctl show edged -p WatchdogTimestampMonotonic --value)
usec=$(E systemctl show edged -p WatchdogUSec --value)
for _ in $(seq 1 40); do
  sleep 1
  [ "$(E systemctl show edged -p WatchdogTimestampMonotonic --value)" != "$first" ] && break
done
[ "$(E systemctl show edged -p WatchdogTimestampMonotonic --value)" != "$first" ] || fail "no WATCHDOG=1 seen"
say "ok: WATCHDOG=1 received (WatchdogUSec=$usec)"
say "ok: $(E systemd-analyze security edged 2>&1 | tail -1 | sed 's/^→ //')"
E systemctl stop edged
[ "$(E systemctl show edged -p Result --value)" = success ] && [ "$(E systemctl show edged -p ExecMainStatus --value)" = 0 ] ||
  fail "systemctl stop: $(E systemctl show edged -p Result -p ExecMainStatus)"
say "ok: systemctl stop: exit status 0"
say "passed"

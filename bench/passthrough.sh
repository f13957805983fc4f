#!/usr/bin/env bash
# Passthrough (layer-4 SNI routing, no TLS termination) throughput: edged's
# `transparent` route against HAProxy `mode tcp` routing on `req.ssl_sni`, in
# the same run, in front of the same TLS origin (nginx terminating TLS 1.3).
# Per round and proxy:
#   bulk  - curl downloads BULK_MB MiB through the proxy BULK_N times: MB/s
#           (median) and the proxy's CPU per GiB relayed (from /proc);
#   ka    - wrk keep-alive, 100-byte responses, KA_SECS s: requests/s and the
#           proxy's CPU per request (small relayed records);
#   conn  - wrk with `Connection: close`: new connections (ClientHello preread,
#           SNI routing, upstream connect) per second, end-to-end.
# The client's SNI is "localhost" (wrk cannot set SNI otherwise).
#
#   bench/passthrough.sh                       # ROUNDS=3, all tests
#   ROUNDS=1 KA_SECS=2 BULK_N=1 bench/passthrough.sh   # a quick check that it runs
# Results: bench/results/passthrough-<stamp>/results.tsv (round, proxy, metric, value) and summary.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
ROUNDS="${ROUNDS:-3}"
WORKERS="${WORKERS:-2}"
KA_SECS="${KA_SECS:-10}"
KA_CONN="${KA_CONN:-64}"
BULK_MB="${BULK_MB:-256}"
BULK_N="${BULK_N:-3}"
BASE_PORT="${BASE_PORT:-18700}"
EDGED="${EDGED:-$root/build/bin/edged}"
for tool in nginx haproxy wrk curl openssl; do
  command -v "$tool" >/dev/null || { echo "passthrough: $tool is needed (see bench/run.sh for the packages)" >&2; exit 1; }
done
[ -x "$EDGED" ] || { echo "passthrough: $EDGED not built (scripts/build.sh)" >&2; exit 1; }

run="$(mktemp -d /tmp/edge-passthrough.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_RUN:-}" ] || rm -rf "$run"
}
trap cleanup EXIT
origin_port=$BASE_PORT edge_port=$((BASE_PORT + 1)) haproxy_port=$((BASE_PORT + 2))

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$run/key.pem" -out "$run/cert.pem" 2>/dev/null
head -c $((BULK_MB * 1024 * 1024)) /dev/zero > "$run/big"
chmod 755 "$run" && chmod 644 "$run/big"  # nginx workers run as nobody when started by root

cat > "$run/origin.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $run/origin.pid;
error_log $run/origin.err warn;
events { worker_connections 9000; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$origin_port ssl backlog=4096;
    ssl_certificate $run/cert.pem;
    ssl_certificate_key $run/key.pem;
    ssl_protocols TLSv1.3;
    root $run;
    location /small { default_type text/plain; return 200 "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"; }
  }
}
CONF
cat > "$run/edge.yaml" <<CONF
store:
  path: $run/edge.db
workers: $WORKERS
proxy:
  listen: ["127.0.0.1:$edge_port"]
  tls:
    mode: manual
    certificate: $run/cert.pem
    private_key: $run/key.pem
    routing:
      default: {mode: reject}
      sni:
        - {server_name: localhost, mode: transparent, upstream: "127.0.0.1:$origin_port"}
handshake_log:
  store: false
CONF
cat > "$run/haproxy.cfg" <<CONF
global
  nbthread $WORKERS
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$haproxy_port
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend origin if { req.ssl_sni -i localhost }
backend origin
  server o 127.0.0.1:$origin_port
CONF

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "passthrough: nothing listens on $1" >&2
  return 1
}
cpu_ticks() {  # utime + stime of a process and its threads, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

nginx -c "$run/origin.conf" -p "$run" 2>"$run/origin.stderr" &
pids+=($!)
"$EDGED" --config "$run/edge.yaml" >"$run/edged.log" 2>&1 &
edge_pid=$!
pids+=($edge_pid)
haproxy -f "$run/haproxy.cfg" -db >"$run/haproxy.log" 2>&1 &
haproxy_pid=$!
pids+=($haproxy_pid)
wait_port "$origin_port"; wait_port "$edge_port"; wait_port "$haproxy_port"

for proxy in edge haproxy; do  # both route by SNI to the origin
  port_var="${proxy}_port"
  curl -sk --max-time 10 "https://localhost:${!port_var}/small" | grep -q 0123 ||
    { echo "passthrough: $proxy does not relay to the origin" >&2; exit 1; }
done

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$here/results/passthrough-$stamp"
mkdir -p "$out"
tsv="$out/results.tsv"
printf 'round\tproxy\tmetric\tvalue\n' > "$tsv"
hz="$(getconf CLK_TCK)"
{
  echo "date: $stamp"; uname -srm; nproc
  nginx -v 2>&1; haproxy -v | sed -n 1p; wrk -v 2>&1 | sed -n 1p || true
  "$EDGED" --version 2>/dev/null || true
  echo "ROUNDS=$ROUNDS WORKERS=$WORKERS KA_SECS=$KA_SECS KA_CONN=$KA_CONN BULK_MB=$BULK_MB BULK_N=$BULK_N"
} > "$out/env.txt"

for round in $(seq "$ROUNDS"); do
  for proxy in edge haproxy; do
    port_var="${proxy}_port"; port="${!port_var}"
    pid_var="${proxy}_pid"; pid="${!pid_var}"
    # bulk
    before="$(cpu_ticks "$pid")"
    speeds=()
    for _ in $(seq "$BULK_N"); do
      speeds+=("$(curl -sk --max-time 300 -o /dev/null -w '%{speed_download}' "https://localhost:$port/big")")
    done
    after="$(cpu_ticks "$pid")"
    median="$(printf '%s\n' "${speeds[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
    printf '%s\t%s\tbulk_MBps\t%.1f\n' "$round" "$proxy" "$(echo "$median / 1048576" | bc -l)" >> "$tsv"
    printf '%s\t%s\tbulk_cpu_ms_per_GiB\t%.1f\n' "$round" "$proxy" \
      "$(echo "($after - $before) * 1000 / $hz / ($BULK_N * $BULK_MB / 1024)" | bc -l)" >> "$tsv"
    # keep-alive small records
    before="$(cpu_ticks "$pid")"
    rps="$(wrk -t2 -c"$KA_CONN" -d"${KA_SECS}s" "https://localhost:$port/small" | awk '/Requests\/sec/ {print $2}')"
    after="$(cpu_ticks "$pid")"
    requests="$(echo "$rps * $KA_SECS" | bc -l)"
    printf '%s\t%s\tka_rps\t%s\n' "$round" "$proxy" "$rps" >> "$tsv"
    printf '%s\t%s\tka_cpu_us_per_req\t%.2f\n' "$round" "$proxy" \
      "$(echo "($after - $before) * 1000000 / $hz / $requests" | bc -l)" >> "$tsv"
    # new connections
    cps="$(wrk -t2 -c"$KA_CONN" -d"${KA_SECS}s" -H 'Connection: close' "https://localhost:$port/small" |
           awk '/Requests\/sec/ {print $2}')"
    printf '%s\t%s\tconn_per_s\t%s\n' "$round" "$proxy" "$cps" >> "$tsv"
  done
done

# Medians per proxy and metric, and edge / haproxy for each metric.
python3 - "$tsv" <<'PY' | tee "$out/summary.txt"
import collections, statistics, sys
values = collections.defaultdict(list)
for line in open(sys.argv[1]).read().splitlines()[1:]:
    _, proxy, metric, value = line.split("\t")
    values[(proxy, metric)].append(float(value))
print(f"{'metric':<22} {'edge':>12} {'haproxy':>12} {'edge/haproxy':>13}")
for metric in sorted({m for _, m in values}):
    e, h = (statistics.median(values[(p, metric)]) for p in ("edge", "haproxy"))
    print(f"{metric:<22} {e:>12.2f} {h:>12.2f} {e / h if h else 0:>13.3f}")
PY
echo "passthrough: results in $out"

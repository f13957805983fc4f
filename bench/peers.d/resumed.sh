# Extra peers.sh test "res": resumed TLS 1.3 handshakes per second. wrk with
# "Connection: close" opens a new connection per request and resumes the TLS
# session each time (it keeps its SSL object and calls SSL_clear: the very
# reason the shared README says wrk cannot measure full handshakes), so here
# it measures exactly what we want: a new TCP connection, a PSK resumption
# and one proxied request. For the edge rows the share actually resumed is
# read from edged's own handshake records (tls.resumed); the other servers
# log nothing, so theirs is taken on trust (the README measured 99.4 % with
# nginx).
: "${RES_SECS:=10}" ; : "${RES_CONN:=64}" ; : "${RES_THREADS:=2}"

test_res() {
  local before=0
  [ -f "$RUN/handshakes.jsonl" ] && before=$(wc -l < "$RUN/handshakes.jsonl")
  with_accounting "$WRK" -t"$RES_THREADS" -c"$RES_CONN" -d"${RES_SECS}s" --latency -H "Connection: close" \
    "https://$URLHOST:$PORT/" > "$RUN/res.out" 2>&1
  local rps reqs p99
  rps=$(awk '/^Requests\/sec:/{print $2}' "$RUN/res.out")
  reqs=$(awk '/requests in/{print $1}' "$RUN/res.out")
  p99=$(awk '$1=="99%"{print $2}' "$RUN/res.out" | to_ms)
  [ -n "$rps" ] || { log "res: no result"; cat "$RUN/res.out" >&2; return; }
  emit res_per_s "$rps"; emit res_p99_ms "$p99"
  emit res_srv_us_per_hs "$(awk -v t=$ACC_SRV -v n="$reqs" -v hz=$HZ 'BEGIN{ if (n>0) printf "%.0f", t/hz*1e6/n; else print "nan"}')"
  emit_accounting res
  local share="n/a"
  if [ "$PEER_NAME" = edge ] && [ -f "$RUN/handshakes.jsonl" ]; then
    sleep 0.3  # the log writes in 100 ms batches
    share=$(tail -n +$((before + 1)) "$RUN/handshakes.jsonl" |
      awk '/"tls.resumed":true/{r++} /"tls.established":true/{n++} END{ if (n>0) printf "%.3f", r/n; else print "nan"}')
    emit res_resumed_share "$share"
  fi
  log "  res: $rps resumed handshakes/s (new connection + resumption + 1 request), p99 $p99 ms, server $(cores $ACC_SRV "$ACC_WALL") cores, others $(cores $ACC_OTHER "$ACC_WALL"), resumed share $share"
}

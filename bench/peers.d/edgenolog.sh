# Extra peers.sh row "edgenolog": edged with the handshake log off, started
# exactly like the "edge" row (EDGE_CMD) but from conf/edge-nolog.yaml.tmpl.
peer_start_edgenolog() {
  render "$EDGE_NOLOG_TMPL" "$RUN/edgenolog.conf"
  local cmd=$EDGE_CMD
  cmd=${cmd//\{conf\}/$RUN/edgenolog.conf}
  echo "$cmd" > "$RUN/edgenolog.cmd"
  bash -c "exec $cmd" > "$RUN/edgenolog.out" 2>&1 &
  PEER_PID=$!
}

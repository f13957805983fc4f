#!/bin/bash
# Starts pebble-challtestsrv (DNS: every name -> $EDGED_ADDRESS, the edged
# container) and Pebble, which validates TLS-ALPN-01 on edged's port 8443.
set -euo pipefail
: "${EDGED_ADDRESS:?set EDGED_ADDRESS to the IPv4 address of the edged container}"
dir=/pebble-ca
mkdir -p "$dir"
if [ ! -s "$dir/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=pebble demo CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=pebble" \
  -addext "subjectAltName=DNS:pebble,DNS:localhost,IP:127.0.0.1" -keyout /tmp/leaf.key -out /tmp/leaf.csr 2>/dev/null
openssl x509 -req -in /tmp/leaf.csr -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 30 \
  -copy_extensions copy -out /tmp/leaf.pem 2>/dev/null
chmod 0644 "$dir/ca.pem"
cat >/tmp/pebble.json <<JSON
{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
 "certificate": "/tmp/leaf.pem", "privateKey": "/tmp/leaf.key", "httpPort": 5002, "tlsPort": 8443,
 "certificateValidityPeriod": 0, "externalAccountBindingRequired": false}}
JSON
pebble-challtestsrv -dns01 127.0.0.1:8053 -management 127.0.0.1:8055 -http01 "" -https01 "" -tlsalpn01 "" \
  -defaultIPv4 "$EDGED_ADDRESS" -defaultIPv6 "" &
export PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0
exec pebble -config /tmp/pebble.json -strict=false -dnsserver 127.0.0.1:8053

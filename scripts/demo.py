#!/usr/bin/env python3
"""The edge demo: a local Pebble CA, edged obtaining a certificate for
edge.test + 127.0.0.1 + ::1 over TLS-ALPN-01 on its own traffic port, curl
through the proxy to a local upstream, then edgectl's view of the store.
Everything runs on loopback and is stopped (by PID) at the end."""

import argparse
import json
import os
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "tests", "integration"))
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402


def step(text):
    print(f"\n==> {text}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(root, "build"))
    parser.add_argument("--keep", action="store_true", help="keep the demo directory")
    args = parser.parse_args()
    edged = os.path.join(args.build, "bin", "edged")
    edgectl = os.path.join(args.build, "bin", "edgectl")

    workdir = tempfile.mkdtemp(prefix="edge-demo-")
    port = et.free_port()
    step(f"starting Pebble (ACME test CA) on loopback; TLS-ALPN-01 validations go to port {port}")
    with Pebble(tls_port=port) as pebble, et.Upstream() as upstream:
        config = os.path.join(workdir, "edge.yaml")
        with open(config, "w") as f:
            f.write(f"""store:
  path: ./edge.db
proxy:
  listen: ["127.0.0.1:{port}", "[::1]:{port}"]
  tls:
    mode: acme
    acme:
      directory: {pebble.directory_url}
      ca_bundle: {pebble.ca_bundle}
      contact: ["mailto:ops@edge.test"]
      key_type: ecdsa-p256
    certificates:
      - name: main
        identifiers: [edge.test, 127.0.0.1, "::1"]
    handshake_timeout_secs: 10
    min_protocol_version: "1.2"
    max_protocol_version: "1.3"
    session_cache: false
    session_tickets: false
  http:
    upstream_timeout_secs: 60
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{upstream.port}/
handshake_log:
  file: ./handshakes.jsonl
""")
        print(open(config).read())
        step("edged check")
        subprocess.run([edged, "check", "--config", config], check=True)
        step("starting edged; it orders the certificate from Pebble")
        with et.Edged(edged, config, workdir) as server:
            store = os.path.join(workdir, "edge.db")
            et.wait_for(lambda: et.edgectl(edgectl, store, "certs", "--json", check=False).stdout.strip() not in (b"", b"[]"),
                        90, "the certificate")
            print(server.output().decode(errors="replace"))
            root_pem = os.path.join(workdir, "pebble-root.pem")
            with open(root_pem, "w") as f:
                f.write(pebble.root_pem())
            for url, extra in ((f"https://edge.test:{port}/hello", ["--resolve", f"edge.test:{port}:127.0.0.1"]),
                               (f"https://127.0.0.1:{port}/by-ipv4", []),
                               (f"https://[::1]:{port}/by-ipv6", [])):
                step(f"curl {url} (verified against Pebble's root)")
                subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", root_pem, *extra, url], check=True)
                print()
            # Records reach the store in batches (every 100 ms): wait for the three curl handshakes.
            et.wait_for(lambda: json.loads(et.edgectl(edgectl, store, "certs", "--json").stdout)[0]
                        ["handshakes"]["ok"] >= 3, 10, "the handshake records")
            step("edgectl certs")
            subprocess.run([edgectl, "--store", store, "certs"], check=True)
            step("edgectl handshakes --limit 8")
            subprocess.run([edgectl, "--store", store, "handshakes", "--limit", "8"], check=True)
    print(f"\ndemo files in {workdir}" if args.keep else "")
    if not args.keep:
        subprocess.run(["rm", "-rf", workdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The operator surface in ACME mode against a real Pebble: certs.renew
through the admin API (and edgectl renew --wait live) makes edged issue the
next generation, served at once; the ACME metrics (edge_acme_orders_total,
edge_acme_next_attempt_seconds) and the certificate gauges follow; check
reads the renewal state live.

Usage: test_admin_acme.py --edged PATH --edgectl PATH"""

import argparse
import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admintest as at  # noqa: E402
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402

ARGS = None


class AdminAcme(unittest.TestCase):
    def test_renew_through_the_admin_api_and_acme_metrics(self):
        with tempfile.TemporaryDirectory(prefix="edge-admin-acme-") as d:
            port = et.free_port()
            admin_port, metrics_port = et.free_port(), et.free_port()
            token = "acme-admin-token-0123456789"
            token_file = os.path.join(d, "admin.token")
            with open(token_file, "w") as f:
                f.write(token + "\n")
            with Pebble(tls_port=port, certificate_validity=3600) as pebble:
                config = os.path.join(d, "edge.yaml")
                with open(config, "w") as f:
                    f.write(f"""
proxy:
  listen: ["127.0.0.1:{port}"]
  workers: 1
  tls:
    mode: acme
    acme:
      directory: {pebble.directory_url}
      ca_bundle: {pebble.ca_bundle}
    certificates:
      - name: main
        identifiers: [edge.test, 127.0.0.1]
handshake_log:
  file: ./handshakes.jsonl
admin:
  listen: 127.0.0.1:{admin_port}
  token_file: admin.token
metrics:
  listen: 127.0.0.1:{metrics_port}
""")
                edge = at.AdminClients(admin_port, metrics_port)
                with et.Edged(ARGS.edged, config, d) as edged:
                    first = et.wait_for(lambda: [c for c in edge.rpc("certs.list")
                                                 if c["generation"] >= 1 and c["state"] == "valid"], 60,
                                        "the first certificate")[0]
                    self.assertEqual(edge.rpc("version")["mode"], "acme")

                    _, text = edge.metrics()
                    self.assertEqual(at.metric_value(text, "edge_certificate_generation", {"cert": "main"}), 1)
                    self.assertGreaterEqual(at.metric_value(text, "edge_acme_orders_total", {"result": "valid"}), 1)
                    next_attempt = at.metric_value(text, "edge_acme_next_attempt_seconds", {"cert": "main"})
                    self.assertGreater(next_attempt, time.time(), "the next renewal is planned in the future")
                    self.assertEqual(at.metric_value(text, "edge_acme_failures", {"cert": "main"}), 0)

                    with self.assertRaises(at.RpcError) as caught:
                        edge.rpc("certs.renew", {"name": "other"}, token=token)
                    self.assertEqual(caught.exception.code, -32001)

                    queued = edge.rpc("certs.renew", {"name": "main"}, token=token)
                    self.assertEqual(queued, {"name": "main", "queued": True, "generation": 1})
                    second = et.wait_for(lambda: [c for c in edge.rpc("certs.list")
                                                  if c["generation"] >= 2 and c["state"] == "valid"], 60,
                                         "generation 2")[0]
                    self.assertNotEqual(second["serial"], first["serial"])
                    ctx = et.tls_client_context(verify=False)
                    tls, _ = et.connect_tls("127.0.0.1", port, ctx, "edge.test")
                    self.assertEqual(et.leaf_facts(tls.getpeercert(binary_form=True))[0], second["serial"])
                    tls.close()

                    live = ["--admin", f"http://127.0.0.1:{admin_port}", "--token-file", token_file]
                    renewed = et.run([ARGS.edgectl, *live, "renew", "main", "--wait", "60"], timeout=90)
                    self.assertIn("renewed 'main': generation 3", renewed.stdout.decode())
                    _, text = edge.metrics()
                    self.assertEqual(at.metric_value(text, "edge_certificate_generation", {"cert": "main"}), 3)
                    self.assertGreaterEqual(at.metric_value(text, "edge_acme_orders_total", {"result": "valid"}), 3)

                    shown = json.loads(et.run([ARGS.edgectl, *live, "cert", "show", "main", "--json"]).stdout)
                    self.assertEqual(shown["generation"], 3)
                    self.assertEqual(len(shown["history"]), 3)
                    # One hour of validity: CRITICAL with the defaults, OK when the thresholds are minutes.
                    self.assertEqual(et.run([ARGS.edgectl, *live, "check"], check=False).returncode, 2)
                    self.assertEqual(et.run([ARGS.edgectl, *live, "check", "--warn", "0.01", "--crit", "0.001"],
                                            check=False).returncode, 0)
                    self.assertNotIn(token.encode(), edged.output())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

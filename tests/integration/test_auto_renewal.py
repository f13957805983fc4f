#!/usr/bin/env python3
"""Automatic renewal: with Pebble issuing 9-second certificates, edged renews
on its own when a third of the lifetime remains, and new handshakes get the
new certificate without a restart.

Usage: test_auto_renewal.py --edged PATH --edgectl PATH"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402

ARGS = None


class AutoRenewal(unittest.TestCase):
    def test_renews_before_expiry_and_serves_the_new_certificate(self):
        d = tempfile.mkdtemp(prefix="edge-renewal-")
        port = et.free_port()
        try:
            with Pebble(tls_port=port, certificate_validity=9) as pebble:
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
      - name: short
        identifiers: [edge.test]
handshake_log:
  file: ./handshakes.jsonl
""")
                store = os.path.join(d, "edge.db")

                def cert():
                    out = et.edgectl(ARGS.edgectl, store, "certs", "--json", check=False)
                    certs = json.loads(out.stdout) if out.returncode == 0 else []
                    return certs[0] if certs else None

                with et.Edged(ARGS.edged, config, d):
                    first = et.wait_for(cert, 30, "the first certificate")
                    ctx = et.tls_client_context(verify=False)
                    tls, _ = et.connect_tls("127.0.0.1", port, ctx, "edge.test")
                    served_first = et.leaf_facts(tls.getpeercert(binary_form=True))[0]
                    tls.close()
                    self.assertEqual(served_first, first["serial"])
                    # Lifetime 9 s: renewal is due 6 s after not_before; allow for scheduling.
                    renewed = et.wait_for(lambda: (c := cert()) and c["generation"] > first["generation"] and c,
                                          30, "an automatic renewal")
                    self.assertNotEqual(renewed["serial"], first["serial"])
                    tls, _ = et.connect_tls("127.0.0.1", port, ctx, "edge.test")
                    served = et.leaf_facts(tls.getpeercert(binary_form=True))[0]
                    tls.close()
                    self.assertIn(served, {renewed["serial"], (cert() or {}).get("serial")})
                    self.assertNotEqual(served, served_first)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

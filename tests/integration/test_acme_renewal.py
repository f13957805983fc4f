#!/usr/bin/env python3
"""Acceptance 1 of the production-grade ACME client: with Pebble issuing
120-second certificates, edged renews on its own at least twice (at half the
lifetime, short-lived rule, with jitter), each new generation serves new
handshakes, and no handshake fails meanwhile (a client handshakes every 50 ms
throughout and verifies every chain and name).

This is the suite's one long test (about two and a half minutes).

Usage: test_acme_renewal.py --edged PATH --edgectl PATH"""

import argparse
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import acmetest as at  # noqa: E402
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402

ARGS = None
VALIDITY = 120  # seconds, as the acceptance asks


class AutomaticRenewal(unittest.TestCase):
    def test_renews_twice_on_its_own_without_a_failed_handshake(self):
        with at.Workdir("edge-acme-renewal-") as d:
            port = et.free_port()
            with Pebble(tls_port=port, certificate_validity=VALIDITY) as pebble:
                config = os.path.join(d, "edge.yaml")
                with open(config, "w") as f:
                    f.write(at.edged_config(port, [pebble], ['{name: main, identifiers: [edge.test, 127.0.0.1, "::1"]}']))
                root = os.path.join(d, "root.pem")
                with open(root, "w") as f:
                    f.write(pebble.root_pem())
                store = at.Store(ARGS.edgectl, os.path.join(d, "edge.db"))
                with et.Edged(ARGS.edged, config, d) as edged:
                    first = store.wait_generation("main", 1, 60)
                    with at.HandshakeLoop(port, root) as loop:
                        et.wait_for(lambda: first["serial"] in loop.seen(), 20, "generation 1 served")
                        # Renewal is due at half of the 119 s lifetime (minus up to 6 s jitter).
                        second = store.wait_generation("main", 2, VALIDITY + 30)
                        et.wait_for(lambda: second["serial"] in loop.seen(), 20, "generation 2 served")
                        third = store.wait_generation("main", 3, VALIDITY + 30)
                        et.wait_for(lambda: third["serial"] in loop.seen(), 20, "generation 3 served")
                        # And the IPv6 identifier, without SNI, serves the newest too.
                        ctx = et.tls_client_context(cafile=root)
                        ctx.check_hostname = False
                        tls, _ = et.connect_tls("::1", port, ctx, None)
                        with tls:
                            self.assertEqual(et.leaf_facts(tls.getpeercert(binary_form=True))[0], third["serial"])
                    log = edged.output().decode(errors="replace")

                self.assertEqual(loop.failures, [], "handshakes failed during renewals")
                self.assertGreater(loop.count, 100)
                # Generation by generation, in order: each new one served new handshakes.
                seen = loop.seen()
                self.assertEqual(seen[seen.index(first["serial"]):][:3],
                                 [first["serial"], second["serial"], third["serial"]])

                show = store.show("main")
                self.assertGreaterEqual(len(show["history"]), 3)
                history = {h["generation"]: h for h in show["history"]}
                # Never let a certificate expire: each was replaced before its not_after.
                for g in (1, 2):
                    self.assertLess(history[g + 1]["not_before"], history[g]["not_after"])
                self.assertEqual(show["state"], "valid")
                self.assertIn("lifetime rule: half of the", show["renewal_reason"])
                self.assertIsNotNone(show["next_renewal"])
                # The renewals were the scheduler's own (no operator request).
                self.assertGreaterEqual(log.count("issuing certificate: lifetime rule"), 2, log)
                self.assertNotIn("renewal requested", log)
                self.assertNotIn("issuance failed", log)
                # The store recorded no failed handshake for the certificate.
                failed = store.query("SELECT COUNT(*) FROM handshakes WHERE cert_name = 'main' "
                                     "AND outcome NOT IN ('ok', 'acme_challenge')")[0][0]
                self.assertEqual(failed, 0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

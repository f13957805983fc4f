#!/usr/bin/env python3
"""Fault tests of the ACME client through a real edged and a real Pebble:

- badNonce: Pebble rejects half of all good nonces (PEBBLE_WFE_NONCEREJECT=50);
  edged still gets its certificate (every request retried with the fresh nonce).
- CA unreachable: the last good certificate keeps serving (no failed
  handshake); attempts back off about 1 min, 10 min, 100 min, then daily, with
  jitter; state, last error and next attempt are in the store, in
  `edgectl certs` (+ --json) and `edgectl cert show`, and survive a restart;
  when the CA is back, the next attempt succeeds (and finds that the CA forgot
  the account).
- Problem documents: a failed validation's problem document reaches edged's
  log and `edgectl cert show` verbatim.

(429/503 with Retry-After and subproblems are what Pebble 2.4 cannot send:
unit tests with recorded answers cover them, tests/acme/engine_test.cpp.)

Usage: test_acme_faults.py --edged PATH --edgectl PATH"""

import argparse
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import acmetest as at  # noqa: E402
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402

ARGS = None

MAIN = '{name: main, identifiers: [edge.test, 127.0.0.1, "::1"]}'


def rfc3339(text):
    import datetime
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


class BadNonce(unittest.TestCase):
    def test_issuance_succeeds_when_half_of_all_nonces_are_rejected(self):
        with at.Workdir("edge-acme-badnonce-") as d:
            port = et.free_port()
            with Pebble(tls_port=port, nonce_reject=50) as pebble:
                config = os.path.join(d, "edge.yaml")
                with open(config, "w") as f:
                    f.write(at.edged_config(port, [pebble], [MAIN]))
                store = at.Store(ARGS.edgectl, os.path.join(d, "edge.db"))
                with et.Edged(ARGS.edged, config, d) as edged:
                    first = store.wait_generation("main", 1, 90)
                    # And a renewal through the same rejecting CA.
                    et.edgectl(ARGS.edgectl, store.path, "renew", "main", "--wait", "90", timeout=120)
                    second = store.cert("main")
                    log = edged.output().decode(errors="replace")
                self.assertEqual(second["generation"], 2)
                self.assertNotEqual(second["serial"], first["serial"])
                retries = [int(line.split("(")[-1].split()[0]) for line in log.splitlines()
                           if "badNonce retries)" in line]
                self.assertEqual(len(retries), 2, log)
                self.assertGreater(sum(retries), 0, "Pebble rejected no nonce? " + log)
                self.assertNotIn("issuance failed", log)


class CaOutage(unittest.TestCase):
    def test_last_good_certificate_keeps_serving_and_retries_back_off(self):
        with at.Workdir("edge-acme-outage-") as d:
            port = et.free_port()
            with Pebble(tls_port=port) as pebble:
                config = os.path.join(d, "edge.yaml")
                with open(config, "w") as f:
                    f.write(at.edged_config(port, [pebble], [MAIN, "{name: probe, identifiers: [probe.edge.test]}"]))
                root = os.path.join(d, "root.pem")
                with open(root, "w") as f:
                    f.write(pebble.root_pem())
                store = at.Store(ARGS.edgectl, os.path.join(d, "edge.db"))
                edged = et.Edged(ARGS.edged, config, d).__enter__()
                try:
                    first = store.wait_generation("main", 1, 60)
                    store.wait_generation("probe", 1, 60)
                    with at.HandshakeLoop(port, root) as loop:
                        pebble.stop_servers()  # the CA goes away
                        # Four attempts (forced: the backoff itself would make
                        # us wait 1 min + 10 min + ...); each failure sets the
                        # next step of the schedule.
                        expected = [(60, 1), (600, 2), (6000, 3), (86400, 4)]
                        for gap, failures in expected:
                            et.edgectl(ARGS.edgectl, store.path, "renew", "main")
                            state = et.wait_for(
                                lambda: (c := store.cert("main")) and c["failures"] == failures
                                and c["state"] == "retrying" and c, 30, f"failure {failures}")
                            delta = rfc3339(state["next_attempt"]) - rfc3339(state["last_attempt"])
                            self.assertGreaterEqual(delta, gap * 0.9 - 1, state)
                            self.assertLessEqual(delta, gap * 1.1 + 1, state)
                            self.assertIn("urn:edge:error:transport", state["last_error"])
                            self.assertIn("Couldn't connect to server", state["last_error"])
                        # The old certificate is still what clients get.
                        et.wait_for(lambda: loop.count > 20, 20, "handshakes during the outage")
                        self.assertEqual(loop.seen(), [first["serial"]])
                        table = et.edgectl(ARGS.edgectl, store.path, "certs").stdout.decode()
                        self.assertIn("retrying", table)
                        self.assertIn("retry " + state["next_attempt"], table)
                        self.assertIn("main: last error: ", table)
                        show = store.show_text("main")
                        self.assertIn("state:             retrying (4 failed attempts)", show)
                        self.assertIn("next attempt:      " + state["next_attempt"], show)
                        self.assertIn("Couldn't connect to server", show)
                        self.assertEqual(store.show("main")["serial"], first["serial"])

                    # A restart keeps the backoff: no attempt before next_attempt.
                    edged.stop()
                    edged.log.close()
                    edged = et.Edged(ARGS.edged, config, d).__enter__()
                    before = store.cert("main")
                    # A forced attempt of another certificate proves the
                    # scheduler has looked at everything since the restart.
                    probe_failures = store.cert("probe")["failures"]
                    et.edgectl(ARGS.edgectl, store.path, "renew", "probe")
                    et.wait_for(lambda: store.cert("probe")["failures"] == probe_failures + 1, 30, "probe attempt")
                    after = store.cert("main")
                    for key in ("failures", "last_attempt", "next_attempt", "last_error", "state"):
                        self.assertEqual(after[key], before[key], key)

                    # The CA is back (a new Pebble on the same address, which
                    # forgot our account): the next attempt succeeds.
                    pebble.restart_servers()
                    with open(root, "w") as f:
                        f.write(pebble.root_pem())
                    et.edgectl(ARGS.edgectl, store.path, "renew", "main", "--wait", "60", timeout=90)
                    # The state follows the stored certificate within a scheduler tick.
                    renewed = et.wait_for(lambda: (c := store.cert("main")) and c["state"] == "valid" and c,
                                          10, "state valid")
                    self.assertEqual(renewed["generation"], 2)
                    self.assertEqual(renewed["state"], "valid")
                    self.assertEqual(renewed["failures"], 0)
                    self.assertEqual(renewed["last_error"], "")
                    self.assertIsNone(renewed["next_attempt"])
                    ctx = et.tls_client_context(cafile=root)
                    tls, _ = et.connect_tls("127.0.0.1", port, ctx, "edge.test")
                    with tls:
                        self.assertEqual(et.leaf_facts(tls.getpeercert(binary_form=True))[0], renewed["serial"])
                    log = edged.output().decode(errors="replace")
                    self.assertIn("unknown to the server; registering a new one", log)
                finally:
                    edged.__exit__(None, None, None)
                self.assertEqual(loop.failures, [])
                failed = store.query("SELECT COUNT(*) FROM handshakes WHERE cert_name = 'main' "
                                     "AND outcome NOT IN ('ok', 'acme_challenge')")[0][0]
                self.assertEqual(failed, 0)


class ProblemDocuments(unittest.TestCase):
    def test_failed_validation_problem_reaches_log_and_cert_show_verbatim(self):
        with at.Workdir("edge-acme-problem-") as d:
            port = et.free_port()
            with Pebble(tls_port=port) as pebble:
                # Pebble validates unreachable.edge.test at 127.0.0.2, where
                # edged does not listen: connection refused (Pebble 2.4 reports it as "unauthorized").
                pebble.add_a("unreachable.edge.test", ["127.0.0.2"])
                config = os.path.join(d, "edge.yaml")
                with open(config, "w") as f:
                    f.write(at.edged_config(port, [pebble], [MAIN, "{name: broken, identifiers: [unreachable.edge.test]}"],
                                            listen_v6=True))
                store = at.Store(ARGS.edgectl, os.path.join(d, "edge.db"))
                with et.Edged(ARGS.edged, config, d) as edged:
                    state = et.wait_for(lambda: (c := store.show("broken")) and c["state"] == "retrying" and c,
                                        60, "the failed attempt")
                    store.wait_generation("main", 1, 60)  # the other certificate is not held up
                    log = edged.output().decode(errors="replace")
                problem = json.loads(state["last_problem"])
                self.assertEqual(problem["type"], "urn:ietf:params:acme:error:unauthorized")  # Pebble 2.4 says so
                self.assertIn("Failed to connect", problem["detail"])
                self.assertIn("127.0.0.2", problem["detail"])
                # Verbatim in the log (one line) and in cert show.
                self.assertIn("problem document: " + state["last_problem"], log)
                show = store.show_text("broken")
                self.assertIn("problem document:\n" + state["last_problem"] + "\n", show)
                self.assertNotIn("broken", store.certs())  # no certificate: not in `certs --json`
                table = et.edgectl(ARGS.edgectl, store.path, "certs").stdout.decode()
                self.assertIn("broken: no certificate yet, retrying, next: retry ", table)
                self.assertIn("unreachable.edge.test", state["last_error"])
                self.assertEqual(store.show("broken")["orders"][0]["problem"], state["last_problem"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

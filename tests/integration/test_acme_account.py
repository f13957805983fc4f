#!/usr/bin/env python3
"""Acceptance 2 of the production-grade ACME client, against a real Pebble
through a real edged:

- External Account Binding with Pebble's EAB example keys (kid-1/kid-2):
  issuance works with the binding, is refused without it or with a wrong key.
- Revocation with `edgectl revoke NAME --reason keyCompromise`, checked through
  Pebble's management API (/cert-status-by-serial/): Revoked, reason 1; a
  replacement is issued and served at once.
- Account key rollover (`edgectl account key-rollover`, keyChange): Pebble
  refuses the old key and accepts the new one (checked with requests signed
  independently of edged, with the openssl CLI); issuance goes on.
- onlyReturnExisting: a store whose account URL was lost finds its account
  again instead of registering a new one.
- Deactivation (`edgectl account deactivate`): Pebble reports the account
  deactivated; the next order registers a new account.

Usage: test_acme_account.py --edged PATH --edgectl PATH"""

import argparse
import json
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import acmetest as at  # noqa: E402
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402

ARGS = None

# Pebble's example configuration pebble-config-external-account-bindings.json.
EAB_KEYS = {
    "kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
    "kid-2": "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH",
}
MAIN = '{name: main, identifiers: [edge.test, 127.0.0.1, "::1"]}'


def write_config(d, port, issuers, certificates=(MAIN,)):
    path = os.path.join(d, "edge.yaml")
    with open(path, "w") as f:
        f.write(at.edged_config(port, issuers, list(certificates)))
    return path


def account_row(store):
    rows = store.query("SELECT account_url, key_pem, status FROM acme_accounts")
    assert len(rows) == 1, rows
    return rows[0]


class ExternalAccountBinding(unittest.TestCase):
    def run_edged(self, d, port, pebble, eab):
        issuer = {"directory": pebble.directory_url, "ca_bundle": pebble.ca_bundle}
        if eab:
            issuer["eab"] = eab
        # Two issuers' form with a single entry: eab belongs to an issuer.
        config = write_config(d, port, [issuer])
        return at.Store(ARGS.edgectl, os.path.join(d, "edge.db")), config

    def test_binding_with_pebbles_example_keys(self):
        with at.Workdir("edge-acme-eab-") as d:
            port = et.free_port()
            with Pebble(tls_port=port, eab_keys=EAB_KEYS) as pebble:
                for sub, eab in (("good", ("kid-1", EAB_KEYS["kid-1"])), ("none", None),
                                 ("wrong", ("kid-2", EAB_KEYS["kid-1"]))):
                    wd = os.path.join(d, sub)
                    os.mkdir(wd)
                    store, config = self.run_edged(wd, port, pebble, eab)
                    with et.Edged(ARGS.edged, config, wd) as edged:
                        if sub == "good":
                            cert = store.wait_generation("main", 1, 60)
                            self.assertEqual(cert["state"], "valid")
                            url, key_pem, status = account_row(store)
                            self.assertEqual(status, "valid")
                            # The account exists at Pebble and is bound.
                            probe = at.AcmeProbe(pebble, wd)
                            code, account = probe.account(key_pem, url)
                            self.assertEqual(code, 200, account)
                            self.assertEqual(account["status"], "valid")
                        else:
                            state = et.wait_for(lambda: (c := store.show("main")) and c["state"] == "retrying" and c,
                                                30, f"the refused registration ({sub})")
                            self.assertIsNone(state.get("serial"))
                        log = edged.output().decode(errors="replace")
                    # The MAC key is a secret: never in the log.
                    self.assertNotIn(EAB_KEYS["kid-1"], log)
                    if sub == "good":
                        self.assertIn("external account binding, key id kid-1", log)
                    elif sub == "none":
                        self.assertIn("urn:ietf:params:acme:error:externalAccountRequired", state["last_error"])
                    else:
                        # Pebble's own verdict, verbatim.
                        problem = json.loads(state["last_problem"])
                        self.assertTrue(problem["type"].startswith("urn:ietf:params:acme:error:"), problem)
                        self.assertIn("external account binding", problem["detail"].lower())


class AccountLifecycle(unittest.TestCase):
    def test_revoke_rollover_only_return_existing_and_deactivate(self):
        with at.Workdir("edge-acme-account-") as d:
            port = et.free_port()
            with Pebble(tls_port=port) as pebble:
                config = write_config(d, port, [pebble])
                store = at.Store(ARGS.edgectl, os.path.join(d, "edge.db"))
                probe = at.AcmeProbe(pebble, d)
                root = os.path.join(d, "root.pem")
                with open(root, "w") as f:
                    f.write(pebble.root_pem())

                def served_serial():
                    tls, _ = et.connect_tls("127.0.0.1", port, et.tls_client_context(cafile=root), "edge.test")
                    with tls:
                        return et.leaf_facts(tls.getpeercert(binary_form=True))[0]

                def status_at_pebble(serial):
                    return json.loads(pebble._get(f"{pebble.management_url}/cert-status-by-serial/{serial.lower()}"))

                edged = et.Edged(ARGS.edged, config, d).__enter__()
                try:
                    first = store.wait_generation("main", 1, 60)
                    self.assertEqual(status_at_pebble(first["serial"])["Status"], "Valid")

                    # --- revocation --------------------------------------------
                    out = et.edgectl(ARGS.edgectl, store.path, "revoke", "main", "--reason", "keyCompromise").stdout.decode()
                    self.assertIn("revoke done: revoked serial " + first["serial"], out)
                    status = status_at_pebble(first["serial"])
                    self.assertEqual(status["Status"], "Revoked")
                    self.assertEqual(status["Reason"], 1)  # keyCompromise
                    second = store.wait_generation("main", 2, 30)  # replaced at once
                    et.wait_for(lambda: served_serial() == second["serial"], 20, "the replacement served")
                    self.assertEqual(status_at_pebble(second["serial"])["Status"], "Valid")
                    bad = et.edgectl(ARGS.edgectl, store.path, "revoke", "main", "--reason", "certificateHold", check=False)
                    self.assertNotEqual(bad.returncode, 0)  # not a reason ACME takes

                    # --- key rollover --------------------------------------------
                    url, old_key, _ = account_row(store)
                    out = et.edgectl(ARGS.edgectl, store.path, "account", "key-rollover").stdout.decode()
                    self.assertIn("key-rollover done: rolled the account key of " + url, out)
                    url_after, new_key, _ = account_row(store)
                    self.assertEqual(url_after, url)
                    self.assertNotEqual(new_key, old_key)
                    code, _ = probe.account(old_key, url)
                    self.assertNotEqual(code, 200, "Pebble still accepts the old key")
                    code, account = probe.account(new_key, url)
                    self.assertEqual(code, 200, account)
                    self.assertEqual(account["status"], "valid")
                    et.edgectl(ARGS.edgectl, store.path, "renew", "main", "--wait", "30", timeout=60)
                    self.assertEqual(store.generation("main"), 3)

                    # --- onlyReturnExisting ----------------------------------------
                    edged.stop()
                    edged.log.close()
                    with sqlite3.connect(store.path) as db:
                        db.execute("UPDATE acme_accounts SET account_url = ?", (url.rsplit("/", 1)[0] + "/lost",))
                    edged = et.Edged(ARGS.edged, config, d).__enter__()
                    et.edgectl(ARGS.edgectl, store.path, "renew", "main", "--wait", "30", timeout=60)
                    self.assertEqual(store.generation("main"), 4)
                    self.assertEqual(account_row(store)[0], url)  # found again, not a new account
                    self.assertIn("found with onlyReturnExisting: " + url, edged.output().decode(errors="replace"))

                    # --- deactivation ---------------------------------------------
                    out = et.edgectl(ARGS.edgectl, store.path, "account", "deactivate").stdout.decode()
                    self.assertIn("deactivate-account done: deactivated " + url, out)
                    self.assertEqual(account_row(store)[2], "deactivated")
                    code, answer = probe.account(new_key, url)
                    self.assertNotEqual(code, 200)
                    self.assertIn("deactivated", json.dumps(answer).lower())
                    et.edgectl(ARGS.edgectl, store.path, "renew", "main", "--wait", "30", timeout=60)
                    new_url, newest_key, status = account_row(store)
                    self.assertNotEqual(new_url, url)
                    self.assertEqual(status, "valid")
                    self.assertEqual(probe.account(newest_key, new_url)[1]["status"], "valid")
                    self.assertEqual(store.generation("main"), 5)
                    log = edged.output().decode(errors="replace")
                finally:
                    edged.__exit__(None, None, None)
                self.assertNotIn("issuance failed", log)
                self.assertNotIn("BEGIN PRIVATE KEY", log)
                self.assertNotIn('"protected"', log)  # no JWS body
                self.assertNotIn('"signature"', log)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

#!/usr/bin/env python3
"""Issuance options of the production-grade ACME client, against real Pebbles
through a real edged:

- key types per certificate (ecdsa-p256, ecdsa-p384, rsa-2048) and reuse_key
  on renewal; the three certificates are ordered concurrently;
- alternate chains (PEBBLE_ALTERNATE_ROOTS) and preferred_chain;
- several issuers: when the first directory is unreachable the next one issues
  in the same attempt; once it is back, the first is used again.

(ARI and profiles are what Pebble 2.4 lacks: tests/acme/client_test.cpp and
engine_test.cpp cover them with recorded answers.)

Usage: test_acme_issuance.py --edged PATH --edgectl PATH"""

import argparse
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import acmetest as at  # noqa: E402
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402

ARGS = None


def public_key_text(chain_or_cert_pem):
    return et.run(["openssl", "x509", "-noout", "-pubkey"], input=chain_or_cert_pem.encode()).stdout


def key_description(cert_pem):
    text = et.run(["openssl", "x509", "-noout", "-text"], input=cert_pem.encode()).stdout.decode()
    return text


def served_chain(port, servername, root):
    """openssl s_client's view: (verified?, PEM chain as sent)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", servername,
                          "-CAfile", root, "-verify_return_error", "-showcerts"],
                         input=b"", capture_output=True, timeout=20)
    return out.returncode == 0, out.stdout.decode(errors="replace")


def current_row(store, name):
    rows = store.query("SELECT chain_pem, private_key_pem, generation FROM certificates "
                       "WHERE name = ? AND is_current = 1", (name,))
    return rows[0]


class KeyTypes(unittest.TestCase):
    def test_key_types_reuse_key_and_concurrent_orders(self):
        with at.Workdir("edge-acme-keys-") as d:
            port = et.free_port()
            with Pebble(tls_port=port) as pebble:
                config = os.path.join(d, "edge.yaml")
                with open(config, "w") as f:
                    f.write(at.edged_config(port, [pebble], [
                        "{name: p256, identifiers: [edge.test]}",
                        "{name: p384, identifiers: [p384.edge.test], key_type: ecdsa-p384}",
                        "{name: rsa, identifiers: [rsa.edge.test], key_type: rsa-2048, reuse_key: true}",
                    ]))
                store = at.Store(ARGS.edgectl, os.path.join(d, "edge.db"))
                with et.Edged(ARGS.edged, config, d) as edged:
                    for name in ("p256", "p384", "rsa"):
                        store.wait_generation(name, 1, 90)
                    log = edged.output().decode(errors="replace").splitlines()
                    # Concurrent: all three orders started before the first finished.
                    started = [i for i, line in enumerate(log) if "issuing certificate: no certificate" in line]
                    finished = [i for i, line in enumerate(log) if "certificate issued" in line]
                    self.assertEqual(len(started), 3, log)
                    self.assertLess(max(started), min(finished), "\n".join(log))

                    described = {name: key_description(current_row(store, name)[0]) for name in ("p256", "p384", "rsa")}
                    self.assertIn("prime256v1", described["p256"])
                    self.assertIn("secp384r1", described["p384"])
                    self.assertIn("Public-Key: (2048 bit)", described["rsa"])
                    self.assertIn("rsaEncryption", described["rsa"])

                    before = {name: current_row(store, name) for name in ("p256", "rsa")}
                    for name in ("p256", "rsa"):
                        et.edgectl(ARGS.edgectl, store.path, "renew", name, "--wait", "60", timeout=90)
                    after = {name: current_row(store, name) for name in ("p256", "rsa")}
                    # reuse_key: true keeps the key; the default makes a new one.
                    self.assertEqual(after["rsa"][2], 2)
                    self.assertEqual(after["rsa"][1], before["rsa"][1])
                    self.assertEqual(public_key_text(after["rsa"][0]), public_key_text(before["rsa"][0]))
                    self.assertNotEqual(after["p256"][1], before["p256"][1])
                    self.assertNotEqual(public_key_text(after["p256"][0]), public_key_text(before["p256"][0]))
                    # Each served by SNI with its own key type.
                    root = os.path.join(d, "root.pem")
                    with open(root, "w") as f:
                        f.write(pebble.root_pem())
                    for name, sni, marker in (("p384", "p384.edge.test", "secp384r1"),
                                              ("rsa", "rsa.edge.test", "rsaEncryption")):
                        ok, text = served_chain(port, sni, root)
                        self.assertTrue(ok, text)
                        leaf = text[text.index("-----BEGIN CERTIFICATE-----"):text.index("-----END CERTIFICATE-----") + 25]
                        self.assertIn(marker, key_description(leaf))


class AlternateChains(unittest.TestCase):
    def test_preferred_chain_selects_an_alternate_root(self):
        with at.Workdir("edge-acme-chains-") as d:
            port = et.free_port()
            with Pebble(tls_port=port, extra_env={"PEBBLE_ALTERNATE_ROOTS": "2"}) as pebble:
                roots = [pebble.root_pem(i) for i in range(3)]
                cns = [et.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "multiline"],
                              input=r.encode()).stdout.decode().split("commonName", 1)[1].split("=", 1)[1].strip()
                       for r in roots]
                self.assertEqual(len(set(cns)), 3, cns)
                config = os.path.join(d, "edge.yaml")
                with open(config, "w") as f:
                    f.write(at.edged_config(port, [pebble], [
                        "{name: default, identifiers: [edge.test]}",
                        f'{{name: alternate, identifiers: [alt.edge.test], preferred_chain: "{cns[2]}"}}',
                        '{name: nomatch, identifiers: [nomatch.edge.test], preferred_chain: "No Such Root"}',
                    ]))
                store = at.Store(ARGS.edgectl, os.path.join(d, "edge.db"))
                with et.Edged(ARGS.edged, config, d) as edged:
                    for name in ("default", "alternate", "nomatch"):
                        store.wait_generation(name, 1, 90)
                    log = edged.output().decode(errors="replace")
                    tops = {}
                    for name in ("default", "alternate", "nomatch"):
                        chain = store.show(name)["chain"]
                        tops[name] = chain[-1]["issuer"]
                    self.assertEqual(tops["default"], "CN=" + cns[0])
                    self.assertEqual(tops["alternate"], "CN=" + cns[2])
                    self.assertEqual(tops["nomatch"], "CN=" + cns[0])
                    self.assertIn("using alternate chain", log)
                    self.assertIn('no chain names issuer "No Such Root"', log)
                    # What clients get verifies up to the preferred root only.
                    for index, ok_expected in ((2, True), (0, False)):
                        root = os.path.join(d, f"root{index}.pem")
                        with open(root, "w") as f:
                            f.write(roots[index])
                        ok, text = served_chain(port, "alt.edge.test", root)
                        self.assertEqual(ok, ok_expected, text[-400:])


class IssuerFallback(unittest.TestCase):
    def test_next_issuer_when_the_first_is_unreachable(self):
        with at.Workdir("edge-acme-issuers-") as d:
            port = et.free_port()
            with Pebble(tls_port=port) as first, Pebble(tls_port=port) as second:
                config = os.path.join(d, "edge.yaml")
                with open(config, "w") as f:
                    f.write(at.edged_config(port, [first, second], ['{name: main, identifiers: [edge.test, 127.0.0.1]}']))
                store = at.Store(ARGS.edgectl, os.path.join(d, "edge.db"))
                first.stop_servers()  # the primary CA is down from the start
                with et.Edged(ARGS.edged, config, d) as edged:
                    cert = store.wait_generation("main", 1, 60)
                    self.assertEqual(cert["issuer_directory"], second.directory_url)
                    self.assertEqual(cert["failures"], 0)  # one attempt, two issuers
                    root2 = os.path.join(d, "root2.pem")
                    with open(root2, "w") as f:
                        f.write(second.root_pem())
                    ok, text = served_chain(port, "edge.test", root2)
                    self.assertTrue(ok, text[-400:])
                    log = edged.output().decode(errors="replace")
                    self.assertIn(f"issuer {first.directory_url} failed", log)
                    self.assertIn("trying the next issuer", log)

                    first.restart_servers()  # back: the primary is asked first again
                    et.edgectl(ARGS.edgectl, store.path, "renew", "main", "--wait", "60", timeout=90)
                    renewed = store.wait_generation("main", 2, 10)
                    self.assertEqual(renewed["issuer_directory"], first.directory_url)
                    root1 = os.path.join(d, "root1.pem")
                    with open(root1, "w") as f:
                        f.write(first.root_pem())
                    ok, text = served_chain(port, "edge.test", root1)
                    self.assertTrue(ok, text[-400:])
                    orders = store.show("main")["orders"]
                    self.assertEqual([o["directory"] for o in orders[:2]], [first.directory_url, second.directory_url])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

#!/usr/bin/env python3
"""kill -9 of edged under load and during writes (issue 7). Twelve rounds:
edged starts (importing a manual certificate that changed since the last
round: a certificate write), client threads make handshakes continuously (a
stream of handshake-record writes), and edged is killed with SIGKILL at a
random moment, sometimes during start-up. After every kill the SQLite file
passes PRAGMA integrity_check, every certificate row's key matches its
certificate, one certificate per name is current, and every stored handshake
record is whole JSON. At the end a restarted edged serves the last imported
certificate and every handshake succeeds.

Usage: test_kill9_under_load.py --edged PATH --edgectl PATH"""

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None
ROUNDS = 12


class Load:
    """Client threads making full handshakes until stopped; failures while
    edged is down are expected and only counted."""

    def __init__(self, port, ctx, threads=3):
        self.port, self.ctx = port, ctx
        self.ok = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=15)

    def run(self):
        while not self.stopping.is_set():
            try:
                s, _ = et.connect_tls("127.0.0.1", self.port, self.ctx, "edge.test", timeout=2)
                s.close()
                self.ok += 1
            except OSError:
                time.sleep(0.01)


def query(store, sql):
    # Read-write, as the next edged would open it: after a kill the WAL index
    # is rebuilt by the first connection, which a read-only one cannot do.
    with contextlib.closing(sqlite3.connect(store, timeout=10)) as db:
        return db.execute(sql).fetchall()


class KillUnderLoad(unittest.TestCase):
    def check_store(self, store):
        self.assertEqual(query(store, "PRAGMA integrity_check"), [("ok",)])
        tables = {name for (name,) in query(store, "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "certificates" not in tables:  # killed before the schema was made (one transaction)
            self.assertNotIn("handshakes", tables)
            return
        for name, generation, chain_pem, key_pem in query(
                store, "SELECT name, generation, chain_pem, private_key_pem FROM certificates"):
            self.assertTrue(et.key_matches(chain_pem, key_pem), f"{name} generation {generation}: key does not match")
        self.assertEqual(query(
            store, "SELECT name FROM certificates WHERE is_current = 1 GROUP BY name HAVING COUNT(*) > 1"), [])
        for (text,) in query(store, "SELECT json FROM handshakes WHERE json != ''"):
            json.loads(text)

    def test_kill9_under_load(self):
        rng = random.Random(7)
        with tempfile.TemporaryDirectory(prefix="edge-kill9-") as d:
            ca = pki.CertificateAuthority(d, "kill9-ca")
            certs = [ca.issue(f"main{i}", "edge.test", ["DNS:edge.test"]) for i in range(2)]
            port = et.free_port()
            store = os.path.join(d, "edge.db")
            config = os.path.join(d, "edge.yaml")
            ctx = et.tls_client_context(cafile=ca.cert)
            log = open(os.path.join(d, "edged.stderr"), "ab")
            kills_during_start = 0
            with Load(port, ctx) as load:
                for round_ in range(ROUNDS):
                    cert, key = certs[round_ % 2]
                    with open(config, "w") as f:
                        f.write(f"""store: {{path: {store}}}
proxy:
  listen: ["127.0.0.1:{port}"]
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
handshake_log:
  file: ./handshakes.jsonl
""")
                    before = load.ok
                    edged = subprocess.Popen([ARGS.edged, "--config", config], stdout=log, stderr=log, cwd=d)
                    try:
                        # Every third round dies during start-up (the import), the others under load.
                        time.sleep(rng.uniform(0.0, 0.15) if round_ % 3 == 0 else rng.uniform(0.6, 1.6))
                        served = load.ok - before
                        kills_during_start += served == 0
                    finally:
                        edged.send_signal(signal.SIGKILL)
                        edged.wait(timeout=10)
                    if os.path.exists(store):
                        self.check_store(store)
            self.assertGreater(load.ok, 0)
            # A clean start after the last kill: the last configured certificate, every handshake good.
            with et.Edged(ARGS.edged, config, d):
                for _ in range(20):
                    s, _ = et.connect_tls("127.0.0.1", port, ctx, "edge.test")
                    with s:
                        served_serial = et.leaf_facts(s.getpeercert(binary_form=True))[0]
                last_cert = certs[(ROUNDS - 1) % 2][0]
                expected = et.run(["openssl", "x509", "-noout", "-serial", "-in", last_cert]).stdout.decode()
                self.assertEqual(served_serial.upper(), expected.strip().split("=")[1].upper())
            self.check_store(store)
            log.close()
            print(f"\n{ROUNDS} kills, {kills_during_start} before any handshake was served; "
                  f"{load.ok} handshakes served in all", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

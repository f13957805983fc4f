#!/usr/bin/env python3
"""edgectl in full (issue 8, acceptance 4): live (admin URL or socket, with
the token) and offline (the SQLite file, read-only, while edged runs) give
the same answers for certs --json and cert show --json; check's exit codes
(Nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) with manual test
certificates near expiry and a failing renewal; import, status, version,
handshakes filters, --summary and --follow; --help everywhere; errors say
what to do.

Usage: test_edgectl.py --edged PATH --edgectl PATH"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admintest as at  # noqa: E402
import edgetest as et  # noqa: E402

ARGS = None


def read(path):
    with open(path) as f:
        return f.read()


class Edgectl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="edge-ctl-")
        cls.edge = at.AdminEdge(ARGS.edged, cls.tmp.name).__enter__()
        cls.token_file = os.path.join(cls.tmp.name, "admin.token")
        cls.live_args = ["--admin", f"http://127.0.0.1:{cls.edge.admin_port}", "--token-file", cls.token_file]
        cls.socket_args = ["--admin", "unix:" + cls.edge.socket, "--token-file", cls.token_file]
        cls.offline_args = ["--store", cls.edge.store]

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)
        cls.tmp.cleanup()

    def ctl(self, *args, check=True):
        result = et.run([ARGS.edgectl, *args], check=False, timeout=60)
        if check:
            self.assertEqual(result.returncode, 0, result.stdout.decode() + result.stderr.decode())
        return result

    def settled(self):
        """Waits until the handshakes made so far are counted in the store."""
        def stable():
            first = self.ctl(*self.offline_args, "certs", "--json").stdout
            time.sleep(0.3)  # two readings 300 ms apart, beyond the log's 100 ms batches
            return first == self.ctl(*self.offline_args, "certs", "--json").stdout
        et.wait_for(stable, 10, "the handshake counters to settle")

    def import_certificate(self, days):
        pem, key = self.edge.ca.issue(f"near-{days}", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"], days=days)
        self.ctl(*self.live_args, "import", "main", "--cert", pem, "--key", key)

    def check_code(self, *extra):
        """check's exit code, live over TCP, live over the socket, and offline: always the same."""
        codes = {mode: self.ctl(*args, "check", *extra, check=False).returncode
                 for mode, args in (("live", self.live_args), ("socket", self.socket_args),
                                    ("offline", self.offline_args))}
        self.assertEqual(len(set(codes.values())), 1, codes)
        return codes["live"]

    def test_1_live_and_offline_certs_json_are_identical(self):
        for _ in range(3):
            self.edge.handshake()
        self.edge.plain_http_failure()
        self.settled()
        live = self.ctl(*self.live_args, "certs", "--json").stdout
        socket_live = self.ctl(*self.socket_args, "certs", "--json").stdout
        offline = self.ctl(*self.offline_args, "certs", "--json").stdout
        self.assertEqual(live, offline)
        self.assertEqual(socket_live, offline)
        certs = json.loads(live)
        self.assertEqual(certs[0]["name"], "main")
        self.assertGreaterEqual(certs[0]["handshakes"]["ok"], 3)
        self.assertEqual(self.ctl(*self.live_args, "cert", "show", "main", "--json").stdout,
                         self.ctl(*self.offline_args, "cert", "show", "main", "--json").stdout)
        table_live = self.ctl(*self.live_args, "certs").stdout.decode()
        table_offline = self.ctl(*self.offline_args, "certs").stdout.decode()
        self.assertEqual(table_live, table_offline)
        self.assertNotIn("\033[", table_live, "no colour when not on a terminal")

    def test_2_check_exit_codes_follow_expiry_and_renewal_state(self):
        # The test CA's first certificate has 30 days: OK with the defaults (21/7).
        self.assertEqual(self.check_code(), 0)
        self.assertEqual(self.check_code("--warn", "40", "--crit", "7"), 1)
        self.assertEqual(self.check_code("--warn", "60", "--crit", "40"), 2)
        out = self.ctl(*self.live_args, "check", "--warn", "40", check=False).stdout.decode()
        self.assertTrue(out.startswith("EDGE CERTIFICATES WARNING: main expires in "), out)
        self.assertIn("| 'main'=", out)

        # A failing renewal is a WARNING even with plenty of time left.
        with sqlite3.connect(self.edge.store, timeout=10) as db:
            db.execute("INSERT INTO renewal_state (name, status, failures, last_error, updated_at) "
                       "VALUES ('main', 'retrying', 3, 'connection refused', strftime('%s','now'))")
        try:
            self.assertEqual(self.check_code(), 1)
            out = self.ctl(*self.offline_args, "check", check=False).stdout.decode()
            self.assertIn("renewal failing (3 attempts): connection refused", out)
            verdict = json.loads(self.ctl(*self.live_args, "check", "--json", check=False).stdout)
            self.assertEqual(verdict["status"], "WARNING")
        finally:
            with sqlite3.connect(self.edge.store, timeout=10) as db:
                db.execute("DELETE FROM renewal_state WHERE name = 'main'")

        # A configured certificate never issued (first issuance failing) is CRITICAL.
        with sqlite3.connect(self.edge.store, timeout=10) as db:
            db.execute("INSERT INTO renewal_state (name, status, failures, last_error, updated_at) "
                       "VALUES ('second', 'retrying', 1, 'rateLimited', strftime('%s','now'))")
        try:
            self.assertEqual(self.check_code(), 2)
            out = self.ctl(*self.live_args, "check", check=False).stdout.decode()
            self.assertIn("CRITICAL: second has no certificate yet (retrying, 1 failed attempts): rateLimited", out)
            status = json.loads(self.ctl(*self.offline_args, "status", "--json").stdout)
            self.assertEqual([p["name"] for p in status["pending"]], ["second"])
        finally:
            with sqlite3.connect(self.edge.store, timeout=10) as db:
                db.execute("DELETE FROM renewal_state WHERE name = 'second'")

        self.import_certificate(10)
        self.assertEqual(self.check_code(), 1)
        self.import_certificate(2)
        self.assertEqual(self.check_code(), 2)
        out = self.ctl(*self.offline_args, "check", check=False).stdout.decode()
        self.assertTrue(out.startswith("EDGE CERTIFICATES CRITICAL: main expires in "), out)
        self.assertEqual(self.check_code("--warn", "1", "--crit", "0"), 0)

        # UNKNOWN when there is nothing to ask.
        unreachable = self.ctl("--admin", "http://127.0.0.1:1", "check", check=False)
        self.assertEqual(unreachable.returncode, 3)
        self.assertIn("cannot reach edged's admin API", unreachable.stdout.decode())
        missing = self.ctl("--store", os.path.join(self.tmp.name, "absent.db"), "check", check=False)
        self.assertEqual(missing.returncode, 3)

    def test_3_import_live_is_served_offline_is_stored(self):
        pem, key = self.edge.ca.issue("live-import", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"], days=25)
        out = json.loads(self.ctl(*self.socket_args, "import", "main", "--cert", pem, "--key", key, "--json").stdout)
        self.assertTrue(out["served"])
        self.assertEqual(self.edge.handshake(), out["serial"])

        pem2, key2 = self.edge.ca.issue("offline-import", "edge.test", ["DNS:edge.test"], days=25)
        result = self.ctl(*self.offline_args, "import", "main", "--cert", pem2, "--key", key2)
        self.assertIn("after a restart", result.stdout.decode())
        shown = json.loads(self.ctl(*self.offline_args, "cert", "show", "main", "--json").stdout)
        self.assertEqual(shown["generation"], out["generation"] + 1)
        self.assertEqual(self.edge.handshake(), out["serial"], "the running edged still serves the live import")

        _, other_key = self.edge.ca.issue("wrong-key", "x.test", ["DNS:x.test"], days=5)
        for args in (self.live_args, self.offline_args):
            bad = self.ctl(*args, "import", "main", "--cert", pem, "--key", other_key, check=False)
            self.assertEqual(bad.returncode, 1)
            self.assertIn("does not match", bad.stderr.decode())

    def test_4_handshakes_filters_summary_and_follow(self):
        port = self.edge.plain_http_failure()
        for args in (self.live_args, self.offline_args):
            records = et.wait_for(
                lambda: [json.loads(line) for line in self.ctl(*args, "handshakes", "--error-type", "not_tls",
                                                               "--client", "127.0.0.1", "--json").stdout.splitlines()
                         if json.loads(line)["client.port"] == port], 10, "the not_tls record")
            self.assertEqual(records[0]["edge.outcome"], "failed")
            table = self.ctl(*args, "handshakes", "--outcome", "failed", "--limit", "5").stdout.decode()
            self.assertTrue(table.startswith("TIME"), table)
            summary = json.loads(self.ctl(*args, "handshakes", "--summary", "--json").stdout)
            self.assertTrue(any(r["error_type"] == "not_tls" and r["count"] >= 1 for r in summary), summary)

        for args in (self.live_args, self.offline_args):
            follower = subprocess.Popen([ARGS.edgectl, *args, "handshakes", "--follow", "--json", "--limit", "1"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                first = json.loads(follower.stdout.readline())  # the newest record so far
                self.assertIn("edge.outcome", first)
                new_port = self.edge.plain_http_failure()
                deadline = time.monotonic() + 20
                seen = None
                while time.monotonic() < deadline:
                    line = follower.stdout.readline()
                    self.assertTrue(line, follower.stderr.read().decode() if follower.poll() is not None else "")
                    record = json.loads(line)
                    if record["client.port"] == new_port:
                        seen = record
                        break
                self.assertIsNotNone(seen, "--follow printed the new record")
                self.assertEqual(seen["error.type"], "not_tls")
            finally:
                follower.kill()
                follower.wait(timeout=10)
                follower.stdout.close()
                follower.stderr.close()

    def test_5_status_version_help_and_errors(self):
        live = json.loads(self.ctl(*self.live_args, "status", "--json").stdout)
        self.assertEqual(live["source"], "live")
        self.assertEqual(live["edged"]["pid"], self.edge.edged.process.pid)
        self.assertIn("active", live["connections"])
        offline = json.loads(self.ctl(*self.offline_args, "status", "--json").stdout)
        self.assertEqual(offline["source"], "store")
        self.assertEqual([c["name"] for c in offline["certificates"]], ["main"])
        self.assertIn("connections:", self.ctl(*self.live_args, "status").stdout.decode())

        version = self.ctl(*self.live_args, "version").stdout.decode().splitlines()
        self.assertRegex(version[0], r"^edgectl \d+\.\d+\.\d+$")
        self.assertTrue(version[1].startswith("edged "))

        for sub in (["status"], ["certs"], ["cert", "show"], ["renew"], ["import"], ["revoke"], ["handshakes"],
                    ["check"], ["version"]):
            help_text = self.ctl(*sub, "--help").stdout.decode()
            self.assertIn("Usage", help_text + " " + sub[0], sub)
            self.assertIn("--help", help_text, sub)

        no_token = self.ctl("--admin", f"http://127.0.0.1:{self.edge.admin_port}", "renew", "main", check=False)
        self.assertEqual(no_token.returncode, 1)
        self.assertIn("pass --token-file", no_token.stderr.decode())
        manual = self.ctl(*self.live_args, "renew", "main", check=False)
        self.assertIn("use certs.import", manual.stderr.decode())
        bad_url = self.ctl("--admin", "ftp://x", "certs", check=False)
        self.assertIn("expected http://HOST:PORT or unix:/PATH", bad_url.stderr.decode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

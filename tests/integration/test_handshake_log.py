#!/usr/bin/env python3
"""The handshake log as a whole: exactly one record per accepted connection
under a mixed load of 5,000 connections (file, store and per-certificate
counters agree), then the sink features: flood damping, success sampling,
SIGUSR1 reopen, size rotation and retention.

Usage: test_handshake_log.py --edged PATH --edgectl PATH"""

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None


class LogFixture:
    """An edged in manual mode with one certificate and the given handshake_log settings."""

    def __init__(self, directory, log_settings, certificate, tls_settings=""):
        self.dir = directory
        self.port = et.free_port()
        self.jsonl = os.path.join(directory, "handshakes.jsonl")
        self.store = os.path.join(directory, "edge.db")
        self.config = os.path.join(directory, "edge.yaml")
        cert, key = certificate
        with open(self.config, "w") as f:
            f.write(f"""
proxy:
  listen: ["127.0.0.1:{self.port}"]
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
    handshake_timeout_secs: 1
{tls_settings}
handshake_log:
  file: ./handshakes.jsonl
{log_settings}
""")
        self.edged = et.Edged(ARGS.edged, self.config, directory)

    def __enter__(self):
        self.edged.__enter__()
        return self

    def __exit__(self, *exc):
        self.edged.__exit__(*exc)

    def good(self):
        ctx = et.tls_client_context(verify=False)
        tls, port = et.connect_tls("127.0.0.1", self.port, ctx, "edge.test")
        tls.close()
        return port

    def bad_version(self):
        ctx = et.tls_client_context(verify=False, minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1,
                                    ciphers="DEFAULT:@SECLEVEL=0")
        try:
            et.connect_tls("127.0.0.1", self.port, ctx, "edge.test")[0].close()
            raise AssertionError("a TLS 1.1 handshake succeeded")
        except ssl.SSLError:
            pass

    def silent(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            assert s.recv(1) == b""  # closed by edged after handshake_timeout_secs

    def garbage(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"\x01\x02 not tls at all \r\n" * 3)
            try:
                s.recv(100)
            except OSError:
                pass

    def records(self):
        return et.read_jsonl(self.jsonl)

    def certs(self):
        return {c["name"]: c for c in json.loads(et.edgectl(ARGS.edgectl, self.store, "certs", "--json").stdout)}


class HandshakeLog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="edge-log-")
        ca = pki.CertificateAuthority(cls.root, "ca")
        cls.certificate = ca.issue("main", "edge.test", ["DNS:edge.test"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def fixture(self, name, log_settings=""):
        directory = os.path.join(self.root, name)
        os.makedirs(directory)
        return LogFixture(directory, log_settings, self.certificate)

    def test_5000_mixed_connections_give_5000_records_and_matching_counters(self):
        plan = ["good"] * 2500 + ["bad_version"] * 1000 + ["silent"] * 500 + ["garbage"] * 1000
        with self.fixture("mixed") as edge:
            with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
                for _ in pool.map(lambda kind: getattr(edge, kind)(), plan):
                    pass
            et.wait_for(lambda: len(edge.records()) >= len(plan), 60, "5000 records in the file")
            et.wait_for(lambda: et.store_query(edge.store, "SELECT COUNT(*) FROM handshakes")[0][0] >= len(plan),
                        30, "5000 rows in the store")
            records = edge.records()
            self.assertEqual(len(records), 5000)
            self.assertEqual(et.store_query(edge.store, "SELECT COUNT(*) FROM handshakes")[0][0], 5000)
            self.assertEqual(len({r["edge.connection.id"] for r in records}), 5000)
            by_type = {}
            for r in records:
                by_type[r.get("error.type", "ok")] = by_type.get(r.get("error.type", "ok"), 0) + 1
            self.assertEqual(by_type, {"ok": 2500, "protocol_version": 1000, "handshake_timeout": 500,
                                       "not_tls": 1000})
            main = edge.certs()["main"]
            self.assertEqual(main["handshakes"], {"ok": 2500, "failed": 1000})
            no_cert = et.store_query(edge.store, "SELECT SUM(count) FROM handshake_counters WHERE cert_name = ''")
            self.assertEqual(no_cert[0][0], 1500)

    def test_flood_damping_folds_identical_failures_with_a_count(self):
        with self.fixture("damping", "  damping_window_secs: 2") as edge:
            for _ in range(50):
                edge.garbage()
            edge.good()
            records = et.wait_for(lambda: (r := edge.records()) and
                                  sum(x.get("count", 1) for x in r if x.get("error.type") == "not_tls") == 50 and r,
                                  15, "the folded record after the damping window")
            failures = [r for r in records if r.get("error.type") == "not_tls"]
            self.assertEqual(len(failures), 2, "the first failure at once, the other 49 folded into one")
            self.assertEqual(failures[1]["count"], 49)
            self.assertEqual(len([r for r in records if r["edge.outcome"] == "ok"]), 1)
            counted = et.store_query(edge.store, "SELECT SUM(count) FROM handshake_counters WHERE error_type = 'not_tls'")
            self.assertEqual(counted[0][0], 50)

    def test_success_sampling_keeps_failures_and_counts_everything(self):
        with self.fixture("sampling", "  sample_success: 0.0") as edge:
            for _ in range(20):
                edge.good()
            edge.bad_version()
            et.wait_for(lambda: len(edge.records()) >= 1, 10, "the failure record")
            et.wait_for(lambda: edge.certs()["main"]["handshakes"] == {"ok": 20, "failed": 1}, 10,
                        "counters for every handshake")
            records = edge.records()
            self.assertEqual([r["error.type"] for r in records], ["protocol_version"])

    def test_size_rotation_keeps_n_files(self):
        # The file is checked after each batch, so it may pass max_size_mb by one batch.
        with self.fixture("sized", "  max_size_mb: 0.004\n  max_files: 2") as edge:  # about 4 KiB
            def all_records():
                return [r for p in (edge.jsonl, edge.jsonl + ".1", edge.jsonl + ".2", edge.jsonl + ".3")
                        for r in et.read_jsonl(p)]
            for _ in range(8):  # several batches, each over the size: a rotation each
                last = [edge.good() for _ in range(8)][-1]
                et.wait_for(lambda: any(r["client.port"] == last for r in all_records()), 10, "the round's records")
            et.wait_for(lambda: os.path.exists(edge.jsonl + ".2"), 10, "two rotations")
            self.assertTrue(os.path.exists(edge.jsonl + ".2"))
            self.assertFalse(os.path.exists(edge.jsonl + ".3"), "max_files: 2")
            kept = all_records()  # every line of every kept file parses: rotation never splits a record
            self.assertTrue(kept)
            self.assertTrue(all(r["edge.outcome"] == "ok" for r in kept))
            self.assertLess(len(kept), 64, "the oldest files were deleted")

    def test_sigusr1_reopens_the_file(self):
        with self.fixture("reopen") as edge:
            edge.good()
            et.wait_for(lambda: len(edge.records()) == 1, 10, "the first record")
            os.rename(edge.jsonl, edge.jsonl + ".moved")  # what logrotate does
            edge.edged.process.send_signal(signal.SIGUSR1)
            et.wait_for(lambda: b"reopening" in edge.edged.output(), 10, "edged to reopen")
            edge.good()
            et.wait_for(lambda: len(edge.records()) == 1, 10, "a record in the new file")
            self.assertEqual(len(et.read_jsonl(edge.jsonl + ".moved")), 1)

    def test_session_tickets_resume_across_workers_and_are_recorded(self):
        directory = os.path.join(self.root, "tickets")
        os.makedirs(directory)
        with LogFixture(directory, "", self.certificate, "    session_tickets: true") as edge:
            ctx = et.tls_client_context(verify=False)
            ports, resumed = [], []
            session = None
            for _ in range(12):  # two workers: SO_REUSEPORT spreads these over both
                raw = socket.create_connection(("127.0.0.1", edge.port), timeout=10)
                ports.append(raw.getsockname()[1])
                tls = ctx.wrap_socket(raw, server_hostname="edge.test", session=session)
                tls.sendall(b"GET / HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n")
                while tls.recv(65536):  # reading also takes in the TLS 1.3 ticket
                    pass
                resumed.append(tls.session_reused)
                session = tls.session
                tls.close()
            self.assertEqual(resumed, [False] + [True] * 11)
            records = {r["client.port"]: r for r in
                       et.wait_for(lambda: len(edge.records()) >= 12 and edge.records(), 10, "twelve records")}
            self.assertEqual([records[p]["tls.resumed"] for p in ports], resumed)
            self.assertEqual(len({records[p]["edge.connection.id"].split("-")[1] for p in ports}), 2,
                             "both workers resumed sessions: the ticket keys are shared")

    def test_retention_keeps_the_newest_rows_and_the_counters(self):
        directory = os.path.join(self.root, "retention")
        os.makedirs(directory)
        with LogFixture(directory, "", self.certificate) as edge:
            for _ in range(30):
                edge.good()
            et.wait_for(lambda: et.store_query(edge.store, "SELECT COUNT(*) FROM handshakes")[0][0] == 30, 10,
                        "30 rows")
        with LogFixture(directory, "  retention_rows: 10", self.certificate) as edge:
            edge.good()
            et.wait_for(lambda: et.store_query(edge.store, "SELECT COUNT(*) FROM handshakes")[0][0] == 10, 10,
                        "retention to 10 rows")
            self.assertEqual(edge.certs()["main"]["handshakes"]["ok"], 31, "counters survive retention")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

#!/usr/bin/env python3
"""Store faults (issue 7): the SQLite file on a full file system, on a
read-only one, or locked by another process. edged keeps serving handshakes
and proxied requests with the certificates it has; the handshake records the
store refuses are held, counted (`/metrics`) and written once the fault
clears, so the store ends up with every record. A corrupt or foreign database
file is refused with an error naming it, a non-zero exit, and the file left
untouched. Private keys: the store is created 0600, and a manual key file
that other users may read is refused unless the config says otherwise.

The faults use a small tmpfs this test mounts (root is needed, as for the
rest of the suite's set-up); it is unmounted at the end.

Usage: test_store_faults.py --edged PATH --edgectl PATH"""

import argparse
import hashlib
import http.client
import os
import re
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    et.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path], timeout=30)


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True, timeout=30)


def fill(directory):
    """Writes a filler file until the file system is full; returns its path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:  # the last few bytes
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return path


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    if not m:
        raise AssertionError(f"{name} not in /metrics:\n{text}")
    return float(m.group(1))


class Faults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="edge-store-faults-")
        d = cls.dir = cls.tmp.name
        cls.mnt = os.path.join(d, "mnt")
        mount_tmpfs(cls.mnt, "2m")
        ca = pki.CertificateAuthority(d, "faults-ca")
        cls.ca = ca.cert
        cls.cert, cls.key = ca.issue("main", "edge.test", ["DNS:edge.test"])
        cls.upstream = et.Upstream().__enter__()
        cls.port, cls.metrics_port = et.free_port(), et.free_port()
        cls.store = os.path.join(cls.mnt, "edge.db")
        cls.jsonl = os.path.join(d, "handshakes.jsonl")
        cls.connections = 0
        config = os.path.join(d, "edge.yaml")
        with open(config, "w") as f:
            f.write(f"""
store: {{path: {cls.store}}}
proxy:
  listen: ["127.0.0.1:{cls.port}"]
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cls.cert}, private_key: {cls.key}}}
  http:
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{cls.upstream.port}/
handshake_log:
  file: {cls.jsonl}
metrics:
  listen: "127.0.0.1:{cls.metrics_port}"
""")
        cls.edged = et.Edged(ARGS.edged, config, d).__enter__()
        cls.ctx = et.tls_client_context(cafile=cls.ca)

    @classmethod
    def tearDownClass(cls):
        cls.edged.__exit__(None, None, None)
        cls.upstream.__exit__(None, None, None)
        umount(cls.mnt)
        cls.tmp.cleanup()

    def serve(self, n):
        """n handshakes, each with a proxied request: all must succeed."""
        for i in range(n):
            s, _ = et.connect_tls("127.0.0.1", self.port, self.ctx, "edge.test")
            with s:
                s.sendall(f"GET /fault/{i} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
            type(self).connections += 1

    def stored(self):
        return et.store_query(self.store, "SELECT COUNT(*) FROM handshakes")[0][0]

    def recorded(self):
        return len(et.read_jsonl(self.jsonl))

    def wait_all_stored(self, timeout=30):
        et.wait_for(lambda: self.stored() == self.connections, timeout,
                    f"{self.connections} records in the store")
        self.assertEqual(metric(self.metrics_port, "edge_handshake_records_held"), 0)
        self.assertEqual(metric(self.metrics_port, "edge_handshake_records_store_lost_total"), 0)

    def wait_refused(self, before):
        et.wait_for(lambda: metric(self.metrics_port, "edge_handshake_store_write_failures_total") > before, 20,
                    "the store to refuse a write")
        et.wait_for(lambda: metric(self.metrics_port, "edge_handshake_records_held") > 0, 20, "records held")

    def test_1_full_file_system(self):
        self.serve(10)
        self.wait_all_stored()
        failures = metric(self.metrics_port, "edge_handshake_store_write_failures_total")
        filler = fill(self.mnt)
        try:
            self.serve(400)  # enough rows that the WAL must grow
            self.wait_refused(failures)
            self.serve(20)  # still serving while the store refuses
            self.assertLess(self.stored(), self.connections)
            self.assertIn(b"holding them for a retry", self.edged.output())
        finally:
            os.unlink(filler)
        self.wait_all_stored()
        et.wait_for(lambda: self.recorded() == self.connections, 10, "every record in the JSON lines file")
        self.assertIn(b"store takes writes again", self.edged.output())

    def test_2_read_only_file_system(self):
        # A file system with a file open for writing cannot be remounted
        # read-only (the kernel answers EBUSY), so a running edged never sees
        # its store turn read-only; the case that happens is a start on a
        # read-only mount: refused with the file named, nothing served half-way.
        mnt = os.path.join(self.dir, "ro")
        mount_tmpfs(mnt, "1m")
        try:
            store = os.path.join(mnt, "edge.db")
            # A copy of the running edged's store: a real edge store.
            src = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=10)
            dst = sqlite3.connect(store)
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            src.close()
            dst.close()
            with self.assertRaises(AssertionError):
                et.run(["mount", "-o", "remount,ro", self.mnt], timeout=30)  # busy: edged has its store open
            et.run(["mount", "-o", "remount,ro", mnt], timeout=30)
            config = os.path.join(self.dir, "ro.yaml")
            with open(config, "w") as f:
                f.write(f"""store: {{path: {store}}}
proxy:
  listen: ["127.0.0.1:{et.free_port()}"]
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {self.cert}, private_key: {self.key}}}
""")
            result = et.run([ARGS.edged, "--config", config], timeout=30, check=False)
            self.assertEqual(result.returncode, 1)
            self.assertIn(store, result.stderr.decode())
            self.assertIn("on a read-only file system", result.stderr.decode())
        finally:
            umount(mnt)
        self.serve(5)  # the running edged was never disturbed
        self.wait_all_stored()

    def test_3_locked_by_another_process(self):
        self.serve(5)
        self.wait_all_stored()
        failures = metric(self.metrics_port, "edge_handshake_store_write_failures_total")
        # Another process holds the write lock (a long transaction).
        holder = sqlite3.connect(self.store, timeout=5, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            self.serve(50)
            self.wait_refused(failures)
            self.serve(10)
            self.assertLess(time.monotonic() - started, 60)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        self.wait_all_stored()
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=10) as db:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")


class Refusals(unittest.TestCase):
    """Files edged must not use, and what it creates."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="edge-store-refuse-")
        self.dir = self.tmp.name
        ca = pki.CertificateAuthority(self.dir, "refuse-ca")
        self.cert, self.key = ca.issue("main", "edge.test", ["DNS:edge.test"])
        self.port = et.free_port()

    def tearDown(self):
        self.tmp.cleanup()

    def config(self, store, extra_tls=""):
        path = os.path.join(self.dir, "edge.yaml")
        with open(path, "w") as f:
            f.write(f"""store: {{path: {store}}}
proxy:
  listen: ["127.0.0.1:{self.port}"]
  workers: 1
  tls:
    mode: manual
{extra_tls}    certificates:
      - {{name: main, certificate: {self.cert}, private_key: {self.key}}}
handshake_log:
  file: ./handshakes.jsonl
""")
        return path

    def start_and_fail(self, store):
        def digest():
            with open(store, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        before = digest()
        result = et.run([ARGS.edged, "--config", self.config(store)], timeout=30, check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(store, result.stderr.decode())
        self.assertEqual(digest(), before, "the file was modified")
        for suffix in ("-wal", "-shm", "-journal"):
            self.assertFalse(os.path.exists(store + suffix), suffix)
        return result.stderr.decode()

    def test_corrupt_database_is_refused_and_left_untouched(self):
        store = os.path.join(self.dir, "corrupt.db")
        with open(store, "wb") as f:
            f.write(os.urandom(64 * 1024))
        self.assertIn("not an SQLite database", self.start_and_fail(store))

    def test_damaged_sqlite_database_is_refused_and_left_untouched(self):
        # A real SQLite header, then garbage: SQLite itself finds it malformed.
        store = os.path.join(self.dir, "damaged.db")
        with sqlite3.connect(store) as db:
            db.execute("CREATE TABLE t (x)")
            db.executemany("INSERT INTO t VALUES (?)", [(os.urandom(200),) for _ in range(200)])
        with open(store, "rb") as f:
            data = bytearray(f.read())
        data[100:4096] = os.urandom(4096 - 100)
        with open(store, "wb") as f:
            f.write(data)
        self.start_and_fail(store)

    def test_foreign_database_is_refused_and_left_untouched(self):
        store = os.path.join(self.dir, "foreign.db")
        with sqlite3.connect(store) as db:
            db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
            db.execute("INSERT INTO invoices (amount) VALUES (12.5)")
        self.assertIn("not an edge store", self.start_and_fail(store))

    def test_store_files_are_created_0600(self):
        store = os.path.join(self.dir, "new.db")
        old = os.umask(0o022)
        try:
            with et.Edged(ARGS.edged, self.config(store), self.dir):
                for suffix in ("", "-wal", "-shm"):
                    mode = stat.S_IMODE(os.stat(store + suffix).st_mode)
                    self.assertEqual(mode, 0o600, f"{store}{suffix}: {oct(mode)}")
        finally:
            os.umask(old)

    def test_world_readable_key_is_refused_unless_allowed(self):
        os.chmod(self.key, 0o644)
        store = os.path.join(self.dir, "edge.db")
        config = self.config(store)
        result = et.run([ARGS.edged, "--config", config], timeout=30, check=False)
        self.assertEqual(result.returncode, 1)
        err = result.stderr.decode()
        self.assertRegex(err, rf"{re.escape(config)}:\d+:\d+: proxy\.tls\.certificates\[0\]\.private_key: ")
        self.assertIn("mode 0644", err)
        self.assertIn("allow_world_readable_keys", err)
        self.assertFalse(os.path.exists(store), "nothing is created for a refused config")
        # edged check says the same.
        check = et.run([ARGS.edged, "check", "--config", config], timeout=30, check=False)
        self.assertEqual(check.returncode, 1)
        self.assertIn("mode 0644", check.stderr.decode())
        # Told to, it serves.
        config = self.config(store, extra_tls="    allow_world_readable_keys: true\n")
        with et.Edged(ARGS.edged, config, self.dir):
            ctx = et.tls_client_context(verify=False)
            s, _ = et.connect_tls("127.0.0.1", self.port, ctx, "edge.test")
            with s:
                self.assertTrue(s.version())
        # Group-readable only (e.g. a key shared with a group of operators) is accepted.
        os.chmod(self.key, 0o640)
        self.assertEqual(et.run([ARGS.edged, "check", "--config", self.config(store)], check=False).returncode, 0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

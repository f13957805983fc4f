#!/usr/bin/env python3
"""edged speaks systemd's notify protocol (Type=notify, WatchdogSec=): the test
binds the unix datagram socket itself, as systemd would, starts edged with
NOTIFY_SOCKET and WATCHDOG_USEC, and checks READY=1 arrives when the TLS port
already completes handshakes, WATCHDOG=1 keeps coming well within the deadline,
and SIGTERM brings STOPPING=1. Once with a socket path, once with an abstract
"@" name. A WATCHDOG_PID of another process turns the pings off.

Usage: test_sd_notify.py --edged PATH"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None
WATCHDOG_USEC = 1_000_000  # systemd would kill edged after 1 s without a ping


class Notified:
    """edged started with NOTIFY_SOCKET pointing at a socket bound here."""

    def __init__(self, case, address, env_name, extra_env=None):
        self.case, self.address, self.env_name = case, address, env_name
        self.extra_env = extra_env or {}
        self.messages = []  # (monotonic time, {key: value})

    def __enter__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        env = dict(os.environ, NOTIFY_SOCKET=self.env_name, WATCHDOG_USEC=str(WATCHDOG_USEC), **self.extra_env)
        self.log = open(os.path.join(self.case.dir, "edged.stderr"), "ab")
        self.process = subprocess.Popen([ARGS.edged, "--config", self.case.config], env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def receive(self, key, timeout):
        """The next message carrying `key`, within `timeout` seconds (earlier ones are kept)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key} within {timeout} s; got {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))
            if key in fields:
                return fields

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()
        self.sock.close()


class SdNotify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="edge-sdnotify-")
        cls.dir = cls.tmp.name
        cls.ca = pki.CertificateAuthority(cls.dir, "ca")
        cert, key = cls.ca.issue("main", "edge.test", ["DNS:edge.test"])
        cls.port = et.free_port()
        cls.config = os.path.join(cls.dir, "edge.yaml")
        with open(cls.config, "w") as f:
            f.write(f"""
store: {{path: {cls.dir}/edge.db}}
proxy:
  listen: ["127.0.0.1:{cls.port}"]
  workers: 1
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
""")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def handshake(self):
        ctx = et.tls_client_context(cafile=self.ca.cert)
        tls, _ = et.connect_tls("127.0.0.1", self.port, ctx, "edge.test", timeout=5)
        version = tls.version()
        tls.close()
        return version

    def lifecycle(self, address, env_name):
        with Notified(self, address, env_name) as edged:
            ready = edged.receive("READY", 30)
            # Right when READY=1 arrives the listener completes a TLS handshake:
            # no connection made after READY can be refused.
            self.assertIn(self.handshake(), ("TLSv1.2", "TLSv1.3"))
            self.assertEqual(ready["READY"], "1")
            self.assertEqual(ready.get("MAINPID"), str(edged.process.pid))
            self.assertIn("serving TLS", ready.get("STATUS", ""))
            self.assertFalse(any("STOPPING" in m for _, m in edged.messages), edged.messages)

            pings = [edged.receive("WATCHDOG", 5) for _ in range(4)]
            self.assertTrue(all(p["WATCHDOG"] == "1" for p in pings))
            times = [t for t, m in edged.messages if "WATCHDOG" in m]
            gaps = [b - a for a, b in zip(times, times[1:])]
            # Every WATCHDOG_USEC/2: each gap is well inside the deadline systemd enforces.
            self.assertLess(max(gaps), WATCHDOG_USEC / 1e6, gaps)

            edged.process.send_signal(signal.SIGTERM)
            stopping = edged.receive("STOPPING", 15)
            self.assertEqual(stopping["STOPPING"], "1")
            self.assertEqual(edged.process.wait(timeout=30), 0)

    def test_socket_path(self):
        path = os.path.join(self.dir, "notify.sock")
        self.lifecycle(path, path)

    def test_abstract_socket(self):
        name = f"edge-sdnotify-{os.getpid()}"
        # Python binds an abstract name given with a leading NUL; systemd writes it as "@name".
        self.lifecycle("\0" + name, "@" + name)

    def test_watchdog_of_another_process_is_not_ours(self):
        path = os.path.join(self.dir, "notify-other.sock")
        with Notified(self, path, path, {"WATCHDOG_PID": "1"}) as edged:
            edged.receive("READY", 30)
            # Three full watchdog intervals without a ping.
            with self.assertRaises(AssertionError):
                edged.receive("WATCHDOG", 1.5 * WATCHDOG_USEC / 1e6)
            edged.process.send_signal(signal.SIGTERM)
            edged.receive("STOPPING", 15)
            self.assertEqual(edged.process.wait(timeout=30), 0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

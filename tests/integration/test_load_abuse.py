#!/usr/bin/env python3
"""Load and abuse (issue 7), against a real edged on loopback:

- idle: N concurrent idle TLS connections are held (all still open at the
  end), and a well-behaved client still completes a handshake and a proxied
  request in under a second while they are;
- slowloris on the handshake: N connections that send a few bytes of a
  ClientHello and then trickle; a good client is served meanwhile; each slow
  one is closed by handshake_timeout_secs and recorded as handshake_timeout;
- slowloris on the HTTP request head: N TLS connections that trickle header
  lines; a good client is served; each is closed by
  proxy.http.client_timeout_secs (the head must arrive within it).

CI runs smaller counts (the defaults); `scripts/load-test` runs the issue's
full counts (10,000 idle, 2,000 slow).

Usage: test_load_abuse.py --edged PATH --edgectl PATH [--idle N] [--slow N]"""

import argparse
import json
import os
import resource
import select
import socket
import ssl
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None
HANDSHAKE_TIMEOUT = 3
CLIENT_TIMEOUT = 3


def raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        raise AssertionError(f"this test needs {needed} descriptors; the hard limit is {hard}")


def closed_by_peer(sock):
    """True when the peer closed (EOF or reset); never blocks."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return False
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except ssl.SSLError:
        return True
    finally:
        sock.settimeout(timeout)


class LoadAndAbuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise_nofile(max(ARGS.idle, ARGS.slow) + 1000)
        cls.tmp = tempfile.TemporaryDirectory(prefix="edge-load-")
        d = cls.dir = cls.tmp.name
        ca = pki.CertificateAuthority(d, "load-ca")
        cls.ca = ca.cert
        cert, key = ca.issue("main", "edge.test", ["DNS:edge.test"])
        cls.upstream = et.Upstream().__enter__()
        cls.jsonl = os.path.join(d, "handshakes.jsonl")
        # Two edged: a strict one for the slow clients, and a patient one
        # (long client timeout) whose idle connections must stay open.
        cls.port, cls.edged = cls.start(d, "strict", cert, key, CLIENT_TIMEOUT)
        cls.patient_port, cls.patient = cls.start(d, "patient", cert, key, 600)
        cls.ctx = et.tls_client_context(cafile=cls.ca)

    @classmethod
    def start(cls, d, name, cert, key, client_timeout):
        port = et.free_port()
        workdir = os.path.join(d, name)
        os.makedirs(workdir)
        config = os.path.join(workdir, "edge.yaml")
        with open(config, "w") as f:
            f.write(f"""
proxy:
  listen: ["127.0.0.1:{port}"]
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
    handshake_timeout_secs: {HANDSHAKE_TIMEOUT}
  http:
    client_timeout_secs: {client_timeout}
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{cls.upstream.port}/
handshake_log:
  file: {cls.jsonl if name == "strict" else "./handshakes.jsonl"}
""")
        return port, et.Edged(ARGS.edged, config, workdir).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edged.__exit__(None, None, None)
        cls.patient.__exit__(None, None, None)
        cls.upstream.__exit__(None, None, None)
        cls.tmp.cleanup()

    def good_client(self, port=None):
        """A handshake and a proxied request; returns the seconds it took."""
        started = time.monotonic()
        s, _ = et.connect_tls("127.0.0.1", port or self.port, self.ctx, "edge.test", timeout=5)
        with s:
            s.sendall(b"GET /good HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        return time.monotonic() - started

    def records(self, error_type):
        return [r for r in et.read_jsonl(self.jsonl) if r.get("error.type") == error_type]

    def test_idle_connections_are_held_and_a_good_client_is_served(self):
        held = []
        try:
            for _ in range(ARGS.idle):
                s, _ = et.connect_tls("127.0.0.1", self.patient_port, self.ctx, "edge.test", timeout=10)
                held.append(s)
            with open(f"/proc/{self.patient.process.pid}/status") as f:
                rss = int(f.read().split("VmRSS:")[1].split()[0])
            seconds = max(self.good_client(self.patient_port) for _ in range(5))
            print(f"\n{len(held)} idle TLS connections held; edged RSS {rss} KiB; "
                  f"slowest of 5 good clients {seconds * 1000:.1f} ms", file=sys.stderr)
            self.assertLess(seconds, 1.0)
            still_open = sum(not closed_by_peer(s) for s in held)
            self.assertEqual(still_open, len(held))
        finally:
            for s in held:
                s.close()

    def test_slowloris_on_the_handshake(self):
        before = len(self.records("handshake_timeout"))
        hello = bytes.fromhex("16030100f4010000f00303")  # the start of a ClientHello
        slow = []
        try:
            for _ in range(ARGS.slow):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                s.sendall(hello[:3])
                slow.append(s)
            started = time.monotonic()
            # Trickle one byte per connection a second: each is alive, never done.
            sent = 3
            while time.monotonic() - started < HANDSHAKE_TIMEOUT - 1 and sent < len(hello):
                for s in slow:
                    try:
                        s.sendall(hello[sent:sent + 1])
                    except OSError:
                        pass
                sent += 1
                self.assertLess(self.good_client(), 1.0)
                time.sleep(0.5)
            et.wait_for(lambda: all(closed_by_peer(s) for s in slow), HANDSHAKE_TIMEOUT + 15,
                        "edged to close every slow handshake")
            self.assertLess(self.good_client(), 1.0)
        finally:
            for s in slow:
                s.close()
        et.wait_for(lambda: len(self.records("handshake_timeout")) - before >= ARGS.slow, 15,
                    f"{ARGS.slow} handshake_timeout records")
        self.assertEqual(len(self.records("handshake_timeout")) - before, ARGS.slow)

    def test_slowloris_on_the_request_head(self):
        count = max(1, ARGS.slow // 2)
        slow = []
        try:
            for _ in range(count):
                s, _ = et.connect_tls("127.0.0.1", self.port, self.ctx, "edge.test", timeout=10)
                s.sendall(b"GET /slow HTTP/1.1\r\nHost: edge.test\r\n")
                slow.append(s)
            started = time.monotonic()
            line = 0
            while time.monotonic() - started < CLIENT_TIMEOUT + 10:
                open_now = [s for s in slow if not closed_by_peer(s)]
                if not open_now:
                    break
                for s in open_now:
                    try:
                        s.sendall(f"X-Slow-{line}: 1\r\n".encode())
                    except OSError:
                        pass
                line += 1
                self.assertLess(self.good_client(), 1.0)
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            self.assertTrue(all(closed_by_peer(s) for s in slow), "slow request heads still open")
            # Closed by the timeout, not before it and not much after it.
            self.assertGreaterEqual(elapsed, CLIENT_TIMEOUT - 0.5)
            self.assertLess(self.good_client(), 1.0)
        finally:
            for s in slow:
                s.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slow", type=int, default=500)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

#!/usr/bin/env python3
"""A CA that answers 500s, or answers too slowly (issue 7), through a real
edged and a real Pebble: an HTTPS proxy in front of Pebble (Pebble builds its
URLs from the Host header, so every request of the ACME flow passes through
it) switches between passing requests on, answering every request with a
500 serverInternal problem, and holding every answer past edged's HTTP
timeout. While the CA misbehaves the last good certificate keeps serving
(0 failed handshakes), each failed attempt is recorded with its error and
backs off; when the CA behaves again a renewal succeeds.

Usage: test_acme_ca_faults.py --edged PATH --edgectl PATH"""

import argparse
import http.client
import http.server
import os
import ssl
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import acmetest as at  # noqa: E402
import edgetest as et  # noqa: E402
import pki  # noqa: E402
from pebble import Pebble  # noqa: E402

ARGS = None
MAIN = '{name: main, identifiers: [edge.test, 127.0.0.1]}'
SLOW_SECONDS = 45  # past edged's 30 s total timeout per ACME request


class FaultyCa:
    """HTTPS on loopback in front of Pebble; `mode` is pass, error or slow."""

    def __init__(self, workdir, pebble):
        ca = pki.CertificateAuthority(workdir, "faulty-ca-front")
        self.ca_bundle = ca.cert
        cert, key = ca.issue("front", "127.0.0.1", ["IP:127.0.0.1"])
        self.pebble = urllib.parse.urlparse(pebble.directory_url)
        self.mode = "pass"
        self.requests = {"pass": 0, "error": 0, "slow": 0}
        self.released = threading.Event()
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                mode = front.mode
                front.requests[mode] += 1
                if mode == "slow":
                    front.released.wait(SLOW_SECONDS)
                    mode = front.mode
                if mode == "error":
                    problem = (b'{"type": "urn:ietf:params:acme:error:serverInternal", '
                               b'"detail": "injected by the test", "status": 500}')
                    self.send_response(500)
                    self.send_header("Content-Type", "application/problem+json")
                    self.send_header("Content-Length", str(len(problem)))
                    self.end_headers()
                    self.wfile.write(problem)
                    return
                upstream = http.client.HTTPSConnection(front.pebble.hostname, front.pebble.port, timeout=30,
                                                       context=ssl._create_unverified_context())
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            do_GET = do_POST = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.directory_url = f"https://127.0.0.1:{self.port}{self.pebble.path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class MisbehavingCa(unittest.TestCase):
    def test_500s_and_timeouts_back_off_while_the_last_certificate_serves(self):
        with at.Workdir("edge-acme-ca-faults-") as d:
            port = et.free_port()
            with Pebble(tls_port=port) as pebble, FaultyCa(d, pebble) as front:
                config = os.path.join(d, "edge.yaml")
                with open(config, "w") as f:
                    f.write(at.edged_config(port, [{"directory": front.directory_url, "ca_bundle": front.ca_bundle}],
                                            [MAIN], listen_v6=False))
                root = os.path.join(d, "root.pem")
                with open(root, "w") as f:
                    f.write(pebble.root_pem())
                store = at.Store(ARGS.edgectl, os.path.join(d, "edge.db"))
                with et.Edged(ARGS.edged, config, d):
                    first = store.wait_generation("main", 1, 90)
                    self.assertGreater(front.requests["pass"], 5, "the flow did not go through the front")
                    with at.HandshakeLoop(port, root) as loop:
                        # 500 serverInternal on every request.
                        front.mode = "error"
                        et.edgectl(ARGS.edgectl, store.path, "renew", "main")
                        state = et.wait_for(lambda: (c := store.cert("main")) and c["failures"] == 1
                                            and c["state"] == "retrying" and c, 60, "the failed attempt")
                        self.assertIn("serverInternal", state["last_error"] + state["last_problem"], state)
                        self.assertIsNotNone(state["next_attempt"])
                        self.assertGreater(front.requests["error"], 0)

                        # Answers held past edged's timeout.
                        front.mode = "slow"
                        started = time.monotonic()
                        et.edgectl(ARGS.edgectl, store.path, "renew", "main")
                        state = et.wait_for(lambda: (c := store.cert("main")) and c["failures"] == 2 and c,
                                            SLOW_SECONDS + 30, "the timed-out attempt")
                        waited = time.monotonic() - started
                        self.assertGreaterEqual(waited, 25, "gave up before the HTTP timeout?")
                        self.assertIn("urn:edge:error:transport", state["last_error"], state)
                        self.assertIn("timed out", state["last_error"], state)
                        # The second failure backs off further than the first.
                        self.assertEqual(state["state"], "retrying")
                        front.mode = "pass"
                        front.released.set()

                        # Served all along: the last good certificate, no failed handshake.
                        self.assertGreater(loop.count, 50)
                        self.assertEqual(loop.failures, [])
                        self.assertEqual(loop.seen(), [first["serial"]])

                        # The CA behaves again: a renewal succeeds and is served.
                        et.edgectl(ARGS.edgectl, store.path, "renew", "main", "--wait", "90", timeout=120)
                        second = store.cert("main")
                        self.assertEqual(second["generation"], 2)
                        et.wait_for(lambda: loop.seen()[-1] == second["serial"], 20, "the renewed certificate")
                    self.assertEqual(loop.failures, [])
                    self.assertEqual(et.wait_for(lambda: (c := store.cert("main")) and c["failures"] == 0 and c,
                                                 30, "the state to clear")["state"], "valid")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

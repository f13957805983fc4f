#!/usr/bin/env python3
"""TLS 1.3 resumption, one reconnection after another (issue 6, resumed
handshakes per second): each resumed handshake must hand the client a fresh
ticket, so that a client that uses each ticket once (RFC 8446 C.4; browsers,
wrk) resumes every time and not every other time. Python's ssl client with
the session of the previous connection, on both workers.

Usage: test_resumption_chain.py --edged PATH"""

import argparse
import os
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None


class ResumptionChain(unittest.TestCase):
    def test_every_reconnection_resumes_with_a_fresh_ticket(self):
        with tempfile.TemporaryDirectory(prefix="edge-resume-") as d, et.Upstream() as upstream:
            ca = pki.CertificateAuthority(d, "resume-ca")
            cert, key = ca.issue("main", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"])
            port = et.free_port()
            config = os.path.join(d, "edge.yaml")
            with open(config, "w") as f:
                f.write(f"""
proxy:
  listen: ["127.0.0.1:{port}"]
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
    session_tickets: true
  http:
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{upstream.port}/
handshake_log:
  file: ./handshakes.jsonl
""")
            with et.Edged(ARGS.edged, config, d):
                ctx = et.tls_client_context(cafile=ca.cert)
                session, resumed, tickets = None, [], set()
                for _ in range(12):
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                    raw = ctx.wrap_socket(sock, server_hostname="edge.test", session=session)
                    with raw:
                        raw.sendall(b"GET / HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n")
                        while raw.recv(65536):  # the ticket arrives before the response ends
                            pass
                        resumed.append(raw.session_reused)
                        session = raw.session
                        self.assertTrue(session.has_ticket)
                        tickets.add(session.id)
                self.assertFalse(resumed[0])
                self.assertEqual(resumed[1:], [True] * 11, resumed)
                self.assertEqual(len(tickets), 12)  # a fresh ticket (session) every time
                records = et.wait_for(lambda: (r := et.read_jsonl(os.path.join(d, "handshakes.jsonl")))
                                      and len(r) >= 12 and r, 10, "12 handshake records")
                self.assertEqual([r.get("tls.resumed") for r in records[:12]], [False] + [True] * 11)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

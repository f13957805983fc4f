#!/usr/bin/env python3
"""edged in manual mode with a certificate made here by openssl: certificate
selection, the handshake failures the spine classifies (with what the client
saw and the alert edged sent), and the HTTP proxy behind TLS.

Usage: test_manual_tls.py --edged PATH --edgectl PATH"""

import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402

ARGS = None


def make_ca_and_leaf(d, prefix, sans):
    ca_key, ca_pem = os.path.join(d, f"{prefix}-ca.key"), os.path.join(d, f"{prefix}-ca.pem")
    key, csr, pem = (os.path.join(d, f"{prefix}.{ext}") for ext in ("key", "csr", "pem"))
    ext = os.path.join(d, f"{prefix}.ext")
    et.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca_pem, "-days", "2", "-subj", f"/CN={prefix} test CA"])
    et.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={prefix}"])
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join(sans) + "\nbasicConstraints=CA:FALSE\n")
    et.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
            "-out", pem, "-days", "1", "-extfile", ext])
    return ca_pem, pem, key


class ManualTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="edge-manual-")
        d = cls.dir = cls.tmp.name
        cls.ca, cert, key = make_ca_and_leaf(d, "main", ["DNS:edge.test", "IP:127.0.0.1"])
        cls.other_ca, _, _ = make_ca_and_leaf(d, "other", ["DNS:other.test"])
        _, wild_cert, wild_key = make_ca_and_leaf(d, "wild", ["DNS:*.wild.test"])
        cls.port = et.free_port()
        cls.dead_port = et.free_port()  # nothing listens here: a 502 upstream
        cls.upstream = et.Upstream().__enter__()
        cls.store = os.path.join(d, "edge.db")
        cls.jsonl = os.path.join(d, "handshakes.jsonl")
        config = os.path.join(d, "edge.yaml")
        with open(config, "w") as f:
            f.write(f"""
proxy:
  listen: ["127.0.0.1:{cls.port}", "[::1]:{cls.port}"]
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: main.pem, private_key: main.key}}
      - {{name: wild, certificate: wild.pem, private_key: wild.key}}
    handshake_timeout_secs: 1
    min_protocol_version: "1.2"
  http:
    upstream_timeout_secs: 5
    routes:
      - path_prefix: /dead/
        upstream: http://127.0.0.1:{cls.dead_port}/
      - path_prefix: /api/
        upstream: http://127.0.0.1:{cls.upstream.port}/v1/
      - path_prefix: /
        upstream: http://127.0.0.1:{cls.upstream.port}/
handshake_log:
  file: ./handshakes.jsonl
""")
        cls.edged = et.Edged(ARGS.edged, config, d).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edged.__exit__(None, None, None)
        cls.upstream.__exit__(None, None, None)
        cls.tmp.cleanup()

    def record_for(self, local_port):
        def find():
            hits = [r for r in et.read_jsonl(self.jsonl) if r["client.port"] == local_port]
            return hits or None
        hits = et.wait_for(find, 10, f"the record of client port {local_port}")
        self.assertEqual(len(hits), 1, hits)
        return hits[0]

    def handshake(self, ctx, server_hostname, host="127.0.0.1"):
        """Returns (error or None, local port, tls socket or None)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        raw = socket.socket(family, socket.SOCK_STREAM)
        raw.settimeout(10)
        raw.connect((host, self.port))
        port = raw.getsockname()[1]
        try:
            return None, port, ctx.wrap_socket(raw, server_hostname=server_hostname)
        except (ssl.SSLError, OSError) as e:
            raw.close()
            return e, port, None

    def test_manual_certificate_is_imported_and_served_by_sni_wildcard_and_ip(self):
        certs = {c["name"]: c for c in json.loads(et.edgectl(ARGS.edgectl, self.store, "certs", "--json").stdout)}
        self.assertEqual(set(certs), {"main", "wild"})
        self.assertEqual(certs["main"]["source"], "manual")
        ctx = et.tls_client_context(verify=False)
        for sni, expected in (("edge.test", "main"), ("a.wild.test", "wild"), (None, "main")):
            error, port, tls = self.handshake(ctx, sni)
            self.assertIsNone(error)
            serial, sha = et.leaf_facts(tls.getpeercert(binary_form=True))
            tls.close()
            record = self.record_for(port)
            self.assertEqual(record["edge.outcome"], "ok")
            self.assertEqual(record["edge.cert.name"], expected)
            self.assertEqual(record["edge.cert.serial"], serial)
            self.assertEqual(record["tls.server.hash.sha256"], sha)
            self.assertEqual(certs[expected]["serial"], serial)

    def test_client_rejecting_our_certificate_is_peer_alert_unknown_ca(self):
        ctx = et.tls_client_context(cafile=self.other_ca)
        error, port, _ = self.handshake(ctx, "edge.test")
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(error))
        record = self.record_for(port)
        self.assertEqual(record["edge.outcome"], "failed")
        self.assertEqual(record["error.type"], "peer_alert:unknown_ca")
        self.assertEqual(record["edge.cert.name"], "main", "the record names the certificate the client rejected")
        self.assertTrue(record["edge.cert.serial"])

    def test_alpn_without_http11_gets_no_application_protocol(self):
        ctx = et.tls_client_context(verify=False, alpn=("h2",))
        error, port, _ = self.handshake(ctx, "edge.test")
        self.assertIn("NO APPLICATION PROTOCOL", str(error).upper())
        record = self.record_for(port)
        self.assertEqual(record["error.type"], "no_application_protocol")
        self.assertEqual(record["edge.alert.sent"], "no_application_protocol")
        self.assertEqual(record["tls.client.supported_protocols"], "h2")

    def test_tls13_only_client_negotiates_tls13(self):
        ctx = et.tls_client_context(verify=False, minimum=ssl.TLSVersion.TLSv1_3)
        error, port, tls = self.handshake(ctx, "edge.test")
        self.assertIsNone(error)
        self.assertEqual(tls.version(), "TLSv1.3")
        tls.close()
        self.assertEqual(self.record_for(port)["tls.protocol.version"], "1.3")

    def test_silent_client_times_out(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        self.assertEqual(raw.recv(1), b"", "edged closes after handshake_timeout_secs")
        raw.close()
        record = self.record_for(port)
        self.assertEqual(record["edge.outcome"], "timeout")
        self.assertEqual(record["error.type"], "handshake_timeout")

    def test_plain_http_gets_400_and_not_tls(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(b"GET / HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
        raw.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer)
        self.assertEqual(self.record_for(port)["error.type"], "not_tls")

    def test_garbage_is_not_tls(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(b"\x00\x01garbage garbage garbage\r\n")
        raw.settimeout(5)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass
        raw.close()
        self.assertEqual(self.record_for(port)["error.type"], "not_tls")

    def proxy_get(self, path, headers=None):
        ctx = et.tls_client_context(cafile=self.ca)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)
        ctx.check_hostname = False  # connecting by IP; the IP SAN is checked by the other tests
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return conn, response, response.read()

    def test_proxy_forwards_with_forwarding_headers_and_keep_alive(self):
        conn, response, body = self.proxy_get("/hello?x=1", {"X-Forwarded-For": "203.0.113.7",
                                                             "Connection": "keep-alive, X-Secret",
                                                             "X-Secret": "hop"})
        self.assertEqual(response.status, 200)
        echo = json.loads(body)
        self.assertEqual(echo["path"], "/hello?x=1")
        self.assertEqual(echo["headers"]["x-forwarded-for"], "203.0.113.7, 127.0.0.1")
        self.assertEqual(echo["headers"]["x-real-ip"], "127.0.0.1")
        self.assertEqual(echo["headers"]["x-forwarded-proto"], "https")
        self.assertNotIn("x-secret", echo["headers"], "headers named in Connection are hop-by-hop")
        first_upstream = echo["upstream_connection"]
        conn.request("GET", "/api/items")
        second = json.loads(conn.getresponse().read())
        self.assertEqual(second["path"], "/v1/items", "the route's upstream path replaces its prefix")
        conn.request("GET", "/again")
        third = json.loads(conn.getresponse().read())
        self.assertEqual(third["path"], "/again")
        self.assertTrue(first_upstream)
        conn.close()

    def test_proxy_answers_502_when_upstream_is_down(self):
        conn, response, _ = self.proxy_get("/dead/x")
        self.assertEqual(response.status, 502)
        conn.close()

    def test_handshake_history_in_edgectl(self):
        error, port, tls = self.handshake(et.tls_client_context(verify=False), "edge.test")
        tls.close()
        self.record_for(port)
        out = et.edgectl(ARGS.edgectl, self.store, "handshakes", "--cert", "main", "--json", "--limit", "1000").stdout
        records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        self.assertTrue(any(r["client.port"] == port for r in records))
        self.assertTrue(all(r.get("edge.cert.name") == "main" for r in records))
        table = et.edgectl(ARGS.edgectl, self.store, "certs").stdout.decode()
        self.assertIn("main", table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

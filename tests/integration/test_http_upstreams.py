#!/usr/bin/env python3
"""The HTTP proxy towards its upstreams, with real clients and real upstreams
started here: https:// upstreams (verification, SNI, session resumption),
the header policy (forward_headers allow-list, hop-by-hop, forwarding
headers, Date), the per-upstream connection pool limits, the access log
(joined to the handshake records, 499 when the client leaves first) and the
per-route rate and concurrency limits.

Usage: test_http_upstreams.py --edged PATH --edgectl PATH"""

import argparse
import concurrent.futures
import http.server
import json
import os
import shutil
import ssl
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None
SNI_SEEN = []      # server names the https upstream saw in ClientHellos (None: no SNI)
CLOSED = []        # "port" of upstream connections that ended, per origin name
LOCK = threading.Lock()


class Origin(http.server.BaseHTTPRequestHandler):
    """Echoes what it received as JSON; /sleep?s=N waits first; /close answers with Connection: close."""
    protocol_version = "HTTP/1.1"
    name = "origin"

    def log_message(self, *args):
        pass

    def handle(self):
        try:
            super().handle()
        finally:
            with LOCK:
                CLOSED.append((self.name, self.client_address[1]))

    def answer(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if "s" in query:
            time.sleep(float(query["s"][0]))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        reused = getattr(self.connection, "session_reused", None)
        payload = json.dumps({
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "raw_header_names": [k.lower() for k in self.headers.keys()],
            "port": self.client_address[1],
            "tls_session_reused": reused,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if "/close" in self.path:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = answer


class PoolOrigin(Origin):
    name = "pool"


def start(server):
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class HttpUpstreams(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="edge-upstreams-")
        ca = pki.CertificateAuthority(cls.dir, "ca")
        cert, key = ca.issue("main", "edge.test", ["DNS:edge.test"])
        cls.ca = ca.cert
        upstream_ca = pki.CertificateAuthority(cls.dir, "upstream-ca")
        up_cert, up_key = upstream_ca.issue("upstream", "upstream.test", ["DNS:upstream.test", "IP:127.0.0.1"])

        cls.origin = start(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin))
        cls.pool_origin = start(http.server.ThreadingHTTPServer(("127.0.0.1", 0), PoolOrigin))
        tls_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(up_cert, up_key)
        ctx.sni_callback = lambda sslobj, name, context: SNI_SEEN.append(name)
        tls_server.socket = ctx.wrap_socket(tls_server.socket, server_side=True, do_handshake_on_connect=False)
        cls.tls_origin = start(tls_server)
        op = cls.origin.server_address[1]
        pp = cls.pool_origin.server_address[1]
        tp = cls.tls_origin.server_address[1]
        uca = upstream_ca.cert
        cls.port = et.free_port()
        cls.access_log = os.path.join(cls.dir, "access.jsonl")
        cls.handshake_log = os.path.join(cls.dir, "handshakes.jsonl")
        config = os.path.join(cls.dir, "edge.yaml")
        with open(config, "w") as f:
            f.write(f"""
proxy:
  listen: ["127.0.0.1:{cls.port}"]
  workers: 1
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
  http:
    upstream_timeout_secs: 5
    access_log: {{file: {cls.access_log}}}
    pool: {{max_connections: 2, max_idle: 1, wait_timeout_ms: 2000, idle_timeout_secs: 2}}
    routes:
      - {{name: tls-ok, path_prefix: /tls/, upstream: "https://127.0.0.1:{tp}/",
          upstream_tls: {{ca_file: {uca}, server_name: upstream.test}}}}
      - {{path_prefix: /tls-nosni/, upstream: "https://127.0.0.1:{tp}/",
          upstream_tls: {{ca_file: {uca}, server_name: upstream.test, sni: false}}}}
      - {{path_prefix: /tls-ip/, upstream: "https://127.0.0.1:{tp}/", upstream_tls: {{ca_file: {uca}}}}}
      - {{path_prefix: /tls-untrusted/, upstream: "https://127.0.0.1:{tp}/"}}
      - {{path_prefix: /tls-wrongname/, upstream: "https://127.0.0.1:{tp}/",
          upstream_tls: {{ca_file: {uca}, server_name: other.test}}}}
      - {{path_prefix: /tls-noverify/, upstream: "https://127.0.0.1:{tp}/", upstream_tls: {{verify: false}}}}
      - {{path_prefix: /allow/, upstream: "http://127.0.0.1:{op}/", forward_headers: [Accept, X-Keep]}}
      - {{name: pool, path_prefix: /pool/, upstream: "http://127.0.0.1:{pp}/"}}
      - {{name: limited, path_prefix: /limited/, upstream: "http://127.0.0.1:{op}/", rate_limit: {{rate: 1, burst: 5}}}}
      - {{path_prefix: /per-client/, upstream: "http://127.0.0.1:{op}/",
          rate_limit: {{max_connections_per_client: 1}}}}
      - {{path_prefix: /per-route/, upstream: "http://127.0.0.1:{op}/",
          rate_limit: {{max_connections: 2, concurrency_status: 429}}}}
      - {{name: default, path_prefix: /, upstream: "http://127.0.0.1:{op}/"}}
handshake_log:
  file: {cls.handshake_log}
""")
        cls.edged = et.Edged(ARGS.edged, config, cls.dir).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edged.__exit__(None, None, None)
        for server in (cls.origin, cls.pool_origin, cls.tls_origin):
            server.shutdown()
        shutil.rmtree(cls.dir, ignore_errors=True)

    # --- client helpers -------------------------------------------------
    def tls(self):
        sock, _ = et.connect_tls("127.0.0.1", self.port, et.tls_client_context(cafile=self.ca), "edge.test", timeout=30)
        return sock

    @staticmethod
    def read_response(sock):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        length = int(headers.get("content-length", 0))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest

    def get(self, path, extra=b"", sock=None):
        own = sock is None
        sock = sock or self.tls()
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: edge.test\r\n%s\r\n" % (path.encode(), extra))
        result = self.read_response(sock)
        if own:
            sock.close()
        return result

    def echo(self, path, extra=b""):
        status, headers, body = self.get(path, extra)
        self.assertEqual(status, 200, body)
        return json.loads(body), headers

    def edged_output(self):
        return self.edged.output().decode(errors="replace")

    # --- 1. https upstreams ----------------------------------------------
    def test_https_upstream_verified_with_sni(self):
        echo, _ = self.echo("/tls/a")
        self.assertEqual(echo["path"], "/tls/a", "an upstream URL path of / keeps the request path")
        self.assertEqual(SNI_SEEN[-1], "upstream.test", "the configured server_name goes out as SNI")
        self.assertEqual(echo["headers"]["host"], f"127.0.0.1:{self.tls_origin.server_address[1]}")

    def test_https_upstream_sni_switch_and_ip_names(self):
        before = len(SNI_SEEN)
        self.echo("/tls-nosni/a")
        self.assertEqual(SNI_SEEN[before:], [None], "sni: false sends no SNI (still verified as upstream.test)")
        before = len(SNI_SEEN)
        self.echo("/tls-ip/a")
        self.assertEqual(SNI_SEEN[before:], [None], "an IP address is never sent as SNI; verified against the IP SAN")

    def test_https_upstream_verification_failures_are_502_with_a_log_line(self):
        status, _, _ = self.get("/tls-untrusted/a")
        self.assertEqual(status, 502)
        et.wait_for(lambda: "TLS handshake failed: certificate verify failed: unable to get local issuer certificate"
                    in self.edged_output(), 10, "the verify failure on stderr")
        status, _, _ = self.get("/tls-wrongname/a")
        self.assertEqual(status, 502)
        et.wait_for(lambda: "certificate verify failed: hostname mismatch" in self.edged_output(), 10,
                    "the name mismatch on stderr")

    def test_https_upstream_verify_false(self):
        echo, _ = self.echo("/tls-noverify/a")
        self.assertEqual(echo["path"], "/tls-noverify/a")

    def test_https_upstream_session_resumed_on_the_next_connection(self):
        # /close makes the upstream close each connection: every request needs a new handshake.
        first, _ = self.echo("/tls/close?1")
        second, _ = self.echo("/tls/close?2")
        self.assertNotEqual(first["port"], second["port"], "two upstream connections")
        self.assertTrue(second["tls_session_reused"], "the second connection resumed the first one's session")
        third, _ = self.echo("/tls/close?3")
        self.assertTrue(third["tls_session_reused"])

    # --- 2. headers --------------------------------------------------------
    def test_forward_headers_allow_list_and_added_headers(self):
        echo, headers = self.echo("/allow/x", b"Accept: text/plain\r\nX-Keep: 1\r\nX-Drop: 2\r\nCookie: c=1\r\n"
                                              b"X-Forwarded-For: 198.51.100.7\r\n")
        h = echo["headers"]
        self.assertEqual(h["accept"], "text/plain")
        self.assertEqual(h["x-keep"], "1")
        self.assertNotIn("x-drop", h)
        self.assertNotIn("cookie", h)
        # What the proxy adds passes the allow-list.
        self.assertEqual(h["x-forwarded-for"], "127.0.0.1", "an allow-list without it drops the client's own XFF")
        self.assertEqual(h["x-real-ip"], "127.0.0.1")
        self.assertEqual(h["x-forwarded-proto"], "https")
        self.assertEqual(h["x-forwarded-host"], "edge.test")
        self.assertEqual(h["via"], "1.1 edge")
        self.assertIn("date", headers, "responses carry Date")

    def test_hop_by_hop_stripped_and_forwarded_for_appended(self):
        echo, headers = self.echo("/h", b"Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
                                        b"TE: trailers\r\nProxy-Authorization: Basic eA==\r\n"
                                        b"X-Forwarded-For: 198.51.100.7\r\nX-Other: kept\r\n")
        h = echo["headers"]
        for name in ("x-hop", "keep-alive", "te", "proxy-authorization"):
            self.assertNotIn(name, h)
        self.assertNotEqual(h.get("connection", "").lower(), "keep-alive, x-hop")
        self.assertEqual(h["x-other"], "kept")
        self.assertEqual(h["x-forwarded-for"], "198.51.100.7, 127.0.0.1")
        self.assertEqual(h["x-real-ip"], "127.0.0.1")
        self.assertEqual(h["via"], "1.1 edge")
        self.assertIn("date", headers)

    # --- 3. pool -----------------------------------------------------------
    def parallel(self, paths):
        with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
            return list(pool.map(lambda p: self.get(p), paths))

    def test_pool_limits(self):
        # max_connections: 2 - a third concurrent request waits (wait_timeout_ms: 2000), then gets 503.
        results = self.parallel(["/pool/slow?s=3", "/pool/slow?s=3", "/pool/slow?s=3"])
        self.assertEqual(sorted(r[0] for r in results), [200, 200, 503])
        # Waiters get a connection when one frees up: 5 quick requests through 2 connections.
        results = self.parallel(["/pool/q?s=0.1"] * 5)
        self.assertEqual([r[0] for r in results], [200] * 5)
        self.assertLessEqual(len({json.loads(r[2])["port"] for r in results}), 2, "never more than 2 connections")
        # max_idle: 1 - of the 2 connections, one is closed once both are idle.
        et.wait_for(lambda: self.pool_connections_open() <= 1, 10, "the pool to keep one idle connection")
        # idle_timeout_secs: 2 - the idle one is reused within the timeout, not after it.
        first = json.loads(self.get("/pool/a")[2])["port"]
        second = json.loads(self.get("/pool/b")[2])["port"]
        self.assertEqual(first, second, "an idle connection is reused")
        time.sleep(2.5)  # past the idle timeout on purpose
        third = json.loads(self.get("/pool/c")[2])["port"]
        self.assertNotEqual(second, third, "an idle connection past idle_timeout_secs is not reused")

    def pool_connections_open(self):
        with LOCK:
            closed = {port for name, port in CLOSED if name == "pool"}
        return len(self.pool_ports - closed)

    # --- 4. access log and 499 ----------------------------------------------
    def access_lines(self):
        return et.read_jsonl(self.access_log) if os.path.exists(self.access_log) else []

    def test_access_log_joins_handshake_records(self):
        sock = self.tls()
        for i in range(3):
            status, _, _ = self.get(f"/joined/{i}?secret=1", sock=sock)
            self.assertEqual(status, 200)
        sock.close()
        lines = et.wait_for(lambda: [l for l in self.access_lines() if l["url.path"].startswith("/joined/")]
                            if len([l for l in self.access_lines() if l["url.path"].startswith("/joined/")]) == 3
                            else None, 10, "3 access log lines")
        ids = {l["edge.connection.id"] for l in lines}
        self.assertEqual(len(ids), 1, "the three requests share their connection's id")
        handshakes = et.wait_for(lambda: [h for h in et.read_jsonl(self.handshake_log)
                                          if h["edge.connection.id"] in ids], 10, "the handshake record")
        self.assertEqual(len(handshakes), 1)
        self.assertEqual(handshakes[0]["client.address"], lines[0]["client.address"])
        for line in lines:
            self.assertEqual(line["http.request.method"], "GET")
            self.assertEqual(line["http.response.status_code"], 200)
            self.assertEqual(line["edge.route"], "default")
            self.assertNotIn("secret", line["url.path"], "the query string is not logged")
            self.assertGreater(line["http.response.body.size"], 0)
            self.assertGreaterEqual(line["edge.duration_us"], line["edge.upstream.duration_us"])
            self.assertEqual(line["edge.upstream.address"], f"127.0.0.1:{self.origin.server_address[1]}")
        self.assertTrue(lines[1]["edge.upstream.reused"] or lines[2]["edge.upstream.reused"])

    def test_client_gone_before_the_response_is_499(self):
        sock = self.tls()
        sock.sendall(b"GET /pool/gone?s=2 HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        et.wait_for(lambda: any(p for n, p in self.pool_requests_seen() if "/gone" in p), 5, "the request upstream")
        sock.close()
        line = et.wait_for(lambda: [l for l in self.access_lines() if l["url.path"] == "/pool/gone"], 10,
                           "the 499 line")[0]
        self.assertEqual(line["http.response.status_code"], 499)
        self.assertEqual(line["edge.route"], "pool")
        self.assertLess(line["edge.duration_us"], 2_000_000, "logged when the client left, not when the upstream answered")
        # The upstream connection was dropped, not pooled half-read: the upstream sees it end.
        gone_port = [p for p, path in self.pool_request_ports() if "/gone" in path][0]
        et.wait_for(lambda: gone_port in {p for n, p in CLOSED if n == "pool"}, 10,
                    "the half-used upstream connection to be closed")

    # --- 5. rate limits ---------------------------------------------------------
    def test_rate_limit_burst_then_refill(self):
        sock = self.tls()
        started = time.monotonic()
        statuses = []
        retry_after = None
        for i in range(8):
            status, headers, _ = self.get(f"/limited/{i}", sock=sock)
            statuses.append(status)
            retry_after = retry_after or headers.get("retry-after")
        elapsed = time.monotonic() - started
        sock.close()
        ok = statuses.count(200)
        # burst 5 at once; rate 1/s refills one token per second of the run itself.
        self.assertGreaterEqual(ok, 5)
        self.assertLessEqual(ok, 5 + int(elapsed) + 1)
        if elapsed < 1:
            self.assertEqual(ok, 5, statuses)
        self.assertEqual(statuses.count(429), 8 - ok, statuses)
        self.assertEqual(statuses[:5], [200] * 5)
        self.assertIsNotNone(retry_after)
        time.sleep(1.2)  # one token refills
        self.assertEqual(self.get("/limited/again")[0], 200, "recovered after refill")
        lines = et.wait_for(lambda: [l for l in self.access_lines() if l["url.path"].startswith("/limited/")
                                     and l["http.response.status_code"] == 429], 10, "429 lines")
        self.assertEqual(len(lines), 8 - ok)

    def test_concurrency_limits(self):
        results = self.parallel(["/per-client/slow?s=3", "/per-client/slow?s=3"])
        self.assertEqual(sorted(r[0] for r in results), [200, 503], "one request at a time per client")
        results = self.parallel(["/per-route/slow?s=3"] * 3)
        self.assertEqual(sorted(r[0] for r in results), [200, 200, 429], "two at a time on the route; own status")
        self.assertEqual(self.get("/per-client/after")[0], 200, "the places are released")


def _track_pool_requests():
    """Remembers (port, path) of every request the pool origin saw."""
    seen = []
    original = PoolOrigin.answer

    def answer(self):
        with LOCK:
            seen.append((self.client_address[1], self.path))
        original(self)

    PoolOrigin.do_GET = PoolOrigin.do_POST = answer
    HttpUpstreams.pool_request_ports = lambda self: list(seen)
    HttpUpstreams.pool_requests_seen = lambda self: [("pool", p) for _, p in seen]
    HttpUpstreams.pool_ports = property(lambda self: {p for p, _ in seen})


_track_pool_requests()

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

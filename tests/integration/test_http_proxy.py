#!/usr/bin/env python3
"""The HTTP/1.1 reverse proxy behind TLS, with real clients and a real
upstream started here: route kinds, error statuses, request smuggling
defences, 100-continue both ways, streamed bodies in both directions with
bounded memory, chunked encoding, WebSocket upgrade, header policy.

Usage: test_http_proxy.py --edged PATH --edgectl PATH"""

import argparse
import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None
UPSTREAM_REQUESTS = []  # (method, path) seen by the upstream, to prove what was (not) forwarded


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_expect_100(self):
        if self.path.startswith("/refuse"):
            self.send_response(417)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        return super().handle_expect_100()

    def reply(self, payload, status=200, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def read_body(self):
        digest, total = hashlib.sha256(), 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    digest.update(chunk)
                    remaining -= len(chunk)
                    total += len(chunk)
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                digest.update(chunk)
                remaining -= len(chunk)
                total += len(chunk)
        return total, digest.hexdigest()

    def handle_any(self):
        UPSTREAM_REQUESTS.append((self.command, self.path))
        if self.path.startswith("/slow"):
            time.sleep(5)
        if self.path.startswith("/events"):
            # A stream of events (server-sent events style): the first one at
            # once, the next one 1.5 s later.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in (b"data: first\n\n", b"data: second\n\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                if event.startswith(b"data: first"):
                    time.sleep(1.5)  # under upstream_timeout_secs (2)
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/download"):
            size = int(self.path.split("=")[1])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            block = b"x" * 65536
            sent = 0
            while sent < size:
                piece = block[:min(len(block), size - sent)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            self.wfile.write(b"0\r\n\r\n")
            return
        total, digest = self.read_body()
        self.reply(json.dumps({"method": self.command, "path": self.path, "body_length": total, "sha256": digest,
                               "headers": {k.lower(): v for k, v in self.headers.items()}}).encode())

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any


class WebSocketOrigin(socketserver.BaseRequestHandler):
    """Answers the Upgrade with 101, then echoes raw bytes (frames pass through untouched)."""

    def handle(self):
        conn = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key")][0]
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while data := conn.recv(65536):
            conn.sendall(data)


def start(server):
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class HttpProxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="edge-http-")
        ca = pki.CertificateAuthority(cls.dir, "ca")
        cert, key = ca.issue("main", "edge.test", ["DNS:edge.test", "DNS:api.edge.test"])
        cls.ca = ca.cert
        cls.origin = start(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin))
        cls.ws_origin = start(socketserver.ThreadingTCPServer(("127.0.0.1", 0), WebSocketOrigin))
        op, wp = cls.origin.server_address[1], cls.ws_origin.server_address[1]
        cls.port = et.free_port()
        config = os.path.join(cls.dir, "edge.yaml")
        with open(config, "w") as f:
            f.write(f"""
proxy:
  listen: ["127.0.0.1:{cls.port}"]
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
  http:
    upstream_timeout_secs: 2
    routes:
      - {{path: /ws, type: websocket, upstream: "http://127.0.0.1:{wp}/socket"}}
      - {{path: /exact, upstream: "http://127.0.0.1:{op}/target"}}
      - {{path_regex: "^/(whip|whep)/", upstream: "http://127.0.0.1:{op}", preserve_host: true}}
      - {{host: api.edge.test, path_prefix: /, upstream: "http://127.0.0.1:{op}/api/"}}
      - {{path_prefix: /dead/, upstream: "http://127.0.0.1:1/"}}
      - {{path_prefix: /, upstream: "http://127.0.0.1:{op}/"}}
    server_header: false
handshake_log:
  file: ./handshakes.jsonl
""")
        cls.edged = et.Edged(ARGS.edged, config, cls.dir).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edged.__exit__(None, None, None)
        cls.origin.shutdown()
        cls.ws_origin.shutdown()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def tls(self, sni="edge.test"):
        ctx = et.tls_client_context(cafile=self.ca)
        sock, _ = et.connect_tls("127.0.0.1", self.port, ctx, sni, timeout=30)
        return sock

    @staticmethod
    def read_response(sock):
        """One response (status, headers, body) read off a raw socket."""
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

    def request(self, raw, sni="edge.test"):
        sock = self.tls(sni)
        sock.sendall(raw)
        result = self.read_response(sock)
        sock.close()
        return result

    def get(self, path, host="edge.test", extra=b""):
        return self.request(b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path.encode(), host.encode(), extra),
                            sni=host)

    def test_route_kinds(self):
        status, _, body = self.get("/exact?q=1")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["path"], "/target?q=1", "an exact route maps to its upstream path")
        status, _, body = self.get("/whip/session")
        echo = json.loads(body)
        self.assertEqual(echo["path"], "/whip/session", "a regex route keeps the path")
        self.assertEqual(echo["headers"]["host"], "edge.test", "preserve_host: true")
        status, _, body = self.get("/items", host="api.edge.test")
        self.assertEqual(json.loads(body)["path"], "/api/items", "a host route with its own prefix")
        status, headers, body = self.get("/other")
        echo = json.loads(body)
        self.assertEqual(echo["headers"]["host"], f"127.0.0.1:{self.origin.server_address[1]}", "upstream Host by default")
        self.assertEqual(echo["headers"]["x-forwarded-host"], "edge.test")
        self.assertNotIn("server", headers, "server_header: false")

    def test_error_statuses(self):
        self.assertEqual(self.get("/dead/x")[0], 502)
        self.assertEqual(self.get("/slow")[0], 504)
        self.assertEqual(self.request(b"GET / HTTP/3.0\r\nHost: edge.test\r\n\r\n")[0], 505)
        self.assertEqual(self.request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")[0], 505)
        self.assertEqual(self.request(b"GET / HTTP/1.1\r\nHost: edge.test\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")[0], 431)
        self.assertEqual(self.request(b"NOT A REQUEST\r\n\r\n")[0], 400)

    def test_smuggling_payloads_get_400_and_nothing_reaches_the_upstream(self):
        payloads = {
            "CL.TE": b"POST /smuggle1 HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED",
            "TE.CL": b"POST /smuggle2 HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            "TE.TE space": b"POST /smuggle3 HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            "TE.TE xchunked": b"POST /smuggle4 HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            "TE.TE double": b"POST /smuggle5 HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
            "TE list": b"POST /smuggle6 HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            "double CL": b"POST /smuggle7 HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            "obs-fold": b"POST /smuggle8 HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n",
            "bad CL": b"POST /smuggle9 HTTP/1.1\r\nHost: edge.test\r\nContent-Length: +5\r\n\r\nhello",
            "bad header name": b"POST /smuggle10 HTTP/1.1\r\nHost: edge.test\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n",
        }
        for name, payload in payloads.items():
            with self.subTest(name):
                status, _, _ = self.request(payload)
                self.assertEqual(status, 400)
        self.assertEqual([p for m, p in UPSTREAM_REQUESTS if p.startswith("/smuggle")], [])

    def test_expect_100_continue_both_ways(self):
        sock = self.tls()
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = sock.recv(100)
        self.assertTrue(interim.startswith(b"HTTP/1.1 100"), interim)
        sock.sendall(b"hello")
        status, _, body = self.read_response(sock)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["body_length"], 5)
        sock.close()
        sock = self.tls()
        sock.sendall(b"POST /refuse HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        status, headers, _ = self.read_response(sock)
        self.assertEqual(status, 417, "the upstream's refusal reaches the client before any body")
        sock.close()

    def test_streamed_upload_and_download_with_bounded_memory(self):
        size = 1 << 30  # 1 GiB each way
        rss_before = self.rss_kib()
        sock = self.tls()
        sock.sendall(b"PUT /upload HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = os.urandom(1 << 20)
        digest = hashlib.sha256()
        peak = rss_before
        for i in range(size // len(block)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
            digest.update(block)
            if i % 64 == 0:
                peak = max(peak, self.rss_kib())
        sock.sendall(b"0\r\n\r\n")
        status, _, body = self.read_response(sock)
        echo = json.loads(body)
        self.assertEqual(status, 200)
        self.assertEqual(echo["body_length"], size)
        self.assertEqual(echo["sha256"], digest.hexdigest())
        sock.sendall(b"GET /download?n=%d HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n" % size)
        received = 0
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        self.assertIn(b"chunked", head.lower())
        received_raw = len(rest)
        while chunk := sock.recv(1 << 20):
            received_raw += len(chunk)
            received += 1
            if received % 256 == 0:
                peak = max(peak, self.rss_kib())
        sock.close()
        self.assertGreater(received_raw, size, "the whole chunked body arrived")
        self.assertLess(peak - rss_before, 64 * 1024, "edged's memory stayed flat while 2 GiB streamed through")

    def rss_kib(self):
        with open(f"/proc/{self.edged.process.pid}/status") as f:
            return int([l for l in f if l.startswith("VmRSS")][0].split()[1])

    def test_websocket_upgrade_then_bytes_both_ways(self):
        sock = self.tls()
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: edge.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        status, headers, rest = self.read_response(sock)
        self.assertEqual(status, 101)
        self.assertEqual(headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"  # masked text frame "Hello" (RFC 6455 5.7)
        sock.sendall(frame)
        echoed = rest
        while len(echoed) < len(frame):
            echoed += sock.recv(100)
        self.assertEqual(echoed, frame)
        sock.close()

    def test_streamed_events_reach_the_client_as_they_come(self):
        sock = self.tls()
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        started = time.monotonic()
        data = b""
        while b"data: first" not in data:
            chunk = sock.recv(65536)
            self.assertTrue(chunk, "closed before the first event")
            data += chunk
        self.assertLess(time.monotonic() - started, 1.0, "the first event waited for the rest of the body")
        self.assertNotIn(b"data: second", data)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"))
        while not data.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            self.assertTrue(chunk)
            data += chunk
        self.assertIn(b"data: second", data)
        sock.close()

    def test_keep_alive_after_answers_sent_without_a_wait(self):
        # A body-less answer (HEAD) or a small one that came whole goes out at
        # once, before the watch on the client for that request has ended:
        # the connection must still wait for, and serve, the next request.
        sock = self.tls()
        for method in ("HEAD", "GET", "HEAD", "HEAD", "GET", "GET"):
            sock.sendall(b"%s /ka HTTP/1.1\r\nHost: edge.test\r\n\r\n" % method.encode())
            if method == "GET":
                status, headers, body = self.read_response(sock)
                self.assertEqual(json.loads(body)["path"], "/ka")
            else:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(65536)
                    self.assertTrue(chunk, "the connection closed after a HEAD answer")
                    data += chunk
                status = int(data.split()[1])
            self.assertEqual(status, 200, method)
        sock.close()

    def test_keep_alive_and_chunked_response(self):
        sock = self.tls()
        for _ in range(3):
            sock.sendall(b"GET /download?n=100000 HTTP/1.1\r\nHost: edge.test\r\n\r\n")
            data = b""
            while not data.endswith(b"0\r\n\r\n"):
                data += sock.recv(65536)
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:300])
        sock.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

#!/usr/bin/env python3
"""SNI routing at layer 4 and the PROXY protocol, with real clients and real
upstreams started here: transparent passthrough to a TLS echo server, TLS
termination to a plain TCP echo server, silent reject, the HTTP handler as
default, inbound PROXY v1/v2 from trusted and untrusted peers, and outbound
PROXY headers to upstreams. Each case checks its handshake record.

Usage: test_routing.py --edged PATH --edgectl PATH"""

import argparse
import os
import shutil
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None


class EchoServer:
    """TCP (optionally TLS) echo server; with expect_proxy it reads a PROXY
    header first and echoes it back before echoing the stream."""

    def __init__(self, tls_cert=None, expect_proxy=False):
        outer = self
        self.context = None
        if tls_cert:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*tls_cert)

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                conn = self.request
                conn.settimeout(10)
                try:
                    if expect_proxy:
                        header = b""
                        while not (header.startswith(b"PROXY") and b"\r\n" in header) and len(header) < 256:
                            if header.startswith(b"\r\n\r\n\x00\r\nQUIT\n") and len(header) >= 16 and \
                                    len(header) >= 16 + int.from_bytes(header[14:16], "big"):
                                break
                            chunk = conn.recv(1)
                            if not chunk:
                                return
                            header += chunk
                        outer.proxy_headers.append(header)
                    if outer.context:
                        conn = outer.context.wrap_socket(conn, server_side=True)
                    while data := conn.recv(65536):
                        conn.sendall(data)
                except (OSError, ssl.SSLError):
                    pass

        self.proxy_headers = []
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def closed_by_peer(sock):
    """True when the peer closed: a FIN, or a reset (unread bytes were pending on its side)."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


class Routing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="edge-routing-")
        edge_ca = pki.CertificateAuthority(cls.dir, "edge-ca")
        cert, key = edge_ca.issue("edge", "edge.test", ["DNS:edge.test", "DNS:*.edge.test"])
        cls.edge_ca = edge_ca.cert
        backend_ca = pki.CertificateAuthority(cls.dir, "backend-ca")
        cls.backend_ca = backend_ca.cert
        cls.tls_echo = EchoServer(tls_cert=backend_ca.issue("backend", "pass.edge.test", ["DNS:pass.edge.test"]))
        cls.tls_echo_pp = EchoServer(tls_cert=backend_ca.issue("backend2", "pp.edge.test", ["DNS:pp.edge.test"]),
                                     expect_proxy=True)
        cls.tcp_echo = EchoServer()
        cls.tcp_echo_pp = EchoServer(expect_proxy=True)
        cls.upstream = et.Upstream().__enter__()
        cls.port, cls.pp_port = et.free_port(), et.free_port()
        cls.jsonl = os.path.join(cls.dir, "handshakes.jsonl")
        config = os.path.join(cls.dir, "edge.yaml")
        with open(config, "w") as f:
            f.write(f"""
proxy:
  listen:
    - "127.0.0.1:{cls.port}"
    - {{address: "127.0.0.1:{cls.pp_port}", proxy_protocol: true}}
  workers: 2
  proxy_protocol:
    trusted_proxies: [127.0.0.1/32, "::1/128"]
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
    handshake_timeout_secs: 2
    routing:
      default: {{mode: tls_terminate, handler: http}}
      sni:
        - {{server_name: pass.edge.test, mode: transparent, upstream: "127.0.0.1:{cls.tls_echo.port}"}}
        - {{server_name: pp.edge.test, mode: transparent, upstream: "127.0.0.1:{cls.tls_echo_pp.port}",
            proxy_protocol: v1}}
        - {{server_name: tcp.edge.test, mode: tls_terminate, upstream: "127.0.0.1:{cls.tcp_echo.port}"}}
        - {{server_name: tcp2.edge.test, mode: tls_terminate, upstream: "127.0.0.1:{cls.tcp_echo_pp.port}",
            proxy_protocol: v2}}
        - {{server_name: "*.blocked.test", mode: reject}}
  http:
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{cls.upstream.port}/
handshake_log:
  file: ./handshakes.jsonl
""")
        cls.edged = et.Edged(ARGS.edged, config, cls.dir).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edged.__exit__(None, None, None)
        for server in (cls.tls_echo, cls.tls_echo_pp, cls.tcp_echo, cls.tcp_echo_pp):
            server.close()
        cls.upstream.__exit__(None, None, None)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def record_for(self, port, address="127.0.0.1"):
        def find():
            hits = [r for r in et.read_jsonl(self.jsonl) if r["client.port"] == port and r["client.address"] == address]
            return hits or None
        hits = et.wait_for(find, 10, f"the record of {address}:{port}")
        self.assertEqual(len(hits), 1, hits)
        return hits[0]

    def echo_over_tls(self, sni, cafile, port=None, prefix=b"", source=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(10)
        if source:
            raw.bind((source, 0))
        raw.connect(("127.0.0.1", port or self.port))
        local = raw.getsockname()[1]
        if prefix:
            raw.sendall(prefix)
        tls = et.tls_client_context(cafile=cafile, alpn=("x-echo",) if "pass" in sni or "pp" in sni else None
                                    ).wrap_socket(raw, server_hostname=sni)
        tls.sendall(b"hello through the edge")
        answer = b""
        while len(answer) < 22:
            chunk = tls.recv(100)
            if not chunk:
                break
            answer += chunk
        tls.close()
        return answer, local

    def test_transparent_passthrough_reaches_the_backend_certificate(self):
        answer, port = self.echo_over_tls("pass.edge.test", self.backend_ca)
        self.assertEqual(answer, b"hello through the edge")
        record = self.record_for(port)
        self.assertEqual(record["edge.outcome"], "passthrough")
        self.assertEqual(record["tls.client.server_name"], "pass.edge.test")
        self.assertEqual(record["tls.client.supported_protocols"], "x-echo")
        self.assertIn("1.3", record["tls.client.supported_versions"])
        self.assertEqual(record["edge.upstream"], f"127.0.0.1:{self.tls_echo.port}")
        self.assertGreater(record["edge.bytes.in"], 22)
        self.assertGreater(record["edge.bytes.out"], 22)
        self.assertNotIn("edge.cert.name", record, "nothing of ours was served")

    def test_passthrough_with_outbound_proxy_v1(self):
        answer, port = self.echo_over_tls("pp.edge.test", self.backend_ca)
        self.assertEqual(answer, b"hello through the edge")
        header = self.tls_echo_pp.proxy_headers[-1]
        self.assertEqual(header, f"PROXY TCP4 127.0.0.1 127.0.0.1 {port} {self.port}\r\n".encode())

    def test_terminate_to_tcp_upstream(self):
        answer, port = self.echo_over_tls("tcp.edge.test", self.edge_ca)
        self.assertEqual(answer, b"hello through the edge")
        record = self.record_for(port)
        self.assertEqual(record["edge.outcome"], "ok")
        self.assertEqual(record["edge.cert.name"], "main")
        self.assertEqual(record["edge.upstream"], f"127.0.0.1:{self.tcp_echo.port}")

    def test_terminate_to_tcp_with_outbound_proxy_v2(self):
        answer, port = self.echo_over_tls("tcp2.edge.test", self.edge_ca)
        self.assertEqual(answer, b"hello through the edge")
        header = self.tcp_echo_pp.proxy_headers[-1]
        self.assertTrue(header.startswith(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11"), header)
        self.assertEqual(int.from_bytes(header[24:26], "big"), port)

    def test_reject_closes_silently(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        tls = et.tls_client_context(verify=False)
        with self.assertRaises((ssl.SSLError, OSError)) as caught:
            tls.wrap_socket(raw, server_hostname="x.blocked.test")
        self.assertNotIn("ALERT", str(caught.exception).upper())
        raw.close()
        record = self.record_for(port)
        self.assertEqual(record["edge.outcome"], "rejected")
        self.assertEqual(record["tls.client.server_name"], "x.blocked.test")
        self.assertEqual(record["edge.alert.sent"], "none")

    def test_default_route_is_the_http_proxy(self):
        ctx = et.tls_client_context(cafile=self.edge_ca)
        tls, port = et.connect_tls("127.0.0.1", self.port, ctx, "www.edge.test")
        tls.sendall(b"GET /x HTTP/1.1\r\nHost: www.edge.test\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        tls.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:100])
        self.assertEqual(self.record_for(port)["edge.outcome"], "ok")

    def test_preread_answers_plain_http_with_400(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(b"GET / HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        answer = raw.recv(4096)
        raw.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer)
        self.assertEqual(self.record_for(port)["error.type"], "not_tls")

    def test_preread_malformed_client_hello(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00")  # a ServerHello where a ClientHello belongs
        try:
            raw.recv(100)
        except OSError:
            pass
        raw.close()
        self.assertEqual(self.record_for(port)["error.type"], "malformed_client_hello")

    def test_inbound_proxy_v1_and_v2_set_the_client_address(self):
        v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 40001 443\r\n"
        answer, peer_port = self.echo_over_tls("tcp.edge.test", self.edge_ca, port=self.pp_port, prefix=v1)
        self.assertEqual(answer, b"hello through the edge")
        record = self.record_for(40001, address="203.0.113.7")
        self.assertEqual(record["network.peer.address"], "127.0.0.1")
        v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x24" + bytes(15) + b"\x09" + bytes(15) + b"\x01"
              + (40002).to_bytes(2, "big") + (443).to_bytes(2, "big"))
        answer, _ = self.echo_over_tls("tcp.edge.test", self.edge_ca, port=self.pp_port, prefix=v2)
        self.assertEqual(answer, b"hello through the edge")
        self.assertEqual(self.record_for(40002, address="::9")["edge.outcome"], "ok")

    def test_inbound_proxy_from_an_untrusted_peer_is_refused(self):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(10)
        raw.bind(("127.0.0.2", 0))
        raw.connect(("127.0.0.1", self.pp_port))
        port = raw.getsockname()[1]
        raw.sendall(b"PROXY TCP4 198.51.100.1 127.0.0.1 40003 443\r\n")
        self.assertTrue(closed_by_peer(raw))
        raw.close()
        record = self.record_for(port, address="127.0.0.2")
        self.assertEqual(record["error.type"], "proxy_protocol_untrusted")

    def test_inbound_garbage_instead_of_a_proxy_header(self):
        raw = socket.create_connection(("127.0.0.1", self.pp_port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(b"HELLO there\r\n")
        self.assertTrue(closed_by_peer(raw))
        raw.close()
        self.assertEqual(self.record_for(port)["error.type"], "proxy_protocol_invalid")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

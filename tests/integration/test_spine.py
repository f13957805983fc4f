#!/usr/bin/env python3
"""The spine end to end, against real peers: Pebble issues a certificate for
edge.test + 127.0.0.1 + ::1 over TLS-ALPN-01 answered by edged's own listener;
openssl s_client and Python ssl verify it; edgectl reads the SQLite store; a
forced renewal swaps the certificate under a live keep-alive connection; a
TLS 1.1 client gets protocol_version; every handshake has its record.

Usage: test_spine.py --edged PATH --edgectl PATH"""

import argparse
import http.client
import shutil
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402

ARGS = None


class HttpsToLoopback(http.client.HTTPSConnection):
    """HTTPS to edged on loopback, with SNI edge.test and certificate checks."""

    def __init__(self, port, context, server_hostname):
        super().__init__("127.0.0.1", port, context=context, timeout=10)
        self._sni = server_hostname

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self._sni)


class Spine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="edge-spine-")
        cls.port = et.free_port()
        cls.pebble = Pebble(tls_port=cls.port).__enter__()
        cls.upstream = et.Upstream().__enter__()
        cls.store = os.path.join(cls.dir, "edge.db")
        cls.jsonl = os.path.join(cls.dir, "handshakes.jsonl")
        config = os.path.join(cls.dir, "edge.yaml")
        with open(config, "w") as f:
            f.write(f"""
store:
  path: ./edge.db
proxy:
  listen: ["127.0.0.1:{cls.port}", "[::1]:{cls.port}"]
  workers: 2
  tls:
    mode: acme
    acme:
      directory: {cls.pebble.directory_url}
      ca_bundle: {cls.pebble.ca_bundle}
      contact: ["mailto:ops@edge.test"]
      key_type: ecdsa-p256
    certificates:
      - name: main
        identifiers: [edge.test, 127.0.0.1, "::1"]
    handshake_timeout_secs: 10
    min_protocol_version: "1.2"
    max_protocol_version: "1.3"
  http:
    upstream_timeout_secs: 10
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{cls.upstream.port}/
handshake_log:
  file: ./handshakes.jsonl
""")
        cls.edged = et.Edged(ARGS.edged, config, cls.dir).__enter__()
        cls.first = et.wait_for(lambda: cls.certs(), 90, "the first certificate in the store")[0]
        cls.root = os.path.join(cls.dir, "pebble-root.pem")
        with open(cls.root, "w") as f:
            f.write(cls.pebble.root_pem())

    @classmethod
    def tearDownClass(cls):
        cls.edged.__exit__(None, None, None)
        cls.upstream.__exit__(None, None, None)
        cls.pebble.__exit__(None, None, None)
        if os.environ.get("EDGE_KEEP_TEST_DIR"):
            print("kept", cls.dir, file=sys.stderr)
        else:
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def certs(cls):
        out = et.edgectl(ARGS.edgectl, cls.store, "certs", "--json", check=False)
        if out.returncode != 0:
            return None
        return json.loads(out.stdout) or None

    def s_client(self, host, servername=None, verify_ip=None, extra=()):
        args = ["openssl", "s_client", "-connect", f"{host}:{self.port}", "-CAfile", self.root,
                "-verify_return_error", "-showcerts", *extra]
        args += ["-servername", servername, "-verify_hostname", servername] if servername else ["-noservername"]
        if verify_ip:
            args += ["-verify_ip", verify_ip]
        return subprocess.run(args, input=b"", capture_output=True, timeout=20)

    def served_leaf(self, host, server_hostname):
        ctx = et.tls_client_context(verify=False)
        tls, local_port = et.connect_tls(host, self.port, ctx, server_hostname)
        with tls:
            return et.leaf_facts(tls.getpeercert(binary_form=True)), local_port

    def record_for(self, local_port, host="127.0.0.1"):
        def find():
            for r in et.read_jsonl(self.jsonl):
                if r["client.port"] == local_port and r["client.address"] == host:
                    return r
            return None
        return et.wait_for(find, 10, f"the handshake record of client port {local_port}")

    # Acceptance 1: one certificate for edge.test + 127.0.0.1 + ::1, verified by real clients.
    def test_1_certificate_verifies_for_dns_ipv4_and_ipv6(self):
        self.assertEqual(sorted(self.first["identifiers"]), sorted(["edge.test", "127.0.0.1", "::1"]))
        for host, servername, verify_ip in (("127.0.0.1", "edge.test", None), ("127.0.0.1", None, "127.0.0.1"),
                                            ("[::1]", None, "::1")):
            with self.subTest(host=host, servername=servername):
                result = self.s_client(host, servername, verify_ip)
                out = result.stdout.decode(errors="replace")
                self.assertEqual(result.returncode, 0, out + result.stderr.decode(errors="replace"))
                self.assertIn("Verify return code: 0 (ok)", out)
        # Python's ssl, with hostname checking, for the DNS name.
        ctx = et.tls_client_context(cafile=self.root)
        tls, _ = et.connect_tls("127.0.0.1", self.port, ctx, "edge.test")
        tls.close()
        # Pebble's three validation connections per identifier were answered and logged.
        challenges = [r for r in et.read_jsonl(self.jsonl) if r["edge.outcome"] == "acme_challenge"]
        names = {r["tls.client.server_name"] for r in challenges}
        self.assertTrue({"edge.test", "1.0.0.127.in-addr.arpa",
                         "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"} <= names, names)
        self.assertGreaterEqual(len(challenges), 9)

    # Acceptance 2: certificate and key in the SQLite file, edgectl shows serial and fingerprint.
    def test_2_store_and_edgectl_agree_with_the_served_leaf(self):
        (serial, sha256), _ = self.served_leaf("127.0.0.1", "edge.test")
        cert = self.certs()[0]
        self.assertEqual(cert["name"], "main")
        self.assertEqual(cert["serial"], serial)
        self.assertEqual(cert["fingerprint_sha256"].upper(), sha256)
        rows = et.store_query(self.store, "SELECT chain_pem, private_key_pem FROM certificates "
                                          "WHERE name = 'main' AND serial = ?", (serial,))
        self.assertEqual(len(rows), 1)
        chain_pem, key_pem = rows[0]
        cert_pub = et.run(["openssl", "x509", "-noout", "-pubkey"], input=chain_pem.encode()).stdout
        key_pub = et.run(["openssl", "pkey", "-pubout"], input=key_pem.encode()).stdout
        self.assertEqual(cert_pub, key_pub, "the stored key is the leaf's key")
        self.assertEqual(oct(os.stat(self.store).st_mode & 0o777), "0o600")
        table = et.edgectl(ARGS.edgectl, self.store, "certs").stdout.decode()
        self.assertIn("main", table)
        self.assertIn(serial, table)

    # Acceptance 3: forced renewal under a live keep-alive connection; no failed handshake meanwhile.
    def test_3_forced_renewal_keeps_old_connection_and_serves_new_serial(self):
        ctx = et.tls_client_context(cafile=self.root)
        conn = HttpsToLoopback(self.port, ctx, "edge.test")
        conn.request("GET", "/before")
        response = conn.getresponse()
        self.assertEqual(response.status, 200)
        response.read()
        old_sock = conn.sock
        old_serial, _ = et.leaf_facts(conn.sock.getpeercert(binary_form=True))

        seen, failures, stop = set(), [], threading.Event()

        def handshake_loop():
            while not stop.is_set():
                try:
                    tls, _ = et.connect_tls("127.0.0.1", self.port, et.tls_client_context(cafile=self.root), "edge.test")
                    seen.add(et.leaf_facts(tls.getpeercert(binary_form=True))[0])
                    tls.close()
                except Exception as e:  # any failure here is a test failure
                    failures.append(repr(e))
        worker = threading.Thread(target=handshake_loop)
        worker.start()
        try:
            renew = et.edgectl(ARGS.edgectl, self.store, "renew", "main", "--wait", "90", timeout=120)
            self.assertIn("main", renew.stdout.decode())
            new_serial = et.wait_for(
                lambda: (s := self.served_leaf("127.0.0.1", "edge.test")[0][0]) != old_serial and s,
                20, "a new serial on new handshakes")
        finally:
            stop.set()
            worker.join(timeout=30)

        conn.request("GET", "/after")
        response = conn.getresponse()
        self.assertEqual(response.status, 200)
        self.assertEqual(json.loads(response.read())["path"], "/after")
        self.assertIs(conn.sock, old_sock, "the keep-alive connection was not replaced")
        self.assertEqual(et.leaf_facts(conn.sock.getpeercert(binary_form=True))[0], old_serial)
        conn.close()
        self.assertEqual(failures, [])
        self.assertIn(old_serial, seen)
        self.assertNotEqual(new_serial, old_serial)
        self.assertEqual(self.certs()[0]["serial"], new_serial)
        self.assertEqual(self.certs()[0]["generation"], self.first["generation"] + 1)

    # Acceptance 4: TLS 1.1 gets protocol_version; records name the client and the served certificate.
    def test_4_tls11_client_gets_protocol_version_alert_and_a_record(self):
        ctx = et.tls_client_context(verify=False, minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1,
                                    ciphers="DEFAULT:@SECLEVEL=0")
        with self.assertRaises(ssl.SSLError) as caught:
            et.connect_tls("127.0.0.1", self.port, ctx, "edge.test")
        self.assertIn("PROTOCOL_VERSION", str(caught.exception).upper())
        # Again from a socket whose local port we know, to find its record.
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        with self.assertRaises(ssl.SSLError):
            ctx.wrap_socket(raw, server_hostname="edge.test")
        raw.close()
        record = self.record_for(port)
        self.assertEqual(record["edge.outcome"], "failed")
        self.assertEqual(record["error.type"], "protocol_version")
        self.assertEqual(record["edge.alert.sent"], "protocol_version")
        self.assertEqual(record["client.address"], "127.0.0.1")
        self.assertEqual(record["tls.client.server_name"], "edge.test")
        # s_client sees the alert too.
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-tls1_1",
                              "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "edge.test"],
                             input=b"", capture_output=True, timeout=20)
        self.assertIn("alert protocol version", (out.stdout + out.stderr).decode(errors="replace"))

        (serial, sha256), port = self.served_leaf("127.0.0.1", "edge.test")
        record = self.record_for(port)
        self.assertEqual(record["edge.outcome"], "ok")
        self.assertEqual(record["edge.cert.name"], "main")
        self.assertEqual(record["edge.cert.serial"], serial)
        self.assertEqual(record["tls.server.hash.sha256"].upper(), sha256)
        self.assertIn(record["tls.protocol.version"], ("1.2", "1.3"))
        self.assertTrue(record["tls.cipher"])
        self.assertTrue(record["tls.curve"])
        self.assertIn("@timestamp", record)

        (_, _), port6 = self.served_leaf("::1", None)
        record6 = self.record_for(port6, host="::1")
        self.assertEqual(record6["edge.cert.name"], "main")
        self.assertEqual(record6["tls.client.server_name"], "")

    def test_5_every_connection_has_exactly_one_record_in_file_and_store(self):
        ports = []
        for _ in range(5):  # connect and close without a byte
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            ports.append(s.getsockname()[1])
            s.close()
        for port in ports:
            self.assertEqual(self.record_for(port)["error.type"], "client_closed")

        def counts():
            file_count = len(et.read_jsonl(self.jsonl))
            db_count = et.store_query(self.store, "SELECT COUNT(*) FROM handshakes")[0][0]
            return file_count == db_count and file_count
        try:
            et.wait_for(counts, 10, "file and store to hold the same records")
        except TimeoutError:
            self.fail("file has %d records, store %d" % (len(et.read_jsonl(self.jsonl)),
                      et.store_query(self.store, "SELECT COUNT(*) FROM handshakes")[0][0]))
        for port in ports:
            file_hits = [r for r in et.read_jsonl(self.jsonl) if r["client.port"] == port]
            self.assertEqual(len(file_hits), 1)
        history = et.edgectl(ARGS.edgectl, self.store, "handshakes", "--failed", "--json", "--limit", "1000").stdout
        failed = [json.loads(line) for line in history.decode().splitlines() if line.strip()]
        self.assertTrue(failed)
        self.assertTrue(all(r["edge.outcome"] not in ("ok", "acme_challenge") for r in failed))
        self.assertTrue({p for p in ports} <= {r["client.port"] for r in failed})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

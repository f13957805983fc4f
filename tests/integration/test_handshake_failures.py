#!/usr/bin/env python3
"""Every handshake outcome classified, answered with the right alert and tied
to the certificate that served it: more than 20 distinct failure cases driven
by real clients (openssl s_client, Python ssl, raw sockets), each checked for
error.type, edge.alert.sent, client.address, the attempted SNI, and what the
client saw.

Usage: test_handshake_failures.py --edged PATH --edgectl PATH"""

import argparse
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None


def len16(b):
    return len(b).to_bytes(2, "big")


def raw_client_hello(extensions):
    """A TLS 1.2 ClientHello record with the given extension block."""
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + len16(b"\xc0\x2b\xc0\x2f") + b"\xc0\x2b\xc0\x2f" + b"\x01\x00"
            + len16(extensions) + extensions)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len16(handshake) + handshake


def python_client_hello(server_hostname):
    """The bytes of a real ClientHello from Python's ssl, without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = et.tls_client_context(verify=False)
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class HandshakeFailures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="edge-failures-")
        server_ca = pki.CertificateAuthority(cls.dir, "server-ca")
        cls.server_ca = server_ca.cert
        cert, key = server_ca.issue("main", "edge.test", ["DNS:edge.test", "DNS:*.edge.test", "IP:127.0.0.1"])
        client_ca = pki.CertificateAuthority(cls.dir, "client-ca")
        other_ca = pki.CertificateAuthority(cls.dir, "other-ca")
        cls.clients = {
            "good": client_ca.issue("good", "good-client"),
            "expired": client_ca.issue("expired", "expired-client", start="20200101000000Z", end="20200102000000Z"),
            "future": client_ca.issue("future", "future-client", start="20990101000000Z", end="20990102000000Z"),
            "revoked": client_ca.issue("revoked", "revoked-client"),
            "unknown": other_ca.issue("stranger", "stranger-client"),
        }
        client_ca.revoke(cls.clients["revoked"][0])
        crl = client_ca.crl()
        good_pem, good_key = cls.clients["good"]
        cls.clients["badsig"] = (pki.corrupt_signature(good_pem, os.path.join(cls.dir, "badsig.pem")), good_key)
        cls.other_ca = other_ca.cert

        cls.port, cls.reject_port, cls.drop_port = et.free_port(), et.free_port(), et.free_port()
        cls.jsonl = os.path.join(cls.dir, "handshakes.jsonl")
        config = os.path.join(cls.dir, "edge.yaml")
        with open(config, "w") as f:
            f.write(f"""
proxy:
  listen:
    - "127.0.0.1:{cls.port}"
    - {{address: "127.0.0.1:{cls.reject_port}", unknown_sni: reject}}
    - {{address: "127.0.0.1:{cls.drop_port}", unknown_sni: drop}}
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
    handshake_timeout_secs: 1
    min_protocol_version: "1.2"
    max_protocol_version: "1.3"
    groups: [X25519, P-256]
    routing:
      sni:
        - {{server_name: mtls.edge.test, client_auth: required, client_ca: {client_ca.cert}, crl: [{crl}]}}
        - {{server_name: opt.edge.test, client_auth: optional, client_ca: {client_ca.cert}}}
handshake_log:
  file: ./handshakes.jsonl
""")
        cls.edged = et.Edged(ARGS.edged, config, cls.dir).__enter__()
        cls.serial, cls.sha256 = et.leaf_facts(
            subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], capture_output=True,
                           check=True).stdout)

    @classmethod
    def tearDownClass(cls):
        cls.edged.__exit__(None, None, None)
        if os.environ.get("EDGE_KEEP_TEST_DIR"):
            print("kept", cls.dir, file=sys.stderr)
        else:
            shutil.rmtree(cls.dir, ignore_errors=True)

    # --- helpers ---------------------------------------------------------

    def records(self, predicate, what, count=1):
        def find():
            hits = [r for r in et.read_jsonl(self.jsonl) if predicate(r)]
            return hits if len(hits) >= count else None
        hits = et.wait_for(find, 10, what)
        self.assertEqual(len(hits), count, hits)
        return hits

    def by_port(self, port):
        return self.records(lambda r: r["client.port"] == port, f"the record of client port {port}")[0]

    def by_sni(self, sni):
        return self.records(lambda r: r["tls.client.server_name"] == sni, f"the record for SNI {sni}")[0]

    def s_client(self, sni, *extra, port=None):
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port or self.port}", "-servername", sni, *extra]
        out = subprocess.run(args, input=b"", capture_output=True, timeout=20)
        return (out.stdout + out.stderr).decode(errors="replace")

    def python_handshake(self, ctx, sni, port=None, read_after=False):
        """Returns (client-side error text or "", local port)."""
        raw = socket.create_connection(("127.0.0.1", port or self.port), timeout=10)
        local = raw.getsockname()[1]
        try:
            tls = ctx.wrap_socket(raw, server_hostname=sni)
            if read_after:  # TLS 1.3: the server judges a client certificate after the client finished
                tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                tls.recv(1)
            tls.close()
            return "", local
        except (ssl.SSLError, OSError) as e:
            raw.close()
            return str(e), local

    def assert_record(self, record, error_type, alert, sni, cert=True):
        self.assertEqual(record["edge.outcome"], "timeout" if error_type == "handshake_timeout" else "failed", record)
        self.assertEqual(record["error.type"], error_type, record)
        self.assertEqual(record["edge.alert.sent"], alert, record)
        self.assertEqual(record["client.address"], "127.0.0.1")
        self.assertEqual(record["tls.client.server_name"], sni)
        if cert:
            self.assertEqual(record["edge.cert.name"], "main", record)
            self.assertEqual(record["edge.cert.serial"], self.serial)
            self.assertEqual(record["tls.server.hash.sha256"], self.sha256)
        else:
            self.assertNotIn("edge.cert.name", record)

    def mtls_context(self, client=None, tls13=True):
        ctx = et.tls_client_context(verify=False, minimum=ssl.TLSVersion.TLSv1_3 if tls13 else None,
                                    maximum=None if tls13 else ssl.TLSVersion.TLSv1_2)
        if client:
            ctx.load_cert_chain(*self.clients[client])
        return ctx

    # --- versions, ciphers, groups, ALPN -----------------------------------

    def test_01_tls11_client_gets_protocol_version(self):
        ctx = et.tls_client_context(verify=False, minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1,
                                    ciphers="DEFAULT:@SECLEVEL=0")
        error, port = self.python_handshake(ctx, "c01.edge.test")
        self.assertIn("PROTOCOL_VERSION", error.upper())
        record = self.by_port(port)
        self.assert_record(record, "protocol_version", "protocol_version", "c01.edge.test")
        self.assertEqual(record["tls.client.supported_versions"], "1.1")

    def test_02_tls10_s_client_sees_alert_protocol_version(self):
        out = self.s_client("c02.edge.test", "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertIn("alert protocol version", out)
        self.assert_record(self.by_sni("c02.edge.test"), "protocol_version", "protocol_version", "c02.edge.test")

    def test_03_no_shared_tls12_cipher(self):
        out = self.s_client("c03.edge.test", "-tls1_2", "-cipher", "AES128-SHA")  # RSA key exchange only
        self.assertIn("alert handshake failure", out)
        self.assert_record(self.by_sni("c03.edge.test"), "no_shared_cipher", "handshake_failure", "c03.edge.test")

    def test_04_no_shared_tls13_cipher_suite(self):
        out = self.s_client("c04.edge.test", "-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_8_SHA256")
        self.assertIn("alert handshake failure", out)
        self.assert_record(self.by_sni("c04.edge.test"), "no_shared_cipher", "handshake_failure", "c04.edge.test")

    def test_05_no_shared_group(self):
        out = self.s_client("c05.edge.test", "-tls1_3", "-groups", "P-384")
        self.assertIn("alert handshake failure", out)
        self.assert_record(self.by_sni("c05.edge.test"), "no_shared_group", "handshake_failure", "c05.edge.test")

    def test_06_alpn_without_http11(self):
        out = self.s_client("c06.edge.test", "-alpn", "h2,spdy/3")
        self.assertIn("no application protocol", out)
        record = self.by_sni("c06.edge.test")
        self.assert_record(record, "no_application_protocol", "no_application_protocol", "c06.edge.test")
        self.assertEqual(record["tls.client.supported_protocols"], "h2,spdy/3")

    # --- SNI policies -------------------------------------------------------

    def test_07_unknown_sni_on_reject_listener(self):
        out = self.s_client("c07.unknown.test", port=self.reject_port)
        self.assertIn("unrecognized name", out)
        record = self.by_sni("c07.unknown.test")
        self.assert_record(record, "unknown_sni", "unrecognized_name", "c07.unknown.test", cert=False)
        self.assertEqual(record["edge.listener"], f"127.0.0.1:{self.reject_port}")

    def test_08_unknown_sni_on_drop_listener_closes_without_alert(self):
        error, port = self.python_handshake(et.tls_client_context(verify=False), "c08.unknown.test",
                                            port=self.drop_port)
        self.assertTrue(error)
        self.assertNotIn("ALERT", error.upper(), "a silent drop sends no alert")
        self.assert_record(self.by_port(port), "unknown_sni", "none", "c08.unknown.test", cert=False)

    def test_09_unknown_sni_on_default_listener_gets_the_default_certificate(self):
        error, port = self.python_handshake(et.tls_client_context(verify=False), "c09.unknown.test")
        self.assertEqual(error, "")
        record = self.by_port(port)
        self.assertEqual(record["edge.outcome"], "ok")
        self.assertEqual(record["edge.cert.name"], "main")

    def test_10_acme_challenge_for_a_name_with_none_pending(self):
        out = self.s_client("c10.edge.test", "-alpn", "acme-tls/1")
        self.assertIn("unrecognized name", out)
        self.assert_record(self.by_sni("c10.edge.test"), "acme_challenge_unknown", "unrecognized_name",
                           "c10.edge.test", cert=False)

    def test_11_malformed_server_name_extension(self):
        bad_sni = b"\x00\x00" + len16(b"\x00\x07\x00\x00\x09edge") + b"\x00\x07\x00\x00\x09edge"
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(raw_client_hello(bad_sni))
        answer = raw.recv(100)
        raw.close()
        self.assertEqual(answer[:1], b"\x15", "an alert record comes back")
        self.assertEqual(answer[-1:], b"\x32", "decode_error")
        self.assert_record(self.by_port(port), "malformed_client_hello", "decode_error", "", cert=False)

    # --- transport ----------------------------------------------------------

    def test_12_silent_client_times_out(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        self.assertEqual(raw.recv(1), b"")
        raw.close()
        self.assert_record(self.by_port(port), "handshake_timeout", "none", "", cert=False)

    def test_13_partial_client_hello_times_out(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(python_client_hello("c13.edge.test")[:20])
        self.assertEqual(raw.recv(1), b"")
        raw.close()
        self.assert_record(self.by_port(port), "handshake_timeout", "none", "", cert=False)

    def test_14_connect_and_close(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.close()
        self.assert_record(self.by_port(port), "client_closed", "none", "", cert=False)

    def test_15_close_after_client_hello(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(python_client_hello("c15.edge.test"))
        raw.shutdown(socket.SHUT_WR)
        raw.recv(65536)  # the ServerHello flight; then the server sees EOF
        raw.close()
        self.assert_record(self.by_port(port), "client_closed", "none", "c15.edge.test")

    def test_16_plain_http_gets_400(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(b"GET / HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        answer = raw.recv(4096)
        raw.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer)
        self.assert_record(self.by_port(port), "not_tls", "none", "", cert=False)

    def test_17_garbage(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(b"\x00\x01\x02garbage\r\n" * 4)
        try:
            raw.recv(4096)
        except OSError:
            pass
        raw.close()
        record = self.by_port(port)
        self.assertEqual(record["error.type"], "not_tls")
        self.assertEqual(record["client.address"], "127.0.0.1")

    # --- the client rejects our certificate ---------------------------------

    def test_18_client_without_our_ca_sends_unknown_ca(self):
        out = self.s_client("c18.edge.test", "-CAfile", self.other_ca, "-verify_return_error")
        self.assertIn("verify error", out)
        record = self.by_sni("c18.edge.test")
        self.assert_record(record, "peer_alert:unknown_ca", "none", "c18.edge.test")
        self.assertEqual(record["edge.alert.received"], "unknown_ca")

    def test_19_client_with_wrong_hostname_rejects_our_certificate(self):
        out = self.s_client("c19.edge.test", "-CAfile", self.server_ca, "-verify_hostname", "elsewhere.test",
                            "-verify_return_error")
        self.assertIn("hostname mismatch", out)
        record = self.by_sni("c19.edge.test")
        self.assertTrue(record["error.type"].startswith("peer_alert:"), record)
        self.assertEqual(record["edge.cert.serial"], self.serial)

    # --- client certificates (mTLS) -----------------------------------------

    def test_20_mtls_missing_certificate(self):
        error, port = self.python_handshake(self.mtls_context(), "mtls.edge.test", read_after=True)
        self.assertIn("CERTIFICATE_REQUIRED", error.upper())
        self.assert_record(self.by_port(port), "client_cert_missing", "certificate_required", "mtls.edge.test")

    def test_21_mtls_missing_certificate_tls12(self):
        error, port = self.python_handshake(self.mtls_context(tls13=False), "mtls.edge.test")
        self.assertIn("HANDSHAKE_FAILURE", error.upper())
        self.assert_record(self.by_port(port), "client_cert_missing", "handshake_failure", "mtls.edge.test")

    def test_22_mtls_expired(self):
        error, port = self.python_handshake(self.mtls_context("expired"), "mtls.edge.test", read_after=True)
        self.assertIn("CERTIFICATE_EXPIRED", error.upper())
        record = self.by_port(port)
        self.assert_record(record, "client_cert_expired", "certificate_expired", "mtls.edge.test")
        self.assertEqual(record["tls.client.subject"], "CN=expired-client")

    def test_23_mtls_not_yet_valid(self):
        error, port = self.python_handshake(self.mtls_context("future"), "mtls.edge.test", read_after=True)
        self.assertIn("BAD_CERTIFICATE", error.upper())
        self.assert_record(self.by_port(port), "client_cert_not_yet_valid", "bad_certificate", "mtls.edge.test")

    def test_24_mtls_unknown_ca(self):
        error, port = self.python_handshake(self.mtls_context("unknown"), "mtls.edge.test", read_after=True)
        self.assertIn("UNKNOWN_CA", error.upper())
        self.assert_record(self.by_port(port), "client_cert_unknown_ca", "unknown_ca", "mtls.edge.test")

    def test_25_mtls_revoked(self):
        error, port = self.python_handshake(self.mtls_context("revoked"), "mtls.edge.test", read_after=True)
        self.assertIn("CERTIFICATE_REVOKED", error.upper())
        self.assert_record(self.by_port(port), "client_cert_revoked", "certificate_revoked", "mtls.edge.test")

    def test_26_mtls_bad_signature(self):
        error, port = self.python_handshake(self.mtls_context("badsig"), "mtls.edge.test", read_after=True)
        self.assertIn("DECRYPT_ERROR", error.upper())
        self.assert_record(self.by_port(port), "client_cert_bad_signature", "decrypt_error", "mtls.edge.test")

    def test_27_mtls_good_certificate_is_ok_with_subject_and_serial(self):
        error, port = self.python_handshake(self.mtls_context("good"), "mtls.edge.test", read_after=True)
        self.assertEqual(error, "")
        record = self.by_port(port)
        self.assertEqual(record["edge.outcome"], "ok")
        self.assertEqual(record["tls.client.subject"], "CN=good-client")
        self.assertEqual(record["tls.client.issuer"], "CN=client-ca")
        good_serial, good_sha = et.leaf_facts(subprocess.run(
            ["openssl", "x509", "-in", self.clients["good"][0], "-outform", "DER"], capture_output=True,
            check=True).stdout)
        self.assertEqual(record["tls.client.serial"], good_serial)
        self.assertEqual(record["tls.client.hash.sha256"], good_sha)

    def test_28_mtls_optional_accepts_no_certificate(self):
        error, port = self.python_handshake(self.mtls_context(), "opt.edge.test", read_after=True)
        self.assertEqual(error, "")
        self.assertEqual(self.by_port(port)["edge.outcome"], "ok")

    def test_29_mtls_optional_still_rejects_a_bad_certificate(self):
        error, port = self.python_handshake(self.mtls_context("unknown"), "opt.edge.test", read_after=True)
        self.assertIn("UNKNOWN_CA", error.upper())
        self.assert_record(self.by_port(port), "client_cert_unknown_ca", "unknown_ca", "opt.edge.test")

    def test_30_other_sni_needs_no_client_certificate(self):
        error, port = self.python_handshake(self.mtls_context(), "edge.test", read_after=True)
        self.assertEqual(error, "")

    # --- the whole log --------------------------------------------------------

    def test_99_one_record_per_connection_and_json_is_well_formed(self):
        records = et.read_jsonl(self.jsonl)
        keys = [(r["edge.connection.id"]) for r in records]
        self.assertEqual(len(keys), len(set(keys)), "connection ids are unique")
        for r in records:
            for field in ("@timestamp", "edge.outcome", "edge.alert.sent", "client.address", "client.port",
                          "server.port", "tls.client.server_name", "edge.handshake.duration_us", "edge.listener"):
                self.assertIn(field, r)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

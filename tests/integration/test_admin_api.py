#!/usr/bin/env python3
"""The admin API of a real edged (issue 8, acceptance 1): every JSON-RPC
method, every error code, batches and notifications, the bearer token (401
without it, counted, never in a log), the Unix socket, certs.import served on
the next handshake, and config.reload.

Usage: test_admin_api.py --edged PATH --edgectl PATH"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admintest as at  # noqa: E402
import edgetest as et  # noqa: E402

ARGS = None


def read(path):
    with open(path) as f:
        return f.read()


class AdminApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="edge-admin-")
        cls.edge = at.AdminEdge(ARGS.edged, cls.tmp.name).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)
        cls.tmp.cleanup()

    def error_code(self, method, params=None, token=None):
        with self.assertRaises(at.RpcError) as caught:
            self.edge.rpc(method, params, token=token)
        return caught.exception.code

    # --- the envelope ------------------------------------------------------

    def test_parse_error(self):
        status, _, body = self.edge.post_rpc('{"jsonrpc": "2.0", "method": "version", "id": 1')
        self.assertEqual(status, 200)
        self.assertEqual(body["error"]["code"], -32700)
        self.assertIsNone(body["id"])

    def test_invalid_request(self):
        for payload in ({"jsonrpc": "1.0", "method": "version", "id": 1}, {"jsonrpc": "2.0", "id": 2},
                        {"jsonrpc": "2.0", "method": 5, "id": 3}, {"jsonrpc": "2.0", "method": "version",
                                                                     "params": "x", "id": 4}, [], 42):
            status, _, body = self.edge.post_rpc(payload)
            self.assertEqual(status, 200, payload)
            self.assertEqual(body["error"]["code"], -32600, payload)

    def test_method_not_found(self):
        self.assertEqual(self.error_code("certs.delete", {"name": "main"}), -32601)

    def test_invalid_params(self):
        self.assertEqual(self.error_code("certs.get"), -32602)
        self.assertEqual(self.error_code("certs.get", {"name": 5}), -32602)
        self.assertEqual(self.error_code("handshakes.query", {"limit": 0}), -32602)
        self.assertEqual(self.error_code("handshakes.query", {"cetr": "main"}), -32602)
        status, _, body = self.edge.post_rpc({"jsonrpc": "2.0", "id": 9, "method": "version", "params": [1]})
        self.assertEqual(body["error"]["code"], -32602)

    def test_batch_answers_each_call_and_skips_notifications(self):
        status, _, body = self.edge.post_rpc([
            {"jsonrpc": "2.0", "id": "v", "method": "version"},
            {"jsonrpc": "2.0", "method": "certs.list"},  # a notification: no answer
            {"jsonrpc": "2.0", "id": 2, "method": "no.such"},
            {"jsonrpc": "2.0", "id": 3, "method": "certs.get", "params": {}},
            17,
        ])
        self.assertEqual(status, 200)
        self.assertIsInstance(body, list)
        by_id = {json.dumps(a["id"]): a for a in body}
        self.assertEqual(len(body), 4, body)
        self.assertEqual(by_id['"v"']["result"]["name"], "edged")
        self.assertEqual(by_id["2"]["error"]["code"], -32601)
        self.assertEqual(by_id["3"]["error"]["code"], -32602)
        self.assertEqual(by_id["null"]["error"]["code"], -32600)

    def test_notifications_only_get_204(self):
        status, _, body = self.edge.post_rpc([{"jsonrpc": "2.0", "method": "version"},
                                              {"jsonrpc": "2.0", "method": "stats.tls"}])
        self.assertEqual(status, 204)
        self.assertIsNone(body)

    def test_wrong_http_method_and_path(self):
        status, headers, _ = self.edge.http("GET", "/rpc")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "POST")
        self.assertEqual(self.edge.http("GET", "/nope")[0], 404)

    # --- auth ----------------------------------------------------------------

    def test_state_changes_need_the_token_and_401s_are_counted(self):
        _, text = self.edge.metrics()
        before = at.metric_value(text, "edge_admin_unauthorized_total")
        for token in (None, "wrong-token-0123456789abcdef"):
            for method, params in (("config.reload", {}), ("certs.renew", {"name": "main"}),
                                   ("certs.import", {"name": "x", "certificate": "", "private_key": ""})):
                status, headers, body = self.edge.post_rpc(
                    {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, token=token)
                self.assertEqual(status, 401, method)
                self.assertIn("Bearer", headers["www-authenticate"])
                self.assertEqual(body["error"]["code"], -32000)
        # A batch with one state-changing call is refused whole.
        status, _, _ = self.edge.post_rpc([{"jsonrpc": "2.0", "id": 1, "method": "version"},
                                           {"jsonrpc": "2.0", "id": 2, "method": "config.reload"}])
        self.assertEqual(status, 401)
        # Reads need no token on loopback.
        self.assertEqual(self.edge.rpc("version")["name"], "edged")
        _, text = self.edge.metrics()
        self.assertEqual(at.metric_value(text, "edge_admin_unauthorized_total"), before + 7)
        # The right token passes (certs.renew then fails on its merits: manual mode).
        self.assertEqual(self.error_code("certs.renew", {"name": "main"}, token=self.edge.token), -32003)

    def test_token_is_in_no_log(self):
        self.edge.rpc("version", token=self.edge.token)
        self.edge.plain_http_failure()
        token = self.edge.token.encode()
        et.wait_for(lambda: os.path.exists(self.edge.jsonl) and os.path.getsize(self.edge.jsonl) > 0, 10,
                    "handshake records")
        for name in ("edged.stderr", "handshakes.jsonl", "edge.db", "edge.db-wal"):
            path = os.path.join(self.edge.dir, name)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    self.assertNotIn(token, f.read(), name)
        self.assertIn(b"admin API on http://127.0.0.1:", self.edge.edged.output())

    def test_unix_socket_serves_the_api_with_mode_0600(self):
        self.assertEqual(os.stat(self.edge.socket).st_mode & 0o777, 0o600)
        self.assertEqual(self.edge.rpc("version", unix=True)["name"], "edged")
        status, _, _ = self.edge.post_rpc({"jsonrpc": "2.0", "id": 1, "method": "config.reload"}, unix=True)
        self.assertEqual(status, 401, "the socket needs the token for state changes too")

    # --- the methods -------------------------------------------------------------

    def test_version(self):
        v = self.edge.rpc("version")
        self.assertEqual(v["name"], "edged")
        self.assertRegex(v["version"], r"^\d+\.\d+\.\d+$")
        self.assertIn("OpenSSL 3", v["openssl"])
        self.assertEqual(v["pid"], self.edge.edged.process.pid)
        self.assertEqual(v["mode"], "manual")

    def test_stats_connections_and_tls(self):
        self.edge.handshake()
        failure_port = self.edge.plain_http_failure()

        def counted():
            tls = self.edge.rpc("stats.tls")
            return tls if tls["by_error_type"].get("not_tls", 0) >= 1 and tls["by_outcome"].get("ok", 0) >= 1 else None
        tls = et.wait_for(counted, 10, "the handshakes in stats.tls")
        self.assertGreaterEqual(tls["by_certificate"]["main"]["outcomes"]["ok"], 1)
        self.assertIn("1.3", tls["versions"])
        self.assertTrue(any(c.startswith("TLS_") for c in tls["ciphers"]))
        self.assertEqual(tls["duration_seconds"]["buckets"][-1]["le"], "+Inf")
        self.assertEqual(tls["duration_seconds"]["buckets"][-1]["count"], tls["total"])
        self.assertEqual(tls["records"]["dropped"], 0)

        conns = self.edge.rpc("stats.connections")
        self.assertGreaterEqual(conns["by_route_type"]["http"], 1)
        self.assertGreaterEqual(conns["by_route_type"]["none"], 1)
        self.assertEqual(conns["total"], sum(conns["by_route_type"].values()))
        self.assertGreaterEqual(conns["requests"].get("404", 0), 1, "no route configured: the proxy answers 404")
        self.assertGreaterEqual(conns["errors"]["no_route"], 1)
        self.assertEqual(len(conns["workers"]), 2)
        self.assertGreaterEqual(conns["active"], 0)

        timeline = self.edge.rpc("stats.timeline", {"minutes": 5})
        self.assertEqual(timeline["minutes"], 5)
        self.assertTrue(any(p["error_type"] == "not_tls" for p in timeline["points"]))

        records = et.wait_for(lambda: [r for r in self.edge.rpc("handshakes.query", {"error.type": "not_tls"})
                                       if r["client.port"] == failure_port], 10, "the not_tls record")
        self.assertEqual(records[0]["client.address"], "127.0.0.1")

    def test_each_response_is_counted_once(self):
        def counts():
            c = self.edge.rpc("stats.connections")
            return c["requests"].get("404", 0), c["errors"]["no_route"]
        before = counts()
        self.edge.handshake()  # one GET, no route configured: one 404 answered by the proxy itself
        self.assertEqual(counts(), (before[0] + 1, before[1] + 1))

    def test_certs_list_equals_edgectl_offline(self):
        live = self.edge.rpc("certs.list")
        self.assertEqual([c["name"] for c in live], ["main"])
        self.assertEqual(live[0]["source"], "manual")
        self.assertEqual(set(live[0]["identifiers"]), {"edge.test", "127.0.0.1"})
        offline = json.loads(et.edgectl(ARGS.edgectl, self.edge.store, "certs", "--json").stdout)
        for c in live + offline:
            c.pop("handshakes")  # counters move while handshakes happen in other tests
        self.assertEqual(live, offline)

    def test_certs_get(self):
        cert = self.edge.rpc("certs.get", {"name": "main"})
        self.assertEqual(cert["name"], "main")
        self.assertEqual(cert["chain"][0]["issuer"], "CN=admin-test-ca")
        self.assertGreaterEqual(len(cert["history"]), 1)
        self.assertEqual(self.error_code("certs.get", {"name": "absent"}), -32001)

    def test_certs_renew_in_manual_mode_says_what_to_do(self):
        with self.assertRaises(at.RpcError) as caught:
            self.edge.rpc("certs.renew", {"name": "main"}, token=self.edge.token)
        self.assertEqual(caught.exception.code, -32003)
        self.assertIn("certs.import", caught.exception.body["error"]["data"])

    def test_handshakes_query_filters(self):
        port = self.edge.plain_http_failure()
        self.edge.handshake()
        et.wait_for(lambda: self.edge.rpc("handshakes.query", {"client": "127.0.0.1", "outcome": "ok", "limit": 1}),
                    10, "an ok record")
        failed = et.wait_for(lambda: [r for r in self.edge.rpc("handshakes.query", {"outcome": "failed"})
                                      if r["client.port"] == port], 10, "the failure")
        since = failed[0]["@timestamp"]
        recent = self.edge.rpc("handshakes.query", {"since": since, "limit": 1000})
        self.assertTrue(all(r["@timestamp"] >= since for r in recent))
        self.assertTrue(all(r["edge.outcome"] == "ok"
                            for r in self.edge.rpc("handshakes.query", {"outcome": "ok", "cert": "main"})))
        self.assertEqual(self.edge.rpc("handshakes.query", {"client": "192.0.2.1"}), [])
        self.assertEqual(len(self.edge.rpc("handshakes.query", {"limit": 1})), 1)

    def test_certs_import_is_validated_and_served_on_the_next_handshake(self):
        before = self.edge.handshake()
        ca = self.edge.ca
        new_pem, new_key = ca.issue("main-2", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"], days=10)
        _, other_key = ca.issue("other", "other.test", ["DNS:other.test"], days=10)
        old_pem, old_key = ca.issue("expired", "edge.test", ["DNS:edge.test"], start="20200101000000Z",
                                    end="20200201000000Z")
        t = self.edge.token
        cases = [
            ({"name": "main", "certificate": read(new_pem), "private_key": read(other_key)}, "does not match"),
            ({"name": "main", "certificate": read(old_pem), "private_key": read(old_key)}, "expired"),
            ({"name": "main", "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
              "private_key": read(new_key)}, "does not parse"),
        ]
        for params, why in cases:
            with self.assertRaises(at.RpcError) as caught:
                self.edge.rpc("certs.import", params, token=t)
            self.assertEqual(caught.exception.code, -32010)
            self.assertIn(why, caught.exception.body["error"]["data"])
        self.assertEqual(self.edge.handshake(), before, "a rejected import changes nothing")

        chain = read(new_pem) + read(ca.cert)
        result = self.edge.rpc("certs.import", {"name": "main", "certificate": chain, "private_key": read(new_key)},
                               token=t)
        self.assertTrue(result["served"])
        self.assertNotEqual(result["serial"], before)
        self.assertEqual(self.edge.handshake(), result["serial"], "the next handshake serves the import")
        self.assertEqual(self.edge.rpc("certs.get", {"name": "main"})["generation"], result["generation"])
        self.assertIn(b"admin API imported main", self.edge.edged.output())


class ConfigReload(unittest.TestCase):
    """A second edged: config.reload changes its file."""

    def test_reload_applies_certificate_files_and_reports_the_rest(self):
        with tempfile.TemporaryDirectory(prefix="edge-reload-") as d:
            with at.AdminEdge(ARGS.edged, d) as edge:
                t = edge.token
                first = edge.handshake()
                unchanged = edge.rpc("config.reload", token=t)
                self.assertEqual(unchanged, {"reloaded": True, "applied": [], "restart_required": []})

                pem, key = edge.ca.issue("main-next", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"], days=20)
                shutil.copyfile(pem, edge.cert)
                shutil.copyfile(key, edge.key)
                with open(edge.config, "a") as f:
                    f.write("workers: 1\n")
                reloaded = edge.rpc("config.reload", token=t)
                self.assertEqual(len(reloaded["applied"]), 1, reloaded)
                self.assertIn("certificate main: generation 2", reloaded["applied"][0])
                self.assertEqual(reloaded["restart_required"], ["workers"])
                second = edge.handshake()
                self.assertNotEqual(first, second)

                with open(edge.config, "a") as f:
                    f.write("bogus_key: 1\n")
                with self.assertRaises(at.RpcError) as caught:
                    edge.rpc("config.reload", token=t)
                self.assertEqual(caught.exception.code, -32011)
                self.assertIn("bogus_key: unknown key", caught.exception.body["error"]["data"])
                self.assertEqual(edge.handshake(), second, "a broken file changes nothing")


class NonLoopback(unittest.TestCase):
    def test_non_loopback_listen_requires_a_token_file(self):
        with tempfile.TemporaryDirectory(prefix="edge-admin-check-") as d:
            path = os.path.join(d, "edge.yaml")
            with open(path, "w") as f:
                f.write("admin:\n  listen: 0.0.0.0:9091\n")
            result = et.run([ARGS.edged, "check", "--config", path], check=False)
            self.assertEqual(result.returncode, 1)
            self.assertIn(f"{path}:2:11: admin.token_file: required when admin.listen is not a loopback address",
                          result.stderr.decode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

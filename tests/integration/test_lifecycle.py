#!/usr/bin/env python3
"""edged's lifecycle under load (issue 9, acceptance 2-4, and issue 7's
descriptor limits): reload (SIGHUP and `edgectl reload`), graceful SIGTERM,
zero-downtime binary upgrade (SIGUSR2), and a connection flood under a low
RLIMIT_NOFILE. Real edged, real TLS clients (Python ssl), real upstreams.

Usage: test_lifecycle.py --edged PATH --edgectl PATH [unittest names]"""

import argparse
import http.client
import http.server
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402
import pki  # noqa: E402

ARGS = None


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """/slow/<ms> answers after that many milliseconds; anything else at once."""
    protocol_version = "HTTP/1.1"
    started = 0
    lock = threading.Lock()

    def do_GET(self):
        delay = 0
        if self.path.startswith("/slow/"):
            delay = int(self.path.split("/")[2]) / 1000
            with _SlowHandler.lock:
                _SlowHandler.started += 1
        time.sleep(delay)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class SlowUpstream(et.Upstream):
    def __enter__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self


class LimitedEdged(et.Edged):
    """edged started with a given RLIMIT_NOFILE (soft and hard)."""

    def __init__(self, binary, config_path, workdir, nofile):
        super().__init__(binary, config_path, workdir)
        self.nofile = nofile

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        limit = self.nofile
        self.process = subprocess.Popen(
            [self.binary, "--config", self.config_path], stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
        et.wait_for(lambda: b"edged: ready" in self.output() or self.process.poll() is not None, 30, "edged to start")
        if self.process.poll() is not None:
            raise RuntimeError("edged exited at start:\n" + self.output().decode(errors="replace"))
        return self


def write_config(path, text):
    # Written to a temporary name and renamed: a reload never reads half a file.
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def get(port, ctx, path, server_hostname="edge.test", host="127.0.0.1", timeout=10):
    """One fresh TLS connection, one request; returns (status, json body)."""
    conn = https(host, port, ctx, server_hostname, timeout)
    try:
        conn.request("GET", path, headers={"Host": server_hostname, "Connection": "close"})
        res = conn.getresponse()
        return res.status, json.loads(res.read() or b"{}")
    finally:
        conn.close()


def https(host, port, ctx, server_hostname, timeout=10):
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    # http.client sends the connect host as SNI; the certificate names another.
    raw = socket.create_connection((host, port), timeout=timeout)
    conn.sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
    return conn


class LoadLoop:
    """Threads doing fresh handshakes + requests, and one keep-alive connection,
    continuously; counts successes and failures with the reasons."""

    def __init__(self, port, ctx, path="/", fresh_threads=2, keep_alive=True):
        self.port, self.ctx, self.path = port, ctx, path
        self.ok = 0
        self.idle_closes = 0  # idle keep-alive connections closed by a stopping edged (then retried)
        self.failures = []
        self.paths = []
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.fresh, daemon=True) for _ in range(fresh_threads)]
        if keep_alive:
            self.threads.append(threading.Thread(target=self.reuse, daemon=True))

    def record(self, ok, what):
        with self.lock:
            if ok:
                self.ok += 1
                self.paths.append(what)
            else:
                self.failures.append(what)

    def fresh(self):
        while not self.stop_flag.is_set():
            try:
                conn = https("127.0.0.1", self.port, self.ctx, "edge.test")
                conn.request("GET", self.path, headers={"Host": "edge.test", "Connection": "close"})
                res = conn.getresponse()
                body = json.loads(res.read())
                conn.close()
                self.record(res.status == 200, body.get("path") if res.status == 200 else f"status {res.status}")
            except Exception as e:  # every failure is a finding
                self.record(False, f"fresh: {type(e).__name__}: {e}")

    def reuse(self):
        # Like every HTTP client: a request on a reused keep-alive connection
        # that the server closed while idle (before any response byte) is
        # retried once on a new connection (RFC 9112, 9.3.1). Counted apart.
        conn, reused = None, False
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn, reused = https("127.0.0.1", self.port, self.ctx, "edge.test"), False
                conn.request("GET", self.path, headers={"Host": "edge.test"})
                res = conn.getresponse()
                body = json.loads(res.read())
                self.record(res.status == 200, ("keepalive", body.get("path")))
                reused = True
                if res.will_close:
                    conn.close()
                    conn = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                if not reused:
                    self.record(False, f"keep-alive: {type(e).__name__}: {e}")
                else:
                    with self.lock:
                        self.idle_closes += 1
                conn.close()
                conn = None
            except Exception as e:
                self.record(False, f"keep-alive: {type(e).__name__}: {e}")
                conn = None
            time.sleep(0.005)
        if conn:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=30)


def log_has(edge, text):
    return text.encode() in edge.output()


class Reload(unittest.TestCase):
    """Acceptance 2: changed route, added certificate, added listener and a
    stricter TLS policy under load: 0 failed requests/handshakes; existing
    connections keep their configuration; a broken file is refused."""

    def test_reload_under_load(self):
        with tempfile.TemporaryDirectory(prefix="edge-reload-") as d, et.Upstream() as upstream:
            ca = pki.CertificateAuthority(d, "reload-ca")
            main_cert, main_key = ca.issue("main", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"], days=5)
            new_cert, new_key = ca.issue("new", "new.test", ["DNS:new.test"], days=5)
            port, port2, admin_port = et.free_port(), et.free_port(), et.free_port()
            with open(os.path.join(d, "admin.token"), "w") as f:
                f.write("tok-reload-0123456789abcdef\n")
            os.chmod(os.path.join(d, "admin.token"), 0o600)
            config = os.path.join(d, "edge.yaml")

            def text(listen, version, base, certs, extra=""):
                cert_lines = "".join(f"      - {{name: {n}, certificate: {c}, private_key: {k}}}\n" for n, c, k in certs)
                return f"""proxy:
  listen: [{", ".join(f'"127.0.0.1:{p}"' for p in listen)}]
  workers: 2
  tls:
    mode: manual
    min_protocol_version: "{version}"
    certificates:
{cert_lines}  http:
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{upstream.port}/{base}/
{extra}handshake_log:
  file: ./handshakes.jsonl
admin:
  listen: 127.0.0.1:{admin_port}
  token_file: admin.token
"""
            write_config(config, text([port], "1.2", "v1", [("main", main_cert, main_key)]))
            ctx = et.tls_client_context(cafile=ca.cert)
            tls12 = et.tls_client_context(cafile=ca.cert, maximum=ssl.TLSVersion.TLSv1_2)
            ctl = [ARGS.edgectl, "--admin", f"http://127.0.0.1:{admin_port}", "--token-file",
                   os.path.join(d, "admin.token")]
            with et.Edged(ARGS.edged, config, d) as edge:
                # Before: TLS 1.2 accepted, /v1/, no certificate for new.test (the default one is served).
                self.assertEqual(get(port, tls12, "/a")[1]["path"], "/v1/a")
                old = https("127.0.0.1", port, ctx, "edge.test")  # opened before the reload, kept open
                old.request("GET", "/before", headers={"Host": "edge.test"})
                self.assertEqual(json.loads(old.getresponse().read())["path"], "/v1/before")

                with LoadLoop(port, ctx) as load:
                    et.wait_for(lambda: load.ok >= 20, 30, "load before the reload")
                    write_config(config, text([port, port2], "1.3", "v2",
                                              [("main", main_cert, main_key), ("new", new_cert, new_key)]))
                    edge.process.send_signal(signal.SIGHUP)
                    et.wait_for(lambda: log_has(edge, "SIGHUP reload done"), 30, "the reload")
                    seen = load.ok
                    et.wait_for(lambda: load.ok >= seen + 40, 30, "load after the reload")
                    # The broken file comes while the load still runs: refused, nothing changes.
                    broken = text([port, port2], "1.3", "v3", [("main", main_cert, main_key)],
                                  extra="  bogus_key: 1\n")
                    write_config(config, broken)
                    refused = et.run([*ctl, "reload"], check=False)
                    seen = load.ok
                    et.wait_for(lambda: load.ok >= seen + 20, 30, "load after the refused reload")
                self.assertEqual(load.failures, [], "failed requests or handshakes during the reloads")
                fresh_paths = [p for p in load.paths if isinstance(p, str)]
                self.assertIn("/v1/", fresh_paths)
                self.assertIn("/v2/", fresh_paths)
                self.assertNotIn("/v3/", fresh_paths)
                print(f"\nreload under load: {load.ok} requests, 0 failures "
                      f"({fresh_paths.count('/v1/')} before, {fresh_paths.count('/v2/')} after)")

                # The refused file: exit 1, its file:line:col: key, and the same in edged's log.
                self.assertEqual(refused.returncode, 1, refused.stdout + refused.stderr)
                err = refused.stderr.decode()
                line = broken.splitlines().index("  bogus_key: 1") + 1
                self.assertIn(f"edge.yaml:{line}:", err)
                self.assertIn("bogus_key", err)
                self.assertTrue(log_has(edge, "config.reload refused, the running configuration stays"))
                edge.process.send_signal(signal.SIGHUP)
                et.wait_for(lambda: log_has(edge, "SIGHUP reload refused"), 30, "the refused SIGHUP reload")

                # The new configuration serves new connections: route, certificate, listener, policy.
                self.assertEqual(get(port, ctx, "/b")[1]["path"], "/v2/b")
                tls, _ = et.connect_tls("127.0.0.1", port, ctx, "new.test")  # verifies new.test against the CA
                self.assertEqual(tls.getpeercert()["subject"][0][0][1], "new.test")
                tls.close()
                self.assertEqual(get(port2, ctx, "/c")[1]["path"], "/v2/c")
                with self.assertRaises(ssl.SSLError):
                    get(port, tls12, "/d")
                # The connection opened before the reload still runs on the old configuration.
                old.request("GET", "/after", headers={"Host": "edge.test"})
                self.assertEqual(json.loads(old.getresponse().read())["path"], "/v1/after")
                old.close()

                # edgectl reload of a good file: applied, with what needs a restart named.
                write_config(config, text([port2], "1.3", "v4", [("main", main_cert, main_key),
                                                                  ("new", new_cert, new_key)]).replace(
                    "  workers: 2\n", "  workers: 1\n"))
                done = et.run([*ctl, "reload", "--json"])
                result = json.loads(done.stdout)
                self.assertTrue(result["reloaded"])
                self.assertIn("proxy.workers", result["restart_required"])
                self.assertEqual(get(port2, ctx, "/e")[1]["path"], "/v4/e")
                # The listener removed by the reload no longer accepts.
                et.wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) != 0, 10, "port closed")
                self.assertEqual(edge.stop(), 0)


class ReloadAcme(unittest.TestCase):
    """In ACME mode the certificate list and the acme settings are the renewal
    scheduler's, read at start: a reload reports them as restart_required
    (not silently ignored) and still applies the routes."""

    def test_acme_parts_need_a_restart(self):
        with tempfile.TemporaryDirectory(prefix="edge-reload-acme-") as d, et.Upstream() as upstream:
            ca = pki.CertificateAuthority(d, "acme-reload-ca")
            port = et.free_port()
            config = os.path.join(d, "edge.yaml")

            def text(names, base):
                return f"""proxy:
  listen: ["127.0.0.1:{port}"]
  workers: 1
  tls:
    mode: acme
    acme:
      directory: https://127.0.0.1:1/dir
      ca_bundle: {ca.cert}
    certificates:
      - name: main
        identifiers: [{names}]
  http:
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{upstream.port}/{base}/
"""
            write_config(config, text("edge.test", "v1"))
            with et.Edged(ARGS.edged, config, d) as edge:  # the CA is unreachable: edged serves on
                write_config(config, text("edge.test, www.edge.test", "v2"))
                edge.process.send_signal(signal.SIGHUP)
                et.wait_for(lambda: log_has(edge, "SIGHUP reload done"), 30, "the reload")
                self.assertTrue(log_has(edge, "needs a restart: proxy.tls.certificates (acme)"), edge.output())
                self.assertTrue(log_has(edge, "applied: proxy: listeners, TLS policy and routes"), edge.output())
                self.assertEqual(edge.stop(), 0)


class Sigterm(unittest.TestCase):
    """Acceptance 3: slow in-flight requests complete, a stuck one is closed at
    the end of the grace period, idle keep-alive connections close at once,
    exit 0, and one handshake record per connection in the file and the store."""

    def test_sigterm_under_load(self):
        with tempfile.TemporaryDirectory(prefix="edge-sigterm-") as d, SlowUpstream() as upstream:
            ca = pki.CertificateAuthority(d, "term-ca")
            cert, key = ca.issue("main", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"], days=5)
            port = et.free_port()
            config = os.path.join(d, "edge.yaml")
            write_config(config, f"""proxy:
  listen: ["127.0.0.1:{port}"]
  workers: 2
  shutdown_grace_secs: 4
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
  http:
    upstream_timeout_secs: 120
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{upstream.port}/
handshake_log:
  file: ./handshakes.jsonl
""")
            ctx = et.tls_client_context(cafile=ca.cert)
            connections = 0
            results, errors = [], []

            def slow(ms):
                try:
                    conn = https("127.0.0.1", port, ctx, "edge.test", timeout=30)
                    conn.request("GET", f"/slow/{ms}", headers={"Host": "edge.test"})
                    res = conn.getresponse()
                    results.append((ms, res.status, json.loads(res.read())["path"], res.getheader("Connection")))
                    conn.close()
                except Exception as e:
                    errors.append((ms, type(e).__name__, str(e)))

            with et.Edged(ARGS.edged, config, d) as edge:
                # Idle keep-alive connections: one request served, then nothing.
                idle = []
                for _ in range(5):
                    c = https("127.0.0.1", port, ctx, "edge.test")
                    c.request("GET", "/quick", headers={"Host": "edge.test"})
                    res = c.getresponse()
                    res.read()
                    self.assertEqual(res.status, 200)
                    idle.append(c)
                    connections += 1
                _SlowHandler.started = 0
                threads = [threading.Thread(target=slow, args=(1500,)) for _ in range(8)]
                threads.append(threading.Thread(target=slow, args=(60000,)))  # longer than the grace
                for t in threads:
                    t.start()
                connections += len(threads)
                et.wait_for(lambda: _SlowHandler.started >= 9, 20, "requests in flight upstream")
                started = time.monotonic()
                edge.process.send_signal(signal.SIGTERM)
                # Idle keep-alive connections close at once.
                for c in idle:
                    c.sock.settimeout(3)
                    try:
                        self.assertEqual(c.sock.recv(1), b"")
                    except (ConnectionResetError, ssl.SSLError):
                        pass
                idle_closed = time.monotonic() - started
                code = edge.process.wait(timeout=20)
                took = time.monotonic() - started
                for t in threads:
                    t.join(timeout=30)
            self.assertEqual(code, 0, edge.output().decode(errors="replace"))
            self.assertLess(idle_closed, 2.0)
            # The 8 slow requests completed, told to close; the stuck one was closed cleanly at the grace period.
            done = sorted(r for r in results if r[0] == 1500)
            self.assertEqual(len(done), 8, (results, errors))
            self.assertTrue(all(r[1] == 200 and r[2] == "/slow/1500" and r[3] == "close" for r in done), done)
            self.assertEqual([e[0] for e in errors], [60000], errors)
            self.assertGreaterEqual(took, 3.5)
            self.assertLess(took, 7.0)
            # One record per connection, in the file and in the store.
            records = et.read_jsonl(os.path.join(d, "handshakes.jsonl"))
            self.assertEqual(len(records), connections)
            self.assertEqual(et.store_query(os.path.join(d, "edge.db"), "SELECT COUNT(*) FROM handshakes")[0][0],
                             connections)
            self.assertTrue(all(r["edge.outcome"] == "ok" for r in records))
            print(f"\nSIGTERM: {connections} connections, exit 0 after {took:.1f} s, {len(records)} records")


def admin_pid(admin_port):
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}/rpc",
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "version", "params": {}}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())["result"]["pid"]


class Upgrade(unittest.TestCase):
    """Acceptance 4: SIGUSR2 under a tight connect loop: 0 refused, 0 failed;
    the old PID exits 0, the new one serves (and its admin API answers)."""

    def test_binary_upgrade_under_load(self):
        with tempfile.TemporaryDirectory(prefix="edge-upgrade-") as d, et.Upstream() as upstream:
            ca = pki.CertificateAuthority(d, "upgrade-ca")
            cert, key = ca.issue("main", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"], days=5)
            port, admin_port = et.free_port(), et.free_port()
            config = os.path.join(d, "edge.yaml")
            write_config(config, f"""proxy:
  listen: ["127.0.0.1:{port}"]
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
  http:
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{upstream.port}/
handshake_log:
  file: ./handshakes.jsonl
admin:
  listen: 127.0.0.1:{admin_port}
""")
            ctx = et.tls_client_context(cafile=ca.cert)
            # edged runs from a path of its own, where the "new" binary is installed before SIGUSR2.
            binary = os.path.join(d, "edged")
            shutil.copy2(ARGS.edged, binary)
            new_pid = None
            try:
                with et.Edged(binary, config, d) as edge:
                    old_pid = edge.process.pid
                    # A successor that cannot start (its config is broken) changes nothing.
                    good = open(config).read()
                    write_config(config, good + "bogus_key: 1\n")
                    edge.process.send_signal(signal.SIGUSR2)
                    et.wait_for(lambda: log_has(edge, "upgrade failed"), 30, "the failed upgrade")
                    self.assertTrue(log_has(edge, "bogus_key: unknown key"), "the successor said why")
                    self.assertIsNone(edge.process.poll())
                    self.assertEqual(get(port, ctx, "/still")[0], 200)
                    et.wait_for(lambda: admin_pid(admin_port) == old_pid, 10, "the old admin API back")
                    write_config(config, good)
                    with LoadLoop(port, ctx, fresh_threads=3, keep_alive=True) as load:
                        et.wait_for(lambda: load.ok >= 30, 30, "load before the upgrade")
                        shutil.copy2(ARGS.edged, binary + ".new")
                        os.replace(binary + ".new", binary)  # as `install` does: a new file at the same path
                        installed = os.stat(binary).st_ino
                        self.assertNotEqual(os.stat(f"/proc/{old_pid}/exe").st_ino, installed)
                        edge.process.send_signal(signal.SIGUSR2)
                        code = edge.process.wait(timeout=40)
                        out = edge.output().decode(errors="replace")
                        line = next(x for x in out.splitlines() if "serves now" in x)
                        new_pid = int(line.split("pid ")[1].split()[0])
                        seen = load.ok
                        et.wait_for(lambda: load.ok >= seen + 50, 30, "load after the old edged exited")
                    self.assertEqual(code, 0, out)
                    self.assertNotEqual(new_pid, old_pid)
                    self.assertEqual(os.stat(f"/proc/{new_pid}/exe").st_ino, installed, "the new binary runs")
                    self.assertEqual(load.failures, [], "refused or failed connections across the upgrade")
                    print(f"\nupgrade: {load.ok} requests across the switch, 0 failures "
                          f"({load.idle_closes} idle keep-alive connection closed by the old edged and retried); "
                          f"pid {old_pid} -> {new_pid}")
                    # The new process serves, with its own admin API.
                    self.assertEqual(admin_pid(admin_port), new_pid)
                    self.assertEqual(get(port, ctx, "/x")[0], 200)
                    self.assertTrue(log_has(edge, f"pid {new_pid})"), "the successor logs its own ready line")
            finally:
                if new_pid:
                    os.kill(new_pid, signal.SIGTERM)  # the successor edged we caused to exist
                    et.wait_for(lambda: not os.path.exists(f"/proc/{new_pid}") or
                                open(f"/proc/{new_pid}/stat").read().split()[2] == "Z", 20, "the new edged to stop")


class DescriptorLimit(unittest.TestCase):
    """Issue 7: with RLIMIT_NOFILE 256, a flood beyond the connection cap is
    refused at once and counted; edged stays up and serves afterwards. With a
    cap above the limit, accept hits EMFILE and backs off instead of dying."""

    def flood(self, limit_line, expect_metric, during, cap):
        with tempfile.TemporaryDirectory(prefix="edge-nofile-") as d, et.Upstream() as upstream:
            ca = pki.CertificateAuthority(d, "nofile-ca")
            cert, key = ca.issue("main", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"], days=5)
            port, metrics_port = et.free_port(), et.free_port()
            config = os.path.join(d, "edge.yaml")
            write_config(config, f"""proxy:
  listen: ["127.0.0.1:{port}"]
  workers: 2
{limit_line}  tls:
    mode: manual
    handshake_timeout_secs: 30
    certificates:
      - {{name: main, certificate: {cert}, private_key: {key}}}
  http:
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{upstream.port}/
handshake_log:
  file: ./handshakes.jsonl
metrics:
  listen: 127.0.0.1:{metrics_port}
""")
            ctx = et.tls_client_context(cafile=ca.cert)

            def metric(name):
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith(name + " "):
                            return float(line.split()[1])
                return 0.0

            with LimitedEdged(ARGS.edged, config, d, 256) as edge:
                self.assertTrue(log_has(edge, f"at most {cap} connections"), edge.output())
                self.assertTrue(log_has(edge, "descriptor limit 256"), edge.output())
                flood = []
                try:
                    for _ in range(400):
                        s = socket.socket()
                        s.settimeout(5)
                        s.connect(("127.0.0.1", port))  # the kernel accepts into the backlog
                        flood.append(s)
                    et.wait_for(lambda: during(edge, metric), 20, "refusals during the flood")
                    self.assertIsNone(edge.process.poll())
                finally:
                    for s in flood:
                        s.close()
                # After the flood: served again (the accept loop did not die or spin forever).
                status = et.wait_for(lambda: get(port, ctx, "/after")[0] == 200, 30, "a good client served")
                self.assertTrue(status)
                refused = metric(expect_metric)
                self.assertGreater(refused, 0)
                self.assertIsNone(edge.process.poll())
                self.assertEqual(edge.stop(), 0)
                return refused

    def test_cap_refuses_beyond_max_connections(self):
        refused = self.flood("", "edge_connections_over_capacity_total",
                             lambda edge, metric: metric("edge_connections_over_capacity_total") > 0, 96)
        print(f"\nRLIMIT_NOFILE 256, default cap: {refused:.0f} connections refused over capacity")

    def test_emfile_backs_off(self):
        # (scripts/sanitize builds UBSan without its vptr check: that check probes
        # memory through pipe(), which fails out of descriptors and is reported as
        # an invalid vptr on every virtual call.)
        # Out of descriptors, the metrics listener cannot accept either: the log tells, the metric is read after.
        errors = self.flood("  max_connections: 100000\n", "edge_accept_errors_total",
                            lambda edge, metric: log_has(edge, "backing off"), 100000)
        print(f"\nRLIMIT_NOFILE 256, cap above it: {errors:.0f} accept errors (EMFILE), backed off")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)

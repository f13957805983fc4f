"""Helpers for the operator-surface tests: an edged in manual mode with the
admin API, the Unix socket and the metrics listener on free loopback ports,
and JSON-RPC / metrics clients over TCP and the socket."""

import datetime
import http.client
import json
import os
import secrets
import socket

import edgetest as et
import pki


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class AdminClients:
    """HTTP, JSON-RPC and metrics clients of one edged's admin and metrics listeners."""

    def __init__(self, admin_port, metrics_port, socket_path=None):
        self.admin_port = admin_port
        self.metrics_port = metrics_port
        self.socket = socket_path

    def http(self, method, path, body=None, headers=None, port=None, unix=False):
        conn = UnixHTTPConnection(self.socket) if unix else http.client.HTTPConnection(
            "127.0.0.1", port or self.admin_port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            res = conn.getresponse()
            return res.status, dict((k.lower(), v) for k, v in res.getheaders()), res.read()
        finally:
            conn.close()

    def post_rpc(self, payload, token=None, unix=False):
        """Posts raw payload (str/bytes or a JSON-able object); returns (status, headers, parsed body or None)."""
        body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        status, h, raw = self.http("POST", "/rpc", body, headers, unix=unix)
        return status, h, (json.loads(raw) if raw else None)

    def rpc(self, method, params=None, token=None, unix=False):
        """One call; returns the result, raises RpcError on an error answer."""
        status, _, body = self.post_rpc({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}},
                                        token=token, unix=unix)
        if status != 200:
            raise RpcError(status, body)
        if "error" in body:
            raise RpcError(status, body)
        return body["result"]

    def metrics(self, openmetrics=True):
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
        status, h, raw = self.http("GET", "/metrics", headers=headers, port=self.metrics_port)
        assert status == 200, status
        return h["content-type"], raw.decode()


class AdminEdge(AdminClients):
    """Makes a CA and a certificate for edge.test/127.0.0.1 ("main"), writes
    edge.yaml with admin: and metrics:, and starts edged (stopped by PID)."""

    def __init__(self, edged_binary, workdir, token=True, extra=""):
        self.dir = workdir
        self.ca = pki.CertificateAuthority(workdir, "admin-test-ca")
        # 30 days and 12 hours: "days left" reads 30 whenever it is computed
        # during the test (exactly 30 days would flip to 29 between two reads).
        end = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30, hours=12))
        self.cert, self.key = self.ca.issue("main", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"],
                                            end=end.strftime("%Y%m%d%H%M%SZ"))
        self.port = et.free_port()
        super().__init__(et.free_port(), et.free_port(), os.path.join(workdir, "admin.sock"))
        self.store = os.path.join(workdir, "edge.db")
        self.jsonl = os.path.join(workdir, "handshakes.jsonl")
        self.token = "tok-" + secrets.token_hex(16) if token else None
        token_line = ""
        if token:
            with open(os.path.join(workdir, "admin.token"), "w") as f:
                f.write(self.token + "\n")
            os.chmod(os.path.join(workdir, "admin.token"), 0o600)
            token_line = "  token_file: admin.token\n"
        self.config = os.path.join(workdir, "edge.yaml")
        self.config_text = f"""
proxy:
  listen: ["127.0.0.1:{self.port}"]
  workers: 2
  tls:
    mode: manual
    certificates:
      - {{name: main, certificate: {self.cert}, private_key: {self.key}}}
    handshake_timeout_secs: 2
handshake_log:
  file: ./handshakes.jsonl
admin:
  listen: 127.0.0.1:{self.admin_port}
  socket: admin.sock
{token_line}metrics:
  listen: 127.0.0.1:{self.metrics_port}
{extra}"""
        with open(self.config, "w") as f:
            f.write(self.config_text)
        self.edged = et.Edged(edged_binary, self.config, workdir)

    def __enter__(self):
        self.edged.__enter__()
        return self

    def __exit__(self, *exc):
        self.edged.__exit__(*exc)


    def handshake(self, server_hostname="edge.test", verify_ca=True):
        """A successful TLS handshake and one HTTP request; returns the served leaf's serial."""
        ctx = et.tls_client_context(cafile=self.ca.cert if verify_ca else None, verify=verify_ca)
        tls, _ = et.connect_tls("127.0.0.1", self.port, ctx, server_hostname)
        try:
            serial, _ = et.leaf_facts(tls.getpeercert(binary_form=True))
            tls.sendall(b"GET / HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n")
            while tls.recv(4096):
                pass
            return serial
        finally:
            tls.close()

    def plain_http_failure(self):
        """A plain-HTTP client on the TLS port: one not_tls failure; returns its client port."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        port = raw.getsockname()[1]
        raw.sendall(b"GET / HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        while raw.recv(4096):
            pass
        raw.close()
        return port


class RpcError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body
        self.code = body["error"]["code"] if body and "error" in body else None


def metric_value(text, name, labels=None):
    """The value of one sample in exposition text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        found = {}
        for part in label_text.rstrip("}").split('",') if label_text else []:
            if not part:
                continue
            k, _, v = part.partition('="')
            found[k] = v.rstrip('"')
        if all(found.get(k) == v for k, v in (labels or {}).items()):
            return float(value)
    return None

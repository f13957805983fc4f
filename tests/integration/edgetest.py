"""Shared pieces of the integration tests and the demo: free ports, a small
HTTP/1.1 upstream, an edged process, and TLS helpers built on real clients
(Python's ssl module and the openssl command line)."""

import contextlib
import hashlib
import http.server
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time


def wait_for(predicate, timeout, what, interval=0.1):
    """Polls predicate until it returns a truthy value; never sleeps blindly."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the thing we wait for may not exist yet
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def free_port():
    """A TCP port free on both 127.0.0.1 and ::1 (edged listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.bind(("::1", port))
                    return port
            except OSError:
                continue
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards edged

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps({
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_length": len(body),
            "upstream_connection": "%s:%d" % self.client_address[:2],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


class Upstream:
    """An HTTP/1.1 origin on loopback that echoes what it received as JSON."""

    def __enter__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Edged:
    """One edged process started by the test and stopped by PID."""

    def __init__(self, binary, config_path, workdir):
        self.binary = binary
        self.config_path = config_path
        self.log_path = os.path.join(workdir, "edged.stderr")
        self.process = None

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([self.binary, "--config", self.config_path],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: b"edged: ready" in self.output() or self.process.poll() is not None,
                 30, "edged to start")
        if self.process.poll() is not None:
            raise RuntimeError("edged exited at start:\n" + self.output().decode(errors="replace"))
        return self

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode if self.process else None

    def __exit__(self, *exc):
        self.stop()
        self.log.close()


def run(args, timeout=60, check=True, input=None):
    result = subprocess.run(args, capture_output=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout.decode()}\n{result.stderr.decode()}")
    return result


def tls_client_context(cafile=None, verify=True, minimum=None, maximum=None, ciphers=None, alpn=("http/1.1",)):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile=cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if ciphers:
        ctx.set_ciphers(ciphers)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def connect_tls(host, port, ctx, server_hostname, timeout=10):
    """Returns (tls_socket, local_port). server_hostname=None sends no SNI."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.socket(family, socket.SOCK_STREAM)
    raw.settimeout(timeout)
    raw.connect((host, port))
    local_port = raw.getsockname()[1]
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname), local_port
    except Exception:
        raw.close()
        raise


def leaf_facts(der):
    """Serial (upper-case hex, no separators) and SHA-256 (upper-case hex) of a DER certificate."""
    out = run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der).stdout.decode()
    serial = out.strip().split("=", 1)[1].upper()
    return serial, hashlib.sha256(der).hexdigest().upper()


def key_matches(chain_pem, key_pem):
    """True when the PEM chain's leaf certifies the PEM private key."""
    cert_pub = run(["openssl", "x509", "-noout", "-pubkey"], input=chain_pem.encode()).stdout
    key_pub = run(["openssl", "pkey", "-pubout"], input=key_pem.encode()).stdout
    return cert_pub == key_pub


def read_jsonl(path):
    records = []
    if not os.path.exists(path):
        return records
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def edgectl(binary, store, *args, timeout=60, check=True):
    return run([binary, "--store", store, *args], timeout=timeout, check=check)


def store_query(path, sql, params=()):
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
        return db.execute(sql, params).fetchall()

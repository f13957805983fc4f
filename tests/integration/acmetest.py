"""Shared pieces of the ACME integration tests (tests/integration/test_acme_*.py):
an edged configured for one or more Pebbles, edgectl views of its store, and a
client that keeps handshaking with edged and records what it was served.

Standard library only; processes are started by the tests and stopped by PID.
"""

import json
import os
import shutil
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgetest as et  # noqa: E402


def edged_config(port, issuers, certificates, extra_acme="", listen_v6=True):
    """YAML for edged in acme mode. issuers: Pebble objects (or dicts with
    directory/ca_bundle/eab); certificates: YAML fragments of list items."""
    listen = [f'"127.0.0.1:{port}"'] + ([f'"[::1]:{port}"'] if listen_v6 else [])
    if len(issuers) == 1 and not isinstance(issuers[0], dict):
        acme = f"""      directory: {issuers[0].directory_url}
      ca_bundle: {issuers[0].ca_bundle}
"""
    else:
        acme = "      issuers:\n"
        for issuer in issuers:
            if not isinstance(issuer, dict):
                issuer = {"directory": issuer.directory_url, "ca_bundle": issuer.ca_bundle}
            acme += f"        - directory: {issuer['directory']}\n"
            acme += f"          ca_bundle: {issuer['ca_bundle']}\n"
            if "eab" in issuer:
                acme += (f"          eab: {{key_id: {issuer['eab'][0]}, "
                         f"mac_key: {issuer['eab'][1]}}}\n")
    certs = "".join(f"      - {c.strip()}\n" for c in certificates)
    return f"""
proxy:
  listen: [{", ".join(listen)}]
  workers: 2
  tls:
    mode: acme
    acme:
{acme}{extra_acme}    certificates:
{certs}handshake_log:
  file: ./handshakes.jsonl
"""


class Workdir:
    """A temporary directory, removed afterwards unless EDGE_KEEP_TEST_DIR is set."""

    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if os.environ.get("EDGE_KEEP_TEST_DIR"):
            print("kept", self.path, file=sys.stderr)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


class Store:
    """edgectl's views of one store."""

    def __init__(self, edgectl, path):
        self.edgectl = edgectl
        self.path = path

    def certs(self):
        out = et.edgectl(self.edgectl, self.path, "certs", "--json", check=False)
        if out.returncode != 0:
            return {}
        return {c["name"]: c for c in json.loads(out.stdout)}

    def cert(self, name):
        """The certificate `name` as `edgectl certs --json` lists it, or None."""
        return self.certs().get(name)

    def show(self, name):
        """`edgectl cert show NAME --json`, or None while edged has not written it yet."""
        out = et.edgectl(self.edgectl, self.path, "cert", "show", name, "--json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def show_text(self, name):
        return et.edgectl(self.edgectl, self.path, "cert", "show", name).stdout.decode()

    def generation(self, name):
        c = self.cert(name)
        return c.get("generation", 0) if c else 0

    def wait_generation(self, name, generation, timeout):
        """Waits for `generation` of `name` and for the scheduler to have
        recorded the attempt's outcome (state no longer "issuing")."""
        return et.wait_for(lambda: (c := self.cert(name)) and c.get("generation", 0) >= generation
                           and c.get("state") != "issuing" and c,
                           timeout, f"generation {generation} of {name}")

    def query(self, sql, params=()):
        return et.store_query(self.path, sql, params)


class HandshakeLoop:
    """Handshakes with edged every `interval` seconds from its own thread,
    verifying the chain against `root_pem` (and the name): records every
    serial served and every failure."""

    def __init__(self, port, root_path, server_hostname="edge.test", host="127.0.0.1", interval=0.05):
        self.port = port
        self.root_path = root_path
        self.server_hostname = server_hostname
        self.host = host
        self.interval = interval
        self.serials = []  # in the order seen, deduplicated consecutive
        self.failures = []
        self.count = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)

    def seen(self):
        with self._lock:
            return list(self.serials)

    def _run(self):
        ctx = et.tls_client_context(cafile=self.root_path)
        while not self._stop.is_set():
            try:
                tls, _ = et.connect_tls(self.host, self.port, ctx, self.server_hostname)
                with tls:
                    serial = et.leaf_facts(tls.getpeercert(binary_form=True))[0]
                with self._lock:
                    self.count += 1
                    if not self.serials or self.serials[-1] != serial:
                        self.serials.append(serial)
            except Exception as e:  # every failure is a test failure
                with self._lock:
                    self.failures.append(repr(e))
            # Pacing, not synchronisation: a steady trickle of handshakes.
            self._stop.wait(self.interval)


def _b64url(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _der_ecdsa_to_raw(der):
    """ECDSA-Sig-Value (DER SEQUENCE of r, s) to JWS's raw r||s, 32 bytes each."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        length = der[i + 1]
        value = der[i + 2:i + 2 + length].lstrip(b"\x00")
        out += value.rjust(32, b"\x00")
        i += 2 + length
    return out


class AcmeProbe:
    """Talks to Pebble as an ACME account, independently of edged: ES256 JWS
    signed with the openssl command line. Used to check what the server
    thinks of an account edged manages (key rolled over? deactivated?)."""

    def __init__(self, pebble, workdir):
        import ssl as _ssl
        import urllib.request
        self.pebble = pebble
        self.workdir = workdir
        context = _ssl.create_default_context(cafile=pebble.ca_bundle)
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                  urllib.request.HTTPSHandler(context=context))
        with self.opener.open(pebble.directory_url, timeout=10) as r:
            self.directory = json.loads(r.read())

    def _nonce(self):
        import urllib.request
        request = urllib.request.Request(self.directory["newNonce"], method="HEAD")
        with self.opener.open(request, timeout=10) as r:
            return r.headers["Replay-Nonce"]

    def _sign(self, key_pem, data):
        key_path = os.path.join(self.workdir, "probe-key.pem")
        with open(key_path, "w") as f:
            f.write(key_pem)
        try:
            der = et.run(["openssl", "dgst", "-sha256", "-sign", key_path], input=data).stdout
        finally:
            os.remove(key_path)
        return _der_ecdsa_to_raw(der)

    def post(self, key_pem, kid, url, payload=None):
        """POST (payload None = POST-as-GET) signed with key_pem as account kid.
        Returns (HTTP status, parsed JSON body or None)."""
        import urllib.error
        import urllib.request
        protected = _b64url(json.dumps({"alg": "ES256", "kid": kid, "nonce": self._nonce(), "url": url}).encode())
        body = _b64url(json.dumps(payload).encode()) if payload is not None else ""
        signature = _b64url(self._sign(key_pem, f"{protected}.{body}".encode()))
        data = json.dumps({"protected": protected, "payload": body, "signature": signature}).encode()
        request = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/jose+json"})
        try:
            with self.opener.open(request, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def account(self, key_pem, account_url):
        """What the server says about the account (POST-as-GET)."""
        return self.post(key_pem, account_url, account_url)

"""A real Pebble (Let's Encrypt's ACME test server) on loopback, for tests.

Standard library only. Debian's pebble package ships no certificate for
Pebble's own HTTPS listener, so every Pebble gets a throwaway CA and a leaf for
127.0.0.1/localhost made with the openssl CLI; clients trust `ca_bundle`.

    with Pebble(tls_port=8443, certificate_validity=120) as pebble:
        pebble.directory_url   # https://127.0.0.1:<port>/dir
        pebble.ca_bundle       # PEM of the CA that signed Pebble's HTTPS leaf
        pebble.root_pem()      # Pebble's issuing root (new on every start)
        pebble.add_aaaa("v6.edge.test", ["::1"])

pebble-challtestsrv is Pebble's DNS: every name resolves to 127.0.0.1 and, by
default, to no IPv6 address (Pebble asks AAAA first and never falls back).
Everything listens on free loopback ports; the processes are stopped by PID.
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

__all__ = ["Pebble", "PebbleError", "free_port"]

PEBBLE_BINARY = os.environ.get("EDGE_PEBBLE", "/usr/bin/pebble")
CHALLTESTSRV_BINARY = os.environ.get("EDGE_PEBBLE_CHALLTESTSRV", "/usr/bin/pebble-challtestsrv")


class PebbleError(RuntimeError):
    """Pebble could not be started or answered unexpectedly; the message has its logs."""


def free_port(udp: bool = False) -> int:
    """A loopback port free right now (for TCP, and for UDP too when asked).

    Another process may take it before the caller binds it; Pebble.start()
    retries with new ports when a server fails to come up.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if not udp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
                try:
                    datagram.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise PebbleError("no free loopback port found")


def _die_with_parent() -> None:
    """Runs in the child before exec: if the test runner is killed (e.g. by a
    ctest timeout), the kernel sends SIGTERM to the server instead of leaving
    it running."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def _run_openssl(args: list[str], cwd: pathlib.Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise PebbleError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


class Pebble:
    """Context manager running pebble-challtestsrv and pebble on loopback."""

    def __init__(
        self,
        tls_port: int | None = None,
        *,
        certificate_validity: int = 0,
        nonce_reject: int = 0,
        always_valid: bool = False,
        authz_reuse: int = 0,
        http_port: int | None = None,
        startup_timeout: float = 20.0,
        workdir: str | os.PathLike[str] | None = None,
        keep_workdir: bool = False,
        eab_keys: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """tls_port: where Pebble connects for tls-alpn-01 validation (the
        edge's listener); a free port when None. certificate_validity: seconds
        (0 = Pebble's default of about five years). nonce_reject: percentage of
        good nonces Pebble rejects with badNonce. always_valid: skip validation
        entirely (no validation traffic). workdir: parent for the temp
        directory. eab_keys: {key id: base64url MAC key} makes External
        Account Binding required. extra_env: more PEBBLE_* settings, e.g.
        PEBBLE_ALTERNATE_ROOTS."""
        self.eab_keys = dict(eab_keys or {})
        self.extra_env = dict(extra_env or {})
        self.tls_port = tls_port if tls_port is not None else free_port()
        self.http_port = http_port
        self.certificate_validity = certificate_validity
        self.nonce_reject = nonce_reject
        self.always_valid = always_valid
        self.authz_reuse = authz_reuse
        self.startup_timeout = startup_timeout
        self._parent = pathlib.Path(workdir) if workdir is not None else None
        self.keep_workdir = keep_workdir

        self.workdir: pathlib.Path | None = None
        self.listen_port = 0
        self.management_port = 0
        self.dns_port = 0
        self.challtestsrv_port = 0
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._log_paths: dict[str, pathlib.Path] = {}
        self._saved_logs: dict[str, str] = {}
        # Loopback only: never go through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # --- lifecycle ----------------------------------------------------------

    def __enter__(self) -> "Pebble":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()
        if exc_type is not None and not issubclass(exc_type, PebbleError):
            sys.stderr.write(self.log_tail())

    def start(self, attempts: int = 3) -> None:
        for binary in (PEBBLE_BINARY, CHALLTESTSRV_BINARY):
            if not os.access(binary, os.X_OK):
                raise PebbleError(f"{binary} not found: install Debian's pebble package")
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="edge-pebble-", dir=self._parent))
        self._make_certificates()
        last_error: PebbleError | None = None
        for _ in range(attempts):
            try:
                self._start_servers()
                return
            except PebbleError as error:
                # Usually a port taken between free_port() and bind: try anew.
                last_error = error
                self._stop_processes()
        self.stop()
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        self._stop_processes()
        if self.workdir is not None and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- what clients need --------------------------------------------------

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.listen_port}/dir"

    @property
    def ca_bundle(self) -> str:
        """Path of the CA certificate that signed Pebble's HTTPS leaf."""
        assert self.workdir is not None
        return str(self.workdir / "ca.pem")

    @property
    def management_url(self) -> str:
        return f"https://127.0.0.1:{self.management_port}"

    def root_pem(self, index: int = 0) -> str:
        """Pebble's issuing root (it makes a new one on every start)."""
        return self._get(f"{self.management_url}/roots/{index}").decode()

    def intermediate_pem(self, index: int = 0) -> str:
        return self._get(f"{self.management_url}/intermediates/{index}").decode()

    @property
    def intermediates(self) -> list[str]:
        return [self.intermediate_pem(0)]

    def add_a(self, host: str, addresses: list[str]) -> None:
        self._challtestsrv("add-a", {"host": host, "addresses": addresses})

    def add_aaaa(self, host: str, addresses: list[str]) -> None:
        self._challtestsrv("add-aaaa", {"host": host, "addresses": addresses})

    def clear_a(self, host: str) -> None:
        self._challtestsrv("clear-a", {"host": host})

    def clear_aaaa(self, host: str) -> None:
        self._challtestsrv("clear-aaaa", {"host": host})

    def logs(self) -> str:
        """Output of both servers so far (kept after stop())."""
        parts = []
        for name in ("pebble-challtestsrv", "pebble"):
            text = self._saved_logs.get(name)
            if text is None and name in self._log_paths:
                text = self._log_paths[name].read_text(errors="replace")
            if text:
                parts.append(f"--- {name} ---\n{text}")
        return "\n".join(parts)

    def log_tail(self, lines: int = 60) -> str:
        text = self.logs().splitlines()
        return "\n".join(text[-lines:]) + "\n" if text else ""

    # --- internals ----------------------------------------------------------

    def _make_certificates(self) -> None:
        assert self.workdir is not None
        d = self.workdir
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _run_openssl(
            ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "7",
             "-subj", "/CN=edge test Pebble HTTPS CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            d,
        )
        _run_openssl(["req", "-new", *ec, "-keyout", "leaf.key", "-out", "leaf.csr",
                      "-subj", "/CN=localhost"], d)
        (d / "leaf.ext").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
        )
        _run_openssl(["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", "7", "-extfile", "leaf.ext", "-out", "leaf.pem"],
                     d)
        context = ssl.create_default_context(cafile=str(d / "ca.pem"))
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))

    def stop_servers(self) -> None:
        """Stops both servers (a CA outage); restart_servers() brings them back."""
        self._stop_processes()

    def restart_servers(self) -> None:
        """Starts the servers again on the same ports, so clients keep their
        directory URL. Pebble's state (accounts, orders, roots) is new."""
        self._stop_processes()
        self._start_servers(keep_ports=True)

    def _start_servers(self, keep_ports: bool = False) -> None:
        assert self.workdir is not None
        if not keep_ports:
            self.listen_port = free_port()
            self.management_port = free_port()
            self.dns_port = free_port(udp=True)
            self.challtestsrv_port = free_port()
        http_port = self.http_port if self.http_port is not None else free_port()

        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.listen_port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(self.workdir / "leaf.pem"),
                "privateKey": str(self.workdir / "leaf.key"),
                "httpPort": http_port,
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": bool(self.eab_keys),
                "certificateValidityPeriod": self.certificate_validity,
            }
        }
        if self.eab_keys:
            config["pebble"]["externalAccountMACKeys"] = self.eab_keys
        config_path = self.workdir / "pebble-config.json"
        config_path.write_text(json.dumps(config, indent=2))

        # The empty flags keep challtestsrv off :5001-5003, and an empty
        # default IPv6 makes AAAA lookups come back empty unless add_aaaa().
        self._spawn(
            "pebble-challtestsrv",
            [CHALLTESTSRV_BINARY,
             "-dns01", f"127.0.0.1:{self.dns_port}",
             "-management", f"127.0.0.1:{self.challtestsrv_port}",
             "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            {},
        )
        self._wait_for("pebble-challtestsrv", self._tcp_answers(self.challtestsrv_port))

        env = {
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_AUTHZREUSE": str(self.authz_reuse),
            "PEBBLE_WFE_NONCEREJECT": str(self.nonce_reject),
        }
        if self.always_valid:
            env["PEBBLE_VA_ALWAYS_VALID"] = "1"
        env.update(self.extra_env)
        self._spawn(
            "pebble",
            [PEBBLE_BINARY, "-config", str(config_path), "-strict=false",
             "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            env,
        )
        self._wait_for("pebble", self._directory_answers)

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str]) -> None:
        assert self.workdir is not None
        log_path = self.workdir / f"{name}.log"
        self._log_paths[name] = log_path
        env = dict(os.environ)
        env.update(extra_env)
        with open(log_path, "ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            self._processes[name] = subprocess.Popen(
                argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )

    def _wait_for(self, name: str, ready) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            process = self._processes[name]
            if process.poll() is not None:
                raise PebbleError(f"{name} exited with {process.returncode} while starting\n"
                                  + self.log_tail())
            if ready():
                return
            time.sleep(0.05)
        raise PebbleError(f"{name} did not answer within {self.startup_timeout} s\n"
                          + self.log_tail())

    @staticmethod
    def _tcp_answers(port: int):
        def check() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False
        return check

    def _directory_answers(self) -> bool:
        try:
            directory = json.loads(self._get(self.directory_url, timeout=2))
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return "newNonce" in directory

    def _get(self, url: str, timeout: float = 10) -> bytes:
        with self._opener.open(url, timeout=timeout) as response:
            return response.read()

    def _challtestsrv(self, path: str, body: dict) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.challtestsrv_port}/{path}",
            data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as error:
            raise PebbleError(f"challtestsrv {path} {body}: HTTP {error.code}: "
                              f"{error.read().decode(errors='replace')}") from None

    def _stop_processes(self) -> None:
        # Pebble first: it uses challtestsrv as its DNS.
        for name in ("pebble", "pebble-challtestsrv"):
            process = self._processes.pop(name, None)
            if process is None:
                continue
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            log_path = self._log_paths.get(name)
            if log_path is not None and log_path.exists():
                self._saved_logs[name] = log_path.read_text(errors="replace")

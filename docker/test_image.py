#!/usr/bin/env python3
"""Runs the edge image (built by docker/test-image.sh) with podman and host
networking against a Pebble on the host's loopback, and checks what an
operator relies on: the container obtains a certificate and serves it (openssl
s_client verifies it against Pebble's root), edgectl inside the container
reports the same serial, the image's HEALTHCHECK passes (and fails against an
admin API that does not answer), edged runs as a non-root user, and SIGTERM
(podman stop) ends it with exit code 0. The configuration comes from a mounted
file and EDGE_* variables (ports, ACME directory, the CA trusted for it).

Stops and removes only the container it started (and its anonymous volume);
Pebble is stopped by PID. Usage: test_image.py --image localhost/edge:test"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402

CONFIG = """
# Mounted over the image's /etc/edge/edge.yaml; EDGE_* variables supply the
# addresses and the ACME directory of this run.
store:
  path: /var/lib/edge/edge.db
proxy:
  tls:
    mode: acme
    certificates:
      - name: main
        identifiers: [edge.test, 127.0.0.1]
handshake_log:
  file: "-"
admin: {}
"""


def say(text):
    print(f"test-image: {text}", file=sys.stderr, flush=True)


def podman(*args, check=True, timeout=120):
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


class Container:
    def __init__(self, image, name, run_args):
        self.image, self.name, self.run_args = image, name, run_args
        self.started = False

    def __enter__(self):
        podman("run", "-d", "--name", self.name, "--network", "host", *self.run_args, self.image)
        self.started = True
        return self

    def exec(self, *args, check=True, timeout=60):
        return podman("exec", self.name, *args, check=check, timeout=timeout)

    def logs(self):
        return podman("logs", self.name, check=False).stderr

    def __exit__(self, *exc):
        if self.started:
            if exc[0] is not None:
                sys.stderr.write("--- container log ---\n" + self.logs()[-6000:])
            podman("rm", "-f", "-v", self.name, check=False)


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    say(f"ok: {what}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    args = parser.parse_args()
    # A signal (Ctrl-C, a CI timeout) still runs the cleanups below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    tls_port, admin_port, metrics_port, dead_port = (et.free_port() for _ in range(4))
    name = f"edge-test-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="edge-image-") as d, Pebble(tls_port=tls_port) as pebble:
        config = os.path.join(d, "edge.yaml")
        with open(config, "w") as f:
            f.write(CONFIG)
        os.chmod(config, 0o644)
        os.chmod(d, 0o755)
        root = os.path.join(d, "pebble-root.pem")
        with open(root, "w") as f:
            f.write(pebble.root_pem())
        run_args = [
            "--health-interval", "disable",  # no systemd here for podman's timer: `healthcheck run` below
            "-v", f"{config}:/etc/edge/edge.yaml:ro",
            "-v", f"{pebble.ca_bundle}:/etc/edge/acme-ca.pem:ro",
            "-e", f"EDGE_LISTEN=127.0.0.1:{tls_port}",
            "-e", f"EDGE_ADMIN_LISTEN=127.0.0.1:{admin_port}",
            "-e", f"EDGE_ADMIN=http://127.0.0.1:{admin_port}",
            "-e", f"EDGE_METRICS_LISTEN=127.0.0.1:{metrics_port}",
            "-e", f"EDGE_ACME_DIRECTORY={pebble.directory_url}",
            "-e", "EDGE_ACME_CA_BUNDLE=/etc/edge/acme-ca.pem",
        ]
        started = time.monotonic()
        with Container(args.image, name, run_args) as c:
            def issued():
                out = c.exec("edgectl", "certs", "--json", check=False)
                if out.returncode != 0:
                    return None
                certs = [x for x in json.loads(out.stdout or "[]") if x.get("name") == "main" and x.get("serial")]
                return certs[0] if certs else None
            cert = et.wait_for(issued, 90, "the container's certificate (edgectl certs --json)", interval=0.5)
            say(f"certificate main serial {cert['serial']} issued {time.monotonic() - started:.1f} s after podman run")
            check("edge.test" in json.dumps(cert) and "127.0.0.1" in json.dumps(cert),
                  "edgectl inside the container reports main for edge.test and 127.0.0.1")

            for servername, extra in (("edge.test", ["-verify_hostname", "edge.test"]),
                                      (None, ["-noservername", "-verify_ip", "127.0.0.1"])):
                argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{tls_port}", "-CAfile", root,
                        "-verify_return_error", *extra]
                if servername:
                    argv += ["-servername", servername]
                s = subprocess.run(argv, input=b"", capture_output=True, timeout=20)
                text = s.stdout.decode(errors="replace")
                check(s.returncode == 0 and "Verify return code: 0 (ok)" in text,
                      f"openssl s_client ({servername or 'no SNI, IP 127.0.0.1'}) verifies the served chain "
                      f"against Pebble's root")
                leaf = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=s.stdout, capture_output=True,
                                      timeout=20)
                served = leaf.stdout.decode().strip().split("=", 1)[1].upper()
                check(served == cert["serial"].upper(), f"the served serial {served} is the one edgectl reports")

            text = c.exec("edgectl", "certs").stdout
            check("main" in text and cert["serial"] in text, "`podman exec edgectl certs` lists it:\n" + text.rstrip())

            health = podman("healthcheck", "run", name, check=False)
            check(health.returncode == 0, f"podman healthcheck run: exit 0 ({(health.stdout + health.stderr).strip()})")
            inspect = json.loads(podman("image", "inspect", args.image).stdout)[0]
            test = (inspect.get("Healthcheck") or inspect.get("Config", {}).get("Healthcheck") or {}).get("Test")
            check(test == ["CMD", "edgectl", "version"], f"the image's HEALTHCHECK is {test}")
            down = c.exec("edgectl", "--admin", f"http://127.0.0.1:{dead_port}", "version", check=False)
            check(down.returncode != 0, f"the same command fails when no edged answers (exit {down.returncode})")

            uid = c.exec("id", "-u").stdout.strip()
            check(uid != "0", f"the container's user is uid {uid}, not root")
            pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
            with open(f"/proc/{pid}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            check(comm == "edged" and set(uids) == {uid},
                  f"seen from the host, {comm} (pid {pid}) runs with real/effective/saved uid {uids}")
            owner = c.exec("stat", "-c", "%u", "/var/lib/edge/edge.db").stdout.strip()
            check(owner == uid, f"the store in the /var/lib/edge volume belongs to uid {owner}")

            podman("stop", "-t", "20", name, timeout=60)
            code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            check(code == "0", f"podman stop (SIGTERM): edged exited with {code}")
    say("all container checks passed")


if __name__ == "__main__":
    main()

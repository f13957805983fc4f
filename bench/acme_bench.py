#!/usr/bin/env python3
"""Issuance wall time of one ACME order for edge.test + 127.0.0.1 + ::1,
edged against uacme + ualpn (Debian's uacme 1.7.4), against the same Pebble on
loopback, several rounds each, medians.

    bench/acme_bench.py [--rounds 9] [--edged build/bin/edged] [--edgectl build/bin/edgectl]

What is timed, per round, with an existing account on both sides:

- edged: from `edgectl renew main` queueing the request in the store to the new
  generation being in the store (the store is polled every 2 ms), i.e. the
  scheduler picking the request up (polls every 100 ms), a fresh client
  fetching the directory, newOrder, three tls-alpn-01 challenges answered by
  edged's own listener, finalize, download, storing. edged's own figure (from
  its log: "valid in N s") is reported too.
- uacme: the wall time of `uacme -f -t EC issue edge.test 127.0.0.1 ::1` with
  ualpn answering the challenges through uacme's ualpn hook (the process from
  start to exit: directory, account lookup, order, hooks, validation, finalize,
  download, files written).

The two take turns on the same port (Pebble's tlsPort), round by round, so
drift of the machine affects both alike. uacme has no option for a CA bundle
(libcurl-gnutls reads /etc/ssl/certs/ca-certificates.crt), so it runs in a
private mount namespace (unshare) where that file is bind-mounted to a bundle
holding Pebble's test CA; nothing outside the namespace changes.

Requires Debian's pebble and uacme packages (scripts/setup.sh installs them).
Prints a Markdown table and writes the raw figures as JSON next to this script
(bench/results/acme-<time>.json).
"""

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, os.path.join(root, "tests", "integration"))
import edgetest as et  # noqa: E402
from pebble import Pebble  # noqa: E402

IDENTIFIERS = ["edge.test", "127.0.0.1", "::1"]

HOOK = """#!/bin/sh
# uacme's ualpn hook (/usr/share/uacme/ualpn.sh) with our ualpn socket.
[ "$2" = "tls-alpn-01" ] || exit 1
case "$1" in
  begin) out=$(echo "auth $3 $5" | ualpn -s "{sock}") ;;
  done|failed) out=$(echo "unauth $3" | ualpn -s "{sock}") ;;
  *) exit 1 ;;
esac
[ "$out" = "OK" ]
"""


def generation(store):
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10) as db:
        row = db.execute("SELECT MAX(generation) FROM certificates WHERE name = 'main'").fetchone()
        return row[0] or 0


def wait_port_free(port, timeout=10):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} still busy")


class EdgedSide:
    def __init__(self, args, workdir, pebble, port):
        self.args = args
        self.dir = os.path.join(workdir, "edged")
        os.mkdir(self.dir)
        self.store = os.path.join(self.dir, "edge.db")
        self.config = os.path.join(self.dir, "edge.yaml")
        with open(self.config, "w") as f:
            f.write(f"""
proxy:
  listen: ["127.0.0.1:{port}", "[::1]:{port}"]
  workers: 1
  tls:
    mode: acme
    acme:
      directory: {pebble.directory_url}
      ca_bundle: {pebble.ca_bundle}
    certificates:
      - name: main
        identifiers: [edge.test, 127.0.0.1, "::1"]
""")

    def round(self):
        """One timed renewal; returns (external seconds, edged's own seconds)."""
        with et.Edged(self.args.edged, self.config, self.dir) as edged:
            # First start: registration and first issuance, not timed.
            et.wait_for(lambda: generation(self.store) > 0, 60, "edged's first certificate")
            state = lambda: et.store_query(self.store, "SELECT status FROM renewal_state WHERE name = 'main'")
            et.wait_for(lambda: state() == [("valid",)], 30, "edged idle")
            before = generation(self.store)
            started = time.monotonic()
            et.edgectl(self.args.edgectl, self.store, "renew", "main")
            while generation(self.store) == before:
                if time.monotonic() - started > 60:
                    raise RuntimeError("edged did not renew within 60 s")
                time.sleep(0.002)
            took = time.monotonic() - started
            et.wait_for(lambda: "valid in" in edged.output().decode().split("issuing certificate: renewal requested")[-1],
                        10, "edged's log line")
            tail = edged.output().decode().split("issuing certificate: renewal requested")[-1]
            own = float(re.search(r"valid in ([0-9.]+) s", tail).group(1))
        return took, own


class UacmeSide:
    def __init__(self, workdir, pebble, port):
        self.dir = os.path.join(workdir, "uacme")
        os.mkdir(self.dir)
        self.port = port
        self.pebble = pebble
        self.sock = os.path.join(self.dir, "ualpn.sock")
        self.hook = os.path.join(self.dir, "hook.sh")
        with open(self.hook, "w") as f:
            f.write(HOOK.replace("{sock}", self.sock))
        os.chmod(self.hook, 0o755)
        # The system bundle plus Pebble's HTTPS CA, bind-mounted over the system
        # bundle inside uacme's own mount namespace.
        self.bundle = os.path.join(self.dir, "ca-certificates.crt")
        with open(self.bundle, "w") as out:
            with open("/etc/ssl/certs/ca-certificates.crt") as system:
                out.write(system.read())
            with open(pebble.ca_bundle) as ca:
                out.write(ca.read())
        self.confdir = os.path.join(self.dir, "conf")
        self.run(["-y", "new"], timeout=60)

    def run(self, uacme_args, timeout):
        script = ('mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec uacme "$@"')
        argv = ["unshare", "--mount", "--map-root-user", "sh", "-c", script, self.bundle,
                "-c", self.confdir, "-a", self.pebble.directory_url, *uacme_args]
        result = subprocess.run(argv, capture_output=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"uacme {' '.join(uacme_args)} exited {result.returncode}:\n"
                               + result.stderr.decode(errors="replace"))
        return result

    def round(self):
        # -c: where ualpn would proxy non-challenge connections (none here).
        ualpn = subprocess.Popen(["ualpn", "-s", self.sock, "-b", f"127.0.0.1@{self.port}",
                                  "-b", f"::1@{self.port}", "-c", "127.0.0.1@9"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            et.wait_for(lambda: os.path.exists(self.sock), 10, "ualpn's socket")
            started = time.monotonic()
            self.run(["-f", "-t", "EC", "-h", self.hook, "issue", *IDENTIFIERS], timeout=120)
            took = time.monotonic() - started
        finally:
            ualpn.send_signal(signal.SIGTERM)
            try:
                ualpn.wait(timeout=10)
            except subprocess.TimeoutExpired:
                ualpn.kill()
                ualpn.wait()
            if os.path.exists(self.sock):
                os.remove(self.sock)
        cert = os.path.join(self.confdir, "edge.test", "cert.pem")
        if not os.path.exists(cert):
            raise RuntimeError("uacme wrote no certificate")
        return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--edged", default=os.path.join(root, "build", "bin", "edged"))
    parser.add_argument("--edgectl", default=os.path.join(root, "build", "bin", "edgectl"))
    args = parser.parse_args()
    for tool in ("uacme", "ualpn", "unshare", args.edged, args.edgectl):
        if not shutil.which(tool):
            sys.exit(f"acme_bench: {tool} not found (scripts/setup.sh installs uacme; build edged first)")

    workdir = tempfile.mkdtemp(prefix="edge-acme-bench-")
    port = et.free_port()
    results = {"edged": [], "edged_own": [], "uacme": []}
    try:
        with Pebble(tls_port=port) as pebble:
            edged = EdgedSide(args, workdir, pebble, port)
            uacme = UacmeSide(workdir, pebble, port)
            for i in range(args.rounds):
                took, own = edged.round()
                results["edged"].append(took)
                results["edged_own"].append(own)
                wait_port_free(port)
                results["uacme"].append(uacme.round())
                wait_port_free(port)
                print(f"round {i + 1}/{args.rounds}: edged {took:.3f} s (own {own:.3f} s), "
                      f"uacme {results['uacme'][-1]:.3f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    medians = {k: statistics.median(v) for k, v in results.items()}
    ratio = medians["edged"] / medians["uacme"]
    print("| client | median wall time per order | min | max | rounds |")
    print("|---|---|---|---|---|")
    for key, label in (("edged", "edged (request queued -> certificate stored)"),
                       ("edged_own", "edged, its own log (\"valid in\")"),
                       ("uacme", "uacme + ualpn (process start -> exit)")):
        v = results[key]
        print(f"| {label} | {medians[key]:.3f} s | {min(v):.3f} s | {max(v):.3f} s | {len(v)} |")
    print(f"\nedged / uacme (medians): {ratio:.2f}")
    os.makedirs(os.path.join(here, "results"), exist_ok=True)
    out = os.path.join(here, "results", time.strftime("acme-%Y%m%dT%H%M%S.json"))
    with open(out, "w") as f:
        json.dump({"rounds": args.rounds, "seconds": results, "medians": medians, "ratio": ratio,
                   "uacme_version": subprocess.run(["uacme", "-V"], capture_output=True).stdout.decode().strip(),
                   "nproc": os.cpu_count()}, f, indent=2)
    print(f"raw figures: {out}", file=sys.stderr)
    return 0 if ratio <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())

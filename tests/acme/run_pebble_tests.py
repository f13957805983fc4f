#!/usr/bin/env python3
"""Runs the ACME client's Pebble tests: starts a fresh Pebble on loopback,
then the gtest binary given as argv[1] (further arguments are passed on) with

  EDGE_TEST_ACME_DIRECTORY  Pebble's directory URL
  EDGE_TEST_ACME_CA         CA bundle for Pebble's HTTPS listener
  EDGE_TEST_ACME_ROOT       Pebble's issuing root, to verify issued chains

and exits with the binary's exit code. No tls-alpn-01 responder exists in
these tests, so Pebble skips validation (PEBBLE_VA_ALWAYS_VALID=1); it rejects
half of all good nonces (PEBBLE_WFE_NONCEREJECT=50) to exercise the badNonce
retry on every request.
"""

import os
import pathlib
import signal
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration"))

from pebble import Pebble  # noqa: E402

TEST_TIMEOUT = 170  # seconds; ctest's TIMEOUT is 180


def _terminate(signum, frame):
    # Turn ctest's SIGTERM into an exception so Pebble is stopped on the way out.
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(f"usage: {argv[0]} <acme_pebble_tests binary> [gtest args...]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    with Pebble(nonce_reject=50, always_valid=True) as pebble:
        root = pathlib.Path(pebble.workdir) / "issuing-root.pem"
        root.write_text(pebble.root_pem())
        env = dict(os.environ)
        env.update(
            EDGE_TEST_ACME_DIRECTORY=pebble.directory_url,
            EDGE_TEST_ACME_CA=pebble.ca_bundle,
            EDGE_TEST_ACME_ROOT=str(root),
            # libcurl honours proxy variables; loopback must never use one.
            NO_PROXY="127.0.0.1,localhost,::1",
            no_proxy="127.0.0.1,localhost,::1",
        )
        print(f"pebble: {pebble.directory_url}", flush=True)
        try:
            code = subprocess.run(argv[1:], env=env, timeout=TEST_TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            print(f"{argv[1]} did not finish within {TEST_TIMEOUT} s", file=sys.stderr)
            code = 1
        if code != 0:
            sys.stderr.write("Pebble's log (tail):\n" + pebble.log_tail(80))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))

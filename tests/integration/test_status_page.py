#!/usr/bin/env python3
"""The status page (issue 8, acceptance 3): edged serves it from files built
into the binary; headless Chromium (Debian's, driven by npm's
playwright-core) loads it with no request leaving edged, and it shows the
certificate, per-certificate charts and the failures this test made (client
address, SNI). The screenshot is saved to docs/status-page.png.

playwright-core is installed by this test (npm ci, pinned by
tests/integration/browser/package-lock.json) into the git-ignored
tests/integration/browser/node_modules.

Usage: test_status_page.py --edged PATH --edgectl PATH [--screenshot PATH]"""

import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admintest as at  # noqa: E402
import edgetest as et  # noqa: E402

ARGS = None
HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER_DIR = os.path.join(HERE, "browser")
DEFAULT_SCREENSHOT = os.path.join(HERE, "..", "..", "docs", "status-page.png")


def ensure_playwright():
    if os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        return
    et.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", BROWSER_DIR], timeout=300)


class StatusPage(unittest.TestCase):
    def test_page_shows_certificate_charts_and_failures(self):
        self.assertIsNotNone(shutil.which("chromium"), "Debian's chromium (scripts/setup.sh installs it)")
        self.assertIsNotNone(shutil.which("node"), "Node.js (scripts/setup.sh installs it)")
        ensure_playwright()
        with tempfile.TemporaryDirectory(prefix="edge-status-") as d, at.AdminEdge(ARGS.edged, d) as edge:
            for _ in range(3):
                edge.handshake()
            # Two failures: one with an SNI (ALPN h2 only), one plain-HTTP client.
            ctx = et.tls_client_context(verify=False, alpn=("h2",))
            with self.assertRaises(ssl.SSLError):
                et.connect_tls("127.0.0.1", edge.port, ctx, "edge.test")
            failure_port = edge.plain_http_failure()
            et.wait_for(lambda: len(edge.rpc("handshakes.query", {"outcome": "failed"})) >= 2, 10,
                        "both failures recorded")

            screenshot = os.path.abspath(ARGS.screenshot)
            os.makedirs(os.path.dirname(screenshot), exist_ok=True)
            env = dict(os.environ, EDGE_URL=f"http://127.0.0.1:{edge.admin_port}/", EDGE_CERT="main",
                       EDGE_FAILURE_SNI="edge.test", EDGE_FAILURE_CLIENT=f"127.0.0.1:{failure_port}",
                       EDGE_SCREENSHOT=screenshot, CHROMIUM=shutil.which("chromium"))
            result = subprocess.run(["node", os.path.join(BROWSER_DIR, "status_page.mjs")], env=env,
                                    capture_output=True, timeout=120, cwd=BROWSER_DIR)
            self.assertEqual(result.returncode, 0, result.stdout.decode() + result.stderr.decode())
            seen = json.loads(result.stdout.decode().strip().splitlines()[-1])

        self.assertEqual(seen["external_requests"], [], "the page loads nothing from elsewhere")
        self.assertEqual(seen["console_errors"], [])
        self.assertTrue(seen["error_hidden"])
        cert = seen["certificate"]
        self.assertEqual(cert[0], "main")
        self.assertIn("edge.test", cert[1])
        self.assertEqual(cert[2], "CN=admin-test-ca")
        self.assertIn(seen["days_left"], ("29", "30"))
        self.assertTrue(seen["bar_width"].endswith("%"))
        failures = "\n".join(seen["failures"])
        self.assertIn("no_application_protocol", failures)
        self.assertIn(f"127.0.0.1:{failure_port}", failures)
        self.assertIn("not_tls", failures)
        charts = {c["id"]: c for c in seen["charts"]}
        self.assertGreaterEqual(charts["chart-main"]["total"], 4)  # 3 ok + the ALPN failure
        self.assertGreater(charts["chart-main"]["bars"], 0)
        self.assertIn("no_application_protocol", " ".join(seen["legend"]))
        with open(screenshot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    parser.add_argument("--screenshot", default=DEFAULT_SCREENSHOT)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

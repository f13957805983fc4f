#!/usr/bin/env python3
"""edged check: a valid file passes; an unknown key and a bad value each fail
with exit 1 and a message naming file:line:column: key. Nothing starts."""

import os
import subprocess
import sys
import tempfile
import unittest

EDGED = None


class ConfigCheck(unittest.TestCase):
    def check(self, text):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "edge.yaml")
            with open(path, "w") as f:
                f.write(text)
            result = subprocess.run([EDGED, "check", "--config", path], capture_output=True, timeout=20)
            return result.returncode, result.stdout.decode() + result.stderr.decode(), path

    def test_unknown_key(self):
        code, out, path = self.check("store:\n  path: ./edge.db\nproxy:\n  tls:\n    min_protocol_verison: \"1.2\"\n")
        self.assertEqual(code, 1, out)
        self.assertIn(f"{path}:5:5: proxy.tls.min_protocol_verison: unknown key", out)

    def test_bad_value(self):
        code, out, path = self.check("proxy:\n  tls:\n    min_protocol_version: \"1.1\"\n")
        self.assertEqual(code, 1, out)
        self.assertIn(f'{path}:3:27: proxy.tls.min_protocol_version: expected "1.2" or "1.3", got "1.1"', out)

    def test_valid(self):
        code, out, path = self.check("proxy:\n  listen: [\"127.0.0.1:8443\"]\n")
        self.assertEqual(code, 0, out)
        self.assertIn("ok", out)

    def test_bad_config_starts_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "edge.yaml")
            with open(path, "w") as f:
                f.write("store:\n  path: ./edge.db\nproxy:\n  workers: many\n")
            result = subprocess.run([EDGED, "--config", path], capture_output=True, timeout=20)
            self.assertEqual(result.returncode, 1)
            self.assertIn("proxy.workers", result.stderr.decode())
            self.assertFalse(os.path.exists(os.path.join(d, "edge.db")), "no store was created")

    def test_environment(self):
        # EDGE_CONFIG names the file; an EDGE_* override with a bad value is
        # refused naming the variable (docs/config.md, "Environment overrides").
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "edge.yaml")
            with open(path, "w") as f:
                f.write("proxy:\n  listen: [\"127.0.0.1:8443\"]\n")
            env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
            ok = subprocess.run([EDGED, "check"], env=dict(env, EDGE_CONFIG=path), capture_output=True, timeout=20)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertIn(f"{path}: ok", ok.stdout.decode())
            bad = subprocess.run([EDGED, "check", "--config", path], env=dict(env, EDGE_WORKERS="many"),
                                 capture_output=True, timeout=20)
            self.assertEqual(bad.returncode, 1)
            self.assertIn('EDGE_WORKERS: proxy.workers: expected an integer in 0..256, got "many"', bad.stderr.decode())
            # Without a file the variables apply to the built-in defaults, and are checked the same way.
            run = subprocess.run([EDGED], env=dict(env, EDGE_LISTEN="127.0.0.1:99999"), capture_output=True,
                                 timeout=20, cwd=d)
            self.assertEqual(run.returncode, 1)
            self.assertIn("EDGE_LISTEN: proxy.listen[0]: ", run.stderr.decode())
            self.assertFalse(os.path.exists(os.path.join(d, "edge.db")), "no store was created")


if __name__ == "__main__":
    EDGED = sys.argv.pop(1)
    unittest.main(verbosity=2)

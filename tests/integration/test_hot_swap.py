#!/usr/bin/env python3
"""Hot swap under load, bounded (issue 6): bench/hotswap.py with 20 swaps
(the benchmark does 100) while two client processes run full, verified TLS
handshakes against edged. Every handshake must succeed, and after each swap
the next handshake must get the new certificate.

Usage: test_hot_swap.py --edged PATH --edgectl PATH [--swaps N]"""

import argparse
import json
import os
import subprocess
import sys
import unittest

ARGS = None
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench", "hotswap.py")


class HotSwapUnderLoad(unittest.TestCase):
    def test_swaps_without_failed_handshakes(self):
        result = subprocess.run([sys.executable, SCRIPT, "--edged", ARGS.edged, "--edgectl", ARGS.edgectl,
                                 "--swaps", str(ARGS.swaps), "--clients", "2"],
                                capture_output=True, timeout=240)
        out = result.stdout.decode(errors="replace")
        print("\n" + out + result.stderr.decode(errors="replace")[-3000:], file=sys.stderr)
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        self.assertEqual(len(lines), 1, out)
        summary = json.loads(lines[0][len("RESULT "):])
        self.assertEqual(summary["swaps"], ARGS.swaps)
        self.assertEqual(summary["handshakes_failed"], 0)
        self.assertEqual(summary["swaps_not_seen_by_next_handshake"], 0)
        self.assertGreater(summary["handshakes_ok"], ARGS.swaps)  # the load really ran across the swaps
        self.assertGreater(summary["distinct_serials_seen_by_load"], 1)  # and saw swapped certificates
        self.assertEqual(result.returncode, 0, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    parser.add_argument("--swaps", type=int, default=20)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

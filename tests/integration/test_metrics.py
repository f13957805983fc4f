#!/usr/bin/env python3
"""GET /metrics of a real edged (issue 8, acceptance 2): every family the
issue names is there, the OpenMetrics text is well formed (checked here
line by line), `promtool check metrics` passes on a live scrape, and a real
Prometheus server (Debian's prometheus, started here on loopback) scrapes
edged and answers a query for edge_tls_handshakes_total.

Usage: test_metrics.py --edged PATH --edgectl PATH"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admintest as at  # noqa: E402
import edgetest as et  # noqa: E402

ARGS = None

# Every family the issue lists, as exposed (the samples of a counter end in _total).
EXPECTED_SAMPLES = [
    "edge_connections_total", "edge_connections_active", "edge_requests_total", "edge_errors_total",
    "edge_upstream_timeout_total", "edge_rate_limit_req_rejected_total", "edge_rate_limit_conn_rejected_total",
    "edge_tls_handshakes_total", "edge_tls_handshake_duration_seconds_bucket",
    "edge_tls_handshake_duration_seconds_sum", "edge_tls_handshake_duration_seconds_count",
    "edge_certificate_not_after_seconds", "edge_certificate_generation", "edge_handshake_records_dropped_total",
    "edge_admin_unauthorized_total",
    "edge_node_cpu_seconds_total", "edge_node_memory_total_bytes", "edge_node_memory_free_bytes",
    "edge_node_memory_available_bytes", "edge_node_memory_buffers_bytes", "edge_node_memory_cached_bytes",
    "edge_node_memory_swap_total_bytes", "edge_node_memory_swap_free_bytes", "edge_node_load1", "edge_node_load5",
    "edge_node_load15", "edge_node_filesystem_size_bytes", "edge_node_filesystem_free_bytes",
    "edge_node_filesystem_avail_bytes", "edge_node_disk_read_bytes_total", "edge_node_disk_written_bytes_total",
    "edge_node_network_receive_bytes_total", "edge_node_network_transmit_bytes_total", "edge_node_filefd_allocated",
    "edge_node_filefd_maximum", "edge_process_cpu_seconds_total", "edge_process_resident_memory_bytes",
    "edge_process_open_fds", "edge_process_threads", "edge_node_tcp_connections", "edge_node_boot_time_seconds",
    "edge_node_time_seconds", "edge_node_info",
]
# Families whose samples appear only once something happened (ACME state needs ACME mode).
EXPECTED_FAMILIES = ["edge_acme_orders", "edge_acme_next_attempt_seconds"]

SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$')


def check_openmetrics(text):
    """The OpenMetrics 1.0 rules this exposition relies on; returns {family: type}."""
    lines = text.split("\n")
    assert lines[-1] == "" and lines[-2] == "# EOF", "must end with # EOF and a newline"
    families, current, seen_series = {}, None, set()
    for line in lines[:-2]:
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in families, f"family {name} appears twice"
            assert kind in SUFFIXES, line
            assert not (kind == "counter" and name.endswith("_total")), f"counter family {name} must not end in _total"
            families[name] = kind
            current = name
        elif line.startswith("# UNIT "):
            _, _, name, unit = line.split(" ", 3)
            assert name == current and name.endswith("_" + unit), line
        elif line.startswith("# HELP "):
            assert line.split(" ")[2] == current, line
        else:
            assert not line.startswith("#"), f"unknown comment: {line}"
            m = SAMPLE.match(line)
            assert m, f"not a sample: {line!r}"
            name = m.group(1)
            assert current and any(name == current + s for s in SUFFIXES[families[current]]), \
                f"sample {name} outside its family ({current})"
            assert (name, m.group(2)) not in seen_series, f"duplicate series {line}"
            seen_series.add((name, m.group(2)))
            float(m.group(3).replace("+Inf", "inf"))
    return families


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="edge-metrics-")
        cls.edge = at.AdminEdge(ARGS.edged, cls.tmp.name).__enter__()
        cls.edge.handshake()
        cls.edge.plain_http_failure()
        et.wait_for(lambda: cls.edge.rpc("stats.tls")["total"] >= 2, 10, "two handshakes counted")

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)
        cls.tmp.cleanup()

    def test_openmetrics_scrape_is_well_formed_and_complete(self):
        content_type, text = self.edge.metrics(openmetrics=True)
        self.assertEqual(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8")
        families = check_openmetrics(text)
        names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
        missing = [n for n in EXPECTED_SAMPLES if n not in names]
        self.assertEqual(missing, [])
        for family in EXPECTED_FAMILIES:
            self.assertIn(family, families)
        self.assertIn("# UNIT edge_tls_handshake_duration_seconds seconds", text)
        self.assertEqual(at.metric_value(text, "edge_tls_handshakes_total",
                                         {"outcome": "ok", "cert": "main"}) >= 1, True)
        self.assertGreaterEqual(at.metric_value(text, "edge_tls_handshakes_total",
                                                {"outcome": "failed", "error_type": "not_tls"}), 1)
        self.assertGreaterEqual(at.metric_value(text, "edge_connections_total", {"route_type": "http"}), 1)
        self.assertEqual(at.metric_value(text, "edge_certificate_generation", {"cert": "main"}), 1)
        cert = self.edge.rpc("certs.get", {"name": "main"})
        not_after = at.metric_value(text, "edge_certificate_not_after_seconds", {"cert": "main"})
        self.assertEqual(et.run(["date", "-u", "-d", "@%d" % not_after, "+%Y-%m-%dT%H:%M:%SZ"]).stdout.decode().strip(),
                         cert["not_after"])
        self.assertGreater(at.metric_value(text, "edge_process_open_fds"), 0)
        self.assertEqual(at.metric_value(text, "edge_node_info", {"os": "debian"}), 1)

    def test_promtool_check_metrics_passes_on_a_live_scrape(self):
        content_type, text = self.edge.metrics(openmetrics=False)
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"))
        result = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout.decode() + result.stderr.decode())
        # The same families and samples as the OpenMetrics scrape, only the comments differ.
        _, om = self.edge.metrics(openmetrics=True)
        strip = lambda t: sorted(line.rsplit(" ", 1)[0] for line in t.splitlines()  # noqa: E731
                                 if line and not line.startswith("#"))
        self.assertEqual(strip(text), strip(om))

    def test_prometheus_scrapes_edged_and_answers_a_query(self):
        prometheus = shutil.which("prometheus")
        self.assertIsNotNone(prometheus, "Debian's prometheus package (scripts/setup.sh installs it)")
        d = os.path.join(self.tmp.name, "prometheus")
        os.makedirs(d)
        port = et.free_port()
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: edged
    static_configs:
      - targets: ["127.0.0.1:{self.edge.metrics_port}"]
""")
        log = open(os.path.join(d, "prometheus.log"), "wb")
        process = subprocess.Popen([prometheus, "--config.file=" + os.path.join(d, "prometheus.yml"),
                                    "--storage.tsdb.path=" + os.path.join(d, "data"),
                                    f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            def query(expr):
                url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
                with urllib.request.urlopen(url, timeout=5) as res:
                    body = json.load(res)
                self.assertEqual(body["status"], "success")
                return body["data"]["result"]

            result = et.wait_for(lambda: query('edge_tls_handshakes_total{cert="main",outcome="ok"}'), 60,
                                 "Prometheus to scrape edge_tls_handshakes_total")
            self.assertEqual(result[0]["metric"]["job"], "edged")
            self.assertGreaterEqual(float(result[0]["value"][1]), 1)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as res:
                targets = json.load(res)["data"]["activeTargets"]
            self.assertEqual([t["health"] for t in targets], ["up"], targets)
            self.assertEqual(targets[0]["lastError"], "")
            self.assertTrue(query('edge_node_info{os="debian"}'))
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)

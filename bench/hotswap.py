#!/usr/bin/env python3
"""Hot swap under load (issue 6, benchmark 5): N certificate swaps
(`edgectl import` over the admin socket, the way an operator replaces a
certificate) while client processes run full TLS handshakes against edged
(fresh SSL context per connection, so no resumption), each verified against
the CA, followed by one request. Counts failed handshakes (must be 0) and,
after each swap returns, checks that a new handshake gets the new
certificate (by serial).

    bench/hotswap.py --edged build/bin/edged --edgectl build/bin/edgectl [--swaps 100] [--clients 2]

Prints a summary and a JSON line (prefix "RESULT "); exits 1 when any
handshake failed or a swap was not seen. tests/integration/test_hot_swap.py
runs it with fewer swaps."""

import argparse
import json
import multiprocessing as mp
import os
import ssl
import statistics
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(here), "tests", "integration"))
import admintest as at  # noqa: E402
import edgetest as et  # noqa: E402


def load_client(port, cafile, stop, results):
    """Full handshakes plus one request each until `stop`; reports ok, failures and the serials seen."""
    ok, failures, serials = 0, [], set()
    while not stop.is_set():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # new context: nothing to resume from
        ctx.load_verify_locations(cafile=cafile)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        try:
            tls, _ = et.connect_tls("127.0.0.1", port, ctx, "edge.test", timeout=20)
            with tls:
                serials.add(tls.getpeercert()["serialNumber"])
                tls.sendall(b"GET / HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n")
                response = b""
                while chunk := tls.recv(65536):
                    response += chunk
                if not response.startswith(b"HTTP/1.1 200"):
                    failures.append("response: " + response[:60].decode(errors="replace"))
                    continue
            ok += 1
        except Exception as e:  # every failure counts: handshake, verify, reset
            failures.append(f"{type(e).__name__}: {e}")
    results.put((ok, failures, sorted(serials)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--edged", required=True)
    parser.add_argument("--edgectl", required=True)
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--clients", type=int, default=2, help="load client processes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edge-hotswap-") as d, et.Upstream() as upstream:
        extra = f"""  http:
    routes:
      - path_prefix: /
        upstream: http://127.0.0.1:{upstream.port}/
"""
        edge = at.AdminEdge(args.edged, d)
        # The proxy routes to our upstream (AdminEdge's config has no routes).
        edge.config_text = edge.config_text.replace("    handshake_timeout_secs: 2\n", "    handshake_timeout_secs: 10\n" + extra)
        with open(edge.config, "w") as f:
            f.write(edge.config_text)
        # Each swap imports a certificate of its own (a new serial to look for).
        started = time.monotonic()
        issued = [edge.ca.issue(f"swap{i}", "edge.test", ["DNS:edge.test", "IP:127.0.0.1"], days=30)
                  for i in range(args.swaps)]
        print(f"hotswap: {args.swaps} certificates issued in {time.monotonic() - started:.1f} s", file=sys.stderr)
        token = os.path.join(d, "admin.token")
        with edge:
            stop, results = mp.Event(), mp.Queue()
            clients = [mp.Process(target=load_client, args=(edge.port, edge.ca.cert, stop, results))
                       for _ in range(args.clients)]
            for c in clients:
                c.start()
            swap_ms, not_seen = [], []
            time.sleep(1.0)  # the load is running before the first swap
            load_started = time.monotonic()
            for pem, key in issued:
                t0 = time.monotonic()
                out = et.run([args.edgectl, "--admin", "unix:" + edge.socket, "--token-file", token,
                              "import", "main", "--cert", pem, "--key", key, "--json"], timeout=60).stdout
                swap_ms.append((time.monotonic() - t0) * 1000)
                imported = json.loads(out)["serial"]
                # The next handshake must see it.
                served = edge.handshake("edge.test")
                if served != imported:
                    not_seen.append((imported, served))
            swaps_seconds = time.monotonic() - load_started
            stop.set()
            ok, failures, serials = 0, [], set()
            for _ in clients:
                o, f, s = results.get(timeout=60)
                ok += o
                failures += f
                serials.update(s)
            for c in clients:
                c.join(timeout=30)
            stderr_tail = edge.edged.output().decode(errors="replace")[-1500:]

    result = {
        "swaps": args.swaps,
        "handshakes_ok": ok,
        "handshakes_failed": len(failures),
        "swaps_not_seen_by_next_handshake": len(not_seen),
        "distinct_serials_seen_by_load": len(serials),
        "seconds": round(swaps_seconds, 2),
        "handshakes_per_s": round(ok / swaps_seconds, 1),
        "swap_ms_median": round(statistics.median(swap_ms), 1),
        "swap_ms_max": round(max(swap_ms), 1),
    }
    print(f"hotswap: {args.swaps} swaps in {swaps_seconds:.1f} s under {args.clients} load clients: "
          f"{ok} handshakes ok, {len(failures)} failed; new certificate seen by the next handshake "
          f"{args.swaps - len(not_seen)}/{args.swaps}; load saw {len(serials)} distinct serials; "
          f"edgectl import median {result['swap_ms_median']} ms")
    for f in failures[:10]:
        print("  failed:", f)
    for n in not_seen[:10]:
        print("  not seen: imported %s, served %s" % n)
    if failures or not_seen:
        print(stderr_tail, file=sys.stderr)
    print("RESULT " + json.dumps(result))
    return 1 if failures or not_seen or ok == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes the markdown tables of docs/benchmarks.md from one bench/run.sh run:
the peers.sh results.tsv (round, peer, metric, value), the `peers.sh speed`
output (the in-process handshake floor) and bench/hotswap.py's RESULT line.

    bench/report.py RESULTS_TSV [--speed SPEED_TXT] [--hotswap HOTSWAP_OUT] [--title TEXT]

Cells are median [min-max] over rounds; xN is the median over rounds of
peer / nginx measured in the same round (drift of a noisy machine cancels)."""

import argparse
import collections
import json
import re
import statistics
import sys

ROWS = [  # metric, label, unit
    ("hs_per_s", "full TLS 1.3 handshakes/s (`hs`)", ""),
    ("hs_srv_us_per_hs", "server CPU per full handshake", " µs"),
    ("hs_p99_ms", "full handshake cycle p99 under load", " ms"),
    ("res_per_s", "resumed handshakes/s (`res`)", ""),
    ("res_srv_us_per_hs", "server CPU per resumed handshake", " µs"),
    ("res_resumed_share", "share actually resumed (edged's records)", ""),
    ("ka_rps", "keep-alive proxied requests/s (`ka`)", ""),
    ("ka_p50_ms", "keep-alive p50 latency", " ms"),
    ("ka_p99_ms", "keep-alive p99 latency", " ms"),
    ("ka_srv_us_per_req", "server CPU per proxied request", " µs"),
    ("idle_held", "idle TLS connections held (`idle`)", ""),
    ("idle_kib_per_conn_rss", "RSS per idle TLS connection", " KiB"),
    ("idle_kib_per_conn_pss", "PSS per idle TLS connection", " KiB"),
    ("hs_other_cores", "noise: other processes during `hs` (cores)", ""),
    ("ka_other_cores", "noise: other processes during `ka` (cores)", ""),
]
NO_RATIO = re.compile(r"(held|cores|share)$")
NAMES = {"nginx": "nginx", "haproxy": "HAProxy", "hitch": "hitch", "caddy": "Caddy",
         "edgenolog": "edged, log off", "edge": "edged, log on"}


def load(path):
    values = collections.defaultdict(dict)  # (peer, metric) -> round -> value
    peers = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            rnd, peer, metric, value = parts
            if peer not in peers:
                peers.append(peer)
            try:
                values[(peer, metric)][rnd] = float(value)
            except ValueError:
                pass
    order = [p for p in ("nginx", "haproxy", "hitch", "caddy", "edgenolog", "edge") if p in peers]
    return values, order + [p for p in peers if p not in order]


def fmt(v):
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def cell(values, peer, metric, unit):
    rounds = values.get((peer, metric), {})
    if not rounds:
        return "-"
    v = sorted(rounds.values())
    text = f"{fmt(statistics.median(v))}{unit}"
    if len(v) > 1:
        text += f" [{fmt(v[0])}-{fmt(v[-1])}]"
    base = values.get(("nginx", metric), {})
    ratios = [rounds[r] / base[r] for r in rounds if r in base and base[r]]
    if peer != "nginx" and ratios and not NO_RATIO.search(metric):
        text += f" x{statistics.median(ratios):.2f}"
    return text


def floor_us(speed_path):
    """Server µs per full handshake of the in-process floor (ECDSA leaf, default tickets) and the crypto bound."""
    floor, bound = None, None
    with open(speed_path) as f:
        for line in f:
            m = re.search(r"ec leaf, tickets=default: server (\d+) us", line)
            if m:
                floor = float(m.group(1))
            m = re.search(r"= ([\d.]+) us\s+=> <= \d+ handshakes/s/core", line)
            if m and bound is None:
                bound = float(m.group(1))
    return floor, bound


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("tsv")
    parser.add_argument("--speed")
    parser.add_argument("--hotswap")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    values, peers = load(args.tsv)
    rounds = sorted({r for d in values.values() for r in d})
    out = []
    if args.title:
        out += [args.title, ""]
    out.append(f"| metric (median [min-max] of {len(rounds)} round(s), xN vs nginx) | "
               + " | ".join(NAMES.get(p, p) for p in peers) + " |")
    out.append("|---" * (len(peers) + 1) + "|")
    for metric, label, unit in ROWS:
        if not any((p, metric) in values for p in peers):
            continue
        out.append(f"| {label} | " + " | ".join(cell(values, p, metric, unit) for p in peers) + " |")
    if args.speed:
        floor, bound = floor_us(args.speed)
        if floor:
            out += ["", f"Physical limit (`peers.sh speed`, same machine): in-process OpenSSL floor {floor:.0f} µs "
                        f"of server CPU per full handshake (ECDSA P-256, 2 tickets)"
                        + (f"; crypto-only bound {bound:.0f} µs" if bound else "") + ".", "",
                    "| server CPU per full handshake | µs (median) | multiple of the floor |", "|---|---|---|"]
            for p in peers:
                rounds_v = values.get((p, "hs_srv_us_per_hs"), {})
                if rounds_v:
                    m = statistics.median(rounds_v.values())
                    out.append(f"| {NAMES.get(p, p)} | {m:.0f} | x{m / floor:.2f} |")
    if args.hotswap:
        with open(args.hotswap) as f:
            lines = [line for line in f if line.startswith("RESULT ")]
        if lines:
            r = json.loads(lines[-1][len("RESULT "):])
            out += ["", "| hot swap under load | value |", "|---|---|",
                    f"| certificate swaps (`edgectl import`) | {r['swaps']} |",
                    f"| full handshakes during the swaps | {r['handshakes_ok']} ({r['handshakes_per_s']}/s) |",
                    f"| failed handshakes | **{r['handshakes_failed']}** |",
                    f"| swaps not seen by the next handshake | {r['swaps_not_seen_by_next_handshake']} |",
                    f"| `edgectl import` round trip, median / max | {r['swap_ms_median']} / {r['swap_ms_max']} ms |"]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

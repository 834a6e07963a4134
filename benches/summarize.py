#!/usr/bin/env python3
"""Medians (min-max) of the bench's JSON lines, one row per scenario, size and protocol.

    python3 benches/summarize.py target/bench-suite-*.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

# (scenario, the params that define its size, the figures to report: label -> path)
REPORT = {
    "cold_pull": (["events"], {"events/s": "results.events_per_s", "MB/s": "results.mb_per_s",
                               "vs COPY": "ratio.events_per_s_vs_pg_copy"}),
    "push": (["clients", "batches", "batch_size"], {"events/s": "results.events_per_s",
                                                    "ack p50 ms": "results.ack_latency.p50_ms",
                                                    "ack p99 ms": "results.ack_latency.p99_ms",
                                                    "vs PG insert": "ratio.events_per_s_vs_pg_insert"}),
    "fan_out": (["subscribers", "pushes"], {"p50 ms": "results.delivery_latency.p50_ms",
                                            "p99 ms": "results.delivery_latency.p99_ms",
                                            "max ms": "results.delivery_latency.max_ms",
                                            "deliveries/s": "results.deliveries_per_s"}),
    "race": (["clients", "rounds"], {"round p50 ms": "results.round_latency.p50_ms",
                                     "round max ms": "results.round_latency.max_ms"}),
    "reconnect_storm": (["clients", "events"], {"all synced ms": "results.all_synced_ms",
                                                "client p99 ms": "results.client_sync.p99_ms"}),
    "idle": (["connections"], {"KiB/conn": "results.server_rss_per_conn_kib",
                               "idle CPU %": "results.server_idle_cpu_pct_of_one_core",
                               "first 1000 open ms": "results.open_first_1000.ms",
                               "ping p99 ms": "results.ping_rtt.p99_ms"}),
}


def get(d, path):
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d if isinstance(d, (int, float)) else None


def fmt(xs):
    if not xs:
        return "—"
    med = statistics.median(xs)
    f = (lambda v: f"{v:,.0f}") if med >= 100 else (lambda v: f"{v:.2f}")
    return f"{f(med)} ({f(min(xs))}–{f(max(xs))})" if len(xs) > 1 else f(med)


def main(paths):
    groups = defaultdict(list)
    for path in paths:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                keys, _ = REPORT.get(d.get("scenario"), ([], {}))
                size = ", ".join(f"{k} {d['params'].get(k)}" for k in keys)
                groups[(d["scenario"], size, d.get("protocol"))].append(d)
    for scenario, (keys, figures) in REPORT.items():
        rows = [(k, v) for k, v in groups.items() if k[0] == scenario]
        if not rows:
            continue
        print(f"\n### {scenario}\n")
        print("| size | protocol | runs | ok | " + " | ".join(figures) + " |")
        print("|---" * (4 + len(figures)) + "|")
        for (_, size, proto), runs in sorted(rows):
            ok = sum(1 for r in runs if r.get("ok"))
            cells = [fmt([x for x in (get(r, p) for r in runs) if x is not None]) for p in figures.values()]
            print(f"| {size} | {proto} | {len(runs)} | {ok}/{len(runs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])

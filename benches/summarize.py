#!/usr/bin/env python3
"""Medians (min-max) of the bench's JSON lines, one row per scenario, size and
protocol, then the floors measured in the same runs. Lines of all the files
given are pooled: give one file for one table.

    python3 benches/summarize.py benches/results/2026-11-25-session2-suite.jsonl
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
    "fan_out": (["subscribers", "pushes", "cross_instance"], {"p50 ms": "results.delivery_latency.p50_ms",
                                            "p99 ms": "results.delivery_latency.p99_ms",
                                            "max ms": "results.delivery_latency.max_ms",
                                            "deliveries/s": "results.deliveries_per_s",
                                            "floor p50 ms": "floor.shape_fan_out.delivery_latency.p50_ms",
                                            "floor p99 ms": "floor.shape_fan_out.delivery_latency.p99_ms",
                                            "floor max ms": "floor.shape_fan_out.delivery_latency.max_ms"}),
    "race": (["clients", "rounds"], {"round p50 ms": "results.round_latency.p50_ms",
                                     "round max ms": "results.round_latency.max_ms"}),
    "reconnect_storm": (["clients", "events"], {"all synced ms": "results.all_synced_ms",
                                                "synced": "results.synced",
                                                "client p99 ms": "results.client_sync.p99_ms"}),
    "idle": (["connections", "spread_addrs"], {"KiB/conn": "results.server_rss_per_conn_kib",
                               "idle CPU %": "results.server_idle_cpu_pct_of_one_core",
                               "first 10000 open ms": "results.open_first_10000.ms",
                               "all open ms": "results.open_all_ms",
                               "failed": "results.open_failed",
                               "ping p99 ms": "results.ping_rtt.p99_ms",
                               "threads": "results.server_threads_open",
                               "maps/conn": "results.server_maps_per_conn",
                               "floor KiB/conn": "floor.shape_idle.rss_per_conn_kib",
                               "floor CPU %": "floor.shape_idle.idle_cpu_pct_of_one_core"}),
    "connect": (["connections", "spread_addrs"], {"first 10000 open ms": "results.open_first_10000.ms",
                                  "all open ms": "results.open_all_ms",
                                  "failed": "results.open_failed",
                                  "one open p99 ms": "results.open_one_latency.p99_ms"}),
    "idle_instances": (["connections", "instances"], {
        "KiB/conn": "results.server_rss_per_conn_kib",
        "idle CPU %": "results.server_idle_cpu_pct_of_one_core",
        "all open ms": "results.open_all_ms",
        "failed": "results.open_failed",
        "ping p99 ms": "results.ping_rtt_p99_ms",
        "threads": "results.server_threads_open"}),
    "hot_store": (["subscribers", "pushers", "events_per_pusher"], {
        "deliveries/s": "results.deliveries_per_s",
        "accepted/s": "results.accepted_per_s",
        "p50 ms": "results.delivery_latency.p50_ms",
        "p99 ms": "results.delivery_latency.p99_ms",
        "max ms": "results.delivery_latency.max_ms",
        "refusals": "results.refusals"}),
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


# Floors measured next to the scenarios: label -> (path, which runs count).
FLOORS = {
    "PostgreSQL insert, events/s": ("floor.pg_insert.events_per_s", None),
    "PostgreSQL insert, commit p50 ms": ("floor.pg_insert.batch_commit.p50_ms", None),
    "COPY of 10,000 rows, ms": ("floor.pg_copy.ms", 10000),
    "COPY of 100,000 rows, rows/s": ("floor.pg_copy.events_per_s", 100000),
    "loopback WebSocket round trip p50 ms": ("floor.ws_loopback.round_trip.p50_ms", None),
}


def floors(lines):
    print("\n### floors\n")
    print("| floor | runs | median (min–max) |\n|---|---|---|")
    for label, (path, rows) in FLOORS.items():
        xs = [get(d, path) for d in lines if rows is None or get(d, "floor.pg_copy.rows") == rows]
        xs = [x for x in xs if x is not None]
        if xs:
            print(f"| {label} | {len(xs)} | {fmt(xs)} |")


def loads(lines):
    xs = [(d.get("machine") or {}).get("loadavg_1m_start") for d in lines]
    xs = [x for x in xs if isinstance(x, (int, float))]
    if xs:
        print(f"\nload average (1 min) at the start of the runs: {fmt(xs)}")


def main(paths):
    groups = defaultdict(list)
    lines = []
    for path in paths:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                lines.append(d)
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
    floors(lines)
    loads(lines)


def combine_instances(paths):
    """One line of the idle runs of several servers at once (benches/capacity.sh
    idle-instances): the servers' RSS growth and CPU summed over all their
    connections; ok only if every part is."""
    parts = []
    for path in paths:
        for line in open(path):
            if line.strip().startswith("{"):
                parts.append(json.loads(line))
    if len(parts) != len(paths):
        print(f"expected {len(paths)} idle lines, got {len(parts)}", file=sys.stderr)
        sys.exit(1)
    r = lambda d, k: d["results"].get(k, 0) or 0
    opened = sum(r(d, "opened") for d in parts)
    grown = sum(r(d, "server_rss_open_kib") - r(d, "server_rss_before_kib") for d in parts)
    out = {
        "scenario": "idle_instances",
        "protocol": parts[0].get("protocol"),
        "ok": all(d.get("ok") for d in parts),
        "failures": [f for d in parts for f in d.get("failures", [])],
        "params": {"connections": sum(d["params"]["connections"] for d in parts),
                   "instances": len(parts)},
        "machine": parts[0].get("machine"),
        "results": {
            "opened": opened,
            "open_failed": sum(r(d, "open_failed") for d in parts),
            "server_rss_per_conn_kib": round(grown / opened, 3) if opened else None,
            "server_idle_cpu_pct_of_one_core": round(sum(r(d, "server_idle_cpu_pct_of_one_core") for d in parts), 3),
            "open_all_ms": max(r(d, "open_all_ms") for d in parts),
            "ping_rtt_p99_ms": max(d["results"].get("ping_rtt", {}).get("p99_ms", 0) for d in parts),
            "server_threads_open": sum(r(d, "server_threads_open") for d in parts),
        },
        "parts": parts,
    }
    print(json.dumps(out, sort_keys=True))
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--combine-instances"]:
        combine_instances(sys.argv[2:])
    else:
        main(sys.argv[1:])

#!/usr/bin/env python3
"""What the peer run's workload costs a month at list prices: hookrelay (its cost per million
events from bench/summarize.py's model, read from bench/results/summary.json) against
svix-server on the cheapest EC2 instance whose sustained CPU holds the rate, with RDS
PostgreSQL and ElastiCache Redis sized the same way. Prices: bench/prices.json's "ec2_peer".

Sizing: CPU per event as measured in bench/results/peer.json (fan-out 1, no failures, the
highest rate run) times the rate, over the target utilisation, must fit the instance's
sustained CPU (a burstable instance's baseline, all vCPUs of a fixed one); memory twice the
measured peak must fit its RAM. One vCPU of this machine is taken as one vCPU there.
Writes bench/results/peer-cost.md and .json.
"""

import json
import math
import os
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.environ.get("HOOKRELAY_BENCH_OUT", os.path.join(ROOT, "bench", "results"))
RATES = (1, 10, 100)
HOURS = 730  # AWS's month
MIB = 1024 * 1024


def load(path):
    with open(path) as f:
        return json.load(f)


def cheapest(options, cpu_need, mem_gib):
    """The cheapest option whose sustained vCPU and RAM hold the need, or None."""
    fits = [
        o for o in options
        if o["vcpu"] * o["sustained_share"] >= cpu_need and o["memory_gib"] >= mem_gib
    ]
    return min(fits, key=lambda o: o["per_hour"]) if fits else None


def peer_measurements(peer):
    runs = [r for r in peer["runs"] if r["system"] == "svix-server"
            and r["fanout"] == 1 and r["failure_pct"] == 0]
    hr = [r for r in peer["runs"] if r["system"] == "hookrelay"
          and r["fanout"] == 1 and r["failure_pct"] == 0]
    if not runs:
        sys.exit("bench/results/peer.json has no svix-server run at fan-out 1 without failures")
    run = max(runs, key=lambda r: r["rate"])
    return run, (max(hr, key=lambda r: r["rate"]) if hr else None)


def hookrelay_per_million(summary):
    """hookrelay's dollars per million single-endpoint events in full delivery batches and in
    batches of one (None for a summary from before that scenario), its detail, and whether
    storage is in the model."""
    def scenario(batch):
        return next((s for s in summary["scenarios"] if s["fanout"] == 1
                     and s["failure_ratio"] == 0 and s.get("batch_size", 10) == batch), None)
    full, one = scenario(10), scenario(1)
    has_storage = any(k.startswith("dynamodb_storage") for k in full["cost_per_million"])
    return (full["total_per_million"], one["total_per_million"] if one else None,
            full.get("detail", {}), has_storage)


def main():
    prices = load(os.path.join(ROOT, "bench", "prices.json"))["ec2_peer"]
    peer = load(os.path.join(OUT, "peer.json"))
    summary = load(os.path.join(OUT, "summary.json"))
    svix, hr_run = peer_measurements(peer)
    hr_full, hr_one, detail, storage_in_model = hookrelay_per_million(summary)
    # A delivery batch holds what waited while the last one was taken. With the default
    # DeliveryBatchWindowSeconds=0 the mapping takes a task as it arrives, so below some
    # rate no AWS run here can place, batches hold one task: the month is priced at that
    # (the upper bound) and, beside it, at full batches (what a burst, a high rate or a
    # window of 10/rate seconds gives).
    hr_per_million = hr_one if hr_one is not None else hr_full
    a = prices["assumptions"]
    util, retention = a["target_utilisation"], a["retention_days"]

    cpu = svix["cpu_ms_per_event"]["by_part"]
    peak = svix["peak_mib"]["by_part"]
    stored = svix.get("stored_bytes_per_event") or 0
    # hookrelay's items as DynamoDB bills them: each item's bytes plus its 100-byte overhead.
    hr_item_bytes = (detail.get("event_item_bytes", 0) + detail.get("attempt_item_bytes", 0) + 200)

    def month(rate):
        """Both sides' month at `rate` events/s; None when no listed instance holds it."""
        millions = rate * 3600 * HOURS / 1e6
        need = lambda part: rate * cpu.get(part, 0.0) / 1000 / util
        ec2 = cheapest(prices["ec2"], need("svix-server"), 2 * peak.get("svix-server", 0) / 1024)
        rds = cheapest(prices["rds_postgresql"], need("postgresql"), a["rds_min_memory_gib"])
        cache = cheapest(prices["elasticache_redis"], need("redis"), 2 * peak.get("redis", 0) / 1024)
        if not (ec2 and rds and cache):
            return None
        held_gb = rate * 86400 * retention * stored / 1e9
        rds_gb = max(a["rds_min_storage_gb"], math.ceil(held_gb))
        svix_month = {
            "ec2": ec2["per_hour"] * HOURS,
            "ebs_root": a["ebs_root_gb"] * prices["ebs_gp3_per_gb_month"],
            "rds_instance": rds["per_hour"] * HOURS,
            "rds_storage": rds_gb * prices["rds_gp3_per_gb_month"],
            "elasticache": cache["per_hour"] * HOURS,
        }
        hr_storage = 0.0 if storage_in_model else (
            rate * 86400 * retention * hr_item_bytes / 1e9 * prices["dynamodb_storage_per_gb_month"])
        hr_month = hr_per_million * millions + hr_storage + prices["hookrelay_fixed_per_month"]
        hr_month_full = hr_full * millions + hr_storage + prices["hookrelay_fixed_per_month"]
        svix_total = sum(svix_month.values())
        return {
            "rate": rate,
            "events_per_month": rate * 3600 * HOURS,
            "svix": {"instances": [ec2["name"], rds["name"], cache["name"]],
                     "rds_storage_gb": rds_gb,
                     "per_month": {k: round(v, 2) for k, v in svix_month.items()},
                     "total_per_month": round(svix_total, 2),
                     "per_million": round(svix_total / millions, 2)},
            "hookrelay": {"per_month": round(hr_month, 2), "storage_per_month": round(hr_storage, 2),
                          "per_million": round(hr_month / millions, 2),
                          "full_batches_per_month": round(hr_month_full, 2),
                          "full_batches_per_million": round(hr_month_full / millions, 2)},
        }

    rows = [month(rate) for rate in RATES]
    if None in rows:
        sys.exit("no listed instance holds 100 events/s; add larger ones to prices.json")
    # Break-even: the lowest rate (0.01 steps) from which svix-server's month costs less.
    def break_even(key):
        for i in range(1, 100001):
            m = month(i / 100)
            if m and m["hookrelay"][key] >= m["svix"]["total_per_month"]:
                return i / 100
        return None

    report = {
        "prices_as_of": prices["as_of"],
        "peer_commit": peer.get("commit"),
        "svix_measured": {"rate": svix["rate"], "cpu_ms_per_event": cpu,
                          "peak_mib": peak, "stored_bytes_per_event": stored},
        "hookrelay_per_million_from_summary": hr_per_million,
        "hookrelay_per_million_full_batches": hr_full,
        "hookrelay_batches_of_one_measured": hr_one is not None,
        "hookrelay_storage_in_summary": storage_in_model,
        "assumptions": a,
        "rows": rows,
        "break_even_events_per_second": break_even("per_month"),
        "break_even_events_per_second_full_batches": break_even("full_batches_per_month"),
    }
    with open(os.path.join(OUT, "peer-cost.json"), "w") as f:
        json.dump(report, f, indent=2)
    md = markdown(report, hr_run)
    with open(os.path.join(OUT, "peer-cost.md"), "w") as f:
        f.write(md)
    print(md)


def markdown(r, hr_run):
    a = r["assumptions"]
    m = r["svix_measured"]
    lines = [
        "# Cost beside svix-server on EC2",
        "",
        f"List prices ({r['prices_as_of']}, us-east-1, on-demand, `bench/prices.json` \"ec2_peer\"); "
        f"svix-server sized from `peer.json` (commit `{r['peer_commit']}`, fan-out 1, no failures, "
        f"{m['rate']} events/s): {m['cpu_ms_per_event'].get('svix-server', 0)} ms of CPU per event in "
        f"svix-server, {m['cpu_ms_per_event'].get('postgresql', 0)} in PostgreSQL, "
        f"{m['cpu_ms_per_event'].get('redis', 0)} in Redis; {m['stored_bytes_per_event']:.0f} bytes "
        "of database per event. Each part gets the cheapest listed instance whose sustained CPU "
        f"(a burstable one's baseline) holds the rate at {a['target_utilisation']:.0%} "
        "utilisation and whose RAM holds twice the measured peak; one vCPU here is taken as one "
        f"Graviton vCPU. Both sides keep {a['retention_days']} days of events.",
        "",
        f"hookrelay: **${r['hookrelay_per_million_from_summary']:.2f} per million** from "
        "`bench/results/summary.json` (default deployment, fan-out 1, first-time success, "
        + ("each delivery batch holding one task: what a low rate gives with the default "
           "`DeliveryBatchWindowSeconds=0`, and the upper bound at any rate"
           if r["hookrelay_batches_of_one_measured"] else "full delivery batches")
        + f"); ${r['hookrelay_per_million_full_batches']:.2f} in full batches of ten (a burst, a "
        "high rate, or a batching window of 10/rate seconds). How full AWS's batches are at a "
        "given rate without a window depends on its pollers and was not measured here. Plus its "
        "alarms' fixed cost and"
        + (" DynamoDB storage for the retention period" if not r["hookrelay_storage_in_summary"]
           else " nothing else (storage is in the model)")
        + "; a month without events costs only the alarms. It is not sized from the peer run: "
        "there its store and queue are an emulator, on AWS they are billed per request.",
        "",
        "| events/s | events a month | svix-server: EC2 + RDS + ElastiCache | svix-server a month | svix-server per million | hookrelay a month | hookrelay per million | in full batches |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        s, h = row["svix"], row["hookrelay"]
        lines.append(
            f"| {row['rate']} | {row['events_per_month'] / 1e6:.1f} M | {' + '.join(s['instances'])}, "
            f"{s['rds_storage_gb']} GB | ${s['total_per_month']:.2f} | ${s['per_million']:.2f} | "
            f"${h['per_month']:.2f} | ${h['per_million']:.2f} | ${h['full_batches_per_million']:.2f} |")
    be = r["break_even_events_per_second"]
    be_full = r["break_even_events_per_second_full_batches"]
    lines += [
        "",
        (f"Break-even: from about **{be} events/s** sustained ({be * 3600 * HOURS / 1e6:.1f} M a "
         "month) svix-server on EC2 costs less a month than hookrelay at list prices"
         + (f"; {be_full} events/s with full batches." if be_full else ".")
         if be else "No break-even below 1 000 events/s."),
        "",
        "Not in either side: data transfer out (the same for both), a load balancer or TLS "
        f"terminator in front of svix-server (an ALB adds about ${a['alb_per_month_note']:.0f} a "
        "month), Multi-AZ (doubles RDS), backups beyond RDS's free allowance, and the people "
        "who patch and watch an instance and a database. svix-server's CPU was measured on x86 "
        "here; Graviton differs.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

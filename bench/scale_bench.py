"""Throughput of distributed renders with 1, 2 and 3 stand-in machines (docs/scaling.md).

Starts scripts/scale.py's cluster (PostgreSQL, Prefect server, SeaweedFS, a Luma emulator
with latency) with one ``reelflow worker``, renders an N-shot list with ``--distribute``
on a fresh store prefix (everything paid), adds a machine, renders again on another
prefix, and so on. Per run it prints the render's wall time, the generation phase (first
create to last generation done, from the emulator's account), shots per minute, creates
(must equal N) and the generations limit's busy slots (sampled from the server).

Usage::

    python bench/scale_bench.py [--shots 40] [--latency 6] [--machines 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.scale.cluster import (CREATES_PER_MINUTE, SlotSampler, api, finish,  # noqa: E402
                                 load_scale, render)
from tests.scale.test_scale import write_list  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=40)
    parser.add_argument("--latency", type=float, default=6.0)
    parser.add_argument("--machines", type=int, default=3)
    args = parser.parse_args()
    import tests.scale.test_scale as scenario

    scenario.SHOTS = args.shots
    from reelflow.emulator.account import Account

    scale = load_scale()
    folder = Path(tempfile.mkdtemp(prefix="reelflow-scale-bench-"))
    try:
        cluster = scale.up(folder, workers=1, latency=args.latency, limit=5, process_workers=False)
        for name, limit, decay in (("reelflow-luma-generations", 10, 0.0),
                                   ("reelflow-luma-creates", CREATES_PER_MINUTE,
                                    CREATES_PER_MINUTE / 60)):
            api(cluster, "/v2/concurrency_limits/", {"name": name, "limit": limit,
                                                     "slot_decay_per_second": decay})
        account = Account(cluster.dir / "account")
        print(f"{args.shots} shots, ray-flash-2 540p 5 s, emulator latency {args.latency:g} s, "
              f"limit 10, {CREATES_PER_MINUTE} creates/min, 5 shots per worker")
        print("| machines | wall s | generation s | shots/min | creates | busy slots mean (max) |")
        print("|---|---|---|---|---|---|")
        for machines in range(1, args.machines + 1):
            if machines > 1:
                scale.start_machine(cluster, machines, process_worker=False)
                time.sleep(5)
            base = account.created_count()
            started = time.monotonic()
            with SlotSampler(cluster) as sampler:
                report = finish(render(cluster, write_list(folder / f"run{machines}"),
                                       folder / f"client{machines}",
                                       store=f"s3://reelflow/bench{machines}", distribute=True))
            wall = time.monotonic() - started
            records = [r for r in account.records() if r["seq"] > base]
            first = min(r["created_ts"] for r in records)
            last = max(r["created_ts"] + r["revisions"][0]["latency"] for r in records)
            busy = [n for t, n in sampler.samples if first <= t <= last] or [0]
            print(f"| {machines} | {wall:.1f} | {last - first:.1f} | {args.shots / wall * 60:.1f} | "
                  f"{len(records)} (paid {report['generated']}) | {statistics.mean(busy):.1f} "
                  f"({max(busy)}) |", flush=True)
    finally:
        if (folder / "pids.json").exists():
            scale.down(folder)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The path to 1,000 sequences a day, simulated: the emulator's dream time scaled down.

Starts scripts/scale.py's cluster (PostgreSQL, a Prefect server on it, SeaweedFS, a Luma
emulator whose latency is a real generation's divided by ``--scale``) and, per step, a
number of ``reelflow worker`` task workers and a generations limit (the account's
slots). Each step delays a burst of distinct shots (``generate_remote``, the task a
distributed render delays per shot: the real ledger, store, limits and SDK) from this
process, which stands in for many render flows, and measures while they run:

- throughput: shots done per second, against the ideal ``slots / latency``;
- Luma: the generations limit's busy slots (sampled from the server);
- the Prefect server: latency of a task-run read (p50/p95), sampled every 0.5 s;
- the S3 store: latency of a small PUT + GET (p50/p95), sampled every 0.5 s;
- CPU seconds per component (server, Postgres, SeaweedFS, workers, emulator), from /proc.

Reading it: only Luma's dream time is scaled; the server, the store, the workers and the
submitting "flows" run at real speed. So the shots per second a step sustains is what the
rest of the system can carry per real second (its column of sequences a day), to set
against what Luma's slots allow at the real latency (slots / latency). The step whose
rest-of-system figure is below Luma's is bound by the rest, and the CPU and latency
columns say which part. The flow side (conform, assemble: ffmpeg on the render's
machine) is not run here; its cost per shot is bench/scale_bench.py's.
Usage (opt-in, a few minutes)::

    python bench/sim_day.py [--scale 60] [--latency 120] [--shots 40] [--flows 10]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.scale.cluster import api, load_scale  # noqa: E402

#: (name, account slots, task workers, shots per worker): each step adds what the last lacked.
STEPS = [("one account", 10, 2, 5), ("three accounts' slots", 30, 2, 5),
         ("three accounts, 3 workers x 10", 30, 3, 10)]
SHOTS_PER_SEQUENCE = 20


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _tree_cpu(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each named process and all its descendants."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    totals = {}
    for name, root in roots.items():
        members, frontier = {root}, [root]
        while frontier:
            kids = [p for p, pp in parent.items() if pp in frontier and p not in members]
            members.update(kids)
            frontier = kids
        totals[name] = sum(_cpu_s(p) for p in members)
    return totals


def _roots(cluster) -> dict[str, int]:
    roots = {"server": cluster.pids["server"], "weed": cluster.pids["weed"],
             "emulator": cluster.pids["emulator"]}
    pid_file = Path(cluster.pg_data) / "postmaster.pid"
    if pid_file.exists():
        roots["postgres"] = int(pid_file.read_text().split()[0])
    for name, pid in cluster.pids.items():
        if name.startswith("shots"):
            roots[name] = pid
    return roots


class Probe(threading.Thread):
    """Every 0.5 s: busy slots, a task-run read's latency, a small S3 PUT + GET's latency."""

    def __init__(self, cluster, store):
        super().__init__(daemon=True)
        self.cluster, self.store, self.stop = cluster, store, threading.Event()
        self.slots, self.server_s, self.s3_s = [], [], []

    def run(self):
        client, key = self.store._client(), f"{self.store.bucket_folder}/probe"
        while not self.stop.wait(0.5):
            try:
                self.slots.append(api(self.cluster, "/v2/concurrency_limits/reelflow-luma-generations")
                                  ["active_slots"])
                began = time.perf_counter()
                api(self.cluster, "/task_runs/filter", {"limit": 5})
                self.server_s.append(time.perf_counter() - began)
                began = time.perf_counter()
                client.put_object(Bucket=self.store.bucket_name, Key=key, Body=b"x" * 200)
                client.get_object(Bucket=self.store.bucket_name, Key=key)["Body"].read()
                self.s3_s.append(time.perf_counter() - began)
            except Exception:  # noqa: BLE001 - a missed sample
                continue


def _pct(values: list[float], q: float) -> float:
    values = sorted(values) or [0.0]
    return values[min(len(values) - 1, int(q * len(values)))]


def _set_slots(cluster, slots: int, creates_per_minute: int) -> None:
    """The account's limits on the server: created, or changed in place (PATCH)."""
    for name, limit, decay in (("reelflow-luma-generations", slots, 0.0),
                               ("reelflow-luma-creates", creates_per_minute, creates_per_minute / 60)):
        body = {"limit": limit, "slot_decay_per_second": decay}
        try:
            request = urllib.request.Request(
                cluster.env["PREFECT_API_URL"] + f"/v2/concurrency_limits/{name}",
                data=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
                method="PATCH")
            urllib.request.urlopen(request, timeout=30).read()
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
            api(cluster, "/v2/concurrency_limits/", {"name": name, **body})


def _run_step(cluster, store_url: str, shots: int, tag: str, flows: int) -> tuple[float, list[str]]:
    """Delay ``shots`` distinct shots from ``flows`` threads (as many renders submitting at
    once), wait for all; wall seconds and notes (the delay call's own latency)."""
    from concurrent.futures import ThreadPoolExecutor

    from reelflow.flows.distribute import generate_remote
    from reelflow.tasks.models import GenerationRequest

    delays = []

    def delay(i: int) -> str:
        request = GenerationRequest(model="ray-flash-2", prompt=f"{tag} shot {i}: a paper boat",
                                    resolution="540p", duration="5s")
        began = time.perf_counter()
        future = generate_remote.delay(request, shot_id=f"s{i}", on_moderation="fail",
                                       store_url=store_url)
        delays.append(time.perf_counter() - began)
        return str(future.task_run_id)

    began = time.monotonic()
    with ThreadPoolExecutor(flows) as pool:
        ids = list(pool.map(delay, range(shots)))
    submit_s = time.monotonic() - began
    left = set(ids)
    while left:
        time.sleep(0.5)
        runs = api(cluster, "/task_runs/filter", {"task_runs": {"id": {"any_": sorted(left)}},
                                                   "limit": len(left) + 1})
        for run in runs:
            if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                left.discard(run["id"])
                if run["state_type"] != "COMPLETED":
                    print(f"  shot run {run['id']} {run['state_type']}: {run['state']['message']}")
    return time.monotonic() - began, [
        f"all {shots} delayed after {submit_s:.1f}s from {flows} threads; one delay() "
        f"p50/p95 {_pct(delays, .5):.2f}/{_pct(delays, .95):.2f}s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=60.0, help="real seconds per simulated second")
    parser.add_argument("--latency", type=float, default=120.0,
                        help="a real generation's seconds, create to done (default 120)")
    parser.add_argument("--shots", type=int, default=40, help="shots per step (default 40)")
    parser.add_argument("--flows", type=int, default=10,
                        help="threads delaying shots at once, standing in for renders (default 10)")
    args = parser.parse_args()
    scale = load_scale()
    folder = Path(tempfile.mkdtemp(prefix="reelflow-sim-day-"))
    latency = args.latency / args.scale
    creates = int(20 * args.scale)  # Luma's 20 creates a minute, on the simulated clock
    try:
        cluster = scale.up(folder, workers=0, latency=latency, limit=5, process_workers=False)
        os.environ.update(cluster.env)
        from reelflow.tasks.store import ClipStore

        running = 0
        print(f"latency {args.latency:g} s real = {latency:.2f} s simulated (x{args.scale:g}); "
              f"{args.shots} ray-flash-2 540p shots per step; creates limit {creates}/min simulated")
        print("| step | slots | workers | wall s | shots/s | ideal | busy slots p50 (max) | "
              "server read p50/p95 ms | S3 put+get p50/p95 ms | CPU s: server, postgres, weed, "
              "workers, emulator, submitter | sequences/day the rest sustains | sequences/day "
              "Luma's slots allow |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, slots, workers, per_worker in STEPS:
            for index in range(running + 1, workers + 1):
                scale.start_machine(cluster, index, limit=per_worker, process_worker=False)
            for index in range(1, min(running, workers) + 1):  # restart with this step's limit
                scale.stop(cluster.pids[f"shots{index}"])
                scale.start_machine(cluster, index, limit=per_worker, process_worker=False)
            running = workers
            _set_slots(cluster, slots, creates)
            time.sleep(8)  # the workers subscribe
            tag = secrets.token_hex(3)
            store_url = f"s3://{scale.BUCKET}/sim-{tag}"
            store = ClipStore.from_url(store_url, root=folder / "probe-clips")
            before = _tree_cpu(_roots(cluster))
            probe = Probe(cluster, store)
            probe.start()
            client_cpu = time.process_time()
            wall, notes = _run_step(cluster, store_url, args.shots, tag, args.flows)
            client_cpu = time.process_time() - client_cpu
            probe.stop.set()
            probe.join(timeout=10)
            after = _tree_cpu(_roots(cluster))
            cpu = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            workers_cpu = sum(v for k, v in cpu.items() if k.startswith("shots"))
            rate = args.shots / wall
            # the server, store and workers run at real speed: what they sustained here is
            # their capacity; Luma's (slots / real latency) is the other bound
            per_day = rate * 86400 / SHOTS_PER_SEQUENCE
            luma_day = slots / args.latency * 86400 / SHOTS_PER_SEQUENCE
            busy = probe.slots or [0]
            print(f"| {name} | {slots} | {workers}x{per_worker} | {wall:.1f} | {rate:.2f} | "
                  f"{slots / latency:.2f} | {statistics.median(busy):g} ({max(busy)}) | "
                  f"{_pct(probe.server_s, .5) * 1000:.0f}/{_pct(probe.server_s, .95) * 1000:.0f} | "
                  f"{_pct(probe.s3_s, .5) * 1000:.0f}/{_pct(probe.s3_s, .95) * 1000:.0f} | "
                  f"{cpu.get('server', 0):.0f}, {cpu.get('postgres', 0):.0f}, {cpu.get('weed', 0):.0f}, "
                  f"{workers_cpu:.0f}, {cpu.get('emulator', 0):.0f}, {client_cpu:.0f} | "
                  f"{per_day:.0f} | {luma_day:.0f} |", flush=True)
            print(f"  ({'; '.join(notes)}; load average {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        if (folder / "pids.json").exists():
            scale.down(folder)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A 40-shot list rendered across 3 stand-in machines, then again with one killed (kill -9).

Opt-in (``pytest -m scale``): PostgreSQL, a Prefect server on it, SeaweedFS, a Luma
emulator with latency and 3 ``reelflow worker``s, all on loopback (tests/scale/conftest.py).
Asserts, from the emulator's account and the server's limit: every generation created
once, the output identical to a single-machine render, the generations limit (10) never
exceeded and >= 9 slots busy while shots wait; after a worker is killed mid-run the
output is the same and no create is repeated, and the lost shots were resumed within
two minutes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from reelflow.emulator.account import Account

from tests.scale.cluster import SlotSampler, api, finish, render

pytestmark = pytest.mark.scale

SHOTS = 40


def write_list(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", "title: Scale", "defaults: {model: ray-flash-2, resolution: 540p, duration: 5s}",
             "output: {path: scale.mp4, resolution: 540p, fps: 24}", "shots:"]
    lines += [f'  - {{id: s{i:02d}, prompt: "Shot {i}: a paper boat on a pond, angle {i * 7}"}}'
              for i in range(SHOTS)]
    path = folder / "scale.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def created_since(account: Account, since_seq: int) -> list[dict]:
    return [r for r in account.records() if r["seq"] > since_seq]


def max_in_progress(records: list[dict]) -> int:
    edges = []
    for r in records:
        rev = r["revisions"][0]
        edges += [(rev["started_ts"], 1), (rev["started_ts"] + rev["latency"], -1)]
    level = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        level += step
        peak = max(peak, level)
    return peak


def test_forty_shots_over_three_workers_then_one_killed(cluster, tmp_path):
    account = Account(cluster.dir / "account")
    reference = finish(render(cluster, write_list(tmp_path / "single"), tmp_path / "client0",
                              store="", distribute=False))

    # 1. three workers, one shared store: every shot paid once, the limit full while shots wait
    base = account.created_count()
    with SlotSampler(cluster) as sampler:
        first = finish(render(cluster, write_list(tmp_path / "run1"), tmp_path / "client1",
                              store="s3://reelflow/run1", distribute=True))
    records = created_since(account, base)
    prompts = Counter(r["request"]["prompt"] for r in records)
    assert len(records) == SHOTS and len(prompts) == SHOTS, prompts.most_common(3)
    assert first["generated"] == SHOTS and first["frames"] == reference["frames"]
    assert sha(first["output"]) == sha(reference["output"])
    assert max_in_progress(records) <= 10
    assert max(n for _, n in sampler.samples) <= 10
    creates = sorted(r["created_ts"] for r in records)
    waiting = [n for t, n in sampler.samples if creates[0] + 2 <= t <= creates[-1]]
    print(f"run1: {len(records)} creates over {creates[-1] - creates[0]:.1f}s; slots busy while "
          f"shots waited: median {statistics.median(waiting)}, mean {statistics.mean(waiting):.2f} "
          f"({len(waiting)} samples); flow {first['flow_s']}s")
    assert statistics.median(waiting) >= 9

    # 2. again (a fresh store prefix: everything to pay again), a worker killed mid-run
    base = account.created_count()
    proc = render(cluster, write_list(tmp_path / "run2"), tmp_path / "client2",
                  store="s3://reelflow/run2", distribute=True)
    deadline = time.monotonic() + 600
    while account.created_count() < base + 15:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(cluster.pids["shots1"], signal.SIGKILL)
    killed_at = time.time()
    second = finish(proc)
    records = created_since(account, base)
    prompts = Counter(r["request"]["prompt"] for r in records)
    # No request created twice. (A worker killed between writing "sending" and its create
    # leaves a record the next worker resolves from the account after
    # REELFLOW_SENDING_LIVE_S: it may adopt run 1's generation of the same request, so
    # run 2 can need fewer than SHOTS creates, never more.)
    assert len(records) <= SHOTS and max(prompts.values()) == 1, prompts.most_common(3)
    assert second["shots"] == SHOTS and sha(second["output"]) == sha(reference["output"])
    lost = api(cluster, "/task_runs/filter", {"task_runs": {"state": {"type": {"any_": ["CRASHED"]}}}})
    lost = [run for run in lost if "worker lost" in (run["state"]["message"] or "")]
    assert lost, "no task run was detected lost after the kill"
    from datetime import datetime

    marks = [datetime.fromisoformat(run["state"]["timestamp"].replace("Z", "+00:00")).timestamp()
             for run in lost]
    assert max(marks) - killed_at < 120  # detected and resumed within two minutes
    print(f"run2: {len(records)} creates; worker killed after {15} creates; {len(lost)} lost "
          f"shots resumed, marked {max(m - killed_at for m in marks):.1f}s after the kill at "
          f"most; flow {second['flow_s']}s")

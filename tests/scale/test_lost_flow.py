"""A render's machine lost (kill -9): the render is resumed by the workers' own sweep, no one
running `reelflow sweep`, within two minutes, and nothing is paid twice.

Opt-in (``pytest -m scale``): PostgreSQL, a Prefect server on it, SeaweedFS, an emulator with
latency and two stand-in machines, each a process worker (flow runs of the ``render``
deployment) and a ``reelflow worker`` (shots, and the automatic sweep), all with their
defaults (sweep every 15 s, a render lost after 45 s without a heartbeat). The render is
started from the deployment; once shots are being paid, the machine running its flow is
killed: its process worker, its flow-run process and its task worker, kill -9.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from reelflow.emulator.account import Account

from tests.helpers import media_facts
from tests.scale.cluster import api, load_scale

pytestmark = pytest.mark.scale

SHOTS = 8
LATENCY_S = 10.0


@pytest.fixture(scope="module")
def machines():
    scale = load_scale()
    folder = Path(tempfile.mkdtemp(prefix="reelflow-lost-flow-"))
    started = None
    try:
        started = scale.up(folder, workers=2, latency=LATENCY_S, limit=5, process_workers=True,
                           extra_env={"REELFLOW_SENDING_LIVE_S": "20"})
        subprocess.run([sys.executable, "-m", "reelflow.cli", "deploy", "--pool", scale.POOL],
                       env={**os.environ, **started.env}, check=True, capture_output=True)
        yield started
    finally:
        if started is not None or (folder / "pids.json").exists():
            scale.down(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _list(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", "title: Lost", "defaults: {model: ray-flash-2, resolution: 540p, duration: 5s}",
             "output: {path: lost.mp4, resolution: 360p, fps: 24}", "shots:"]
    lines += [f'  - {{id: s{i}, prompt: "Shot {i}: a lantern on a dark river, angle {i * 11}"}}'
              for i in range(SHOTS)]
    (folder / "lost.yaml").write_text("\n".join(lines) + "\n")
    return folder / "lost.yaml"


def _ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def _runs(cluster, deployment_id: str) -> list[dict]:
    return api(cluster, "/flow_runs/filter",
               {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC"})


def _machine_of(cluster, pid: int) -> int:
    """Which stand-in machine's process worker started ``pid`` (its parent chain)."""
    workers = {cluster.pids[f"flows{i}"]: i for i in (1, 2)}
    while pid > 1:
        if pid in workers:
            return workers[pid]
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    raise AssertionError("the flow run's process belongs to no stand-in machine")


def test_a_lost_render_machine_is_resumed_automatically(machines, tmp_path):
    cluster, account = machines, Account(machines.dir / "account")
    deployment = api(cluster, "/deployments/name/render-sequence/render")
    path = _list(tmp_path / "list")
    base = account.created_count()
    run = api(cluster, f"/deployments/{deployment['id']}/create_flow_run",
              {"parameters": {"shotlist_path": str(path), "distribute": True}})
    deadline = time.monotonic() + 300
    while account.created_count() < base + 3:  # shots are being paid
        assert time.monotonic() < deadline, "the render never started paying"
        time.sleep(0.3)
    pid = int(api(cluster, f"/flow_runs/{run['id']}")["infrastructure_pid"])
    machine = _machine_of(cluster, pid)
    for victim in (pid, cluster.pids[f"flows{machine}"], cluster.pids[f"shots{machine}"]):
        os.kill(victim, signal.SIGKILL)
    killed_at = time.time()

    resumed = None
    while resumed is None or resumed["state_type"] not in ("COMPLETED", "FAILED", "CRASHED"):
        assert time.monotonic() < deadline + 300, json.dumps(_runs(cluster, deployment["id"]))[-2000:]
        time.sleep(1)
        later = [r for r in _runs(cluster, deployment["id"]) if "reelflow-resume:1" in r["tags"]]
        resumed = later[0] if later else None
    assert resumed["state_type"] == "COMPLETED", resumed["state"]
    lost = api(cluster, f"/flow_runs/{run['id']}")
    assert lost["state_type"] == "CRASHED" and "machine lost" in lost["state"]["message"]
    swept_at = _ts(lost["state"]["timestamp"])
    running_at = _ts(resumed["start_time"])
    records = [r for r in account.records() if r["seq"] > base]
    prompts = Counter(r["request"]["prompt"] for r in records)
    assert len(records) == SHOTS and len(prompts) == SHOTS, prompts.most_common(3)  # 0 extra
    assert media_facts(path.parent / "lost.mp4")["frames"] == SHOTS * 5 * 24
    print(f"machine{machine} killed after 3 creates; marked lost {swept_at - killed_at:.1f}s "
          f"after the kill, resumed run Running {running_at - killed_at:.1f}s after it; "
          f"{len(records)} creates for {SHOTS} shots; resumed run "
          f"{_ts(resumed['end_time']) - running_at:.1f}s")
    assert running_at - killed_at < 120

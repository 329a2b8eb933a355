"""A reelflow cluster for the scale tests: scripts/scale.py's Postgres, server, SeaweedFS, workers.

Module-scoped and opt-in (``pytest -m scale``): starting it takes about a minute here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Seconds from create to completed on the emulator (Luma takes minutes: scaled down).
LATENCY_S = 10.0
#: Creates a minute for the test's rate limit: Luma's 20 scaled up with the latency.
CREATES_PER_MINUTE = 600


def load_scale():
    spec = importlib.util.spec_from_file_location("reelflow_scale_script", REPO / "scripts" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def api(cluster, path: str, body: dict | None = None):
    """One call to the cluster's Prefect REST API (JSON in, JSON out)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(cluster.env["PREFECT_API_URL"] + path, data=data,
                                     headers={"Content-Type": "application/json"},
                                     method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=30) as answer:
        text = answer.read()
    return json.loads(text) if text else None


@pytest.fixture(scope="module")
def cluster():
    scale = load_scale()
    folder = Path(tempfile.mkdtemp(prefix="reelflow-scale-"))
    started = None
    try:
        started = scale.up(folder, workers=3, latency=LATENCY_S, limit=5, process_workers=False,
                           extra_env={"REELFLOW_SENDING_LIVE_S": "20"})
        for name, limit, decay in (("reelflow-luma-generations", 10, 0.0),
                                   ("reelflow-luma-creates", CREATES_PER_MINUTE,
                                    CREATES_PER_MINUTE / 60)):
            api(started, "/v2/concurrency_limits/", {"name": name, "limit": limit,
                                                     "slot_decay_per_second": decay})
        started.scale = scale
        yield started
    finally:
        if started is not None or (folder / "pids.json").exists():
            scale.down(folder)
        shutil.rmtree(folder, ignore_errors=True)


def render(cluster, shotlist: Path, home: Path, *, store: str, distribute: bool,
           timeout_s: float = 900) -> subprocess.Popen:
    """Start ``reelflow render --json`` against the cluster (a client machine of its own)."""
    env = {**os.environ, **cluster.env, "REELFLOW_HOME": str(home / "home"),
           "PREFECT_HOME": str(home / "prefect"), "REELFLOW_STORE": store,
           "REELFLOW_STALE_S": "15"}
    if not distribute:  # the single-machine reference: embedded emulator, local store
        for name in ("LUMAAI_API_KEY", "LUMAAI_BASE_URL", "REELFLOW_STORE"):
            env.pop(name, None)
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "reelflow.cli", "render", str(shotlist), "--json", "--quiet"]
    return subprocess.Popen(argv + (["--distribute"] if distribute else []), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout_s: float = 900) -> dict:
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


class SlotSampler:
    """Samples the generations limit's active slots (every 0.25 s) while a render runs."""

    def __init__(self, cluster):
        import threading

        self.cluster, self.samples, self._stop = cluster, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self):
        while not self._stop.wait(0.25):
            try:
                limit = api(self.cluster, "/v2/concurrency_limits/reelflow-luma-generations")
            except Exception:  # noqa: BLE001 - a missed sample
                continue
            self.samples.append((time.time(), limit["active_slots"]))

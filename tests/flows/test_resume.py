"""kill -9 while shots dream, then rerun: no new paid calls, same output as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import (TEST_KEY, emulator_created, run_cli, sha256, start_standalone_emulator,
                           write_shotlist)

SHOTS = [
    {"id": "dawn", "prompt": "Dawn over a sleeping city, slow pan", "resolution": "540p",
     "transition": {"type": "crossfade", "duration": 0.5}},
    {"id": "dusk", "prompt": "Dusk over the same city, lights come on", "resolution": "540p"},
]


def _recorded_ids(home: Path) -> list[str]:
    ids = []
    for record in (home / "ledger").glob("*/*.json"):
        entry = json.loads(record.read_text())
        if entry.get("generation_id"):
            ids.append(entry["generation_id"])
    return ids


def _start_render(tmp_path: Path, url: str, prefect_api: str):
    """`reelflow render` of SHOTS in its own process group (so kill -9 takes all of it)."""
    path = write_shotlist(tmp_path, SHOTS)
    home = tmp_path / "home"
    env = {**os.environ, "LUMAAI_API_KEY": TEST_KEY, "LUMAAI_BASE_URL": url,
           "PREFECT_API_URL": prefect_api, "REELFLOW_HOME": str(home)}
    render = subprocess.Popen([sys.executable, "-m", "reelflow.cli", "render", str(path)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    return path, home, env, render


def test_kill_9_while_dreaming_then_rerun_pays_nothing(tmp_path, prefect_api):
    emulator, url = start_standalone_emulator(tmp_path / "account", latency=8)
    try:
        path, home, env, render = _start_render(tmp_path, url, prefect_api)
        deadline = time.monotonic() + 120
        while len(_recorded_ids(home)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_recorded_ids(home)) == 2, "the render never recorded its generations"
        os.killpg(render.pid, signal.SIGKILL)  # the render and anything it started
        render.wait(timeout=10)
        assert emulator_created(url) == 2
        assert not (tmp_path / "out.mp4").exists()

        rerun = run_cli(["render", str(path), "--json"], env=env)
        assert rerun.returncode == 0, rerun.stderr
        report = json.loads(rerun.stdout)
        assert (report["generated"], report["cost_usd"]) == (0, 0)
        assert emulator_created(url) == 2
        assert sorted(r["generation_id"] for r in report["shot_results"]) == sorted(_recorded_ids(home))

        # An uninterrupted run of the same list in a fresh home gives the same bytes.
        fresh = run_cli(["render", str(path), "--json", "--out", str(tmp_path / "fresh.mp4")],
                        env={**env, "REELFLOW_HOME": str(tmp_path / "home2")})
        assert fresh.returncode == 0, fresh.stderr
        assert sha256(tmp_path / "fresh.mp4") == sha256(Path(report["output"]))
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=20)


def _intents(home: Path) -> list[str]:
    """Ledger entries whose create was sent but whose id never came back."""
    records = [json.loads(r.read_text()) for r in (home / "ledger").glob("*/*.json")]
    return [record["key"] for record in records if record.get("sending_since")]


def test_kill_9_while_creates_are_in_flight_then_rerun_adopts_them(tmp_path, prefect_api):
    """The account recorded (and billed) both creates, but their answers never reached the
    killed run: the rerun finds those generations on the account instead of paying again."""
    import httpx

    emulator, url = start_standalone_emulator(tmp_path / "account")
    try:
        httpx.post(f"{url}/_emulator/faults", json={"create_answer_delay": 45}, timeout=10)
        path, home, env, render = _start_render(tmp_path, url, prefect_api)
        deadline = time.monotonic() + 120
        while emulator_created(url) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert emulator_created(url) == 2, "the render never sent its creates"
        os.killpg(render.pid, signal.SIGKILL)  # both answers are still held by the account
        render.wait(timeout=10)
        assert _recorded_ids(home) == [] and len(_intents(home)) == 2

        httpx.post(f"{url}/_emulator/faults", json={}, timeout=10)
        rerun = run_cli(["render", str(path), "--json"], env=env)
        assert rerun.returncode == 0, rerun.stderr
        report = json.loads(rerun.stdout)
        assert emulator_created(url) == 2  # adopted, not paid again
        assert report["generated"] == 0 and _intents(home) == []
        account = httpx.get(f"{url}/generations", params={"limit": 10},
                            headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=10).json()
        assert sorted(r["generation_id"] for r in report["shot_results"]) == \
            sorted(g["id"] for g in account["generations"])
        assert "adopted generation" in rerun.stderr
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=20)

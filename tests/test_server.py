"""reelflow's managed Prefect server: started by the first command, reused by the next,
visible and stoppable (`reelflow server`), stopped when unused; configured APIs win."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reelflow import _server
from tests.helpers import media_facts, write_shotlist

SHOT = [{"id": "one", "prompt": "A lighthouse at night, beams sweeping", "resolution": "540p"}]


def _managed_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The default set-up: no PREFECT_API_URL, no opt-out, fresh homes, no Luma key."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "REELFLOW_PREFECT") and not k.startswith("LUMA")}
    env.update(REELFLOW_HOME=str(tmp_path / "home"), PREFECT_HOME=str(tmp_path / "prefect"),
               REELFLOW_EMULATOR_LATENCY="0", **extra)
    return env


def _cli(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reelflow.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _state(env: dict[str, str]) -> dict:
    [path] = Path(env["REELFLOW_HOME"], "prefect-server").glob("*/state.json")
    return json.loads(path.read_text())


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def _kill_leftovers(env: dict[str, str]) -> None:
    for path in Path(env["REELFLOW_HOME"], "prefect-server").glob("*/state.json"):
        state = json.loads(path.read_text())
        for pid in (state["pid"], state["server_pid"]):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def test_first_command_starts_the_server_the_next_reuses_it_and_stop_stops_it(tmp_path):
    env = _managed_env(tmp_path, REELFLOW_SERVER_IDLE="600")
    path = write_shotlist(tmp_path, SHOT)
    try:
        started = time.monotonic()
        first = _cli(["render", str(path)], env)
        first_s = time.monotonic() - started
        assert first.returncode == 0, first.stderr
        assert "starting reelflow's local server" in first.stderr
        state = _state(env)
        assert state["api_url"].startswith("http://127.0.0.1:")
        assert f"Flow run: {state['api_url'].removesuffix('/api')}/" in first.stderr  # the UI link

        started = time.monotonic()
        second = _cli(["render", str(path)], env)
        second_s = time.monotonic() - started
        assert second.returncode == 0, second.stderr
        assert "starting" not in second.stderr and "ephemeral" not in second.stderr
        assert _state(env)["server_pid"] == state["server_pid"]     # the same server, reused
        assert second_s < first_s, (first_s, second_s)
        assert media_facts(Path(second.stdout.strip()))["frames"] == 5 * 24

        status = _cli(["server", "status"], env, timeout=60)
        assert status.returncode == 0 and f"pid {state['server_pid']}" in status.stdout

        stop = _cli(["server", "stop"], env, timeout=60)
        assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stdout + stop.stderr
        assert _gone(state["server_pid"], 30) and _gone(state["pid"], 5)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{state['api_url']}/health", timeout=2)
        after = _cli(["server", "status"], env, timeout=60)
        assert after.returncode == 3 and "no reelflow Prefect server" in after.stdout
    finally:
        _kill_leftovers(env)


def test_an_unused_server_stops_after_its_idle_time(tmp_path):
    env = _managed_env(tmp_path)
    try:
        # long enough that a loaded machine still sees it up once `start` has returned
        start = _cli(["server", "start", "--idle", "8"], env)
        assert start.returncode == 0, start.stderr
        state = _state(env)
        assert state["idle_s"] == 8 and "started: Prefect UI" in start.stdout
        assert httpx.get(f"{state['api_url']}/health", timeout=5).status_code == 200
        assert _gone(state["server_pid"], 60) and _gone(state["pid"], 5)
        log = next(Path(env["REELFLOW_HOME"], "prefect-server").glob("*/server.log")).read_text()
        assert "stopped: unused for 8 s" in log
        assert not list(Path(env["REELFLOW_HOME"], "prefect-server").glob("*/state.json"))
    finally:
        _kill_leftovers(env)


def test_a_configured_api_starts_nothing(tmp_path, monkeypatch):
    """PREFECT_API_URL, or an active profile that sets it: used as is, no server started."""
    monkeypatch.delenv("REELFLOW_PREFECT")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert _server.use_prefect() == "http://127.0.0.1:9"
    assert not (Path(os.environ["REELFLOW_HOME"]) / "prefect-server").exists()

    env = _managed_env(tmp_path)
    Path(env["PREFECT_HOME"]).mkdir()
    Path(env["PREFECT_HOME"], "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n')
    status = _cli(["server", "start"], env, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "Prefect API: http://127.0.0.1:9/api" in status.stdout
    assert not Path(env["REELFLOW_HOME"], "prefect-server").exists()

"""Spend safety where the Agents API is weaker (no list route, no idempotency key).

A ray-3.2 create whose answer is lost is never sent again silently: the shot stops with
one line naming the ledger record and `reelflow resolve`; the user adopts the
generation (no new payment) or asks for a resend (one). A run killed while the clip
dreams resumes on the recorded id; concurrent runs pay once. Every test counts the
emulator's Agents API creates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reelflow.emulator import Emulator, Faults
from tests.helpers import (TEST_KEY, agents_created, render_together, run_cli, sha256,
                           start_standalone_emulator, write_shotlist)

SHOTS = [
    {"id": "dawn", "model": "ray-3.2", "prompt": "Dawn over a sleeping city, slow pan",
     "resolution": "360p"},
    {"id": "dusk", "model": "ray-3.2", "prompt": "Dusk over the same city, lights come on",
     "resolution": "360p"},
]


@pytest.fixture()
def agents_emulator(tmp_path, monkeypatch):
    """A fresh emulator (both APIs) with the given faults, pointed at by both SDKs' env."""
    started = []

    def start(faults: Faults = Faults(), latency: float = 0.0) -> Emulator:
        emu = Emulator(tmp_path / f"account{len(started)}", latency=latency, faults=faults)
        emu.start()
        started.append(emu)
        for name, value in (("LUMAAI_API_KEY", TEST_KEY), ("LUMAAI_BASE_URL", emu.base_url),
                            ("LUMA_AGENTS_API_KEY", TEST_KEY),
                            ("LUMA_BASE_URL", emu.agents_base_url)):
            monkeypatch.setenv(name, value)
        return emu

    yield start
    for emu in started:
        emu.stop()


def _env(url: str, home: Path, prefect_api: str) -> dict[str, str]:
    return {**os.environ, "LUMAAI_API_KEY": TEST_KEY, "LUMAAI_BASE_URL": url,
            "LUMA_AGENTS_API_KEY": TEST_KEY, "LUMA_BASE_URL": f"{url}/v1",
            "PREFECT_API_URL": prefect_api, "REELFLOW_HOME": str(home)}


def _records(home: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (home / "ledger").glob("*/*.json")]


def test_lost_answer_stops_the_shot_and_resolve_adopts_or_resends(tmp_path, home, prefect_api,
                                                                    agents_emulator):
    """Every create's answer is dropped after the account made it: each shot stops, the
    rerun sends nothing, adopting one shot's generation pays nothing, a resend pays once."""
    emu = agents_emulator(Faults(drop_after_create=1.0))
    path = write_shotlist(tmp_path, SHOTS)
    env = _env(emu.base_url, home, prefect_api)

    first = run_cli(["render", str(path)], env=env)
    assert first.returncode == 1 and emu.agents_created_count() == 2
    line = first.stderr.strip().splitlines()[-1]
    assert "reelflow resolve dawn --generation-id ID" in line or \
        "reelflow resolve dusk --generation-id ID" in line
    assert str(home / "ledger") in line and "--resend" in line and TEST_KEY not in first.stderr

    again = run_cli(["render", str(path)], env=env)  # the records stand: nothing is resent
    assert again.returncode == 1 and emu.agents_created_count() == 2
    assert emu.stats()["injected"]["drop_after_create"] == 2

    emu.set_faults(Faults())
    made = {r["request"]["prompt"]: r["id"] for r in emu.agents.records()}
    adopt = run_cli(["resolve", "dawn", "--generation-id", made[SHOTS[0]["prompt"]]], env=env)
    assert adopt.returncode == 0, adopt.stderr
    assert "adopted generation" in adopt.stdout
    resend = run_cli(["resolve", "dusk", "--resend"], env=env)
    assert resend.returncode == 0 and "sends the create again" in resend.stdout

    done = run_cli(["render", str(path), "--json"], env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert emu.agents_created_count() == 3  # dawn adopted, dusk paid again
    ids = {r["id"]: r["generation_id"] for r in report["shot_results"]}
    assert ids["dawn"] == made[SHOTS[0]["prompt"]] and ids["dusk"] != made[SHOTS[1]["prompt"]]
    assert sorted(r["cost_usd"] for r in _records(home)) == [0.06, 0.06]
    assert not any(r.get("sending_since") for r in _records(home))


def test_resolve_refuses_an_unknown_id_and_a_shot_with_nothing_in_doubt(tmp_path, home,
                                                                          prefect_api,
                                                                          agents_emulator):
    emu = agents_emulator(Faults(drop_after_create=1.0))
    path = write_shotlist(tmp_path, SHOTS[:1])
    env = _env(emu.base_url, home, prefect_api)
    assert run_cli(["render", str(path)], env=env).returncode == 1

    unknown = run_cli(["resolve", "dawn", "--generation-id", "4c8f0d0e-0000-4000-8000-000000000000"],
                      env=env)
    assert unknown.returncode == 2 and "no generation" in unknown.stderr
    nothing = run_cli(["resolve", "dusk", "--resend"], env=env)
    assert nothing.returncode == 2 and "no create in doubt" in nothing.stderr
    assert [r["sending_since"] is not None for r in _records(home)] == [True]


def test_refused_connection_is_sent_again(tmp_path, home):
    """A connection that was never made sent nothing: the Agents provider sends again."""
    import socket

    import luma_agents

    from reelflow.tasks._agents import agents_error

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    client = luma_agents.Luma(auth_token="x", base_url=f"http://127.0.0.1:{port}/v1",
                              max_retries=0)
    with pytest.raises(luma_agents.APIConnectionError) as refused:
        client.generations.create(model="ray-3.2", prompt="A kite", type="video")
    assert agents_error(refused.value) == "not_sent"
    assert agents_error(luma_agents.APITimeoutError(request=httpx.Request("POST", "http://x"))) \
        == "unknown"


def _start_render(path: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "reelflow.cli", "render", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _wait_for(condition, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


def test_kill_9_mid_send_is_never_resent_and_resolve_adopts(tmp_path, prefect_api):
    emulator, url = start_standalone_emulator(tmp_path / "account")
    try:
        home = tmp_path / "home"
        env = _env(url, home, prefect_api)
        path = write_shotlist(tmp_path, SHOTS[:1])
        httpx.post(f"{url}/_emulator/faults", json={"create_answer_delay": 45}, timeout=10)
        render = _start_render(path, env)
        assert _wait_for(lambda: agents_created(url) == 1), "the render never sent its create"
        os.killpg(render.pid, signal.SIGKILL)  # the answer is still held by the account
        render.wait(timeout=10)
        assert [bool(r["sending_since"]) and not r["generation_id"] for r in _records(home)] == [True]
        httpx.post(f"{url}/_emulator/faults", json={}, timeout=10)

        rerun = run_cli(["render", str(path)], env=env)
        assert rerun.returncode == 1 and "reelflow resolve dawn" in rerun.stderr
        assert agents_created(url) == 1

        generation = httpx.get(f"{url}/_emulator/stats", timeout=10).json()
        assert generation["agents"]["created"] == 1
        listed = sorted((tmp_path / "account" / "agents" / "generations").glob("*.json"))
        adopt = run_cli(["resolve", "dawn", "--generation-id", listed[0].stem], env=env)
        assert adopt.returncode == 0, adopt.stderr
        done = run_cli(["render", str(path), "--json"], env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["shot_results"][0]["generation_id"] == listed[0].stem
        assert agents_created(url) == 1
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=20)


def test_kill_9_while_dreaming_resumes_on_the_recorded_id(tmp_path, prefect_api):
    emulator, url = start_standalone_emulator(tmp_path / "account", latency=8)
    try:
        home = tmp_path / "home"
        env = _env(url, home, prefect_api)
        path = write_shotlist(tmp_path, SHOTS)
        render = _start_render(path, env)
        assert _wait_for(lambda: sum(bool(r.get("generation_id")) for r in _records(home)) == 2)
        os.killpg(render.pid, signal.SIGKILL)
        render.wait(timeout=10)
        assert agents_created(url) == 2

        rerun = run_cli(["render", str(path), "--json"], env=env)
        assert rerun.returncode == 0, rerun.stderr
        report = json.loads(rerun.stdout)
        assert agents_created(url) == 2 and report["generated"] == 0
        assert sorted(r["generation_id"] for r in report["shot_results"]) == \
            sorted(r["generation_id"] for r in _records(home))
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=20)


def test_two_concurrent_renders_pay_once(tmp_path, prefect_api):
    emulator, url = start_standalone_emulator(tmp_path / "account", latency=3)
    try:
        env = _env(url, tmp_path / "home", prefect_api)
        path = write_shotlist(tmp_path, SHOTS)
        reports = render_together(path, env, tmp_path)
        assert agents_created(url) == 2
        assert sum(r["generated"] for r in reports) == 2
        assert sha256(tmp_path / "out0.mp4") == sha256(tmp_path / "out1.mp4")
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=20)

"""``python -m reelflow.emulator``: a foreground service that answers the SDK and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import lumaai

from reelflow.emulator import Emulator, main


def test_cli_serves_and_shares_its_account_with_another_process(tmp_path):
    data = tmp_path / "acct"
    proc = subprocess.Popen([sys.executable, "-m", "reelflow.emulator", "--port", "0",
                             "--data", str(data), "--latency", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://")).rstrip(".,")
        cli_client = lumaai.LumaAI(auth_token="test", base_url=url, max_retries=0)
        assert cli_client.ping.check().message == "pong"

        # Another emulator (this process) on the same data dir, creating at the same time.
        with Emulator(data, latency=60) as local:
            local_client = lumaai.LumaAI(auth_token="test", base_url=local.base_url,
                                         max_retries=0)
            clients = [cli_client, local_client]
            with ThreadPoolExecutor(6) as pool:
                ids = list(pool.map(lambda i: clients[i % 2].generations.create(
                    model="ray-2", prompt=f"shared {i}").id, range(12)))
            assert local.created_count() == 12
        assert len(set(ids)) == 12
        stats = httpx.get(f"{url}/_emulator/stats").json()
        assert stats["created"] == 12 and stats["generations"] == 12
        assert stats["requests"]["create"] == 6
        assert cli_client.generations.list(limit=100).count == 12
    finally:
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=15)
    assert returncode == 0, proc.stderr.read()


def test_main_rejects_a_negative_latency(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "--latency", "-1"]) == 2
    assert "latency" in capsys.readouterr().err


def test_one_port_serves_both_apis_and_account_prints_them(tmp_path):
    import json

    import luma_agents

    from tests.emulator.support import wait_agents, wait_settled

    data = tmp_path / "acct"
    with Emulator(data, latency=0.0, image_long_side=64) as emu:
        dream = lumaai.LumaAI(auth_token="t", base_url=emu.base_url, max_retries=0)
        agents = luma_agents.Luma(auth_token="t", base_url=emu.agents_base_url, max_retries=0)
        assert emu.agents_base_url == emu.base_url + "/v1"
        wait_settled(dream, dream.generations.create(model="ray-flash-2", prompt="one",
                                                     resolution="540p").id)
        wait_agents(agents, agents.generations.create(prompt="two", model="uni-1").id)
        wait_agents(agents, agents.generations.create(prompt="three", model="uni-1").id)
        agents.files.create(mime_type="image/png", size_bytes=10)
    proc = subprocess.run([sys.executable, "-m", "reelflow.cli", "emulator", "account",
                           "--data", str(data)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["dream_machine"]["generations"] == {"ray-flash-2": 1}
    assert report["dream_machine"]["created"] == 1
    assert report["dream_machine"]["credits_spent"] > 0
    assert report["agents"]["generations"] == {"uni-1": {"image": 2}}
    assert report["agents"]["files"] == {"pending": 1}
    assert report["agents"]["credits_spent"] == 2 * 4.04
    missing = subprocess.run([sys.executable, "-m", "reelflow.cli", "emulator", "account",
                              "--data", str(tmp_path / "none")], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2 and "no emulator account" in missing.stderr
    assert missing.stdout == ""

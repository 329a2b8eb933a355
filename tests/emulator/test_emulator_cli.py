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

"""State derived from persisted time and latency; restarts; concurrency on one data dir."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import lumaai
import pytest

from reelflow.emulator import Emulator, spec
from tests.emulator.support import wait_completed


def _client(emu: Emulator) -> lumaai.LumaAI:
    return lumaai.LumaAI(auth_token="test", base_url=emu.base_url, max_retries=0)


def _sleep_until(start: float, offset: float) -> None:
    time.sleep(max(0.0, start + offset - time.monotonic()))


def test_latency_queued_then_dreaming_then_completed(tmp_path):
    with Emulator(tmp_path / "acct", latency=1.5) as emu:
        client = _client(emu)
        start = time.monotonic()
        gen = client.generations.create(model="ray-flash-2", prompt="slow one", resolution="540p")
        assert client.generations.get(gen.id).state in ("queued", "dreaming")
        _sleep_until(start, 0.6)
        dreaming = client.generations.get(gen.id)
        assert dreaming.state == "dreaming" and dreaming.assets.video is None
        assert httpx.get(f"{emu.base_url}/assets/{gen.id}.mp4").status_code == 404
        _sleep_until(start, 1.6)
        done = wait_completed(client, gen.id, timeout=10)  # due: a loaded machine may lag
        assert time.monotonic() - start >= 1.5
        assert httpx.get(done.assets.video).status_code == 200


def test_queued_for_the_first_tenth_of_the_latency(tmp_path):
    with Emulator(tmp_path / "acct", latency=60) as emu:
        client = _client(emu)
        gen = client.generations.create(model="ray-2", prompt="waits in line")
        assert client.generations.get(gen.id).state == "queued"
        assert client.generations.list().generations[0].state == "queued"


def test_generation_survives_a_restart_and_keeps_its_latency(tmp_path):
    data = tmp_path / "acct"
    start = time.monotonic()
    with Emulator(data, latency=1.5) as first:
        gen = _client(first).generations.create(model="ray-2", prompt="survivor",
                                                resolution="540p")
        balance = _client(first).credits.get().credit_balance
    # A new process-like emulator with another latency: the stored latency still rules.
    with Emulator(data, latency=0.0) as second:
        client = _client(second)
        assert client.generations.get(gen.id).state in ("queued", "dreaming")
        _sleep_until(start, 1.6)
        done = wait_completed(client, gen.id, timeout=10)  # due: a loaded machine may lag
        assert time.monotonic() - start >= 1.5
        assert done.assets.video.startswith(second.base_url)
        assert done.request.prompt == "survivor"
        assert second.created_count() == 1
        assert client.credits.get().credit_balance == balance < spec.DEFAULT_CREDITS
        clip = httpx.get(done.assets.video).content
    with Emulator(data) as third:
        again = _client(third).generations.get(gen.id)
        assert again.state == "completed"
        assert httpx.get(again.assets.video).content == clip
        stats = httpx.get(third.base_url + "/_emulator/stats").json()
        assert stats["created"] == 1 and stats["generations"] == 1


def test_concurrent_creates_on_two_emulators_sharing_a_data_dir(tmp_path):
    data = tmp_path / "acct"
    with Emulator(data, latency=60) as one, Emulator(data, latency=60) as two:
        clients = [_client(one), _client(two)]

        def create(i: int) -> str:
            return clients[i % 2].generations.create(model="ray-flash-2",
                                                     prompt=f"parallel {i}").id

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(create, range(16)))
        assert len(set(ids)) == 16
        assert one.created_count() == two.created_count() == 16
        listed = clients[1].generations.list(limit=100)
        assert listed.count == 16 and sorted(g.id for g in listed.generations) == sorted(ids)
        cost = spec.generation_cost({"model": "ray-flash-2"})
        assert clients[0].credits.get().credit_balance == pytest.approx(
            spec.DEFAULT_CREDITS - 16 * cost)


def test_concurrent_gets_render_a_clip_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="reelflow.emulator.account")
    data = tmp_path / "acct"
    with Emulator(data) as one, Emulator(data) as two:
        gen = _client(one).generations.create(model="ray-2", prompt="render me once",
                                              resolution="540p")
        barrier = threading.Barrier(6)

        def get(i: int) -> str | None:
            client = _client(one if i % 2 else two)
            barrier.wait()
            return client.generations.get(gen.id).assets.video

        with ThreadPoolExecutor(6) as pool:
            urls = list(pool.map(get, range(6)))
        assert all(url and url.endswith(f"/assets/{gen.id}.mp4") for url in urls)
        assert wait_completed(_client(two), gen.id).state == "completed"
    renders = [r for r in caplog.records if r.getMessage().startswith(f"rendered {gen.id}")]
    assert len(renders) == 1
    assert not list((data / "assets").glob(".render-*"))  # no temp dirs left behind


def test_stop_cuts_keep_alive_connections(tmp_path):
    emu = Emulator(tmp_path / "acct").__enter__()
    client = _client(emu)
    assert client.ping.check().message == "pong"  # opens a pooled keep-alive connection
    emu.stop()
    with pytest.raises(lumaai.APIConnectionError):
        client.ping.check()

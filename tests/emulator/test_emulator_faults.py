"""Injected faults and account limits, each observed through the unmodified lumaai SDK."""

from __future__ import annotations

import signal
import subprocess
import sys

import av
import httpx
import lumaai
import pytest

from reelflow.emulator import Emulator, Faults, spec
from reelflow.emulator.faults import JOB_FAILED, MODERATION_FAILED
from tests.emulator.support import wait_completed, wait_settled

PROMPT = "A lighthouse at dusk"


def _client(emu: Emulator, retries: int = 0) -> lumaai.LumaAI:
    return lumaai.LumaAI(auth_token="test", base_url=emu.base_url, max_retries=retries)


def _decodable_frames(path, data: bytes) -> int:
    """How many video frames PyAV decodes from ``data`` (0 when it is no MP4 with video)."""
    path.write_bytes(data)
    try:
        with av.open(str(path)) as container:
            return sum(1 for _ in container.decode(video=0))
    except (av.error.FFmpegError, IndexError):  # IndexError: no video stream left
        return 0


@pytest.mark.parametrize(("status", "error"), [(429, lumaai.RateLimitError),
                                                (500, lumaai.InternalServerError),
                                                (503, lumaai.InternalServerError)])
def test_status_faults_record_nothing(tmp_path, status, error):
    with Emulator(tmp_path / "acct", faults=Faults(**{f"rate_{status}": 1.0})) as emu:
        with pytest.raises(error) as err:
            _client(emu).generations.create(model="ray-2", prompt=PROMPT)
        assert err.value.status_code == status and err.value.body["detail"]
        if status == 429:
            assert err.value.response.headers["retry-after"] == "1"
        stats = emu.stats()
        assert stats["created"] == 0 and stats["injected"] == {f"rate_{status}": 1}
        with pytest.raises(error):  # not only creates: every API route may fault
            _client(emu).credits.get()


def test_a_429_is_retried_by_the_sdk_and_counted(tmp_path):
    # Seed 1 draws 0.134 then 0.847: the first create gets a 429, its retry passes.
    faults = Faults(rate_429=0.5, retry_after=0.2, status_routes=["create"])
    with Emulator(tmp_path / "acct", faults=faults, seed=1) as emu:
        created = _client(emu, retries=2).generations.create(model="ray-2", prompt=PROMPT)
        assert created.state == "queued"
        stats = emu.stats()
        assert (stats["created"], stats["create_retries"]) == (1, 1)
        assert stats["injected"] == {"rate_429": 1}
        assert stats["requests"]["create"] == 2


def test_same_seed_same_faults(tmp_path):
    def outcomes(seed: int) -> list[int]:
        with Emulator(tmp_path / f"acct{seed}", faults=Faults(rate_503=0.5), seed=seed) as emu:
            return [httpx.get(emu.base_url + "/ping",
                              headers={"Authorization": "Bearer t"}).status_code
                    for _ in range(12)]

    first = outcomes(7)
    assert first == outcomes(7) and {200, 503} == set(first)


def test_drop_before_create_records_nothing(tmp_path):
    with Emulator(tmp_path / "acct", faults=Faults(drop_before_create=1.0)) as emu:
        with pytest.raises(lumaai.APIConnectionError):
            _client(emu).generations.create(model="ray-2", prompt=PROMPT)
        emu.set_faults(Faults())
        assert _client(emu).generations.list().count == 0
        assert emu.stats()["injected"] == {"drop_before_create": 1}


def test_drop_after_create_bills_a_generation_the_client_never_saw(tmp_path):
    with Emulator(tmp_path / "acct", faults=Faults(drop_after_create=1.0)) as emu:
        with pytest.raises(lumaai.APIConnectionError):
            _client(emu).generations.create(model="ray-flash-2", prompt=PROMPT,
                                            resolution="540p")
        listed = _client(emu).generations.list()
        assert listed.count == 1 and emu.created_count() == 1
        assert listed.generations[0].request.prompt == PROMPT
        assert listed.generations[0].request.resolution == "540p"
        cost = spec.generation_cost({"model": "ray-flash-2", "resolution": "540p"})
        assert _client(emu).credits.get().credit_balance == pytest.approx(
            spec.DEFAULT_CREDITS - cost)
        # With SDK retries on, the retried POST is a second paid generation.
        with pytest.raises(lumaai.APIConnectionError):
            _client(emu, retries=1).generations.create(model="ray-2", prompt="second")
        stats = emu.stats()
        assert stats["created"] == 3 and stats["create_retries"] == 1
        assert stats["injected"] == {"drop_after_create": 3}


def test_moderation_pattern_fails_matching_prompts_every_time(tmp_path):
    with Emulator(tmp_path / "acct", faults=Faults(moderation_pattern=r"\bforbidden\b")) as emu:
        client = _client(emu)
        refused = [client.generations.create(model="ray-2", prompt="A FORBIDDEN door").id
                   for _ in range(2)]
        for gen_id in refused:
            failed = wait_settled(client, gen_id)
            assert failed.state == "failed" and failed.failure_reason == MODERATION_FAILED
            assert failed.assets.video is None
        fine = client.generations.create(model="ray-flash-2", prompt="an open door",
                                         resolution="540p")
        assert wait_completed(client, fine.id).failure_reason is None
        assert emu.stats()["injected"] == {"moderation": 2}
        with pytest.raises(lumaai.BadRequestError):  # a failed generation cannot be upscaled
            client.generations.upscale(refused[0], resolution="1080p")
        assert httpx.get(f"{emu.base_url}/assets/{refused[0]}.mp4").status_code == 404


def test_fail_rate_is_decided_at_create_and_survives_a_restart(tmp_path):
    data = tmp_path / "acct"
    with Emulator(data, faults=Faults(fail_rate=1.0)) as emu:
        gen = _client(emu).generations.create(model="ray-2", prompt=PROMPT)
    with Emulator(data) as emu:  # no faults now: the stored decision still rules
        client = _client(emu)
        failed = wait_settled(client, gen.id)
        assert (failed.state, failed.failure_reason) == ("failed", JOB_FAILED)
        again = client.generations.create(model="ray-flash-2", prompt=PROMPT,
                                          resolution="540p")
        assert wait_completed(client, again.id).state == "completed"


def test_truncated_and_corrupt_downloads(tmp_path):
    with Emulator(tmp_path / "acct") as emu:
        client = _client(emu)
        gen = client.generations.create(model="ray-flash-2", prompt=PROMPT, resolution="540p")
        url = wait_completed(client, gen.id).assets.video
        clean = httpx.get(url).content

        emu.set_faults(Faults(truncate_download_rate=1.0))
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):
            with httpx.stream("GET", url) as response:
                assert int(response.headers["content-length"]) == len(clean)
                for chunk in response.iter_raw():
                    received += chunk
        assert 0 < len(received) < len(clean) and clean.startswith(bytes(received))

        emu.set_faults(Faults(corrupt_download_rate=1.0))
        corrupt = httpx.get(url).content
        assert len(corrupt) == len(clean) and corrupt != clean
        assert _decodable_frames(tmp_path / "good.mp4", clean) == 120
        assert _decodable_frames(tmp_path / "bad.mp4", corrupt) == 0
        assert emu.stats()["injected"] == {"truncate_download": 1, "corrupt_download": 1}


def test_the_eleventh_concurrent_create_gets_429(tmp_path):
    with Emulator(tmp_path / "acct", latency=60, faults=Faults(max_concurrent=10)) as emu:
        client = _client(emu)
        for i in range(10):
            client.generations.create(model="ray-2", prompt=f"{PROMPT} {i}")
        with pytest.raises(lumaai.RateLimitError) as err:
            client.generations.create(model="ray-2", prompt=f"{PROMPT} 10")
        assert 50 <= int(err.value.response.headers["retry-after"]) <= 60
        assert "concurrent" in err.value.body["detail"]
        client.generations.delete(client.generations.list().generations[0].id)
        client.generations.create(model="ray-2", prompt=f"{PROMPT} again")  # a slot freed
        assert emu.created_count() == 11


def test_the_twenty_first_create_in_a_minute_gets_429(tmp_path):
    with Emulator(tmp_path / "acct", faults=Faults(creates_per_minute=20)) as emu:
        client = _client(emu)
        for i in range(20):
            client.generations.create(model="ray-flash-2", prompt=f"{PROMPT} {i}")
        with pytest.raises(lumaai.RateLimitError) as err:
            client.generations.create(model="ray-flash-2", prompt=f"{PROMPT} 20")
        assert 1 <= int(err.value.response.headers["retry-after"]) <= 60
        assert emu.created_count() == 20
        assert emu.stats()["injected"] == {"limit_429": 1}


def test_credits_run_out(tmp_path):
    cost = spec.generation_cost({"model": "ray-2"})
    with Emulator(tmp_path / "acct", credits=1.5 * cost,
                  faults=Faults(enforce_credits=True)) as emu:
        client = _client(emu)
        client.generations.create(model="ray-2", prompt=PROMPT)
        with pytest.raises(lumaai.APIStatusError) as err:
            client.generations.create(model="ray-2", prompt=PROMPT)
        assert err.value.status_code == 402
        assert "Insufficient credits" in err.value.body["detail"]
        assert emu.created_count() == 1
        assert client.credits.get().credit_balance == pytest.approx(0.5 * cost)
        client.generations.create(model="ray-flash-2", prompt=PROMPT, resolution="540p")


def test_latency_jitter_varies_each_generation(tmp_path):
    with Emulator(tmp_path / "acct", latency=10, faults=Faults(latency_jitter=2)) as emu:
        ids = [_client(emu).generations.create(model="ray-2", prompt=PROMPT).id
               for _ in range(4)]
        latencies = {emu.account.record(i)["revisions"][0]["latency"] for i in ids}
        assert len(latencies) == 4 and all(8 <= x <= 12 for x in latencies)


def test_cli_faults_file_flags_and_the_faults_route(tmp_path):
    faults_file = tmp_path / "faults.yaml"
    faults_file.write_text("rate_503: 1.0\nmoderation_pattern: nope\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "reelflow.emulator", "--data",
                             str(tmp_path / "acct"), "--faults", str(faults_file),
                             "--rate-503", "0.0", "--fail-rate", "1", "--account-limits"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = next(w for w in proc.stdout.readline().split() if w.startswith("http://"))
        live = httpx.get(f"{url}/_emulator/faults").json()
        assert (live["rate_503"], live["fail_rate"], live["moderation_pattern"]) == (0, 1, "nope")
        assert (live["max_concurrent"], live["creates_per_minute"]) == (10, 20)
        client = lumaai.LumaAI(auth_token="t", base_url=url, max_retries=0)
        gen = client.generations.create(model="ray-2", prompt=PROMPT)
        assert wait_settled(client, gen.id).failure_reason == JOB_FAILED

        assert httpx.post(f"{url}/_emulator/faults", json={"rate_429": 1.0}).status_code == 200
        with pytest.raises(lumaai.RateLimitError):
            client.ping.check()
        assert httpx.post(f"{url}/_emulator/faults", json={"rate_429": 2}).status_code == 400
        stats = httpx.get(f"{url}/_emulator/stats").json()
        assert stats["injected"] == {"fail_rate": 1, "rate_429": 1} and stats["created"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, proc.stderr.read()


@pytest.mark.parametrize("step", ["upscale", "audio"])
def test_an_upscale_or_audio_step_beyond_the_balance_is_refused(tmp_path, step):
    cost = spec.generation_cost({"model": "ray-flash-2", "resolution": "540p"})
    with Emulator(tmp_path / "acct", credits=cost + 0.25,
                  faults=Faults(enforce_credits=True)) as emu:
        client = _client(emu)
        gen = client.generations.create(model="ray-flash-2", prompt=PROMPT, resolution="540p")
        wait_settled(client, gen.id)
        with pytest.raises(lumaai.APIStatusError) as err:
            if step == "upscale":
                client.generations.upscale(gen.id, generation_type="upscale_video",
                                           resolution="1080p")
            else:
                client.generations.audio(gen.id, generation_type="add_audio", prompt="wind")
        assert err.value.status_code == 402
        assert "Insufficient credits" in err.value.body["detail"]
        assert client.credits.get().credit_balance == pytest.approx(0.25)
        record = emu.account.record(gen.id)
        assert len(record["revisions"]) == 1 and record["cost"] == pytest.approx(cost)
        assert emu.stats()["upscaled"] == emu.stats()["audio_added"] == 0


def test_a_failed_generation_is_refunded_once(tmp_path):
    with Emulator(tmp_path / "acct", faults=Faults(fail_rate=1.0)) as emu:
        client = _client(emu)
        gen = client.generations.create(model="ray-2", prompt=PROMPT)
        cost = emu.account.record(gen.id)["cost"]
        assert client.credits.get().credit_balance == pytest.approx(
            spec.DEFAULT_CREDITS - cost)  # charged while it runs
        assert wait_settled(client, gen.id).state == "failed"
        for _ in range(3):  # every later read sees the failure; one refund
            client.generations.get(gen.id)
            client.generations.list()
        assert client.credits.get().credit_balance == pytest.approx(spec.DEFAULT_CREDITS)
        assert emu.stats()["refunded"] == pytest.approx(cost)

"""The Agents API side under faults, limits, expiry and restarts, through luma-agents."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import luma_agents
import pytest

from reelflow.emulator import Emulator, Faults
from tests.emulator.support import wait_agents

PROMPT = "A lighthouse at dusk"
CLIP_COST = 6.0  # ray-3.2 360p 5s SDR, USD cents


def _agents(emu: Emulator, retries: int = 0) -> luma_agents.Luma:
    return luma_agents.Luma(auth_token="t", base_url=emu.agents_base_url, max_retries=retries)


def _clip(client, prompt: str = PROMPT):
    return client.generations.create(prompt=prompt, model="ray-3.2",
                                     video={"resolution": "360p"})


@pytest.mark.parametrize(("faults", "code"), [
    (Faults(moderation_pattern="lighthouse"), "content_moderated"),
    (Faults(fail_rate=1.0), "generation_failed"),
    (Faults(fail_rate=1.0, fail_code="rate_limited"), "rate_limited"),
])
def test_a_failed_generation_has_its_code_and_is_refunded(tmp_path, faults, code):
    with Emulator(tmp_path / "acct", faults=faults) as emu:
        client = _agents(emu)
        created = _clip(client)
        assert emu.agents.state()["spent"] == CLIP_COST  # charged while it runs
        failed = wait_agents(client, created.id, state="failed")
        assert failed.failure_code == code and failed.failure_reason and failed.output is None
        client.generations.get(created.id)
        summary = emu.stats()["agents"]
        assert (summary["credits_spent"], summary["credits_refunded"]) == (0.0, CLIP_COST)


def test_budget_exhausted_fails_the_create_that_would_overspend_and_charges_nothing(tmp_path):
    with Emulator(tmp_path / "acct", credits=CLIP_COST + 4.5, image_long_side=64,
                  faults=Faults(enforce_credits=True)) as emu:
        client = _agents(emu)
        wait_agents(client, _clip(client, "first").id)
        second = wait_agents(client, _clip(client, "second").id, state="failed")
        assert second.failure_code == "budget_exhausted"
        assert emu.agents.state()["spent"] == CLIP_COST
        still = client.generations.create(prompt="a cheap still", model="uni-1")
        assert wait_agents(client, still.id).state == "completed"  # 4.04 fits in the rest


def test_creates_per_minute_answers_429_with_rate_limit_headers(tmp_path):
    with Emulator(tmp_path / "acct", faults=Faults(creates_per_minute=2)) as emu:
        client = _agents(emu)
        first = client.generations.with_raw_response.create(prompt="a", model="uni-1")
        assert first.headers["X-RateLimit-Limit"] == "2"
        assert first.headers["X-RateLimit-Remaining"] == "1"
        assert int(first.headers["X-RateLimit-Reset"]) > time.time()
        client.generations.create(prompt="b", model="uni-1")
        with pytest.raises(luma_agents.RateLimitError) as err:
            client.generations.create(prompt="c", model="uni-1")
        headers = err.value.response.headers
        assert headers["X-RateLimit-Remaining"] == "0" and headers["X-RateLimit-Limit"] == "2"
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert emu.agents_created_count() == 2
        assert emu.stats()["injected"] == {"limit_429": 1}


def test_injected_statuses_and_dropped_answers_hit_the_agents_routes(tmp_path):
    faults = Faults(rate_429=1.0, status_routes=["agents_create"])
    with Emulator(tmp_path / "acct", faults=faults) as emu:
        client = _agents(emu)
        with pytest.raises(luma_agents.RateLimitError) as err:
            _clip(client)
        assert "X-RateLimit-Reset" in err.value.response.headers
        assert emu.agents_created_count() == 0
        emu.set_faults(Faults(drop_after_create=1.0))
        with pytest.raises(luma_agents.APIConnectionError):
            _clip(client)
        assert emu.agents_created_count() == 1  # recorded and charged, never answered
        assert emu.agents.state()["spent"] == CLIP_COST
        with pytest.raises(luma_agents.APIConnectionError):
            _clip(_agents(emu, retries=1), "retried")  # no idempotency key: paid twice
        assert emu.agents_created_count() == 3 and emu.stats()["create_retries"] == 1
        assert emu.agents.state()["spent"] == 3 * CLIP_COST
        emu.set_faults(Faults(truncate_download_rate=1.0))
        done = wait_agents(client, _clip(client, "short").id)
        with pytest.raises(httpx.HTTPError):
            httpx.get(done.output[0].url)  # fewer bytes than Content-Length says
        emu.set_faults(Faults(drop_before_create=1.0))
        with pytest.raises(luma_agents.APIConnectionError):
            _clip(client)
        assert emu.agents_created_count() == 4


def test_output_urls_expire_and_a_fresh_get_signs_a_new_one(tmp_path):
    with Emulator(tmp_path / "acct", output_url_ttl=1.0, image_long_side=64) as emu:
        client = _agents(emu)
        done = wait_agents(client, client.generations.create(prompt="x", model="uni-1").id)
        url = done.output[0].url
        assert httpx.get(url).status_code == 200
        assert httpx.get(url.replace("signature=", "signature=0")).status_code == 403
        expires = int(url.split("expires=")[1].split("&")[0])
        time.sleep(max(0.0, expires + 0.1 - time.time()))
        expired = httpx.get(url)
        assert expired.status_code == 403 and "expired" in expired.text
        assert httpx.get(client.generations.get(done.id).output[0].url).status_code == 200


def test_a_generation_survives_a_restart_and_keeps_its_latency(tmp_path):
    data = tmp_path / "acct"
    with Emulator(data, latency=1.5, image_long_side=64) as first:
        created = _agents(first).generations.create(prompt="survivor", model="uni-1")
        started = time.monotonic()
    with Emulator(data, latency=0.0) as second:
        client = _agents(second)
        assert client.generations.get(created.id).state in ("queued", "processing")
        time.sleep(max(0.0, started + 1.6 - time.monotonic()))
        done = wait_agents(client, created.id)
        assert done.output[0].url.startswith(second.agents_base_url)
        assert httpx.get(done.output[0].url).status_code == 200
        assert second.agents_created_count() == 1


def test_files_expire_delete_and_page_by_cursor(agents, emu):
    soon = datetime.now(timezone.utc) + timedelta(seconds=5)  # still live while listed, loaded or not
    short = agents.files.create(mime_type="image/png", size_bytes=3, expires_at=soon)
    ids = [agents.files.create(mime_type="image/png", size_bytes=3).id for _ in range(4)]
    agents.files.delete(ids[0])
    assert agents.files.get(ids[0]).state == "deleted"
    seen, cursor = [], None
    while True:
        page = agents.files.list(limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [f.id for f in page.data]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == [*reversed(ids[1:]), short.id]  # newest first, deleted left out
    assert [f.id for f in agents.files.list(state="deleted").data] == [ids[0]]
    time.sleep(max(0.0, (soon - datetime.now(timezone.utc)).total_seconds() + 0.2))
    assert agents.files.get(short.id).state == "deleted"
    with pytest.raises(luma_agents.NotFoundError):
        agents.files.get("182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e")
    with pytest.raises(luma_agents.NotFoundError):
        agents.generations.get("182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e")


def test_hdr_where_the_account_allows_it(tmp_path):
    with Emulator(tmp_path / "acct", hdr_access=False) as emu:
        with pytest.raises(luma_agents.PermissionDeniedError, match="HDR access"):
            _agents(emu).generations.create(prompt=PROMPT, model="ray-3.2",
                                            video={"resolution": "720p", "hdr": True})
        assert emu.agents_created_count() == 0
    with Emulator(tmp_path / "acct") as emu:
        created = _agents(emu).generations.create(prompt=PROMPT, model="ray-3.2",
                                                  video={"resolution": "720p", "hdr": True,
                                                         "exr_export": True})
        assert emu.agents.record(created.id)["cost"] == 90.0  # Luma: 720p HDR + EXR 5s $0.90


def test_concurrent_jobs_beyond_the_limit_answer_429(tmp_path):
    with Emulator(tmp_path / "acct", latency=60, faults=Faults(max_concurrent=1)) as emu:
        client = _agents(emu)
        client.generations.create(prompt="a", model="uni-1")
        with pytest.raises(luma_agents.RateLimitError) as err:
            client.generations.create(prompt="b", model="uni-1")
        assert 50 <= int(err.value.response.headers["Retry-After"]) <= 60
        assert emu.agents_created_count() == 1


def test_a_render_that_breaks_fails_the_generation_and_refunds_it(tmp_path):
    import base64

    broken_png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"not an image" * 8).decode()
    with Emulator(tmp_path / "acct", image_long_side=64) as emu:
        client = _agents(emu)
        created = client.generations.create(
            prompt="a", model="uni-1", image_ref=[{"data": broken_png,
                                                   "media_type": "image/png"}])
        failed = wait_agents(client, created.id, state="failed")
        assert failed.failure_code == "generation_failed"
        assert emu.agents.state()["spent"] == 0.0


@pytest.mark.parametrize(("ref", "code"), [
    ({"data": "aGVsbG8gd29ybGQ=", "media_type": "image/png"}, "unsupported_format"),
    ({"data": "not base64!", "media_type": "image/png"}, "corrupt_input"),
    ({"url": "{base}/v1/outputs/nothing-here.png"}, "corrupt_input"),
])
def test_inputs_that_cannot_be_read_fail_with_their_code(agents, emu, ref, code):
    ref = {k: v.format(base=emu.base_url) for k, v in ref.items()}
    created = agents.generations.create(prompt="p", model="ray-3.2",
                                        video={"resolution": "360p", "start_frame": ref})
    failed = agents.generations.get(created.id)  # known at ingest: failed at once
    assert (failed.state, failed.failure_code) == ("failed", code)
    assert emu.agents.state()["spent"] == 0.0

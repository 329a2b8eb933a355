"""The emulator through the unmodified lumaai SDK: routes, shapes, clips, errors, credits."""

from __future__ import annotations

from datetime import timedelta, timezone

import av
import httpx
import lumaai
import pytest

from reelflow.emulator import Emulator, spec
from tests.emulator.support import download, probe, wait_completed


@pytest.mark.parametrize(("model", "aspect", "resolution", "duration", "size", "frames"), [
    ("ray-2", "16:9", "540p", "5s", (960, 540), 120),
    ("ray-flash-2", "9:16", "540p", "9s", (540, 960), 216),
])
def test_create_wait_download_a_real_clip(client, emu, tmp_path, model, aspect, resolution,
                                          duration, size, frames):
    created = client.generations.create(model=model, prompt="A red fox in fresh snow",
                                        aspect_ratio=aspect, resolution=resolution,
                                        duration=duration)
    assert created.state == "queued"
    assert created.generation_type == "video" and created.model == model
    assert created.created_at.utcoffset() == timedelta(0)
    assert created.request.generation_type == "video"  # added although the SDK never sent it
    assert (created.request.prompt, created.request.resolution) == ("A red fox in fresh snow",
                                                                    resolution)
    assert created.assets.video is None

    done = wait_completed(client, created.id)
    assert done.id == created.id and done.failure_reason is None
    assert done.assets.video.startswith(emu.base_url + "/assets/")
    facts = probe(download(done.assets.video, tmp_path / "clip.mp4"))
    assert facts == {"codec": "h264", "width": size[0], "height": size[1], "fps": 24,
                     "pix_fmt": "yuv420p", "audio_streams": 0, "frames": frames}
    with av.open(str(download(done.assets.image, tmp_path / "thumb.jpg"))) as thumb:
        assert (thumb.streams.video[0].width, thumb.streams.video[0].height) == size
    assert emu.created_count() == 1


def test_size_table_is_even_and_matches_luma_for_16_9():
    assert [spec.SIZES[("16:9", r)] for r in spec.RESOLUTIONS] == [
        (960, 540), (1280, 720), (1920, 1080), (3840, 2160)]
    assert spec.SIZES[("1:1", "720p")] == (720, 720)
    assert spec.SIZES[("21:9", "720p")] == (1680, 720)
    assert spec.SIZES[("3:4", "720p")] == (720, 960)
    assert all(w % 2 == 0 and h % 2 == 0 for w, h in spec.SIZES.values())
    assert len(spec.SIZES) == len(spec.ASPECT_RATIOS) * len(spec.RESOLUTIONS)


def test_same_request_same_bytes_other_prompt_other_pixels(client, tmp_path):
    def render(prompt: str, name: str):
        gen = client.generations.create(model="ray-flash-2", prompt=prompt, resolution="540p")
        done = wait_completed(client, gen.id)
        return download(done.assets.video, tmp_path / name).read_bytes(), gen.id

    first, first_id = render("Waves on a black sand beach", "a.mp4")
    again, again_id = render("Waves on a black sand beach", "b.mp4")
    other, _ = render("A neon city street at night", "c.mp4")
    assert first_id != again_id
    assert first == again
    assert other != first
    lumas = []
    for name in ("a.mp4", "c.mp4"):
        with av.open(str(tmp_path / name)) as container:
            lumas.append(bytes(next(container.decode(video=0)).planes[0]))
    differing = sum(1 for a, b in zip(*lumas) if abs(a - b) > 8)
    assert differing > 0.5 * len(lumas[0])  # visibly different: another background colour


def test_list_is_newest_first_with_paging(tmp_path):
    # A long latency: nothing renders, so the list is cheap and every state is "queued".
    with Emulator(tmp_path / "acct", latency=600) as emu:
        client = lumaai.LumaAI(auth_token="test", base_url=emu.base_url, max_retries=0)
        ids = [client.generations.create(model="ray-2", prompt=f"shot number {i}").id
               for i in range(5)]
        page = client.generations.list(limit=2, offset=0)
        assert [g.id for g in page.generations] == ids[::-1][:2]
        assert (page.count, page.has_more, page.limit, page.offset) == (5, True, 2, 0)
        assert page.generations[0].state == "queued"
        assert page.generations[0].request.prompt == "shot number 4"
        last = client.generations.list(limit=2, offset=4)
        assert [g.id for g in last.generations] == [ids[0]]
        assert (last.count, last.has_more) == (5, False)
        everything = client.generations.list(limit=100)
        assert [g.id for g in everything.generations] == ids[::-1]
        with pytest.raises(lumaai.BadRequestError):
            client.generations.list(limit=0)


def test_delete_then_404(client, emu):
    gen = client.generations.create(model="ray-2", prompt="to be deleted", resolution="540p")
    done = wait_completed(client, gen.id)
    assert httpx.get(done.assets.video).status_code == 200
    assert client.generations.delete(gen.id) is None
    with pytest.raises(lumaai.NotFoundError):
        client.generations.get(gen.id)
    with pytest.raises(lumaai.NotFoundError):
        client.generations.delete(gen.id)
    assert httpx.get(done.assets.video).status_code == 404
    assert client.generations.list().count == 0
    assert emu.created_count() == 1  # deleting does not undo the spend


def test_unknown_ids_are_404_json(client, emu):
    with pytest.raises(lumaai.NotFoundError) as err:
        client.generations.get("0b7a7c0e-1111-4222-8333-944455556666")
    assert "not found" in err.value.body["detail"]
    with pytest.raises(lumaai.NotFoundError):
        client.generations.get("../../state")
    response = httpx.get(f"{emu.base_url}/assets/0b7a7c0e-1111-4222-8333-944455556666.mp4")
    assert response.status_code == 404


_KEYFRAME_FRAME1 = {"frame1": {"type": "image", "url": "https://example.com/end.jpg"}}


@pytest.mark.parametrize(("fields", "mentions"), [
    ({"model": "ray-3"}, "model"),
    ({"aspect_ratio": "2:1"}, "aspect_ratio"),
    ({"resolution": "2k"}, "resolution"),
    ({"duration": "7s"}, "duration"),
    ({"prompt": "ab"}, "prompt"),
    ({"prompt": "x" * 5001}, "prompt"),
    ({"loop": True, "keyframes": _KEYFRAME_FRAME1}, "loop"),
    ({"concepts": [{"key": "dolly_zoom"}, {"key": "barrel_roll"}]}, "concepts[1]"),
    ({"keyframes": {"frame0": {"url": "https://example.com/a.jpg"}}}, "keyframes.frame0"),
    ({"keyframes": {"frame0": {"type": "image"}}}, "keyframes.frame0.url"),
    ({"keyframes": {"frame2": {"type": "image", "url": "https://x/y.jpg"}}}, "frame2"),
    ({"keyframes": {"frame0": {"type": "generation",
                               "id": "0b7a7c0e-1111-4222-8333-944455556666"}}}, "not found"),
])
def test_invalid_requests_are_400_and_cost_nothing(client, emu, fields, mentions):
    body = {"model": "ray-2", "prompt": "A valid prompt", **fields}
    with pytest.raises(lumaai.BadRequestError) as err:
        client.generations.create(**body)
    assert mentions in err.value.body["detail"]
    assert emu.created_count() == 0
    assert client.credits.get().credit_balance == spec.DEFAULT_CREDITS


def test_generation_type_is_optional_and_both_create_paths_work(emu):
    headers = {"Authorization": "Bearer test"}
    for path in ("/generations/video", "/generations", "/dream-machine/v1/generations/video"):
        response = httpx.post(emu.base_url + path, headers=headers,
                              json={"model": "ray-2", "prompt": "no generation_type here"})
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["request"]["generation_type"] == "video"
    response = httpx.post(emu.base_url + "/generations", headers=headers,
                          json={"model": "photon-1", "prompt": "an image",
                                "generation_type": "image"})
    assert response.status_code == 400
    assert "not supported by the emulator yet" in response.json()["detail"]
    assert emu.created_count() == 3


def test_missing_token_is_401_json(emu):
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
        response = httpx.get(emu.base_url + "/ping", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"
        assert response.json()["detail"]
    assert httpx.get(emu.base_url + "/ping", headers={"Authorization": "Bearer x"}).json() == {
        "message": "pong"}


def test_credits_decrease_by_the_priced_cost(client):
    before = client.credits.get().credit_balance
    client.generations.create(model="ray-2", prompt="priced shot", resolution="720p")
    client.generations.create(model="ray-flash-2", prompt="cheaper shot", resolution="720p",
                              duration="9s")
    after = client.credits.get().credit_balance
    ray2 = spec.generation_cost({"model": "ray-2", "resolution": "720p"})
    flash9 = spec.generation_cost({"model": "ray-flash-2", "resolution": "720p", "duration": "9s"})
    assert ray2 == pytest.approx(70.78)  # 110.6 Mpx at $0.0064: the reseller's ~$0.71
    assert before - after == pytest.approx(ray2 + flash9)


def test_ping_concepts_and_prefixed_base_url(emu):
    client = lumaai.LumaAI(auth_token="t", base_url=emu.base_url + "/dream-machine/v1")
    assert client.ping.check().message == "pong"
    concepts = client.generations.concepts.list()
    assert len(concepts) == 34 and "dolly_zoom" in concepts and "eye_level" in concepts
    gen = client.generations.create(model="ray-2", prompt="prefixed", resolution="540p",
                                    concepts=[{"key": "orbit_left"}])
    assert client.generations.get(gen.id).request.concepts[0].key == "orbit_left"


def test_upscale_and_audio_act_in_place(client, emu, tmp_path):
    gen = client.generations.create(model="ray-flash-2", prompt="upscale me", resolution="540p")
    first = wait_completed(client, gen.id)
    upscaled = client.generations.upscale(gen.id, resolution="720p")
    assert upscaled.id == gen.id and upscaled.state == "dreaming"
    done = wait_completed(client, gen.id)
    assert done.assets.video != first.assets.video
    facts = probe(download(done.assets.video, tmp_path / "up.mp4"))
    assert (facts["width"], facts["height"], facts["frames"]) == (1280, 720, 120)
    with pytest.raises(lumaai.BadRequestError):
        client.generations.upscale(gen.id, resolution="540p")  # not above the current size

    client.generations.audio(gen.id, prompt="soft wind")
    with_audio = wait_completed(client, gen.id)
    facts = probe(download(with_audio.assets.video, tmp_path / "audio.mp4"))
    assert (facts["width"], facts["audio_streams"], facts["frames"]) == (1280, 1, 120)
    assert client.generations.list().count == 1  # in place: no new entry
    stats = httpx.get(emu.base_url + "/_emulator/stats").json()
    assert (stats["created"], stats["upscaled"], stats["audio_added"]) == (1, 1, 1)


def test_created_at_is_utc_iso(emu):
    response = httpx.post(emu.base_url + "/generations/video",
                          headers={"Authorization": "Bearer t"},
                          json={"model": "ray-2", "prompt": "timestamp", "resolution": "540p"})
    created_at = response.json()["created_at"]
    assert created_at.endswith("Z") and "T" in created_at
    client = lumaai.LumaAI(auth_token="t", base_url=emu.base_url)
    assert client.generations.get(response.json()["id"]).created_at.tzinfo is not None
    assert client.generations.get(response.json()["id"]).created_at.astimezone(
        timezone.utc).utcoffset() == timedelta(0)


def test_asset_fetch_renders_a_due_clip_and_honours_ranges(emu):
    response = httpx.post(emu.base_url + "/generations/video",
                          headers={"Authorization": "Bearer t"},
                          json={"model": "ray-flash-2", "prompt": "fetched first",
                                "resolution": "540p"})
    url = f"{emu.base_url}/assets/{response.json()['id']}.mp4"  # before any GET
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.content[4:8] == b"ftyp"
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    tail = httpx.get(url, headers={"Range": "bytes=-10"})
    assert tail.content == whole.content[-10:]
    assert httpx.head(url).headers["content-length"] == str(len(whole.content))

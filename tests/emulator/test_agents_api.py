"""The emulator's Agents API through the unmodified luma-agents SDK: ray-3.2, uni-1, Files."""

from __future__ import annotations

import av
import httpx
import luma_agents
import pytest

from tests.emulator.support import download, probe, wait_agents


@pytest.mark.parametrize(("aspect", "resolution", "duration", "size", "frames"), [
    ("16:9", "360p", "5s", (640, 360), 120),
    ("9:16", "540p", "10s", (540, 960), 240),
])
def test_ray_3_2_text_to_video_is_a_real_clip(agents, emu, tmp_path, aspect, resolution,
                                              duration, size, frames):
    created = agents.generations.create(prompt="A red fox in fresh snow", model="ray-3.2",
                                        aspect_ratio=aspect,
                                        video={"resolution": resolution, "duration": duration})
    assert (created.state, created.type, created.model) == ("queued", "video", "ray-3.2")
    assert created.output is None
    done = wait_agents(agents, created.id)
    assert [o.type for o in done.output] == ["video"]
    assert done.output[0].url.startswith(emu.agents_base_url + "/outputs/")
    facts = probe(download(done.output[0].url, tmp_path / "clip.mp4"))
    assert facts == {"codec": "h264", "width": size[0], "height": size[1], "fps": 24,
                     "pix_fmt": "yuv420p", "audio_streams": 0, "frames": frames}
    assert emu.agents_created_count() == 1 and emu.created_count() == 0


@pytest.mark.parametrize(("fmt", "codec"), [("png", "png"), ("jpeg", "mjpeg")])
def test_uni_1_still_is_a_real_image(agents, tmp_path, fmt, codec):
    created = agents.generations.create(prompt="A portrait of a fox", model="uni-1",
                                        aspect_ratio="16:9", output_format=fmt)
    assert created.type == "image"
    done = wait_agents(agents, created.id)
    with av.open(str(download(done.output[0].url, tmp_path / "still"))) as still:
        stream = still.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == (codec, 256, 144)


def _png(agents) -> bytes:
    still = wait_agents(agents, agents.generations.create(prompt="a key frame").id)
    return httpx.get(still.output[0].url).content


def test_presigned_upload_then_complete_makes_a_ready_file(agents):
    data = _png(agents)
    created = agents.files.create(mime_type="image/png", size_bytes=len(data),
                                  purpose="reference", filename="key.png")
    assert created.state == "pending" and created.upload.method == "PUT"
    assert httpx.put(created.upload.url, content=data,
                     headers=created.upload.headers).status_code == 200
    ready = agents.files.complete(created.id)
    assert (ready.state, ready.size_bytes, ready.filename) == ("ready", len(data), "key.png")
    assert agents.files.get(created.id).state == "ready"
    listed = agents.files.list(purpose="reference")
    assert [f.id for f in listed.data] == [created.id] and not listed.has_more


def test_multipart_upload_is_ingested_inline(agents, emu):
    data = _png(agents)
    answer = httpx.post(f"{emu.agents_base_url}/files", headers={"Authorization": "Bearer t"},
                        files={"file": ("k.png", data, "image/png")},
                        data={"purpose": "input"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["state"] == "pending" and answer.json()["upload"] is None
    assert agents.files.get(answer.json()["id"]).state == "ready"


def test_a_file_whose_bytes_lie_about_their_type_fails_ingest(agents):
    created = agents.files.create(mime_type="image/png", size_bytes=5)
    httpx.put(created.upload.url, content=b"hello", headers=created.upload.headers)
    failed = agents.files.complete(created.id)
    assert failed.state == "failed" and "image/png" in failed.failure_reason


def test_start_frame_from_a_ready_file_shows_that_image_first(agents, tmp_path):
    data = _png(agents)
    created = agents.files.create(mime_type="image/png", size_bytes=len(data))
    httpx.put(created.upload.url, content=data, headers=created.upload.headers)
    agents.files.complete(created.id)
    clip = wait_agents(agents, agents.generations.create(
        prompt="it moves", model="ray-3.2",
        video={"resolution": "360p", "start_frame": {"file_id": created.id}}).id)
    assert probe(download(clip.output[0].url, tmp_path / "c.mp4"))["frames"] == 120


def test_a_pending_file_cannot_be_referenced(agents):
    created = agents.files.create(mime_type="image/png", size_bytes=10)
    with pytest.raises(luma_agents.BadRequestError, match="not ready"):
        agents.generations.create(prompt="x", model="ray-3.2",
                                  video={"start_frame": {"file_id": created.id}})


def test_ray_3_2_and_ray_2_look_like_two_models(client, agents, tmp_path):
    """Same prompt, same size on both APIs: ray-2 is a flat field with boxes, ray-3.2
    smooth gradients, so a side-by-side shows which model made which clip."""
    import numpy as np

    from tests.emulator.support import wait_completed

    prompt = "A red fox in fresh snow"
    ray2 = wait_completed(client, client.generations.create(
        model="ray-2", prompt=prompt, resolution="540p").id)
    ray32 = wait_agents(agents, agents.generations.create(
        prompt=prompt, model="ray-3.2", video={"resolution": "540p"}).id)
    frames = []
    for name, url in (("r2", ray2.assets.video), ("r32", ray32.output[0].url)):
        clip = download(url, tmp_path / f"{name}.mp4")
        assert probe(clip)["width"] == 960
        with av.open(str(clip)) as container:
            frames.append(next(container.decode(video=0)).to_ndarray(format="rgb24"))

    def flat_share(frame) -> float:  # the share of pixels in the most common colour
        _, counts = np.unique(frame.reshape(-1, 3) // 8, axis=0, return_counts=True)
        return counts.max() / counts.sum()

    assert flat_share(frames[0]) > 0.5 > 0.2 > flat_share(frames[1])


def test_sizes_follow_the_resolution_aspect_and_image_tables():
    from reelflow.emulator import agents_spec as aspec

    assert [aspec.video_size("16:9", r) for r in aspec.RESOLUTIONS] == [
        (640, 360), (960, 540), (1280, 720), (1920, 1080)]
    assert aspec.video_size("9:16", "1080p") == (1080, 1920)
    assert aspec.video_size("21:9", "720p") == (1680, 720)
    assert aspec.image_size("1:1", 2048) == (2048, 2048)
    assert aspec.image_size("16:9", 2048) == (2048, 1152)
    assert aspec.image_size("1:3", 2048) == (682, 2048)
    assert all(w % 2 == 0 and h % 2 == 0 for a in aspec.ASPECTS
               for w, h in [aspec.image_size(a, 2048)])


def test_a_generated_still_starts_a_clip_by_generation_id(agents, tmp_path):
    still = wait_agents(agents, agents.generations.create(prompt="storyboard", model="uni-1",
                                                          aspect_ratio="16:9").id)
    clip = wait_agents(agents, agents.generations.create(
        prompt="moves", model="ray-3.2",
        video={"resolution": "360p", "start_frame": {"generation_id": still.id}}).id)
    assert probe(download(clip.output[0].url, tmp_path / "c.mp4"))["frames"] == 120

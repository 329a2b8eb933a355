"""Every combination the Agents API refuses is refused by the emulator: 400/422 naming the field."""

from __future__ import annotations

import httpx
import luma_agents
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelflow import pricing
from reelflow.emulator import agents_spec as aspec

URL = {"url": "https://example.com/a.png"}
GEN = {"generation_id": "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"}


def _video(**video):
    return {"prompt": "p", "model": "ray-3.2", "type": "video", "video": video}


REFUSED = [
    # (request, status, the field the answer names)
    ({"model": "ray-3.2"}, 422, "prompt: field required"),
    (_video(resolution="4k"), 422, "video.resolution"),
    (_video(duration="9s"), 422, "video.duration"),
    ({**_video(), "aspect_ratio": "5:4"}, 422, "aspect_ratio"),
    ({**_video(), "model": "ray-2"}, 422, "model"),
    (_video(duration="10s", start_frame=URL), 400, "video.duration: 10s"),
    (_video(duration="10s", end_frame=URL), 400, "video.duration: 10s"),
    (_video(duration="10s", loop=True), 400, "video.loop: not supported with duration 10s"),
    (_video(resolution="720p", hdr=True, loop=True), 400, "video.loop: not supported with hdr"),
    (_video(resolution="540p", hdr=True), 400, "video.hdr: needs resolution 720p"),
    (_video(resolution="360p", hdr=True), 400, "video.hdr: needs resolution 720p"),
    (_video(resolution="720p", exr_export=True), 400, "video.exr_export: requires hdr"),
    (_video(resolution="1080p", hdr=True, duration="10s"), 400, "video.hdr: 5s only"),
    (_video(resolution="720p", hdr=True, start_frame=GEN), 400, "is SDR only"),
    (_video(keyframes=[URL], keyframe_indexes=[0], start_frame=URL), 400,
     "video.keyframes: not with start_frame"),
    (_video(keyframes=[URL], keyframe_indexes=[0], end_frame=URL), 400,
     "video.keyframes: not with end_frame"),
    (_video(keyframes=[URL], keyframe_indexes=[0], loop=True), 400,
     "video.keyframes: not with loop"),
    (_video(keyframes=[URL], keyframe_indexes=[121]), 400,
     "video.keyframe_indexes: 121 is off the frame grid (0..120)"),
    (_video(duration="10s", keyframes=[URL], keyframe_indexes=[241]), 400, "(0..240)"),
    (_video(keyframes=[URL, URL], keyframe_indexes=[3]), 400, "must match"),
    (_video(keyframes=[URL, URL], keyframe_indexes=[3, 3]), 400, "must be unique"),
    (_video(keyframes=[URL] * 65, keyframe_indexes=list(range(65))), 400, "1 to 64"),
    (_video(keyframe_indexes=[0]), 400, "video.keyframes: 1 to 64 anchors (got 0)"),
    (_video(loop=True, end_frame=URL), 400, "video.loop: not supported with end_frame"),
    ({**_video(), "aspect_ratio": "3:1"}, 400, "aspect_ratio: 3:1 is not one of ray-3.2's"),
    ({**_video(), "model": "uni-1"}, 400, "model: uni-1 cannot make type video"),
    ({"prompt": "p", "model": "ray-3.2", "type": "image"}, 400, "model: ray-3.2 cannot"),
    ({"prompt": "p", "type": "image", "video": {"resolution": "720p"}}, 400,
     "video: not valid for type image"),
    ({"prompt": "p", "type": "video_edit", "model": "ray-3.2"}, 400, "source: required"),
    ({"prompt": "p", "type": "video_reframe", "model": "ray-3.2", "source": GEN}, 400,
     "aspect_ratio: required for video_reframe"),
    ({"prompt": "p", "type": "video_reframe", "model": "ray-3.2", "source": GEN,
      "aspect_ratio": "9:16", "video": {"resolution": "720p", "hdr": True}}, 400,
     "video.hdr: not supported for video_reframe"),
    ({**_video(edit={"strength": "flex_1"})}, 400, "video.edit: only valid for type video_edit"),
    ({"prompt": "p", "type": "video_edit", "model": "ray-3.2", "source": GEN,
      "video": {"edit": {"strength": "wild"}}}, 422, "video.edit.strength"),
    ({"prompt": "p", "type": "video_edit", "model": "ray-3.2", "source": GEN,
      "video": {"start_frame": URL}}, 400, "video.start_frame: only valid for type video"),
    (_video(start_frame={"url": "https://x/a.png", "file_id": GEN["generation_id"]}), 400,
     "video.start_frame: exactly one of url, data, generation_id, file_id"),
    (_video(start_frame={"data": "AAAA"}), 400, "video.start_frame.media_type: required"),
    ({"prompt": "p", "image_ref": [URL] * 10}, 400, "image_ref: at most 9"),
    ({**_video(), "image_ref": [URL]}, 400, "image_ref: not valid for type video"),
    ({"prompt": "p", "type": "image", "source": URL}, 400, "source: not valid for type image"),
    ({"prompt": "p", "model": "uni-1-max", "type": "layering", "source": URL}, 400,
     "model: layering is uni-1 only"),
    (_video(start_frame=GEN), 400, "video.start_frame.generation_id: generation"),
    (_video(start_frame={"file_id": GEN["generation_id"]}), 400, "not found"),
]


@pytest.mark.parametrize(("body", "status", "field"), REFUSED,
                         ids=[f"{i}-{r[2][:40]}" for i, r in enumerate(REFUSED)])
def test_refused_combination_names_the_field(emu, body, status, field):
    answer = httpx.post(f"{emu.agents_base_url}/generations", json=body,
                        headers={"Authorization": "Bearer t"})
    assert answer.status_code == status, answer.text
    assert field in answer.json()["detail"]
    assert emu.agents_created_count() == 0


def test_the_sdk_maps_refusals_to_its_errors(agents, emu):
    with pytest.raises(luma_agents.BadRequestError, match="video.hdr"):
        agents.generations.create(prompt="p", model="ray-3.2", video={"hdr": True,
                                                                       "resolution": "360p"})
    with pytest.raises(luma_agents.UnprocessableEntityError, match="video.resolution"):
        agents.generations.create(prompt="p", model="ray-3.2", video={"resolution": "8k"})
    assert emu.agents_created_count() == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(duration=st.sampled_from(["5s", "10s"]),
       indexes=st.lists(st.integers(-5, 250), min_size=1, max_size=8))
def test_keyframe_indexes_on_the_grid_pass_and_off_it_are_refused(duration, indexes):
    body = _video(duration=duration, resolution="360p", keyframes=[URL] * len(indexes),
                  keyframe_indexes=indexes)
    grid = aspec.DURATION_FRAMES[duration]
    on_grid = all(0 <= i <= grid for i in indexes) and len(set(indexes)) == len(indexes)
    if on_grid:
        assert aspec.validate(body)["video"]["keyframe_indexes"] == indexes
    else:
        with pytest.raises(aspec.AgentsInvalid) as err:
            aspec.validate(body)
        assert err.value.status == 400
        assert all(p.startswith("video.keyframe_indexes") for p in err.value.problems)


@settings(max_examples=80, deadline=None)
@given(resolution=st.sampled_from(aspec.RESOLUTIONS), duration=st.sampled_from(["5s", "10s"]),
       hdr=st.booleans(), exr=st.booleans(), loop=st.booleans(), start=st.booleans())
def test_video_option_rules_match_the_documented_table(resolution, duration, hdr, exr,
                                                       loop, start):
    video = {"resolution": resolution, "duration": duration, "hdr": hdr, "exr_export": exr,
             "loop": loop}
    if start:
        video["start_frame"] = URL
    refused = ((hdr and (resolution in ("360p", "540p") or duration == "10s")) or
               (exr and not hdr) or
               (loop and (duration == "10s" or hdr)) or (duration == "10s" and start))
    try:
        request = aspec.validate(_video(**video))
    except aspec.AgentsInvalid as err:
        assert refused and err.status == 400, err.problems
    else:
        assert not refused
        cost = aspec.generation_cost(request)
        dynamic = "hdr+exr" if exr else "hdr" if hdr else "sdr"
        key = f"ray-3.2:video:{resolution}:{dynamic}" + (":10s" if duration == "10s" else "")
        assert cost == round(pricing.RAY32_USD[key] * 100, 2)  # Luma's cell, in cents


def test_defaults_a_create_with_only_a_prompt_is_a_uni_1_image(agents):
    created = agents.generations.create(prompt="only a prompt")
    assert (created.model, created.type) == ("uni-1", "image")
    request = aspec.normalize({"prompt": "p", "model": "ray-3.2"})
    assert request["type"] == "video" and request["video"] == {"resolution": "720p",
                                                               "duration": "5s"}

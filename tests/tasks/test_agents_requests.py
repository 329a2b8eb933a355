"""ray-3.2 requests: what reaches the Agents API, cache keys, prices and the keyframe grid."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelflow.pricing import image_cost, ray32_cost
from reelflow.tasks._agents import payload
from reelflow.tasks.models import GenerationRequest, Keyframe, PinnedKeyframe
from tests.helpers import write_shotlist

URL = "https://example.com/still.png"


def test_payload_refers_to_urls_files_and_generations():
    local = Keyframe(kind="image", path=Path("/x/a.png"), sha256="a" * 64)
    chained = Keyframe(kind="generation", upstream_key="k", upstream_shot="m", generation_id="g1")
    request = GenerationRequest(model="ray-3.2", prompt="A kite", resolution="720p", hdr=True,
                                exr=True, frame0=Keyframe(kind="image", url=URL), frame1=chained)
    kwargs = payload(request, {})
    assert kwargs == {"model": "ray-3.2", "prompt": "A kite", "type": "video",
                      "aspect_ratio": "16:9",
                      "video": {"resolution": "720p", "duration": "5s", "hdr": True,
                                "exr_export": True, "start_frame": {"url": URL},
                                "end_frame": {"generation_id": "g1"}}}
    pinned = request.model_copy(update={"frame0": None, "frame1": None, "hdr": False, "exr": False,
                                        "keyframes": (PinnedKeyframe(index=0, frame=local),
                                                      PinnedKeyframe(index=60, frame=local))})
    video = payload(pinned, {local: {"file_id": "f1"}})["video"]
    assert video["keyframes"] == [{"file_id": "f1"}] * 2 and video["keyframe_indexes"] == [0, 60]


def test_edit_and_reframe_payloads_carry_their_source():
    clip = Keyframe(kind="video", path=Path("/x/clip.mp4"), sha256="c" * 64)
    edit = GenerationRequest(model="ray-3.2", prompt="Winter", resolution="540p", duration="3s",
                             edit=clip, strength="flex_2")
    kwargs = payload(edit, {clip: {"file_id": "f9"}})
    assert kwargs["type"] == "video_edit" and "aspect_ratio" not in kwargs
    assert kwargs["source"] == {"file_id": "f9", "media_type": "video/mp4"}
    assert kwargs["video"] == {"resolution": "540p", "edit": {"strength": "flex_2"}}
    master = Keyframe(kind="generation", upstream_key="k", upstream_shot="m", generation_id="g2")
    reframe = GenerationRequest(model="ray-3.2", prompt="Sea", aspect_ratio="9:16", reframe=master)
    kwargs = payload(reframe, {})
    assert (kwargs["type"], kwargs["aspect_ratio"], kwargs["source"]) == \
        ("video_reframe", "9:16", {"generation_id": "g2"})


def test_dream_machine_keys_are_unchanged_by_the_new_fields():
    """Keys made before ray-3.2 existed stay the same: nothing paid is paid again."""
    request = GenerationRequest(model="ray-2", prompt="A red kite", resolution="540p", loop=True,
                                concepts=("zoom_in",), take=2,
                                frame0=Keyframe(kind="image", url="https://x/y.png"),
                                upscale="4k", audio="wind")
    assert request.cache_key() == "0e6cecb70018447c6ec8f498c67d545fdec13f927a4e459e1935f74219f307db"
    assert request.step_key("audio") == \
        "75ac98eae607f46ac5886f5037f621217534361169b009f06ccac6bec4f38b3c"
    assert GenerationRequest(model="ray-flash-2", prompt="A red kite").cache_key() == \
        "c6193cc34c6df9b67cf2837b4201766c9d5c4b86fb16840c4df0a54fb5821a27"


def test_every_ray32_option_changes_the_key():
    base = GenerationRequest(model="ray-3.2", prompt="A kite", resolution="720p")
    variants = [base.model_copy(update=u) for u in (
        {"hdr": True}, {"exr": True}, {"strength": "flex_1"}, {"duration": "10s"},
        {"keyframes": (PinnedKeyframe(index=0, frame=Keyframe(kind="image", url=URL)),)},
        {"keyframes": (PinnedKeyframe(index=1, frame=Keyframe(kind="image", url=URL)),)})]
    keys = {base.cache_key(), *(v.cache_key() for v in variants)}
    assert len(keys) == len(variants) + 1


# Luma's published cells (https://docs.agents.lumalabs.ai/guides/pricing/, see reelflow.pricing).
@pytest.mark.parametrize("kind,resolution,seconds,hdr,exr,usd", [
    ("video", "360p", 5, False, False, 0.06), ("video", "720p", 10, False, False, 0.90),
    ("video", "1080p", 10, False, False, 3.60), ("video", "1080p", 5, True, False, 2.40),
    ("video", "1080p", 5, True, True, 3.60), ("extend", "720p", 5, False, False, 0.30),
    ("edit", "720p", 5, False, False, 1.08), ("edit", "720p", 7.5, False, False, 2.16),
    ("edit", "1080p", 10, True, True, 12.96), ("edit", "540p", 15, False, False, 2.16),
    ("reframe", "720p", 5, False, False, 0.60), ("reframe", "1080p", 4.2, False, False, 1.80),
])
def test_ray32_prices_are_lumas_cells(kind, resolution, seconds, hdr, exr, usd):
    assert ray32_cost(kind, resolution, seconds, hdr=hdr, exr=exr) == usd


def test_prices_are_overridable(monkeypatch):
    monkeypatch.setenv("REELFLOW_PRICES", '{"ray-3.2:video:360p:sdr:10s": 0.5, "uni-1": 0.05}')
    assert ray32_cost("video", "360p", 10) == 0.5
    assert ray32_cost("video", "360p", 5) == 0.06
    assert image_cost("uni-1", references=2) == 0.056
    assert image_cost("uni-1-max") == 0.1


@settings(max_examples=60, deadline=None)
@given(ats=st.lists(st.floats(min_value=0, max_value=12, allow_nan=False), min_size=1,
                    max_size=6),
       ten=st.booleans())
def test_keyframes_land_on_the_grid_or_are_refused(tmp_path_factory, ats, ten):
    """Any pinned moment maps to frame round(at x 24); one after the clip's end, or two on
    one frame, is refused naming keyframes[i].at, before anything is spent."""
    from reelflow.errors import ShotListError
    from reelflow.flows.plan import make_plan
    from reelflow.flows.shotlist import load_shotlist

    duration = 10 if ten else 5
    shot = {"id": "k", "model": "ray-3.2", "prompt": "Pinned moments", "resolution": "360p",
            "duration": f"{duration}s", "keyframes": [{"at": at, "image": URL} for at in ats]}
    path = write_shotlist(tmp_path_factory.mktemp("kf"), [shot])
    indexes = [round(at * 24) for at in ats]
    bad = [i for i, index in enumerate(indexes)
           if index > duration * 24 or index in indexes[:i]]
    if bad:
        with pytest.raises(ShotListError) as refused:
            load_shotlist(path)
        assert f"keyframes[{bad[0]}].at" in "\n".join(refused.value.problems)
        return
    plan = make_plan(load_shotlist(path), "final")
    assert [k.index for k in plan.shots[0].request.keyframes] == indexes


def test_a_uni1_still_is_one_paid_step_of_the_same_seam(tmp_path, home, luma_env):
    """The seam carries an image generation: a uni-1 still with a local reference image is
    paid once (ledgered, priced per image + reference), stored as a PNG, reused after."""
    from reelflow.tasks import _generate
    from reelflow.tasks._ledger import Ledger
    from reelflow.tasks._providers import provider_for
    from reelflow.tasks.luma import LumaCredentials
    from reelflow.tasks.store import ClipStore, sha256_file
    from tests.helpers import write_png

    ref = write_png(tmp_path / "face.png", 256, 256, colour=70)
    request = GenerationRequest(model="uni-1", prompt="A lighthouse keeper, portrait",
                                aspect_ratio="1:1",
                                refs=(Keyframe(kind="image", path=ref, sha256=sha256_file(ref)),))
    provider = provider_for(request, LumaCredentials.from_env())
    store, ledger = ClipStore.default(), Ledger.default()
    created = luma_env.agents_created_count()

    still = _generate.generate_still(request, shot_id="keeper", provider=provider, store=store,
                                     ledger=ledger)
    again = _generate.generate_still(request, shot_id="keeper", provider=provider, store=store,
                                     ledger=ledger)

    assert luma_env.agents_created_count() - created == 1
    assert (still.paid, still.cost_usd, again.paid) == (True, 0.0434, False)
    assert still.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and still.width == still.height
    assert again.sha256 == still.sha256 and ledger.read(request.cache_key()).cost_usd == 0.0434
    sent = next(r["request"] for r in luma_env.agents.records() if r["id"] == still.generation_id)
    assert sent["type"] == "image" and "file_id" in sent["image_ref"][0]


def test_429_waits_honour_retry_after_then_x_ratelimit_reset():
    import time

    import httpx

    from reelflow.tasks._create import retry_after

    assert retry_after(httpx.Headers({"retry-after": "7"}), 0) == 7
    assert retry_after(httpx.Headers({"retry-after-ms": "1500"}), 0) == 1.5
    epoch = str(int(time.time()) + 20)   # X-RateLimit-Reset as epoch seconds
    assert 18 <= retry_after(httpx.Headers({"x-ratelimit-reset": epoch}), 0) <= 21
    assert retry_after(httpx.Headers({"x-ratelimit-reset": "4"}), 0) == 4  # or seconds from now
    assert retry_after(httpx.Headers({}), 2) == 2.0                         # else a backoff


def test_local_images_for_ray32_need_no_s3_store(tmp_path, home, monkeypatch):
    """With the real Agents API and a local store, a ray-3.2 keyframe image goes through
    the Files API; a ray-2 one still needs fetchable URLs (S3), refused before spend."""
    from reelflow.errors import StoreNotConfigured
    from reelflow.flows.endpoint import image_url_resolver
    from reelflow.flows.plan import make_plan
    from reelflow.flows.shotlist import load_shotlist
    from tests.helpers import write_png

    write_png(tmp_path / "a.png", 64, 36)
    monkeypatch.setenv("LUMA_AGENTS_API_KEY", "k")
    monkeypatch.setenv("LUMA_BASE_URL", "https://agents.lumalabs.ai/v1")
    monkeypatch.setenv("LUMAAI_API_KEY", "k")
    ray32 = write_shotlist(tmp_path, [{"id": "a", "model": "ray-3.2", "prompt": "A still moves",
                                       "resolution": "360p", "start": "a.png"}], name="new.yaml")
    assert image_url_resolver(make_plan(load_shotlist(ray32), "final")) is None
    ray2 = write_shotlist(tmp_path, [{"id": "a", "prompt": "A still moves", "resolution": "540p",
                                      "start": "a.png"}], name="old.yaml")
    with pytest.raises(StoreNotConfigured):
        image_url_resolver(make_plan(load_shotlist(ray2), "final"))

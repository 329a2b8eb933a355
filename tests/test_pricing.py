"""The Agents API price table is Luma's, and the emulated account bills by the same table.

Luma's pay-as-you-go page: https://docs.agents.lumalabs.ai/guides/pricing/ (reelflow.pricing
says which cells were read from the page itself and which from sources quoting it).
"""

from __future__ import annotations

import pytest

from reelflow import pricing
from reelflow.emulator import agents_spec as aspec
from reelflow.tasks.models import GenerationRequest, Keyframe

# The page's cells, USD. Video / edit: (5 s, 10 s); HDR video is 5 s only.
PAGE = {
    "video": {"360p": (0.06, 0.18), "540p": (0.15, 0.45), "720p": (0.30, 0.90),
              "1080p": (1.20, 3.60)},
    "video hdr": {"720p": 0.60, "1080p": 2.40},
    "video hdr+exr": {"720p": 0.90, "1080p": 3.60},
    "extend": {"540p": 0.15, "720p": 0.30, "1080p": 1.20},
    "edit sdr": {"360p": (0.54, 1.08), "540p": (0.72, 1.44), "720p": (1.08, 2.16),
                 "1080p": (2.16, 4.32)},
    "edit hdr": {"360p": (1.08, 2.16), "540p": (1.44, 2.88), "720p": (2.16, 4.32),
                 "1080p": (4.32, 8.64)},
    "edit hdr+exr": {"360p": (1.62, 3.24), "540p": (2.16, 4.32), "720p": (3.24, 6.48),
                     "1080p": (6.48, 12.96)},
    "reframe per s": {"360p": 0.03, "540p": 0.06, "720p": 0.12, "1080p": 0.36},
    "uni-1": 0.0404, "uni-1-max": 0.1000, "per reference": 0.0030,
}


def test_the_table_is_the_pages():
    cost = pricing.list_ray32_usd
    for res, (five, ten) in PAGE["video"].items():
        assert (cost("video", res, 5), cost("video", res, 10)) == (five, ten)
    assert PAGE["video"]["720p"][1] == round(3 * PAGE["video"]["720p"][0], 2)  # 3x, not 2 blocks
    for res, usd in PAGE["video hdr"].items():
        assert cost("video", res, 5, hdr=True) == usd
    for res, usd in PAGE["video hdr+exr"].items():
        assert cost("video", res, 5, hdr=True, exr=True) == usd
    for res, usd in PAGE["extend"].items():
        assert cost("extend", res, 10) == usd  # always one 5 s block
    for dynamic in ("sdr", "hdr", "hdr+exr"):
        for res, (five, ten) in PAGE[f"edit {dynamic}"].items():
            flags = {"hdr": dynamic != "sdr", "exr": dynamic == "hdr+exr"}
            assert (cost("edit", res, 5, **flags), cost("edit", res, 10, **flags)) == (five, ten)
    for res, usd in PAGE["reframe per s"].items():
        assert cost("reframe", res, 10) == round(10 * usd, 2)
    assert pricing.list_image_usd("uni-1") == PAGE["uni-1"]
    assert pricing.list_image_usd("uni-1-max", 2) == round(PAGE["uni-1-max"] + 2 * 0.0030, 4)
    with pytest.raises(KeyError):
        cost("video", "720p", 10, hdr=True)  # HDR is 5 s only: no cell, refused before spend
    assert (pricing.PRICES_URL, pricing.PRICES_DATED) == (
        "https://docs.agents.lumalabs.ai/guides/pricing/", "2026-12-06")


GEN = Keyframe(kind="generation", upstream_key="a" * 64, generation_id="g-1")


@pytest.mark.parametrize("request_,body,source_s", [
    (GenerationRequest(model="ray-3.2", prompt="p", resolution="540p", duration="10s"),
     {"video": {"resolution": "540p", "duration": "10s"}}, None),
    (GenerationRequest(model="ray-3.2", prompt="p", resolution="1080p", hdr=True, exr=True),
     {"video": {"resolution": "1080p", "hdr": True, "exr_export": True}}, None),
    (GenerationRequest(model="ray-3.2", prompt="p", resolution="720p", frame0=GEN),
     {"video": {"resolution": "720p", "start_frame": {"generation_id": "g-1"}}}, None),
    (GenerationRequest(model="ray-3.2", prompt="p", resolution="720p", duration="7.5s",
                       edit=GEN),
     {"type": "video_edit", "source": {"generation_id": "g-1"},
      "video": {"resolution": "720p"}}, 7.5),
    (GenerationRequest(model="ray-3.2", prompt="p", resolution="720p", aspect_ratio="9:16",
                       reframe=GEN),
     {"type": "video_reframe", "aspect_ratio": "9:16", "source": {"generation_id": "g-1"},
      "video": {"resolution": "720p"}}, 5.0),
])
def test_the_emulated_account_bills_what_plan_estimates(request_, body, source_s):
    sent = aspec.normalize({"prompt": "p", "model": "ray-3.2", "type": "video", **body})
    assert aspec.generation_cost(sent, source_s) == round(request_.estimated_cost() * 100, 2)


def test_overrides_change_the_estimate_not_the_account(monkeypatch):
    monkeypatch.setenv("REELFLOW_PRICES", '{"ray-3.2:video:720p:sdr": 9.0}')
    assert pricing.ray32_cost("video", "720p", 5) == 9.0
    sent = aspec.normalize({"prompt": "p", "model": "ray-3.2", "video": {"resolution": "720p"}})
    assert aspec.generation_cost(sent) == 30.0  # the account bills Luma's list price

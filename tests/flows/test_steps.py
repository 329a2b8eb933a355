"""Upscale and generated audio: each its own paid step, cached by its own key, costed."""

from __future__ import annotations

import pytest

from reelflow.flows.plan import make_plan
from reelflow.flows.shotlist import load_shotlist
from tests.helpers import media_facts, write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_upscale_and_audio_are_paid_once_each(tmp_path, home, luma_env):
    from reelflow.flows.render import render_sequence

    shot = {"id": "surf", "prompt": "Surf rolls onto a pebble beach", "resolution": "540p",
            "upscale": "1080p", "audio": "waves on pebbles"}
    path = write_shotlist(tmp_path, [shot])
    plan = make_plan(load_shotlist(path))
    base = plan.shots[0].request
    assert plan.cost_usd == pytest.approx(base.total_cost())
    assert base.total_cost() > base.estimated_cost() + base.estimated_cost("upscale")
    stats = luma_env.stats()

    report = render_sequence(str(path))

    after = luma_env.stats()
    assert after["created"] - stats["created"] == 1
    assert after["upscaled"] - stats["upscaled"] == 1
    assert after["audio_added"] - stats["audio_added"] == 1
    assert report.generated == 1 and report.cost_usd == pytest.approx(base.total_cost(), abs=0.02)
    clip = report.shot_results[0]
    from reelflow.tasks._probe import probe
    from reelflow.tasks.store import ClipStore

    info = probe(ClipStore.default().path_for(clip.sha256))
    assert (info.width, info.height, info.has_audio) == (1920, 1080, True)
    assert media_facts(report.output)["acodec"] == "aac"

    again = render_sequence(str(path))
    final = luma_env.stats()
    assert (final["created"], final["upscaled"], final["audio_added"]) == \
        (after["created"], after["upscaled"], after["audio_added"])
    assert again.generated == 0 and again.cost_usd == 0


def test_draft_skips_upscale(tmp_path, home, luma_env):
    path = write_shotlist(tmp_path, [{"id": "big", "prompt": "A big wave at sunset", "upscale": "4k"}])
    draft = make_plan(load_shotlist(path), "draft").shots[0]
    final = make_plan(load_shotlist(path), "final").shots[0]
    assert (draft.request.upscale, final.request.upscale) == (None, "4k")
    assert draft.cost_usd < final.cost_usd

"""`reelflow compare`: each shot with each model, side by side, labelled, cached."""

from __future__ import annotations

import pytest

from tests.helpers import media_facts, write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_compare_two_models_side_by_side(tmp_path, home, luma_env):
    from reelflow.flows.compare import compare_models

    path = write_shotlist(tmp_path, [
        {"id": "kite", "prompt": "A kite over a windy beach", "resolution": "540p"},
        {"id": "note", "title": "Between shots", "duration": 1},
        {"id": "dog", "prompt": "A dog runs along the tide line", "resolution": "540p"}],
        output={"path": "out.mp4", "resolution": "540p"})
    before = luma_env.created_count()

    report = compare_models(str(path), ["ray-2", "ray-flash-2"])

    assert luma_env.created_count() - before == 4  # 2 shots x 2 models
    facts = media_facts(report.video)
    assert (facts["width"], facts["height"]) == (2 * 480, 270)
    assert facts["frames"] == 10 * 24  # the two generated shots, cut together
    assert report.cost_usd["ray-2"] > report.cost_usd["ray-flash-2"] > 0
    import av

    with av.open(str(report.contact_sheet)) as sheet:
        assert sheet.streams.video[0].width > 0

    again = compare_models(str(path), ["ray-2", "ray-flash-2"])
    assert luma_env.created_count() - before == 4
    assert again.paid_usd == 0

"""Issue 11's "done when", on examples/storyboard.yaml through both real SDKs and the embedded
emulator: ray-2, ray-flash-2 and ray-3.2 shots, uni-1 stills of one character, an extension
on each API, a 10 s ray-3.2 shot and a 9:16 reframe render; an unchanged rerun pays nothing
on either API; a new character image remakes exactly what uses it; compare shows ray-2
against ray-3.2, and rendering the chosen model afterwards pays nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, media_facts, write_png

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture()
def examples(tmp_path) -> Path:
    """A copy of examples/ (renders and the changed character stay out of the repository)."""
    return Path(shutil.copytree(REPO / "examples", tmp_path / "examples",
                                ignore=shutil.ignore_patterns("renders")))


def _creates(emulator) -> tuple[int, int]:
    """(Dream Machine API, Agents API) generations the account has made."""
    return emulator.created_count(), emulator.agents_created_count()


def _paid(report) -> set[str]:
    return {s.id for s in report.shot_results if s.status == "paid"} | \
        {s.label for s in report.stills if s.status == "paid"}


def test_storyboard_on_both_apis_rerun_character_change_and_compare(examples, home, luma_env):
    from reelflow.flows.compare import compare_models
    from reelflow.flows.plan import make_plan
    from reelflow.flows.render import render_sequence
    from reelflow.flows.shotlist import load_shotlist
    from reelflow.tasks.store import ClipStore

    board = examples / "storyboard.yaml"
    plan = make_plan(load_shotlist(board))
    dm, agents = _creates(luma_env)

    first = render_sequence(str(board))

    assert _creates(luma_env) == (dm + 3, agents + 6)  # gate quay gulls | 2 stills door hall sea reframe
    assert _paid(first) == {"gate", "quay", "gulls", "door", "hall", "sea", "door-vertical",
                            "gate.start", "door.start"}
    models = {s.id: s.model for s in first.shot_results}
    assert {models["gate"], models["gulls"], models["sea"]} == {"ray-2", "ray-flash-2", "ray-3.2"}
    assert media_facts(first.output)["frames"] == plan.frames
    store = ClipStore.default()
    clips = {s.id: media_facts(store.path_for(s.sha256)) for s in first.shot_results if s.sha256}
    assert clips["sea"]["frames"] == 10 * 24                       # the 10 s ray-3.2 shot
    assert clips["door-vertical"]["height"] > clips["door-vertical"]["width"]  # 9:16 reframe
    assert first.cost_usd == round(sum(s.cost_usd for s in first.shot_results)
                                   + sum(s.cost_usd for s in first.stills), 2)

    again = render_sequence(str(board))
    assert _creates(luma_env) == (dm + 3, agents + 6)  # nothing paid on either API
    assert _paid(again) == set() and again.cost_usd == 0
    assert again.output.read_bytes() == first.output.read_bytes()

    write_png(examples / "assets" / "mara.png", 96, 128, colour=170)  # a new reference image
    changed = render_sequence(str(board))
    # her two stills, the shots starting on them, and what extends or reframes those
    assert _paid(changed) == {"gate.start", "door.start", "gate", "quay", "door", "hall",
                              "door-vertical"}
    assert _creates(luma_env) == (dm + 5, agents + 11)

    pair = examples / "storyboard-compare.yaml"
    report = compare_models(str(pair), ["ray-2", "ray-3.2"])
    # the gate still and ray-2 gate clip are the storyboard's; sea on ray-2, both on ray-3.2 are new
    assert _creates(luma_env) == (dm + 6, agents + 13)
    assert {(c.shot, c.variant): c.status for c in report.cells} == {
        ("gate", "ray-2"): "cached", ("sea", "ray-2"): "paid",
        ("gate", "ray-3.2"): "paid", ("sea", "ray-3.2"): "paid"}
    assert media_facts(report.video)["width"] == 2 * 480
    assert report.paid_usd == round(sum(c.paid_usd for c in report.cells), 2) > 0

    doc = yaml.safe_load(pair.read_text(encoding="utf-8"))
    doc["defaults"]["model"] = "ray-3.2"                             # the producer chooses
    pair.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    chosen = render_sequence(str(pair))
    assert _creates(luma_env) == (dm + 6, agents + 13) and chosen.generated == 0

"""Every list in examples/ renders as it is, on the emulator: the lists a producer copies work."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

from tests.helpers import REPO, decode_errors, media_facts

pytestmark = pytest.mark.usefixtures("prefect_api")

EXAMPLES = REPO / "examples"
#: Each single-render example: the delivery's frame size and whether it carries sound.
RENDERED = {
    "demo.yaml": {"size": (1280, 720), "sound": False},
    "product-teaser.yaml": {"size": (960, 540), "sound": True},
    "vertical-reel.yaml": {"size": (540, 960), "sound": False},
    "keyframes.yaml": {"size": (960, 540), "sound": False},
}
DRAFT_THEN_FINAL = "draft-then-final/launch.yaml"
#: Rendered, rerun, changed and compared by tests/flows/test_storyboard.py (issue 11's test).
STORYBOARD = {"storyboard.yaml", "storyboard-compare.yaml"}


@pytest.fixture()
def examples(tmp_path) -> Path:
    """A copy of examples/ (renders land in the copy, never in the repository)."""
    return Path(shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("renders")))


def _render(path: Path, profile: str = "final"):
    from reelflow.flows.render import render_sequence

    return render_sequence(str(path), profile=profile)


def _check_delivery(path: Path, shotlist, size: tuple[int, int]) -> dict:
    facts = media_facts(path)
    assert (facts["width"], facts["height"]) == size
    assert facts["fps"] == shotlist.output.fps
    assert abs(facts["frames"] - shotlist.length_s * shotlist.output.fps) <= 1
    assert decode_errors(path) == ""
    return facts


def _loudest(path: Path) -> float:
    with av.open(str(path)) as container:
        peaks = [np.abs(frame.to_ndarray()).max() for frame in container.decode(audio=0)]
    return float(max(peaks))


def test_every_example_is_rendered_by_a_test():
    lists = {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.y*ml")
             if "renders" not in p.parts}
    assert lists == {*RENDERED, DRAFT_THEN_FINAL, *STORYBOARD}


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_example_renders(name, examples, home, luma_env):
    from reelflow.flows.shotlist import load_shotlist

    shotlist = load_shotlist(examples / name)
    generated = [s for s in shotlist.shots if not s.is_card]
    before = luma_env.created_count()

    report = _render(examples / name)

    assert report.output == shotlist.output.path and report.output.is_relative_to(examples)
    assert luma_env.created_count() - before == len(generated) == report.generated
    facts = _check_delivery(report.output, shotlist, RENDERED[name]["size"])
    if RENDERED[name]["sound"]:                       # the music bed is under the whole video
        assert abs(facts["audio_s"] - facts["video_s"]) < 0.1 and _loudest(report.output) > 0.01
    assert report.poster.read_bytes()[:3] == b"\xff\xd8\xff"                  # a JPEG
    with av.open(str(report.poster)) as poster:
        assert (poster.streams.video[0].width, poster.streams.video[0].height) == \
            RENDERED[name]["size"]
    assert report.contact_sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    timeline = otio.adapters.read_from_file(str(report.otio))
    assert timeline.duration().to_frames() == facts["frames"]    # the edit, frame for frame


def test_draft_then_final(examples, home, luma_env):
    from reelflow.flows.shotlist import load_shotlist

    path = examples / DRAFT_THEN_FINAL
    shotlist = load_shotlist(path)
    before = luma_env.created_count()

    draft = _render(path, profile="draft")
    assert draft.output == path.parent / "renders" / "launch.draft.mp4"
    assert {s.model for s in draft.shot_results if s.kind == "generate"} == {"ray-flash-2"}
    assert luma_env.created_count() - before == 2
    _check_delivery(draft.output, shotlist, (960, 540))

    final = _render(path)
    assert final.output == path.parent / "renders" / "launch.mp4" and draft.output.exists()
    assert {s.model for s in final.shot_results if s.kind == "generate"} == {"ray-2"}
    assert luma_env.created_count() - before == 4 and final.cost_usd > draft.cost_usd
    _check_delivery(final.output, shotlist, (960, 540))

    again = _render(path)                             # the final again: all cached, nothing paid
    assert luma_env.created_count() - before == 4 and again.cost_usd == 0 and again.cached == 2

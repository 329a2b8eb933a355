"""Real assemblies of planned timelines: the output has exactly the frames the plan counted.

The bulk of the rule ("what plan accepts assembles") is a property test in
tests/flows/test_timeline.py; these few fixed edge cases go through ffmpeg for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reelflow.flows.plan import make_plan
from reelflow.flows.shotlist import load_shotlist
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.media import OutputFormat, TimelineItem, assemble
from reelflow.tasks.store import ClipStore
from tests.helpers import media_facts, write_shotlist
from tests.tasks.conftest import sha256

CASES = {
    # the repro with one more frame: 2-frame crossfades either side of 4 frames
    "crossfades-in-4-frames": (24, {"type": "crossfade", "duration": 0.0625},
                               [None, [0, 4 / 24], None]),
    # 10.5 frames rounds to 10; trims that fall between frames
    "wipes-at-30": (30, {"type": "wipeleft", "duration": 0.35},
                    [[0.51, 2.49], [1.02, 4.98], [0.2, 1.3]]),
    # 2.5-frame fades through black either side of a 4-frame shot at 25 fps
    "fades-at-25": (25, {"type": "fade", "duration": 0.1}, [None, [0.02, 0.2], [3, 5]]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_planned_timeline_assembles_to_the_planned_frames(case, clips, tmp_path):
    fps, transition, trims = CASES[case]
    shots = [{"id": f"s{i}", "prompt": f"Shot {i} of the test pattern",
              **({"trim": trim} if trim else {})} for i, trim in enumerate(trims)]
    path = write_shotlist(tmp_path, shots, defaults={"transition": transition},
                          output={"path": "out.mp4", "resolution": "540p", "fps": fps})
    plan = make_plan(load_shotlist(path), store=ClipStore(root=tmp_path / "clips"),
                     ledger=Ledger(root=tmp_path / "ledger"))
    sources = [clips["pattern"], clips["tone"], clips["blue"]]
    items = [TimelineItem.of(span, src, sha256(src)) for span, src in zip(plan.timeline, sources)]

    result = assemble(items, OutputFormat(width=320, height=180, fps=fps), tmp_path / "out.mp4",
                      tmp_path / "cache")

    assert result.frames == plan.frames == media_facts(result.path)["frames"]
    assert plan.frames == sum(s.frames for s in plan.shots) - sum(
        round(transition["duration"] * fps) for _ in trims[:-1])

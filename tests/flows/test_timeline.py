"""One frame timeline, checked before any spend: what `plan` accepts the assembler can cut.

The property tests build shot lists at random, load and plan them as `reelflow plan`
does, and hand the assembler's own frame rules (``slots_for``, ``check_ranges``,
``pieces_for``) the items a render would give it, read independently from the raw list.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

from reelflow.cli import main
from reelflow.errors import ShotListError
from reelflow.flows.plan import make_plan
from reelflow.flows.shotlist import load_shotlist
from reelflow.flows.timeline import without_skipped
from reelflow.tasks._ledger import Ledger
from reelflow.tasks._pieces import TimelineItem, check_ranges, pieces_for, slots_for
from reelflow.tasks._text import TextOverlaySpec
from reelflow.tasks._timeline import TimelineSpan, output_frames, resolve
from reelflow.tasks.media import OutputFormat
from reelflow.tasks.store import ClipStore
from tests.helpers import TEST_KEY, media_facts, write_shotlist

CLIP_SECONDS = {"5s": 5, "9s": 9}
#: The issue's repros: three shots at 24 fps, 1.5-frame crossfades from defaults.
REPRO_DEFAULTS = {"transition": {"type": "crossfade", "duration": 0.0625}}


def repro(tmp_path: Path, trim: list[float], name: str = "list.yaml") -> Path:
    shots = [{"id": "a", "prompt": "Waves roll onto a grey beach", "resolution": "540p"},
             {"id": "b", "prompt": "A gull lifts off the sand", "resolution": "540p", "trim": trim},
             {"id": "c", "prompt": "Fog rolls over the dunes", "resolution": "540p"}]
    return write_shotlist(tmp_path, shots, name=name, defaults=REPRO_DEFAULTS)


# --------------------------------------------------------------------------- the repros
@pytest.mark.parametrize(("trim", "line"), [
    ([0, 0.125], "list.yaml: shot 2 (b): transition: incoming (2) and outgoing (2) transition "
                 "frames overlap: together more than its 3 frames (0.125s at 24 fps)"),
    ([2, 2.001], "list.yaml: shot 2 (b): trim: length 0.001s is shorter than one frame at 24 fps"),
])
def test_plan_refuses_a_timeline_the_assembler_could_not_cut(trim, line, tmp_path, home, capsys):
    path = repro(tmp_path, trim)
    assert main(["plan", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line] and captured.out == ""


def test_render_of_a_refused_timeline_creates_nothing(tmp_path, home, luma_env, capsys):
    before = luma_env.created_count()
    for trim in ([0, 0.125], [2, 2.001]):
        path = repro(tmp_path, trim)
        assert main(["render", str(path), "--out", str(tmp_path / "out.mp4")]) == 2
        assert len(capsys.readouterr().err.splitlines()) == 1
    assert luma_env.created_count() == before
    assert not (tmp_path / "out.mp4").exists()


def test_one_more_frame_is_accepted_and_planned_in_frames(tmp_path, home):
    # 4 frames hold two 2-frame crossfades: plan accepts and counts 120 + 4 + 120 - 2 - 2
    plan = make_plan(load_shotlist(repro(tmp_path, [0, 4 / 24])))
    assert [s.frames for s in plan.shots] == [120, 4, 120]
    assert plan.frames == 240
    assert [span.transition_s for span in plan.timeline] == [0.0625, 0.0625, 0.0]  # the last leads nowhere


# --------------------------------------------------------------------------- the property
_SECONDS = st.one_of(st.sampled_from([0.001, 0.01, 0.02, 0.0208, 0.03, 0.0417, 0.05, 0.0625,
                                      0.1, 0.125, 0.2, 0.5, 1, 1.5, 2.5]),
                     st.integers(1, 3000).map(lambda n: n / 1000))
_OVERLAP = st.fixed_dictionaries({"type": st.sampled_from(["crossfade", "fade", "wipeleft"]),
                                  "duration": _SECONDS})
_TRANSITION = st.one_of(st.none(), st.just("cut"), _OVERLAP)


@st.composite
def _trim(draw, duration: str):
    clip = CLIP_SECONDS[duration]
    start = draw(st.one_of(st.just(0.0), st.integers(0, clip * 1000 - 1).map(lambda n: n / 1000)))
    length = draw(st.one_of(_SECONDS, st.floats(0.001, clip)))
    end = min(round(start + length, 4), clip)
    assume(end > start)
    return [start, end]


@st.composite
def _shot(draw, n: int, with_text: bool):
    shot: dict = {"id": f"s{n}"}
    if draw(st.booleans()) and draw(st.booleans()):
        shot.update(title=f"Card {n}", duration=draw(_SECONDS))
    else:
        duration = draw(st.sampled_from(["5s", "9s"]))
        shot.update(prompt=f"Shot number {n} of the sea", duration=duration, resolution="540p")
        if draw(st.booleans()):
            shot["trim"] = draw(_trim(duration))
    transition = draw(_TRANSITION)
    if transition is not None:
        shot["transition"] = transition
    if with_text and draw(st.booleans()):
        shot["text"] = {"content": "hello", "start": draw(st.sampled_from([0, 0.02, 0.04, 0.5])),
                        "end": draw(st.sampled_from([None, 0.03, 0.06, 1, 4]))}
    return shot


@st.composite
def shot_lists(draw, with_text: bool = False):
    count = draw(st.integers(1, 5))
    doc = {"version": 1, "output": {"path": "out.mp4", "resolution": "540p",
                                    "fps": draw(st.sampled_from([24, 25, 30]))},
           "shots": [draw(_shot(n, with_text)) for n in range(1, count + 1)]}
    if draw(st.booleans()):
        doc["defaults"] = {"transition": draw(st.one_of(st.just("cut"), _OVERLAP))}
    return doc


def _plan_accepts(doc: dict, folder: Path) -> bool:
    path = folder / "list.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        plan = make_plan(load_shotlist(path), store=ClipStore(root=folder / "clips"),
                         ledger=Ledger(root=folder / "ledger"))
    except ShotListError as exc:
        note(f"plan refuses: {exc.problems}")
        return False
    note(f"plan accepts: {plan.frames} frames")
    return True


def _items(doc: dict) -> tuple[list[TimelineItem], list[int]]:
    """What a render hands the assembler, read from the raw list, and each clip's frames."""
    fps = doc["output"]["fps"]
    default = (doc.get("defaults") or {}).get("transition")
    items, totals = [], []
    for i, shot in enumerate(doc["shots"]):
        transition = shot.get("transition", default)
        if i == len(doc["shots"]) - 1 or transition in (None, "cut"):
            transition = {"type": "cut", "duration": 0}
        if "title" in shot:
            start, length, clip = 0.0, shot["duration"], shot["duration"]
        else:
            clip = CLIP_SECONDS[shot.get("duration", "5s")]
            start, end = shot.get("trim", [0.0, clip])
            length = end - start
        text = shot.get("text")
        overlays = (TextOverlaySpec(content=text["content"], start_s=text["start"],
                                    end_s=text["end"]),) if text else ()
        if length <= 0:
            return [], []
        items.append(TimelineItem(source=Path(f"{shot['id']}.mp4"), source_sha256=f"{i:08d}" * 8,
                                  start_s=start, length_s=length, transition=transition["type"],
                                  transition_s=transition["duration"], label=shot["id"],
                                  overlays=overlays))
        totals.append(round(clip * fps))      # a clip conformed to the output rate
    return items, totals


def _assembler_accepts(doc: dict) -> bool:
    fps = doc["output"]["fps"]
    items, totals = _items(doc)
    if not items:
        return False
    try:
        slots = slots_for(items, fps)
        check_ranges(slots, totals, fps)
    except ValueError as exc:
        note(f"assembler refuses: {exc}")
        return False
    fmt = OutputFormat(width=960, height=540, fps=fps)
    pieces = pieces_for(slots, [it.source for it in items], totals, fmt)
    assert sum(p.frames for p in pieces) == output_frames(slots)
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=shot_lists(with_text=False))
def test_plan_accepts_exactly_what_the_assembler_can_cut(doc):
    with tempfile.TemporaryDirectory() as folder:
        accepted = _plan_accepts(doc, Path(folder))
        event("accepted" if accepted else "refused")
        assert accepted == _assembler_accepts(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=shot_lists(with_text=True))
def test_whatever_plan_accepts_assembles(doc):
    # text start/end are also checked in seconds (plan is stricter there): one direction
    with tempfile.TemporaryDirectory() as folder:
        if _plan_accepts(doc, Path(folder)):
            assert _assembler_accepts(doc)


def test_the_planned_frames_are_the_assembled_frames(tmp_path, home):
    doc = {"version": 1, "output": {"path": "out.mp4", "resolution": "540p", "fps": 25},
           "defaults": {"transition": {"type": "wipeleft", "duration": 0.3}},
           "shots": [{"id": "a", "prompt": "A quiet lake", "trim": [0.13, 2.21]},
                     {"id": "b", "title": "Later", "duration": 0.64},
                     {"id": "c", "prompt": "A busy harbour", "trim": [1.01, 4.99]}]}
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    plan = make_plan(load_shotlist(path))
    items, _ = _items(doc)
    assert plan.frames == output_frames(slots_for(items, 25))
    assert [span.start_s for span in plan.timeline] == [0.13, 0.0, 1.01]


# --------------------------------------------------------------------------- a real render
def test_render_assembles_the_planned_frames_and_warns_of_a_last_transition(
        tmp_path, home, luma_env, prefect_api, capsys, caplog):
    path = repro(tmp_path, [0, 4 / 24])
    doc = yaml.safe_load(path.read_text())
    doc["shots"][-1]["transition"] = {"type": "wipeleft", "duration": 1}   # leads nowhere
    path.write_text(yaml.safe_dump(doc))
    warning = ("list.yaml: shot 3 (c): transition: warning: the 1s wipeleft is ignored: "
               "nothing follows the last shot")
    before = luma_env.created_count()

    assert main(["plan", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    planned = json.loads(captured.out)
    assert captured.err.splitlines() == [warning]
    assert [s["frames"] for s in planned["shots"]] == [120, 4, 120]

    assert main(["render", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert warning in captured.err.splitlines()
    assert warning in caplog.text                                  # the flow run's log too
    assert luma_env.created_count() - before == 3
    assert report["frames"] == 240 == media_facts(Path(report["output"]))["frames"]


def test_a_transition_inherited_by_the_last_shot_is_not_worth_a_warning(tmp_path, home, capsys):
    path = repro(tmp_path, [0, 4 / 24])
    assert main(["plan", str(path)]) == 0
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- extend after trim
def _extension(tmp_path: Path, first: dict, second: dict, between: bool = False) -> Path:
    shots = [{"id": "walk", "prompt": "A woman walks down a hallway", **first}]
    if between:
        shots.append({"id": "card", "title": "Meanwhile", "duration": 1})
    shots.append({"id": "window", "prompt": "She looks out of the window", **second})
    return write_shotlist(tmp_path, shots)


@pytest.mark.parametrize(("first", "second", "between"), [
    ({"trim": [1, 5]}, {"start": {"shot": "walk"}}, False),        # the join (5s) is kept
    ({"trim": [0, 4.99]}, {"start": {"shot": "walk"}}, False),     # same last frame at 24 fps
    ({"trim": [0, 2]}, {"start": {"shot": "walk"}}, True),         # not side by side: no cut
    ({"trim": [0, 2]}, {"start": {"shot": "walk"}, "trim": [0, 3]}, True),
    ({"end": {"shot": "window"}, "trim": [2, 5]}, {"trim": [0, 3]}, False),
])
def test_an_extension_that_keeps_its_join_is_accepted(first, second, between, tmp_path):
    load_shotlist(_extension(tmp_path, first, second, between))


@pytest.mark.parametrize(("first", "second", "line"), [
    ({"trim": [0, 2]}, {"start": {"shot": "walk"}},
     "shot 2 (window): start: this shot continues from the last generated frame of 'walk', but "
     "'walk' is trimmed to end at 2s of its 5s clip, so the cut into 'window' would skip 3s: "
     "end the trim of 'walk' at 5"),
    ({}, {"start": {"shot": "walk"}, "trim": [0.5, 5]},
     "shot 2 (window): start: this shot continues from the last generated frame of 'walk', but "
     "'window' is trimmed to start at 0.5s, so the cut from 'walk' would skip 0.5s: start the "
     "trim of 'window' at 0"),
    ({"end": {"shot": "window"}}, {"trim": [1, 5]},
     "shot 1 (walk): end: this shot ends on the first generated frame of 'window', but 'window' "
     "is trimmed to start at 1s, so the cut from 'walk' would skip 1s: start the trim of "
     "'window' at 0"),
    ({"end": {"shot": "window"}, "trim": [0, 4]}, {},
     "shot 1 (walk): end: this shot ends on the first generated frame of 'window', but 'walk' "
     "is trimmed to end at 4s of its 5s clip, so the cut into 'window' would skip 1s: end the "
     "trim of 'walk' at 5"),
])
def test_an_extension_whose_join_is_trimmed_away_is_refused(first, second, line, tmp_path):
    with pytest.raises(ShotListError) as info:
        load_shotlist(_extension(tmp_path, first, second))
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"list.yaml: {line} (Luma joins the clips there")


# --------------------------------------------------------------------------- skipped shots
def _span(label: str, length_s: float, transition: str = "cut", transition_s: float = 0.0):
    return TimelineSpan(label=label, length_s=length_s, transition=transition,
                        transition_s=transition_s)


def test_a_transition_that_no_longer_fits_after_a_skip_becomes_a_cut():
    spans = [_span("a", 5, "crossfade", 1), _span("b", 5), _span("c", 0.5)]
    kept, notes = without_skipped(spans, {"b"}, 24)
    assert [(s.label, s.transition) for s in kept] == [("a", "cut"), ("c", "cut")]
    assert notes == ["a: transition: the 1s crossfade into 'c' does not fit once the refused "
                     "shots are skipped; it is a cut instead"]
    # an overlap the skip creates cuts the way in; the shot's own transition stays
    spans = [_span("a", 5, "crossfade", 0.4), _span("b", 5), _span("c", 0.5, "wipeleft", 0.3),
             _span("d", 5)]
    kept, notes = without_skipped(spans, {"b"}, 24)
    assert [s.transition for s in kept] == ["cut", "wipeleft", "cut"]
    assert len(notes) == 1 and output_frames(resolve(kept, 24)) == 120 + 12 + 120 - 7
    assert without_skipped(spans, set(), 24) == (spans, [])


def test_skipping_a_refused_shot_renders_with_a_cut_where_its_transition_cannot_fit(
        tmp_path, home, prefect_api, monkeypatch, caplog):
    from reelflow.emulator import Emulator, Faults
    from reelflow.flows.render import render_sequence

    emu = Emulator(tmp_path / "account", latency=0.0, faults=Faults(moderation_pattern="hawk"))
    emu.start()
    try:
        monkeypatch.setenv("LUMAAI_API_KEY", TEST_KEY)
        monkeypatch.setenv("LUMAAI_BASE_URL", emu.base_url)
        path = write_shotlist(tmp_path, [
            {"id": "one", "prompt": "Fog rolls over a mountain pass", "resolution": "540p",
             "transition": {"type": "crossfade", "duration": 1}},
            {"id": "two", "prompt": "A hawk circles above the valley", "resolution": "540p"},
            {"id": "three", "prompt": "Rain on a tin roof at night", "resolution": "540p",
             "trim": [0, 0.5]}])
        report = render_sequence(str(path), on_moderation="skip")
        assert [r.status for r in report.shot_results] == ["paid", "refused", "paid"]
        assert report.frames == 120 + 12 == media_facts(report.output)["frames"]
        assert "the 1s crossfade into 'three' does not fit" in caplog.text
        assert emu.stats()["created"] == 3
    finally:
        emu.stop()

"""Storyboard stills: uni-1 images made once (paid, ledgered), used as frames by ray-2 and ray-3.2,
and a changed character image regenerates exactly the stills and shots that use it."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.helpers import write_png, write_shotlist

pytestmark = pytest.mark.usefixtures("prefect_api")


def _shots() -> list[dict]:
    return [
        {"id": "door", "prompt": "Mara opens the door and steps out", "model": "ray-2",
         "resolution": "540p", "start": {"image": "Mara at a red door, dusk", "refs": ["mara"]}},
        {"id": "hall", "prompt": "Mara walks down a long hall", "model": "ray-3.2",
         "resolution": "360p", "start": {"image": "Mara in a hall", "model": "uni-1-max",
                                         "refs": ["mara"]}},
        {"id": "on", "prompt": "Mara walks on into the light", "model": "ray-3.2",
         "resolution": "360p", "start": {"shot": "hall"}},
        {"id": "shelf", "prompt": "A bottle turns on a shelf", "model": "ray-3.2",
         "resolution": "360p", "end": {"image": "A green bottle on a shelf", "refs": ["bottle"]}},
        {"id": "sky", "prompt": "Clouds race over a hill", "model": "ray-flash-2",
         "resolution": "540p"},
    ]


def _write(tmp_path, mara_colour: int = 200):
    write_png(tmp_path / "mara.png", 64, 96, colour=mara_colour)
    write_png(tmp_path / "bottle.png", 64, 64, colour=40)
    path = write_shotlist(tmp_path, _shots(), output={"path": "out.mp4", "resolution": "360p"})
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "characters:\n  mara: {image: mara.png, description: a woman in a red coat}\n"
                           "  bottle: bottle.png\n", encoding="utf-8")
    return path


def _first_frame(path, size=None) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        if size:
            frame = frame.reformat(width=size[0], height=size[1])
        return frame.to_ndarray(format="rgb24").astype(np.int16)


def _counts(emulator) -> tuple[int, int]:
    return emulator.created_count(), emulator.agents_created_count()


def test_stills_start_shots_on_both_apis_and_a_character_change_remakes_exactly_its_users(
        tmp_path, home, luma_env):
    from reelflow.flows.plan import make_plan
    from reelflow.flows.render import render_sequence
    from reelflow.flows.shotlist import load_shotlist
    from reelflow.tasks.store import ClipStore

    path = _write(tmp_path)
    plan = make_plan(load_shotlist(path))
    assert [(s.label, s.model, s.refs, s.status) for s in plan.stills] == [
        ("door.start", "uni-1", ["mara"], "to generate"),
        ("hall.start", "uni-1-max", ["mara"], "to generate"),
        ("shelf.end", "uni-1", ["bottle"], "to generate")]
    assert [s.cost_usd for s in plan.stills] == [0.0434, 0.103, 0.0434]
    dm, agents = _counts(luma_env)

    report = render_sequence(str(path))

    # 3 stills + hall, on, shelf on the Agents API; door and sky on the Dream Machine API
    assert _counts(luma_env) == (dm + 2, agents + 6)
    assert [(s.label, s.status) for s in report.stills] == [
        ("door.start", "paid"), ("hall.start", "paid"), ("shelf.end", "paid")]
    shots = {s.id: s for s in report.shot_results}
    assert report.cost_usd == round(sum(s.cost_usd for s in shots.values()) + 0.0434 * 2 + 0.103, 2)
    # the ray-2 shot starts on its still (the emulator's keyframe clip opens on the image)
    store = ClipStore.default()
    door = store.path_for(shots["door"].sha256)
    still = next(s for s in report.stills if s.label == "door.start").path
    assert still.suffix == ".png" and still.is_file()
    first = _first_frame(door)
    size = (first.shape[1], first.shape[0])
    sky = _first_frame(store.path_for(shots["sky"].sha256), size)
    assert np.abs(first - _first_frame(still, size)).mean() < np.abs(first - sky).mean() / 3

    with av.open(str(report.contact_sheet)) as sheet:  # 5 shots + 3 stills: 4 columns, 2 rows
        stream = sheet.streams.video[0]
        assert stream.width == 4 * 384 and stream.height > 2 * 216

    again = render_sequence(str(path))
    assert _counts(luma_env) == (dm + 2, agents + 6)  # an unchanged rerun pays nothing
    assert {s.status for s in again.stills} == {"cached"} and again.generated == 0

    _write(tmp_path, mara_colour=90)  # mara's reference image changes
    plan = make_plan(load_shotlist(path))
    assert [s.status for s in plan.stills] == ["to generate", "to generate", "cached"]
    assert {s.id for s in plan.shots if s.status == "to generate"} == {"door", "hall", "on"}
    changed = render_sequence(str(path))
    # mara's two stills, hall and the shot extending it; door on the Dream Machine API
    assert _counts(luma_env) == (dm + 3, agents + 10)
    assert {s.id for s in changed.shot_results if s.status == "paid"} == {"door", "hall", "on"}


def test_a_pinned_ray32_keyframe_can_be_a_still(tmp_path, home, luma_env):
    from reelflow.flows.plan import make_plan
    from reelflow.flows.render import render_sequence
    from reelflow.flows.shotlist import load_shotlist

    write_png(tmp_path / "mara.png", 64, 96, colour=200)
    write_png(tmp_path / "end.png", 64, 36, colour=30)
    shots = [{"id": "turn", "prompt": "Mara turns towards the window", "model": "ray-3.2",
              "resolution": "360p", "keyframes": [
                  {"at": 0, "image": {"image": "Mara by a window", "refs": ["mara"]}},
                  {"at": 4, "image": "end.png"}]}]
    path = write_shotlist(tmp_path, shots, output={"path": "out.mp4", "resolution": "360p"})
    path.write_text(path.read_text(encoding="utf-8") + "characters:\n  mara: mara.png\n",
                    encoding="utf-8")
    plan = make_plan(load_shotlist(path))
    assert [(s.label, s.used_by) for s in plan.stills] == [("turn.keyframes[0]", ["turn"])]
    dm, agents = _counts(luma_env)

    first = render_sequence(str(path))
    assert _counts(luma_env) == (dm, agents + 2)  # the still, then the clip pinned to it
    assert [s.status for s in first.stills] == ["paid"] and first.generated == 1
    render_sequence(str(path))
    assert _counts(luma_env) == (dm, agents + 2)


def _own_emulator(tmp_path, monkeypatch, faults):
    """An emulator of this test's own, with ``faults``, pointed at by both SDKs' env."""
    from reelflow.emulator import Emulator
    from tests.helpers import TEST_KEY

    emu = Emulator(tmp_path / "account", latency=0.0, faults=faults)
    emu.start()
    for name, value in (("LUMAAI_API_KEY", TEST_KEY), ("LUMAAI_BASE_URL", emu.base_url),
                        ("LUMA_AGENTS_API_KEY", TEST_KEY), ("LUMA_BASE_URL", emu.agents_base_url)):
        monkeypatch.setenv(name, value)
    return emu


def test_a_refused_still_follows_the_moderation_policy_for_its_shots(tmp_path, home, monkeypatch):
    from reelflow.emulator.faults import Faults
    from reelflow.errors import ModerationRefused
    from reelflow.flows.render import render_sequence
    from tests.helpers import media_facts

    emu = _own_emulator(tmp_path, monkeypatch, Faults(moderation_pattern="knife"))
    try:
        shots = [{"id": "cut", "prompt": "A chef slices bread", "resolution": "540p",
                  "start": {"image": "A knife on a wooden board"}},
                 {"id": "more", "prompt": "The chef keeps slicing", "resolution": "540p",
                  "start": {"shot": "cut"}},
                 {"id": "sky", "prompt": "Clouds over a hill", "resolution": "540p"}]
        path = write_shotlist(tmp_path, shots)

        with pytest.raises(ModerationRefused, match="cut.start"):
            render_sequence(str(path))                       # on_moderation: fail (the default)
        assert (emu.created_count(), emu.agents_created_count()) == (0, 1)  # no shot was sent

        report = render_sequence(str(path), on_moderation="skip")
        assert [(s.label, s.status) for s in report.stills] == [("cut.start", "refused")]
        status = {s.id: s.status for s in report.shot_results}
        assert status == {"cut": "refused", "more": "refused", "sky": "paid"}
        assert media_facts(report.output)["frames"] == 5 * 24    # only sky is left
        assert (emu.created_count(), emu.agents_created_count()) == (1, 1)  # sky; the still once
    finally:
        emu.stop()


def test_a_still_whose_create_answer_is_lost_is_not_sent_again(tmp_path, home, monkeypatch):
    from reelflow.emulator.faults import Faults
    from reelflow.errors import AnswerLost
    from reelflow.flows.render import render_sequence
    from reelflow.flows.resolve import resolve_send

    emu = _own_emulator(tmp_path, monkeypatch, Faults(drop_after_create=1.0))
    try:
        shots = [{"id": "door", "prompt": "A red door swings open", "model": "ray-3.2",
                  "resolution": "360p", "start": {"image": "A red door in a white wall"}}]
        path = write_shotlist(tmp_path, shots, output={"path": "out.mp4", "resolution": "360p"})
        with pytest.raises(AnswerLost, match="reelflow resolve door.start"):
            render_sequence(str(path))
        with pytest.raises(AnswerLost):
            render_sequence(str(path))          # still in doubt: nothing is sent again
        assert emu.agents_created_count() == 1  # made once, its answer lost
        emu.set_faults(Faults())
        made = [r["id"] for r in emu.agents.records() if r["request"]["prompt"] == "A red door in a white wall"]
        resolve_send("door.start", generation_id=made[-1])  # the user adopts it
        report = render_sequence(str(path))
        assert [(s.label, s.status, s.generation_id) for s in report.stills] == [
            ("door.start", "cached", made[-1])]
        assert emu.agents_created_count() == 2  # only the shot: the still was adopted
    finally:
        emu.stop()

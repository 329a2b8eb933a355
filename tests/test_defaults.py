"""reelflow.defaults: one home for built-in defaults, and the cascade driven by its table."""

from __future__ import annotations

from pathlib import Path

from reelflow import defaults, spec
from reelflow.flows.shotlist import BUILTIN_DEFAULTS, Inherited, Output, Shot, TextOverlay, load_shotlist
from reelflow.tasks._audio import AudioMix
from reelflow.tasks._ffmpeg import OutputFormat
from reelflow.tasks._text import TextOverlaySpec
from reelflow.tasks.models import GenerationRequest
from tests.helpers import write_shotlist


def test_the_models_read_their_defaults_from_the_one_table():
    assert tuple(Inherited.model_fields) == defaults.INHERITED
    shot = Shot(id="a", index=1, prompt="x")
    assert {f: getattr(shot, f) for f in defaults.INHERITED if f != "transition"} == \
        {f: defaults.SHOT[f] for f in defaults.INHERITED if f != "transition"}
    assert shot.transition.type == BUILTIN_DEFAULTS.transition.type == defaults.SHOT["transition"]
    out, mix = Output(path=Path("/o.mp4")), AudioMix()
    assert (out.music_volume, out.duck, out.loudness) == (mix.music_volume, mix.duck, mix.loudness) \
        == (defaults.OUTPUT["music_volume"], defaults.OUTPUT["duck"], defaults.OUTPUT["loudness"])
    assert out.fit == OutputFormat(width=2, height=2, fps=24).fit == defaults.OUTPUT["fit"]
    text, spec_ = TextOverlay(content="t"), TextOverlaySpec(content="t")
    assert (text.position, text.colour) == (spec_.position, spec_.colour) == \
        (defaults.TEXT_POSITION, defaults.TEXT_COLOUR)
    request = GenerationRequest(model="ray-2", prompt="x")
    assert {k: getattr(request, k) for k in ("aspect_ratio", "resolution", "duration", "loop")} == \
        {k: spec.API_DEFAULTS[k] for k in ("aspect_ratio", "resolution", "duration", "loop")}


def test_cascade_later_layers_win_where_they_set_a_value():
    merged = defaults.cascade(defaults.SHOT, {"resolution": "1080p", "model": None},
                              {"model": "ray-flash-2", "resolution": None, "other": 1})
    assert merged == {**defaults.SHOT, "resolution": "1080p", "model": "ray-flash-2"}


def test_each_inheritable_field_comes_from_shot_then_defaults_then_builtin(tmp_path):
    fade = {"type": "crossfade", "duration": 0.5}
    path = write_shotlist(tmp_path, [
        {"id": "own", "prompt": "p one", "model": "ray-flash-2", "aspect_ratio": "9:16",
         "duration": "9s", "transition": {"type": "wipeleft", "duration": 0.5}},
        {"id": "inherits", "prompt": "p two", "aspect_ratio": None},
        {"id": "cut", "prompt": "p three", "transition": None},
        {"id": "last", "prompt": "p four"},
    ], defaults={"resolution": "540p", "transition": fade})
    own, inherits, cut, _last = load_shotlist(path).shots

    assert (own.model, own.resolution, own.aspect_ratio, own.duration, own.transition.type) == \
        ("ray-flash-2", "540p", "9:16", "9s", "wipeleft")
    assert (inherits.model, inherits.resolution, inherits.aspect_ratio, inherits.duration) == \
        (defaults.SHOT["model"], "540p", defaults.SHOT["aspect_ratio"], defaults.SHOT["duration"])
    assert inherits.transition.type == "crossfade"      # from the file's defaults
    assert cut.transition.is_cut                        # null: an explicit cut, not inherited

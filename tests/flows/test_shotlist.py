"""Shot-list loading: the shared examples resolve, the cascade, and every bad list refused
with one bounded line per problem (tests/bad_shotlists/ + expected.yaml)."""

from __future__ import annotations

import json
import time
import wave
from pathlib import Path

import av
import pytest
import yaml

from reelflow import spec
from reelflow.errors import ShotListError
from reelflow.flows.shotlist import (
    BUILTIN_DEFAULTS, CUT, ImageRef, ShotRef, Transition, load_shotlist, shotlist_json_schema,
)
from tests.helpers import REPO, SHOTLISTS

BAD_DIR = REPO / "tests" / "bad_shotlists"
EXPECTED: dict[str, list[str]] = yaml.safe_load((BAD_DIR / "expected.yaml").read_text(encoding="utf-8"))
EXAMPLES = SHOTLISTS  # the project's own lists (tests/data/shotlists)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ShotListError) as info:
        load_shotlist(path)
    return info.value.problems


def write(directory: Path, text: str, name: str = "list.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_one_line_each(problems: list[str], file_name: str) -> None:
    assert problems
    for line in problems:
        assert line.startswith(f"{file_name}: "), line
        assert "\n" not in line and "\r" not in line, line
        assert len(line) < 400, line
        for leak in ("Traceback", "pydantic", "Input should", "validation error", "Value error"):
            assert leak not in line, line


# --------------------------------------------------------------------------- the shared examples
def test_teaser_resolves_inheritance_transitions_and_cards():
    sl = load_shotlist(EXAMPLES / "teaser.yaml")

    assert sl.title == "Coffee shop teaser" and sl.source == (EXAMPLES / "teaser.yaml").absolute()
    assert [s.id for s in sl.shots] == ["street", "door", "pour", "barista", "card"]
    assert [s.index for s in sl.shots] == [1, 2, 3, 4, 5]
    street, door, pour, barista, card = sl.shots
    crossfade = Transition(type="crossfade", duration=0.5)
    assert street.transition == crossfade and door.transition == crossfade      # from defaults
    assert pour.transition == CUT                                               # its own cut
    assert barista.transition == Transition(type="fade", duration=1.0)
    assert spec.xfade_name(barista.transition.type) == "fadeblack" and spec.xfade_name(street.transition.type) == "fade"
    assert card.transition == CUT        # inherited crossfade, but the last shot's is ignored
    assert door.trim == (0.5, 4.5) and door.length_s == 4.0
    assert barista.duration == "9s" and barista.length_s == 9.0
    assert street.duration == "5s" and street.model == "ray-2" and street.resolution == "720p"
    assert card.is_card and not street.is_card
    assert card.duration == 3.0 and card.length_s == 3.0 and card.background == "#1b1b1b"
    assert card.title == "Open late, every day" and card.prompt is None
    assert sl.length_s == pytest.approx(5 + 4 + 5 + 9 + 3 - 0.5 - 0.5 - 0 - 1)
    out = sl.output
    assert out.path == EXAMPLES / "renders" / "coffee-teaser.mp4"
    assert (out.resolution, out.aspect_ratio, out.fps, out.fit) == ("1080p", "16:9", 24, "cover")
    assert (out.width, out.height) == (1920, 1080)


def test_keyframes_resolve_paths_references_audio_and_upscale():
    sl = load_shotlist(EXAMPLES / "keyframes.yaml")

    product, pullback, arrival, finale = sl.shots
    assert product.start == ImageRef(path=EXAMPLES / "assets" / "bottle.png")
    assert product.camera == ("orbit_left",)
    assert pullback.start == ShotRef(shot="product")
    assert pullback.transition == Transition(type="crossfade", duration=0.5)
    assert arrival.end == ImageRef(path=EXAMPLES / "assets" / "coast.png")
    assert arrival.audio == "gentle waves and distant gulls"
    assert finale.start == ShotRef(shot="pullback") and finale.end == ShotRef(shot="arrival")
    assert finale.upscale == "1080p" and finale.transition == CUT
    assert [s.id for s in sl.generation_order()] == ["product", "pullback", "arrival", "finale"]


# --------------------------------------------------------------------------- the cascade
def test_builtin_defaults_when_defaults_and_output_are_omitted(tmp_path):
    path = write(tmp_path, "version: 1\nshots:\n  - id: a\n    prompt: A quiet lake\n")
    sl = load_shotlist(path)

    assert sl.defaults == BUILTIN_DEFAULTS
    (shot,) = sl.shots
    assert (shot.model, shot.resolution, shot.aspect_ratio, shot.duration) == ("ray-2", "720p", "16:9", "5s")
    assert shot.transition == CUT and shot.take == 1 and shot.loop is False and shot.camera == ()
    assert sl.output.path == tmp_path / "renders" / "list.mp4"
    assert (sl.output.resolution, sl.output.fps, sl.output.fit) == ("1080p", 24, "cover")
    assert (sl.output.music, sl.output.music_volume, sl.output.duck, sl.output.loudness) == (None, 0.5, True, -14.0)


def test_file_defaults_then_shot_overrides(tmp_path):
    path = write(tmp_path, """
version: 1
defaults:
  model: ray-flash-2
  resolution: 540p
  aspect_ratio: 9:16          # unquoted: YAML 1.1 would read 969
  duration: 9
  transition: {type: wipeleft, duration: 1}
shots:
  - id: inherit
    prompt: Inherits everything
  - id: override
    prompt: Overrides everything
    model: ray-2
    resolution: 1080p
    aspect_ratio: "1:1"
    duration: 5s
    transition: {type: dissolve, duration: 0.25}
  - id: nullcut
    prompt: An explicit null transition is a cut
    transition: null
  - id: omitted-null
    prompt: A null model inherits
    model: null
""")
    sl = load_shotlist(path)
    inherit, override, nullcut, omitted = sl.shots

    assert sl.defaults.duration == "9s" and sl.defaults.aspect_ratio == "9:16"
    assert (inherit.model, inherit.resolution, inherit.aspect_ratio, inherit.duration) == \
        ("ray-flash-2", "540p", "9:16", "9s")
    assert inherit.transition == Transition(type="wipeleft", duration=1.0)
    assert (override.model, override.resolution, override.aspect_ratio, override.duration) == \
        ("ray-2", "1080p", "1:1", "5s")
    assert override.transition == Transition(type="dissolve", duration=0.25)
    assert nullcut.transition == CUT
    assert omitted.model == "ray-flash-2" and omitted.transition == CUT      # last shot
    assert sl.output.aspect_ratio == "9:16" and (sl.output.width, sl.output.height) == (1080, 1920)


def test_relative_paths_resolve_against_the_file_not_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "sub" / "img").mkdir(parents=True)
    _encode_image(tmp_path / "sub" / "img" / "a.jpg", "mjpeg")
    _encode_image(tmp_path / "sub" / "img" / "b.webp", "libwebp")
    _write_wav(tmp_path / "sub" / "bed.wav")
    path = write(tmp_path / "sub", """
version: 1
output: {path: out/final.mp4, music: bed.wav, music_volume: 1.5, duck: false, loudness: -16}
shots:
  - {id: a, prompt: JPEG first frame, start: img/a.jpg, end: img/b.webp}
  - {id: b, prompt: Remote image, start: "https://example.com/x.png"}
""")
    monkeypatch.chdir(tmp_path)
    sl = load_shotlist("sub/list.yaml")

    assert sl.shots[0].start.path == tmp_path / "sub" / "img" / "a.jpg"
    assert sl.shots[0].end.path == tmp_path / "sub" / "img" / "b.webp"
    assert sl.shots[1].start == ImageRef(url="https://example.com/x.png")
    assert sl.output.path == tmp_path / "sub" / "out" / "final.mp4"
    assert sl.output.music == tmp_path / "sub" / "bed.wav"
    assert (sl.output.music_volume, sl.output.duck, sl.output.loudness) == (1.5, False, -16.0)


def test_cards_text_numbers_and_json(tmp_path):
    doc = {"version": 1, "title": 2027, "shots": [
        {"id": 7, "prompt": "Café at night 😀", "trim": [1, 4],
         "text": {"content": "Lisbon", "color": "#FF0000", "position": "top", "start": 0.5, "end": 3}},
        {"id": "card", "title": "The end", "duration": "2.5s", "text": "subtitle"},
    ]}
    path = write(tmp_path, json.dumps(doc), name="list.json")     # \ud83d escapes: JSON, not YAML
    sl = load_shotlist(path)
    shot, card = sl.shots

    assert sl.title == "2027" and shot.id == "7" and shot.prompt.endswith("😀")
    assert shot.text.colour == "#ff0000" and shot.text.position == "top" and shot.text.end == 3
    assert shot.length_s == 3.0
    assert card.duration == 2.5 and card.background == "#000000"
    assert card.text.content == "subtitle" and card.text.position == "bottom-left"


def test_last_shots_transition_is_ignored_even_if_it_could_not_fit(tmp_path):
    path = write(tmp_path, """
version: 1
shots:
  - {id: a, prompt: First shot, transition: {type: dissolve, duration: 2}}
  - {id: b, prompt: Last shot, trim: [0, 1], transition: {type: crossfade, duration: 30}}
""")
    with pytest.raises(ShotListError) as info:          # 2s dissolve into a 1s shot: refused
        load_shotlist(path)
    assert info.value.problems == [
        "list.yaml: shot 1 (a): transition: dissolve of 2s (48 frames) into shot 2 (b) does not "
        "fit: shot 2 (b) has only 24 frames (1s at 24 fps)"]

    path.write_text(path.read_text().replace("duration: 2}", "duration: 1}"))
    loaded = load_shotlist(path)
    a, b = loaded.shots
    assert spec.xfade_name(a.transition.type) == "dissolve" and b.transition == CUT
    assert loaded.warnings == ("list.yaml: shot 2 (b): transition: warning: the 30s crossfade is "
                               "ignored: nothing follows the last shot",)


def test_a_defaults_transition_that_does_not_fit_says_so(tmp_path):
    path = write(tmp_path, """
version: 1
defaults: {transition: {type: fade, duration: 2}}
shots:
  - {id: a, title: Short card, duration: 1.5}
  - {id: b, prompt: The scene opens}
""")
    assert problems_of(path) == [
        "list.yaml: shot 1 (a): transition: fade of 2s (48 frames) into shot 2 (b) does not fit: "
        "shot 1 (a) has only 36 frames (1.5s at 24 fps); the transition is from defaults"]


def test_generation_order_puts_referenced_shots_first(tmp_path):
    path = write(tmp_path, """
version: 1
shots:
  - {id: a, prompt: Leads into b, end: {shot: b}}
  - {id: b, prompt: Extends c, start: {shot: c}}
  - {id: t, title: Card, duration: 1}
  - {id: c, prompt: Stands alone}
""")
    assert [s.id for s in load_shotlist(path).generation_order()] == ["c", "b", "a"]


# --------------------------------------------------------------------------- bad lists
@pytest.mark.parametrize("name", sorted(EXPECTED), ids=str)
def test_bad_shotlist_is_refused_with_one_line_per_problem(name):
    problems = problems_of(BAD_DIR / name)

    assert_one_line_each(problems, name)
    text = "\n".join(problems)
    for fragment in EXPECTED[name]:
        assert fragment in text, (fragment, problems)


def test_there_are_at_least_30_bad_lists_and_each_has_expectations():
    files = {p.name for p in BAD_DIR.iterdir() if p.is_file() and p.name != "expected.yaml"}
    assert files == set(EXPECTED) and len(files) >= 30


def test_every_problem_in_a_file_is_reported():
    assert len(problems_of(BAD_DIR / "three_problems.yaml")) == 3


def test_problems_in_independent_fields_of_one_shot_are_all_reported(tmp_path):
    path = write(tmp_path, """
version: 1
shots:
  - id: e
    prompt: ab
    duration: long
    camera: [orbit_lft]
    start: http://example.com/x.png
    end: {shot: nope}
    text: {content: hi, color: red}
    upscale: 540p
""")
    fields = [line.split(": ")[2] for line in problems_of(path)]
    assert sorted(fields) == sorted(["prompt", "duration", "camera[0]", "start", "end", "text.color", "upscale"])


def test_wrong_shapes_get_one_plain_line_each(tmp_path):
    path = write(tmp_path, """
version: 1
output: {fps: true, music_volume: "0.5"}
shots:
  - {id: a, prompt: hello there, text: 5, transition: 5, start: 5, duration: true, camera: orbit_left, take: 1.0}
""")
    problems = problems_of(path)

    assert_one_line_each(problems, "list.yaml")
    assert problems == [
        "list.yaml: output.fps: true is not one of 24, 25, 30",
        "list.yaml: output.music_volume: expected a number, got '0.5'",
        "list.yaml: shot 1 (a): duration: expected 5s, 9s, 10s, or a number of seconds for a card, got true",
        "list.yaml: shot 1 (a): camera: expected a list, got 'orbit_left'; write it in brackets, e.g. [orbit_left]",
        "list.yaml: shot 1 (a): take: expected a whole number, got 1.0",
        "list.yaml: shot 1 (a): start: expected an image path, an https URL, {shot: ID} or "
            "{image: prompt, model: uni-1, refs: [...]}, got 5",
        "list.yaml: shot 1 (a): transition: expected cut or {type: T, duration: seconds}, got 5",
        "list.yaml: shot 1 (a): text: expected text or {content: ..., position: ...}, got 5",
    ]


def test_alias_bomb_is_refused_quickly_without_expansion():
    started = time.monotonic()
    problems = problems_of(BAD_DIR / "alias_bomb.yaml")
    assert time.monotonic() - started < 2
    assert len(problems) == 1 and "lol" not in problems[0]


def test_file_larger_than_one_mib_is_refused(tmp_path):
    path = write(tmp_path, "version: 1\n#" + "x" * (1 << 20) + "\n")
    assert problems_of(path) == ["list.yaml: the file is larger than 1 MiB; a shot list must be smaller"]


def test_missing_file_and_directory(tmp_path):
    assert problems_of(tmp_path / "nope.yaml") == ["nope.yaml: file not found"]
    (tmp_path / "dir.yaml").mkdir()
    assert problems_of(tmp_path / "dir.yaml") == ["dir.yaml: is a directory, not a shot list file"]


def test_unbounded_input_is_never_echoed(tmp_path):
    huge = "x" * 100_000
    path = write(tmp_path, f"version: 1\nshots:\n  - id: a\n    prompt: ok prompt\n    model: {huge}\n"
                           f"    text: {{content: hi, position: \"{'y' * 5000}\\n\\u2028z\"}}\n")
    problems = problems_of(path)
    assert_one_line_each(problems, "list.yaml")
    assert all(len(line) < 250 for line in problems) and len(problems) == 2


def test_problem_count_is_capped(tmp_path):
    shots = "".join(f"  - {{id: s{i}, prompt: number {i}, model: bad}}\n" for i in range(500))
    problems = problems_of(write(tmp_path, "version: 1\nshots:\n" + shots))
    assert len(problems) == 100 and problems[-1] == "list.yaml: 401 more problems not shown"


def test_deep_nesting_is_refused(tmp_path):
    assert problems_of(write(tmp_path, "[" * 5000 + "]" * 5000, name="deep.json")) == \
        ["deep.json: nested more than 64 levels deep"]


def test_yaml_12_scalars_keep_ids_and_aspects_as_written(tmp_path):
    path = write(tmp_path, "version: 1\nshots:\n  - {id: 01, prompt: first, aspect_ratio: 4:3}\n"
                           "  - {id: no, title: 2027-01-01, duration: 1}\n")
    sl = load_shotlist(path)
    assert [s.id for s in sl.shots] == ["01", "no"] and sl.shots[1].title == "2027-01-01"
    assert sl.shots[0].aspect_ratio == "4:3"


# --------------------------------------------------------------------------- schema and spec
def test_json_schema_describes_the_file_format():
    jsonschema = pytest.importorskip("jsonschema")
    schema = shotlist_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    json.dumps(schema)

    shot = schema["$defs"]["ShotIn"]
    for field in ("id", "prompt", "title", "model", "resolution", "aspect_ratio", "duration", "loop",
                  "camera", "take", "start", "end", "trim", "transition", "background", "text",
                  "upscale", "audio"):
        assert field in shot["properties"], field
    assert shot["required"] == ["id"] and shot["additionalProperties"] is False
    assert set(schema["$defs"]["OutputIn"]["properties"]) == \
        {"path", "resolution", "aspect_ratio", "fps", "fit", "music", "music_volume", "duck", "loudness"}
    assert set(schema["properties"]) == {"version", "title", "defaults", "output", "on_moderation",
                                         "characters", "shots"}

    validator = jsonschema.Draft202012Validator(schema)
    for example in ("teaser.yaml", "keyframes.yaml"):
        doc = yaml.safe_load((EXAMPLES / example).read_text(encoding="utf-8"))
        assert list(validator.iter_errors(doc)) == [], example
    bad = yaml.safe_load((BAD_DIR / "bad_model.yaml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(bad))
    stills = {"version": 1, "characters": {"mara": "mara.png", "cup": {"image": "https://x.org/c.png",
                                                                        "description": "a blue cup"}},
              "shots": [{"id": "a", "prompt": "Mara drinks", "start": {"image": "Mara, a cup",
                                                                        "refs": ["mara", "cup"]}},
                        {"id": "b", "prompt": "On it goes", "end": {"image": "A cup", "model": "uni-1-max"}}]}
    assert list(validator.iter_errors(stills)) == []
    stills["shots"][1]["end"]["model"] = "ray-2"
    assert list(validator.iter_errors(stills))


@pytest.mark.parametrize(("resolution", "aspect", "size"), [
    ("1080p", "16:9", (1920, 1080)), ("1080p", "9:16", (1080, 1920)), ("720p", "1:1", (720, 720)),
    ("1080p", "4:3", (1440, 1080)), ("1080p", "21:9", (2520, 1080)), ("4k", "16:9", (3840, 2160)),
    ("540p", "16:9", (960, 540)), ("540p", "9:21", (540, 1260)), ("720p", "3:4", (720, 960)),
])
def test_output_size(resolution, aspect, size):
    assert spec.output_size(resolution, aspect) == size


def test_output_size_is_always_even_and_rejects_unknowns():
    for r in spec.RESOLUTIONS:
        for a in spec.ASPECT_RATIOS:
            assert all(v % 2 == 0 for v in spec.output_size(r, a))
    with pytest.raises(ValueError):
        spec.output_size("2k", "16:9")


def test_spec_lists():
    assert len(spec.CONCEPTS) == len(set(spec.CONCEPTS)) == 34
    assert spec.DURATIONS == {"5s": 5, "9s": 9, "10s": 10} and tuple(spec.DURATIONS) == ("5s", "9s", "10s")
    assert len(spec.XFADE_TRANSITIONS) == 44 and "zoomin" in spec.XFADE_TRANSITIONS
    assert spec.TRANSITION_TYPES[:3] == ("cut", "crossfade", "fade")


# --------------------------------------------------------------------------- helpers
def _encode_image(path: Path, codec: str) -> None:
    """A 32x18 still through PyAV (no Pillow in the venv)."""
    fmt = "image2" if codec == "mjpeg" else "webp"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=1)
        stream.width, stream.height = 32, 18
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        frame = av.VideoFrame(32, 18, "rgb24").reformat(format=stream.pix_fmt)
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)


def _write_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)


def test_dependency_order_puts_each_id_after_what_it_needs():
    from reelflow.flows.shotlist import dependency_order

    assert dependency_order({"c": ["b"], "a": [], "b": ["a"], "d": []}) == ["a", "b", "c", "d"]
    assert dependency_order({"x": [], "y": []}) == ["x", "y"]       # no needs: the given order
    with pytest.raises(ValueError, match="a, b: references form a cycle"):
        dependency_order({"a": ["b"], "b": ["a"], "c": []})

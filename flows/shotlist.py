"""Shot-list models and validation: a YAML/JSON file in, a fully resolved ``ShotList`` out.

The user-facing format is fixed in shared/shotlist.md; ``shotlist_json_schema()`` describes
it. ``load_shotlist`` checks everything before anything is spent and raises
``ShotListError`` with one line per problem (``teaser.yaml: shot 3 (pour): trim: ...``).

Defaults cascade once, at load (as editly does): built-in defaults <- the file's
``defaults:`` <- the shot. Code downstream only ever sees resolved values. Omitting an
inheritable field inherits it; ``null`` also inherits, except ``transition: null``, which
means an explicit cut (``model_fields_set`` tells the two apart). A shot's ``transition``
leads out of it; the last shot's is forced to ``cut``. Nothing is guessed or shortened:
a transition that does not fit is an error.

Example:
    >>> from reelflow.flows.shotlist import load_shotlist
    >>> shot_list = load_shotlist("teaser.yaml")        # doctest: +SKIP
    >>> [(s.id, s.length_s) for s in shot_list.shots]   # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import logging
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from reelflow import spec
from reelflow.errors import ShotListError
from reelflow.flows import _shotlist_checks as checks
from reelflow.flows._shotlist_checks import (
    DefaultsIn, OutputIn, ShotIn, ShotListIn, ShotRefIn, TextIn, TransitionIn, fields_at,
)

__all__ = [
    "BUILTIN_DEFAULTS", "CUT", "Defaults", "ImageRef", "Output", "Shot", "ShotList", "ShotRef",
    "TextOverlay", "Transition", "load_shotlist", "shotlist_json_schema",
]

logger = logging.getLogger("reelflow.flows.shotlist")

# Built-in defaults, in one place (the httpx _config.py habit).
DEFAULT_MODEL = "ray-2"
DEFAULT_RESOLUTION = "720p"
DEFAULT_ASPECT_RATIO = "16:9"
DEFAULT_DURATION = "5s"
DEFAULT_OUTPUT_RESOLUTION = "1080p"
DEFAULT_FPS = 24
DEFAULT_FIT = "cover"
DEFAULT_MUSIC_VOLUME = 0.5      # linear gain on the music bed: a bed, not the lead
DEFAULT_DUCK = True             # lower the bed under generated audio
DEFAULT_LOUDNESS = -14.0        # integrated LUFS of the final mix (streaming norm)
DEFAULT_RENDER_DIR = "renders"  # beside the shot list: renders/<stem>.mp4
DEFAULT_CARD_BACKGROUND = "#000000"
DEFAULT_TEXT_POSITION = "bottom-left"
DEFAULT_TEXT_COLOUR = "#ffffff"
MAX_CARD_SECONDS = 60.0

_GENERATED_ONLY = ("prompt", "model", "resolution", "aspect_ratio", "loop", "camera", "take",
                   "start", "end", "trim", "upscale", "audio")
_CARD_ONLY = ("title", "background")


class _Resolved(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Transition(_Resolved):
    """How a shot goes into the next: ``cut`` (duration 0) or an overlap of ``duration`` s."""

    type: str = "cut"
    duration: float = 0.0

    @property
    def is_cut(self) -> bool:
        """True for a hard cut (no overlap)."""
        return self.type == "cut"

    @property
    def xfade(self) -> str | None:
        """The ffmpeg xfade transition that draws it (crossfade -> fade, fade -> fadeblack)."""
        return None if self.is_cut else spec.TRANSITION_ALIASES.get(self.type, self.type)


CUT = Transition()


class ImageRef(_Resolved):
    """A keyframe image: an absolute local ``path`` (checked to decode) or an https ``url``."""

    path: Path | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        if (self.path is None) == (self.url is None):
            raise ValueError("an ImageRef has exactly one of path and url")
        return self


class ShotRef(_Resolved):
    """A keyframe taken from another generated shot of the same list."""

    shot: str


class TextOverlay(_Resolved):
    """Text drawn over a shot; ``start``/``end`` are seconds within the shot (None: whole)."""

    content: str
    position: str = DEFAULT_TEXT_POSITION
    size: int | None = None
    colour: str = DEFAULT_TEXT_COLOUR
    start: float | None = None
    end: float | None = None


class Shot(_Resolved):
    """One resolved shot: generated (``prompt``) or a title card (``title``)."""

    id: str
    index: int
    prompt: str | None = None
    title: str | None = None
    model: str = DEFAULT_MODEL
    resolution: str = DEFAULT_RESOLUTION
    aspect_ratio: str = DEFAULT_ASPECT_RATIO
    duration: str | float = DEFAULT_DURATION
    loop: bool = False
    camera: tuple[str, ...] = ()
    take: int = 1
    start: ImageRef | ShotRef | None = None
    end: ImageRef | ShotRef | None = None
    trim: tuple[float, float] | None = None
    transition: Transition = CUT
    background: str | None = None
    text: TextOverlay | None = None
    upscale: str | None = None
    audio: str | None = None

    @property
    def is_card(self) -> bool:
        """True for a title card (nothing is generated)."""
        return self.title is not None

    @property
    def duration_s(self) -> float:
        """The untrimmed length in seconds: the generated clip's, or the card's."""
        return float(spec.DURATIONS[self.duration]) if isinstance(self.duration, str) else self.duration

    @property
    def length_s(self) -> float:
        """Seconds this shot contributes before transitions overlap it: trim length or duration."""
        return self.trim[1] - self.trim[0] if self.trim else self.duration_s


class Defaults(_Resolved):
    """The cascade's middle layer: built-in values overridden by the file's ``defaults:``."""

    model: str = DEFAULT_MODEL
    resolution: str = DEFAULT_RESOLUTION
    aspect_ratio: str = DEFAULT_ASPECT_RATIO
    duration: str = DEFAULT_DURATION
    transition: Transition = CUT


BUILTIN_DEFAULTS = Defaults()


class Output(_Resolved):
    """Delivery settings; ``path`` and ``music`` are absolute."""

    path: Path
    resolution: str = DEFAULT_OUTPUT_RESOLUTION
    aspect_ratio: str = DEFAULT_ASPECT_RATIO
    fps: int = DEFAULT_FPS
    fit: str = DEFAULT_FIT
    music: Path | None = None
    music_volume: float = DEFAULT_MUSIC_VOLUME
    duck: bool = DEFAULT_DUCK
    loudness: float = DEFAULT_LOUDNESS

    @property
    def width(self) -> int:
        """Frame width in pixels (``spec.output_size``)."""
        return spec.output_size(self.resolution, self.aspect_ratio)[0]

    @property
    def height(self) -> int:
        """Frame height in pixels (``spec.output_size``)."""
        return spec.output_size(self.resolution, self.aspect_ratio)[1]


class ShotList(_Resolved):
    """A validated, fully resolved shot list."""

    version: Literal[1] = 1
    title: str | None = None
    defaults: Defaults = BUILTIN_DEFAULTS
    output: Output
    shots: tuple[Shot, ...]
    source: Path

    def shot(self, shot_id: str) -> Shot:
        """The shot with this id (KeyError if none)."""
        for s in self.shots:
            if s.id == shot_id:
                return s
        raise KeyError(shot_id)

    @property
    def length_s(self) -> float:
        """Length of the edited sequence: shot lengths minus transition overlaps."""
        return sum(s.length_s for s in self.shots) - sum(s.transition.duration for s in self.shots[:-1])

    def generation_order(self) -> list[Shot]:
        """Generated shots, each after the shots its ``start``/``end`` reference; else by index."""
        gen = {s.id: s for s in self.shots if not s.is_card}
        needs = {i: {r.shot for r in (s.start, s.end) if isinstance(r, ShotRef)} for i, s in gen.items()}
        users: dict[str, list[str]] = {}
        for sid, refs in needs.items():
            for ref in refs:
                users.setdefault(ref, []).append(sid)
        ready = [(s.index, sid) for sid, s in gen.items() if not needs[sid]]
        heapq.heapify(ready)
        order: list[Shot] = []
        while ready:
            _, sid = heapq.heappop(ready)
            order.append(gen[sid])
            for user in users.get(sid, []):
                needs[user].discard(sid)
                if not needs[user]:
                    heapq.heappush(ready, (gen[user].index, user))
        return order


# --------------------------------------------------------------------------- loading
def load_shotlist(path: str | Path) -> ShotList:
    """Read, validate and resolve a shot list file (YAML or JSON).

    Args:
        path: the shot list file; relative paths inside it resolve against its directory.

    Returns:
        The resolved ``ShotList``.

    Raises:
        ShotListError: every problem found, one line each (``file: shot N (id): field: problem``).
    """
    source = Path(path).expanduser().absolute()
    problems = checks.Problems(source.name)
    ok, raw = checks.read_document(source, problems)
    if ok and not isinstance(raw, dict):
        problems.add(None, f"expected a mapping with 'version' and 'shots' at the top, got {checks.kind_of(raw)}")
    elif ok:
        result = _Loader(source, raw, problems).run()
        if result is not None and not problems:
            logger.debug("loaded %s: %d shots", source, len(result.shots))
            return result
    raise ShotListError(problems.lines())


class _Loader:
    """One load: validate the raw document, resolve the cascade, run the cross-shot checks.

    A field that fails validation is dropped and the rest of its section is still checked,
    so one run reports every problem; checks that would depend on a dropped value (say, a
    trim against a duration that did not parse) are skipped rather than guessed.
    """

    def __init__(self, source: Path, raw: dict[Any, Any], problems: checks.Problems):
        self.source, self.raw, self.problems = source, raw, problems
        self.base = source.parent
        shots = raw.get("shots")
        self.raw_shots: list[Any] = shots if isinstance(shots, list) else []
        self.bad: dict[Any, set[Any]] = {}     # "defaults"/"output"/shot position -> bad root fields
        self._images: dict[Path, str | None] = {}
        self.title: str | None = None

    def run(self) -> ShotList | None:
        """Everything; returns None when problems were found (the caller raises)."""
        self._validate()
        defaults, tainted = self._defaults()
        output = self._output(defaults)
        raw_ids, dupes = self._ids()
        shots: list[Shot | None] = []
        refs: list[tuple[int, str, str, str]] = []
        inherited: set[int] = set()
        for i, raw in enumerate(self.raw_shots):
            bad = self.bad.get(i, set())
            s_in = self._shot_input(raw, bad) if isinstance(raw, dict) and "*" not in bad else None
            if s_in is None:
                shots.append(None)
                continue
            shot = self._shot(i + 1, raw, s_in, defaults, tainted, bad)
            shots.append(None if bad or i in dupes else shot)
            if "transition" not in s_in.model_fields_set:
                inherited.add(i + 1)
            if "id" not in bad and i not in dupes:
                refs += [(i + 1, s_in.id, f, getattr(s_in, f).shot) for f in ("start", "end")
                         if isinstance(getattr(s_in, f), ShotRefIn)]
        if shots and shots[-1] is not None:            # nothing to go into: forced to cut
            shots[-1] = shots[-1].model_copy(update={"transition": CUT})
        checks.check_transitions(shots, inherited, self.problems)
        checks.check_references(raw_ids, refs, self.problems)
        if self.problems or output is None:
            return None
        return ShotList(title=self.title, defaults=defaults, output=output,
                        shots=tuple(s for s in shots if s is not None), source=self.source)

    def _validate(self) -> None:
        """Translate every pydantic error into a problem line and note which field it hit."""
        try:
            self.title = ShotListIn.model_validate(self.raw).title
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = tuple(err["loc"])
                if err["type"] == "invalid_key":          # a key like 5: show it, not "[5]"
                    loc = (*loc[:-1], checks.show(loc[-1]))
                text = checks.translate(err, fields_at)
                if len(loc) >= 2 and loc[0] == "shots" and isinstance(loc[1], int):
                    self.bad.setdefault(loc[1], set()).add(loc[2] if len(loc) > 2 else "*")
                    self._shot_problem(loc[1] + 1, checks.loc_path(loc[2:]) or None, text)
                else:
                    if loc[:1] in (("defaults",), ("output",)):
                        self.bad.setdefault(loc[0], set()).add(loc[1] if len(loc) > 1 else "*")
                    self.problems.add(checks.loc_path(loc) or None, text)

    def _shot_problem(self, number: int, field: str | None, text: str) -> None:
        raw = self.raw_shots[number - 1] if number <= len(self.raw_shots) else None
        self.problems.shot(number, raw.get("id") if isinstance(raw, dict) else None, field, text)

    def _ids(self) -> tuple[dict[str, tuple[int, bool]], set[int]]:
        """Ids from the raw shots -> (position, is a card), and the positions of duplicates."""
        ids: dict[str, tuple[int, bool]] = {}
        dupes: set[int] = set()
        for i, raw in enumerate(self.raw_shots):
            sid = raw.get("id") if isinstance(raw, dict) else None
            if not isinstance(sid, str) or not re.match(checks.ID_PATTERN, sid):
                continue
            if sid in ids:
                self._shot_problem(i + 1, "id", f"{sid!r} is already the id of shot {ids[sid][0]}")
                dupes.add(i)
            else:
                ids[sid] = (i + 1, raw.get("title") is not None and raw.get("prompt") is None)
        return ids, dupes

    @staticmethod
    def _clean(raw: Any, bad: set[Any]) -> dict[str, Any] | None:
        """The raw mapping without the fields that failed validation."""
        if raw is None:
            return {}
        if not isinstance(raw, dict) or "*" in bad:
            return None
        return {k: v for k, v in raw.items() if isinstance(k, str) and k not in bad}

    # ----------------------------------------------------------------- the cascade
    def _defaults(self) -> tuple[Defaults, set[str]]:
        """Built-ins <- the file's defaults; also the names of defaults that were invalid."""
        bad = self.bad.get("defaults", set())
        clean = self._clean(self.raw.get("defaults"), bad)
        if clean is None:
            return BUILTIN_DEFAULTS, set(Defaults.model_fields)
        d_in = DefaultsIn.model_validate(clean)
        values: dict[str, Any] = {k: getattr(d_in, k) for k in ("model", "resolution", "aspect_ratio")
                                  if getattr(d_in, k) is not None}
        tainted = {str(k) for k in bad}
        if d_in.duration is not None:
            duration = _clip_duration(d_in.duration)
            if duration is None:
                tainted.add("duration")
                self.problems.add("defaults.duration", _not_a_clip_duration(d_in.duration))
            else:
                values["duration"] = duration
        if "transition" in d_in.model_fields_set:
            values["transition"] = _transition(d_in.transition)
        return BUILTIN_DEFAULTS.model_copy(update=values), tainted

    def _output(self, defaults: Defaults) -> Output | None:
        """The output section resolved against the file's directory; None if it has problems."""
        bad = self.bad.get("output", set())
        clean = self._clean(self.raw.get("output"), bad)
        if clean is None:
            return None
        o_in = OutputIn.model_validate(clean)
        values = {k: v for k, v in o_in.model_dump(exclude={"path", "music"}).items() if v is not None}
        values.setdefault("aspect_ratio", defaults.aspect_ratio)
        path = self.base / DEFAULT_RENDER_DIR / f"{self.source.stem}.mp4"
        if o_in.path is not None:
            path = self._local(o_in.path)
            if path.suffix.lower() != ".mp4":
                self.problems.add("output.path", f"{checks.show(o_in.path)} must end in .mp4")
                bad.add("path")
        music = self._local(o_in.music) if o_in.music is not None else None
        if music is not None and (problem := checks.audio_problem(music, o_in.music or "")):
            self.problems.add("output.music", problem)
            bad.add("music")
        return None if bad else Output(path=path, music=music, **values)

    def _local(self, text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else self.base / p

    def _shot_input(self, raw: dict[Any, Any], bad: set[Any]) -> ShotIn | None:
        clean = self._clean(raw, bad) or {}
        clean.setdefault("id", "0")            # placeholder for a bad id: messages show the raw one
        try:
            return ShotIn.model_validate(clean)
        except ValidationError:                # cannot happen once the bad fields are gone
            logger.debug("shot still invalid after dropping %s", bad)
            return None

    def _shot(self, n: int, raw: dict[Any, Any], s: ShotIn, d: Defaults,
              tainted: set[str], bad: set[Any]) -> Shot | None:
        """Resolve one shot; ``None`` if it has problems (or depends on a value that had)."""
        before = len(self.problems)

        def report(field: str, text: str) -> None:
            if re.split(r"[.\[]", field)[0] not in bad:       # already reported at its field
                self.problems.shot(n, raw.get("id"), field, text)

        given = {k for k, v in raw.items() if isinstance(k, str) and v is not None}
        if not given & {"prompt", "title"} and bad - set(ShotIn.model_fields):
            return None                        # an unknown field ("promt") already says why
        if ("prompt" in given) == ("title" in given):
            report("prompt", "a shot has a prompt (generated) or a title (a text card), not both"
                   if "prompt" in given else "missing; a shot needs a prompt (generated) or a title (a text card)")
            return None
        card = "title" in given
        for field in sorted(given & set(_GENERATED_ONLY if card else _CARD_ONLY)):
            report(field, f"only generated shots have {field}; this shot is a title card"
                   if card else "only title cards have a background")
        inherit = lambda field: getattr(s, field) is None and field not in bad  # noqa: E731
        values: dict[str, Any] = {
            "id": s.id, "index": n, "prompt": s.prompt, "title": s.title,
            "model": s.model or d.model, "resolution": s.resolution or d.resolution,
            "aspect_ratio": s.aspect_ratio or d.aspect_ratio, "loop": bool(s.loop),
            "camera": tuple(s.camera or ()), "take": s.take or 1, "upscale": s.upscale, "audio": s.audio,
            "transition": _transition(s.transition) if "transition" in s.model_fields_set else d.transition}
        unknown = {f for f in ("duration", "resolution", "transition")
                   if f in bad or (inherit(f) and f in tainted and not card)}
        if "duration" in unknown:
            values["duration"] = None
        elif card:
            values["duration"] = _card_seconds(s.duration, report)
            values["background"] = (s.background or DEFAULT_CARD_BACKGROUND).lower()
        else:
            values["duration"] = _clip_duration(s.duration if s.duration is not None else d.duration)
            if values["duration"] is None:
                report("duration", _not_a_clip_duration(s.duration))
        if not card:
            self._generated_checks(s, values, report, check_upscale="resolution" not in unknown)
        if values["duration"] is not None:
            values["trim"] = _trim(s.trim, values["duration"], report) if s.trim and not card else None
            if "trim" not in bad:
                values["text"] = _text(s.text, values, report)
        if len(self.problems) != before or unknown or values["duration"] is None:
            return None
        return Shot(**values)

    def _generated_checks(self, s: ShotIn, values: dict[str, Any], report: Any, check_upscale: bool) -> None:
        for field in ("start", "end"):
            values[field] = self._keyframe(getattr(s, field), field, report)
        if s.loop and s.end is not None:
            report("loop", "a looping shot cannot have an end keyframe (Luma refuses loop with end)")
        if check_upscale and s.upscale and \
                spec.RESOLUTIONS.index(s.upscale) <= spec.RESOLUTIONS.index(values["resolution"]):
            report("upscale", f"{s.upscale} is not above the shot's resolution {values['resolution']}")
        seen: set[str] = set()
        for key in values["camera"]:
            if key in seen:
                report("camera", f"{key!r} is listed twice")
            seen.add(key)

    def _keyframe(self, value: str | ShotRefIn | None, field: str, report: Any) -> ImageRef | ShotRef | None:
        if value is None:
            return None
        if isinstance(value, ShotRefIn):
            return ShotRef(shot=value.shot)
        if urlsplit(value).scheme.lower() == "https":      # the only scheme validation lets through
            return ImageRef(url=value)
        path = self._local(value)
        if path not in self._images:
            self._images[path] = checks.image_problem(path, value)
        if self._images[path]:
            report(field, self._images[path])
        return ImageRef(path=path)


def _transition(value: str | TransitionIn | None) -> Transition:
    """User syntax -> Transition; ``null`` and ``cut`` are cuts."""
    if value is None or isinstance(value, str) or value.type == "cut":
        return CUT
    return Transition(type=value.type, duration=value.duration or 0.0)


def _clip_duration(value: str | float | None) -> str | None:
    """A generated clip's duration as "5s"/"9s" (5 and 9 accepted too), else None."""
    if isinstance(value, str):
        return value if value in spec.DURATIONS else None
    if value is not None:
        for name, seconds in spec.DURATIONS.items():
            if value == seconds:
                return name
    return None


def _not_a_clip_duration(value: str | float | None) -> str:
    shown = checks.fmt_num(value) if isinstance(value, float) else checks.show(value)
    return f"{shown} is not one of {', '.join(spec.DURATIONS)}"


def _card_seconds(value: str | float | None, report: Any) -> float | None:
    """A card's length: a number of seconds (or "3s"), more than 0 and at most 60."""
    if value is None:
        report("duration", "missing; a title card needs its length in seconds, e.g. duration: 3")
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)s", value.strip())
        if m is None:
            report("duration", f"{checks.show(value)} is not a number of seconds")
            return None
        value = float(m.group(1))
    if not 0 < value <= MAX_CARD_SECONDS:
        report("duration", f"a card lasts more than 0 and at most {MAX_CARD_SECONDS:g} seconds, "
                           f"got {checks.fmt_num(value)}")
        return None
    return float(value)


def _trim(trim: list[float], duration: str, report: Any) -> tuple[float, float] | None:
    a, b = trim
    shown = f"[{checks.fmt_num(a)}, {checks.fmt_num(b)}]"
    clip = spec.DURATIONS[duration]
    if a < 0:
        report("trim", f"{shown} starts before 0")
    elif b <= a:
        report("trim", f"{shown} is empty or reversed: the start must come before the end")
    elif b > clip:
        report("trim", f"{shown} ends after the {clip}s clip")
    else:
        return (a, b)
    return None


def _text(text: str | TextIn | None, values: dict[str, Any], report: Any) -> TextOverlay | None:
    """Resolve a text overlay; its start/end must lie inside the shot."""
    if text is None:
        return None
    if isinstance(text, str):
        return TextOverlay(content=text)
    if text.colour is not None and text.color is not None:
        report("text.color", "give colour or color, not both")
    duration = values["duration"]
    length = (values["trim"][1] - values["trim"][0]) if values.get("trim") else \
        (spec.DURATIONS[duration] if isinstance(duration, str) else duration)
    start, end = text.start, text.end
    if start is not None and start >= length:
        report("text.start", f"{checks.fmt_num(start)}s is not inside the {checks.fmt_num(length)}s shot")
    if end is not None and end > length:
        report("text.end", f"{checks.fmt_num(end)}s is after the end of the {checks.fmt_num(length)}s shot")
    if start is not None and end is not None and end <= start:
        report("text.end", f"{checks.fmt_num(end)}s is not after text.start {checks.fmt_num(start)}s")
    return TextOverlay(content=text.content, position=text.position, size=text.size,
                       colour=(text.colour or text.color or DEFAULT_TEXT_COLOUR).lower(),
                       start=start, end=end)


def shotlist_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the user-facing shot-list file, version 1."""
    schema = ShotListIn.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "reelflow shot list", **{k: v for k, v in schema.items() if k != "title"}}

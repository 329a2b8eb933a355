"""One load of a shot list: validate the raw document, resolve the cascade, run the checks.

Private to ``reelflow.flows.shotlist``, which imports it when ``load_shotlist`` runs (this
module builds that module's models, so it cannot be imported while they are defined).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from reelflow import defaults as builtin, spec
from reelflow.flows._shotlist_checks import (
    Problems, audio_problem, check_references, image_problem, loc_path,
    outside_problem, translate,
)
from reelflow.flows._shotlist_models import (
    Ray32Fields, check_chains, clip_duration, clip_seconds, model_checks,
)
from reelflow.flows._shotlist_input import (
    ID_PATTERN, DefaultsIn, OutputIn, ReframeIn, ShotIn, ShotListIn, ShotRefIn, StillIn, TextIn,
    TransitionIn, numbers_as_text,
)
from reelflow.flows._shotlist_stills import check_still_aspect, resolve_characters, still_ref
from reelflow.flows._shotlist_messages import fmt_num, show
from reelflow.flows.shotlist import (
    BUILTIN_DEFAULTS, CUT, Defaults, ImageRef, Output, Shot, ShotList, ShotRef, StillRef,
    TextOverlay, Transition,
)
from reelflow.flows.timeline import check_timeline, last_transition_warning

__all__ = ["Loader"]

logger = logging.getLogger("reelflow.flows.shotlist")

Report = Callable[[str, str], None]     # (field, problem text) -> a line about the current shot

_GENERATED_ONLY = ("prompt", "model", "resolution", "aspect_ratio", "loop", "camera", "take",
                   "start", "end", "trim", "upscale", "audio", "hdr", "exr", "keyframes", "edit",
                   "reframe")
_CARD_ONLY = ("title", "background")


class Loader(Ray32Fields):
    """One load: validate the raw document, resolve the cascade, run the cross-shot checks.

    A field that fails validation is dropped and the rest of its section is still checked,
    so one run reports every problem; checks that would depend on a dropped value (say, a
    trim against a duration that did not parse) are skipped rather than guessed.
    """

    def __init__(self, source: Path, raw: dict[Any, Any], problems: Problems, *,
                 confine: Path | None = None):
        self.source, self.raw, self.problems = source, raw, problems
        self.base = source.parent
        self.confine = confine                 # a list from S3: files must stay in this folder
        shots = raw.get("shots")
        self.raw_shots: list[Any] = shots if isinstance(shots, list) else []
        self.bad: dict[Any, set[Any]] = {}     # "defaults"/"output"/shot position -> bad root fields
        self._images: dict[Path, str | None] = {}
        self._clips: dict[Path, tuple[str | None, float | None]] = {}
        self._defaults = BUILTIN_DEFAULTS
        self.title: str | None = None
        self.on_moderation = "fail"

    def run(self) -> ShotList | None:
        """Everything; returns None when problems were found (the caller raises)."""
        self._validate()
        defaults, tainted = self._resolve_defaults()
        self._defaults = defaults
        output = self._output(defaults)
        self.cast = resolve_characters(self.raw.get("characters"), self._keyframe, self.problems.add)
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
                refs += [(i + 1, s_in.id, f, ref.shot) for f, ref in _shot_refs(s_in)]
        warnings = Problems(self.source.name)
        if shots and shots[-1] is not None:            # nothing to go into: forced to cut
            last_transition_warning(shots[-1], len(shots) in inherited, warnings)
            shots[-1] = shots[-1].model_copy(update={"transition": CUT})
        if output is not None:                         # frames need the output rate
            check_timeline(shots, output.fps, inherited, self.problems)
        check_references(raw_ids, refs, self.problems)
        check_chains(shots, self.problems)
        if self.problems or output is None:
            return None
        return ShotList(title=self.title, on_moderation=self.on_moderation, defaults=defaults,
                        output=output, warnings=tuple(warnings.lines()),
                        shots=tuple(s for s in shots if s is not None), source=self.source,
                        characters=self.cast[0])

    def _validate(self) -> None:
        """Translate every pydantic error into a problem line and note which field it hit."""
        try:
            top = ShotListIn.model_validate(self.raw)
            self.title, self.on_moderation = top.title, top.on_moderation or "fail"
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = tuple(err["loc"])
                if err["type"] == "invalid_key":          # a key like 5: show it, not "[5]"
                    loc = (*loc[:-1], show(loc[-1]))
                text = translate(err)
                if len(loc) >= 2 and loc[0] == "shots" and isinstance(loc[1], int):
                    self._mark_bad(loc[1], loc[2:])
                    self._shot_problem(loc[1] + 1, loc_path(loc[2:]) or None, text)
                else:
                    if loc[:1] in (("defaults",), ("output",)):
                        self._mark_bad(loc[0], loc[1:])
                    self.problems.add(loc_path(loc) or None, text)

    def _mark_bad(self, section: Any, rest: tuple[Any, ...]) -> None:
        """Note the root field of ``section`` an error hit ("*": the section itself)."""
        self.bad.setdefault(section, set()).add(rest[0] if rest else "*")

    def _shot_problem(self, number: int, field: str | None, text: str) -> None:
        raw = self.raw_shots[number - 1] if number <= len(self.raw_shots) else None
        self.problems.shot(number, raw.get("id") if isinstance(raw, dict) else None, field, text)

    def _ids(self) -> tuple[dict[str, tuple[int, bool]], set[int]]:
        """Ids from the raw shots -> (position, is a card), and the positions of duplicates."""
        ids: dict[str, tuple[int, bool]] = {}
        dupes: set[int] = set()
        for i, raw in enumerate(self.raw_shots):
            sid = numbers_as_text(raw.get("id")) if isinstance(raw, dict) else None
            if not isinstance(sid, str) or not re.match(ID_PATTERN, sid):
                continue
            if sid in ids:
                self._shot_problem(i + 1, "id", f"{sid!r} is already the id of shot {ids[sid][0]}")
                dupes.add(i)
            else:
                ids[sid] = (i + 1, raw.get("title") is not None and raw.get("prompt") is None)
        return ids, dupes

    def _section(self, name: str) -> tuple[set[Any], dict[str, Any] | None]:
        """The bad fields of ``defaults``/``output``, and the section without them (None:
        the section as a whole is unusable)."""
        bad = self.bad.get(name, set())
        return bad, self._clean(self.raw.get(name), bad)

    @staticmethod
    def _clean(raw: Any, bad: set[Any]) -> dict[str, Any] | None:
        """The raw mapping without the fields that failed validation."""
        if raw is None:
            return {}
        if not isinstance(raw, dict) or "*" in bad:
            return None
        return {k: v for k, v in raw.items() if isinstance(k, str) and k not in bad}

    # ----------------------------------------------------------------- the cascade
    def _resolve_defaults(self) -> tuple[Defaults, set[str]]:
        """Built-ins <- the file's defaults; also the names of defaults that were invalid."""
        bad, clean = self._section("defaults")
        if clean is None:
            return BUILTIN_DEFAULTS, set(builtin.INHERITED)
        d_in = DefaultsIn.model_validate(clean)
        layer, tainted = _layer(d_in), {str(k) for k in bad}
        if "duration" in layer:
            layer["duration"] = clip_duration(d_in.duration)     # None: not a clip duration
            if layer["duration"] is None:
                tainted.add("duration")
                self.problems.add("defaults.duration", _not_aclip_duration(d_in.duration))
        return Defaults(**builtin.cascade(dict(BUILTIN_DEFAULTS), layer)), tainted

    def _output(self, defaults: Defaults) -> Output | None:
        """The output section resolved against the file's directory; None if it has problems."""
        bad, clean = self._section("output")
        if clean is None:
            return None
        o_in = OutputIn.model_validate(clean)
        values = {k: v for k, v in o_in.model_dump(exclude={"path", "music"}).items() if v is not None}
        values.setdefault("aspect_ratio", defaults.aspect_ratio)
        path = self.base / builtin.RENDER_DIR / f"{self.source.stem}.mp4"
        if o_in.path is not None:
            path = self._local(o_in.path)
            if problem := outside_problem(path, self.confine, o_in.path):
                self.problems.add("output.path", problem)
                bad.add("path")
            elif path.suffix.lower() != ".mp4":
                self.problems.add("output.path", f"{show(o_in.path)} must end in .mp4")
                bad.add("path")
        music = self._local(o_in.music) if o_in.music is not None else None
        if music is not None and (problem := outside_problem(music, self.confine, o_in.music or "")
                                  or audio_problem(music, o_in.music or "")):
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
        if ("prompt" in given) == ("title" in given) and not ({"reframe"} & given - {"title"}):
            report("prompt", "a shot has a prompt (generated) or a title (a text card), not both"
                   if "prompt" in given else "missing; a shot needs a prompt (generated) or a title (a text card)")
            return None
        card = "title" in given
        for field in sorted(given & set(_GENERATED_ONLY if card else _CARD_ONLY)):
            report(field, f"only generated shots have {field}; this shot is a title card"
                   if card else "only title cards have a background")
        layer = _layer(s)                      # the cascade: built-ins <- defaults <- this shot
        inherited = builtin.cascade(dict(d), layer)
        values: dict[str, Any] = {
            "id": s.id, "index": n, "prompt": s.prompt, "title": s.title, "loop": bool(s.loop),
            "camera": tuple(s.camera or ()), "take": s.take or 1, "upscale": s.upscale, "audio": s.audio,
            **{f: inherited[f] for f in builtin.INHERITED if f != "duration"}}
        unknown = {f for f in ("duration", "resolution", "transition")
                   if f in bad or (f not in layer and f in tainted and not card)}
        if "duration" in unknown:
            values["duration"] = None
        elif card:
            values["duration"] = _cardclip_seconds(s.duration, report)
            values["background"] = (s.background or builtin.CARD_BACKGROUND).lower()
        elif s.edit is not None or s.reframe is not None:    # as long as the source
            if s.duration is not None:
                report("duration", "an edit or a reframe lasts as long as its source; remove duration")
            values["duration"] = self._source_duration(s)
        else:
            values["duration"] = clip_duration(inherited["duration"])
            if values["duration"] is None:
                report("duration", _not_aclip_duration(s.duration))
        if not card:
            self._generated_checks(s, values, report, check_upscale="resolution" not in unknown)
            model_checks(s, values, given, report)
            self._ray32_values(s, values, report)
        if values["duration"] is not None:
            values["trim"] = _trim(s.trim, values["duration"], report) if s.trim and not card else None
            if "trim" not in bad:
                values["text"] = _text(s.text, values, report)
        if len(self.problems) != before or unknown or values["duration"] is None:
            return None
        return Shot(**values)

    def _generated_checks(self, s: ShotIn, values: dict[str, Any], report: Report, check_upscale: bool) -> None:
        for field in ("start", "end"):
            values[field] = self._keyframe(getattr(s, field), field, report)
        check_still_aspect(values, report)
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

    def _keyframe(self, value: str | ShotRefIn | StillIn | None, field: str,
                  report: Report) -> ImageRef | ShotRef | StillRef | None:
        if value is None:
            return None
        if isinstance(value, ShotRefIn):
            return ShotRef(shot=value.shot)
        if isinstance(value, StillIn):
            return still_ref(value, field, *self.cast, report)
        if urlsplit(value).scheme.lower() == "https":      # the only scheme validation lets through
            return ImageRef(url=value)
        path = self._local(value)
        if path not in self._images:
            self._images[path] = outside_problem(path, self.confine, value) or image_problem(path, value)
        if self._images[path]:
            report(field, self._images[path])
        return ImageRef(path=path)


# --------------------------------------------------------------------------- value resolvers
def _layer(given: DefaultsIn | ShotIn) -> dict[str, Any]:
    """One layer of the cascade: the inheritable fields (``reelflow.defaults.INHERITED``)
    ``given`` sets. Left out or ``null`` inherits, except where ``null`` is a value of its
    own (``NULL_MEANS``: ``transition: null`` is a cut); the transition comes resolved."""
    layer = {f: getattr(given, f) for f in builtin.INHERITED}
    for field, meaning in builtin.NULL_MEANS.items():
        if layer[field] is None and field in given.model_fields_set:
            layer[field] = meaning
    if layer["transition"] is not None:
        layer["transition"] = _transition(layer["transition"])
    return {f: v for f, v in layer.items() if v is not None}


def _transition(value: str | TransitionIn | None) -> Transition:
    """User syntax -> Transition; ``null`` and ``cut`` are cuts."""
    if value is None or isinstance(value, str) or value.type == "cut":
        return CUT
    return Transition(type=value.type, duration=value.duration or 0.0)


def _not_aclip_duration(value: str | float | None) -> str:
    shown = fmt_num(value) if isinstance(value, float) else show(value)
    return f"{shown} is not one of {', '.join(spec.DURATIONS)}"


def _cardclip_seconds(value: str | float | None, report: Report) -> float | None:
    """A card's length: a number of seconds (or "3s"), more than 0 and at most 60."""
    if value is None:
        report("duration", "missing; a title card needs its length in seconds, e.g. duration: 3")
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)s", value.strip())
        if m is None:
            report("duration", f"{show(value)} is not a number of seconds")
            return None
        value = float(m.group(1))
    if not 0 < value <= builtin.MAX_CARD_SECONDS:
        report("duration", f"a card lasts more than 0 and at most {builtin.MAX_CARD_SECONDS:g} seconds, "
                           f"got {fmt_num(value)}")
        return None
    return float(value)


def _shot_refs(s: ShotIn) -> list[tuple[str, ShotRefIn | ReframeIn]]:
    """(field, reference) for every ``{shot: ID}`` of a shot: start, end, edit source, reframe."""
    refs = [(f, getattr(s, f)) for f in ("start", "end") if isinstance(getattr(s, f), ShotRefIn)]
    if s.edit is not None and isinstance(s.edit.source, ShotRefIn):
        refs.append(("edit.source", s.edit.source))
    if s.reframe is not None:
        refs.append(("reframe", s.reframe))
    return refs


def _trim(trim: list[float], duration: str | float, report: Report) -> tuple[float, float] | None:
    a, b = trim
    shown = f"[{fmt_num(a)}, {fmt_num(b)}]"
    clip = clip_seconds(duration)
    if a < 0:
        report("trim", f"{shown} starts before 0")
    elif b <= a:
        report("trim", f"{shown} is empty or reversed: the start must come before the end")
    elif b > clip:
        report("trim", f"{shown} ends after the {fmt_num(clip)}s clip")
    else:
        return (a, b)
    return None


def _text(text: str | TextIn | None, values: dict[str, Any], report: Report) -> TextOverlay | None:
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
        report("text.start", f"{fmt_num(start)}s is not inside the {fmt_num(length)}s shot")
    if end is not None and end > length:
        report("text.end", f"{fmt_num(end)}s is after the end of the {fmt_num(length)}s shot")
    if start is not None and end is not None and end <= start:
        report("text.end", f"{fmt_num(end)}s is not after text.start {fmt_num(start)}s")
    return TextOverlay(content=text.content, position=text.position, size=text.size,
                       colour=(text.colour or text.color or builtin.TEXT_COLOUR).lower(),
                       start=start, end=end)

"""The shot list's problem lines: pydantic's errors translated, and the checks that span shots.

Private to ``reelflow.flows.shotlist``. Three jobs:

* collect every problem as one bounded line ``file: shot N (id): field: problem``, never
  echoing more than ~60 characters of input (``Problems``);
* turn each pydantic error into such a line, without pydantic's wording (``translate``);
* the checks that span shots (references and their cycles) and the checks that touch
  the disk (keyframe images, the music bed). Whether the shots fit in frames (trims,
  transitions, text) is :mod:`reelflow.flows.timeline`'s.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reelflow import spec
from reelflow.flows._image_header import DECODE_MAX_PIXELS, ImageDamaged, check_intact, read_header
from reelflow.flows._shotlist_input import COLOUR_PATTERN, ID_PATTERN, fields_at, numbers_as_text
from reelflow.flows._shotlist_messages import did_you_mean, field_name, fmt_num, show

__all__ = [
    "MAX_PROBLEMS", "Problems", "audio_problem", "check_references", "clip_problem",
    "escaping_paths", "file_fields", "image_problem", "loc_path", "outside_problem", "output_problem", "translate",
]

logger = logging.getLogger("reelflow.flows.shotlist")

MAX_PROBLEMS = 100           # lines reported; the rest are counted


# --------------------------------------------------------------------------- problem lines
class Problems:
    """Collects problem lines for one file; sorted file, defaults, output, shots."""

    def __init__(self, file_name: str):
        self.file = file_name if file_name.isprintable() and len(file_name) <= 100 else show(file_name)
        self._items: list[tuple[tuple[int, int, int], str]] = []

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, field: str | None, message: str) -> None:
        """A problem outside any shot; ``field`` is a dotted path like ``output.fps``."""
        rank = {"defaults": 1, "output": 2, "shots": 3}.get((field or "").split(".")[0].split("[")[0], 0)
        self._push((rank, 0), self.file, field, message)

    def shot(self, number: int, shot_id: Any, field: str | None, message: str) -> None:
        """A problem in shot ``number`` (1-based); ``shot_id`` shown only when it is a string."""
        ident = ""
        shot_id = numbers_as_text(shot_id)           # ShotIn reads id: 7 as "7" too
        if isinstance(shot_id, str) and shot_id:
            ident = f" ({shot_id})" if re.match(ID_PATTERN, shot_id) else f" ({show(shot_id, 30)})"
        self._push((3, number), f"{self.file}: shot {number}{ident}", field, message)

    def _push(self, key: tuple[int, int], where: str, field: str | None, message: str) -> None:
        line = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        line = " ".join(line.split())          # one line, whatever went in
        self._items.append(((*key, len(self._items)), line))

    def lines(self) -> list[str]:
        """The problem lines in reading order, at most ``MAX_PROBLEMS`` of them."""
        ordered = [line for _, line in sorted(self._items)]
        if len(ordered) > MAX_PROBLEMS:
            extra = len(ordered) - MAX_PROBLEMS + 1
            ordered = ordered[: MAX_PROBLEMS - 1] + [f"{self.file}: {extra} more problems not shown"]
        return ordered


# --------------------------------------------------------------------------- pydantic errors
_EXPECTED = {
    "string_type": "a string", "int_type": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "bool_type": "true or false", "list_type": "a list",
    "tuple_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "finite_number": "a finite number",
    "none_required": "null", "int_parsing": "a whole number", "float_parsing": "a number",
}
_BOUNDS = {"greater_than": ("gt", "more than"), "greater_than_equal": ("ge", "at least"),
           "less_than": ("lt", "less than"), "less_than_equal": ("le", "at most")}
_SYNONYMS = {"image": "start", "first_frame": "start", "last_frame": "end", "start_image": "start",
             "end_image": "end", "length": "duration", "name": "id", "aspect": "aspect_ratio",
             "ratio": "aspect_ratio", "concepts": "camera", "caption": "text", "overlay": "text",
             "colour": "background", "color": "background", "volume": "music_volume", "frame_rate": "fps"}
_HINTS = {"id": "every shot needs a unique id", "shots": "add a list of shots",
          "version": "add 'version: 1' at the top", "content": "the text to show",
          "type": "e.g. {type: crossfade, duration: 0.5}", "shot": "the id of a generated shot"}


def loc_path(loc: Sequence[str | int]) -> str:
    """``("text", "colour")`` -> ``text.colour``; ``("trim", 0)`` -> ``trim[0]``; union tags dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith("<"):
            out += f".{field_name(part)}" if out else field_name(part)
    return out


def translate(err: dict[str, Any]) -> str:
    """One pydantic error -> the problem text after ``field: `` (no pydantic wording)."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    loc = tuple(err["loc"])
    last = next((p for p in reversed(loc) if isinstance(p, str) and not p.startswith("<")), "")
    if kind in ("extra_forbidden", "invalid_key"):
        known = fields_at(loc[:-1])
        synonym = _SYNONYMS.get(loc[-1]) if isinstance(loc[-1], str) else None
        hint = (f", did you mean {synonym!r}?" if synonym in known else did_you_mean(loc[-1], known)) \
            or f" (expected one of: {', '.join(known)})"
        return f"unknown field{hint}"
    if kind == "missing":
        return f"missing; {_HINTS[last]}" if last in _HINTS else "missing"
    if kind == "literal_error":
        choices = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"{show(value)} is not one of {choices}{did_you_mean(value, choices.split(', '))}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == ID_PATTERN:
            return (f"{show(value)} is not a valid id: use 1 to 64 lowercase letters, digits, "
                    "'-' or '_', starting with a letter or digit")
        if ctx.get("pattern") == COLOUR_PATTERN:
            return f"{show(value)} is not a colour; write it as \"#rrggbb\""
        return f"{show(value)} has the wrong form"
    if kind in ("string_too_short", "string_too_long") or \
            (kind in ("too_short", "too_long") and isinstance(value, str)):   # after a before-validator
        n = len(value) if isinstance(value, str) else 0
        if kind.endswith("too_short"):
            return f"too short: {n} characters (at least {ctx.get('min_length')})"
        return f"too long: {n} characters (at most {ctx.get('max_length')})"
    if kind in ("too_short", "too_long"):
        if last == "trim":
            return f"expected two numbers [start, end] in seconds, got {show(value)}"
        if last == "shots" and kind == "too_short":
            return "empty; add at least one shot"
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        side = "at least" if kind == "too_short" else "at most"
        return f"expected {side} {bound} items, got {ctx.get('actual_length', '?')}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        bound = ctx.get(key)
        return f"must be {words} {fmt_num(bound) if isinstance(bound, (int, float)) else show(bound)}, " \
               f"got {show(value)}"
    if kind in _EXPECTED:
        if last == "shots" and kind == "list_type":
            return f"expected a list of shots, got {show(value)}"
        if kind == "list_type" and isinstance(value, str):
            return f"expected a list, got {show(value)}; write it in brackets, e.g. [{field_name(value)}]"
        if kind == "model_type" and isinstance(loc[-1], int) and "shots" in loc:
            return f"expected a mapping with an id and a prompt or title, got {show(value)}"
        return f"expected {_EXPECTED[kind]}, got {show(value)}"
    if kind == "reelflow":                    # our own validators: the message is complete
        return str(ctx.get("msg", err.get("msg", "")))
    if kind.startswith("form_"):             # a tagged union whose shape matched no branch
        return f"{err.get('msg', '')}, got {show(value)}"
    text = str(err.get("msg", "invalid")).replace("Input should be", "expected").replace("Value error, ", "")
    return f"{text}, got {show(value)}"


# --------------------------------------------------------------------------- cross-shot checks
def check_references(raw_ids: dict[str, tuple[int, bool]], refs: Sequence[tuple[int, str, str, str]],
                     problems: Problems) -> None:
    """``start``/``end: {shot: X}`` must name another generated shot, with no cycles.

    ``refs`` holds ``(position, shot id, field, target id)``. ``raw_ids`` maps each id to
    (1-based position, is a card), read from the raw file so a reference to a shot that
    has problems of its own is not reported as unknown.
    """
    edges: dict[str, list[tuple[str, str]]] = {}
    for number, shot_id, field, target in refs:
        if target == shot_id:
            problems.shot(number, shot_id, field, "a shot cannot reference itself")
        elif target not in raw_ids:
            problems.shot(number, shot_id, field,
                          f"no shot has the id {show(target)}{did_you_mean(target, raw_ids)}")
        elif raw_ids[target][1]:
            problems.shot(number, shot_id, field,
                          f"{target!r} is a title card; only generated shots can be referenced")
        else:
            edges.setdefault(shot_id, []).append((field, target))
    _report_cycles(edges, {sid: pos for sid, (pos, _) in raw_ids.items()}, problems)


def _report_cycles(edges: dict[str, list[tuple[str, str]]], index_of: dict[str, int],
                   problems: Problems) -> None:
    """Report each reference cycle once, at its earliest shot (iterative DFS: a chain of
    thousands of extensions must not hit the recursion limit)."""
    state: dict[str, int] = {}                  # 1: on the current path, 2: finished
    for root in sorted(edges, key=lambda i: index_of[i]):
        if root in state:
            continue
        path, fields = [root], []                 # fields[k] leads from path[k] to path[k+1]
        state[root] = 1
        pending = [iter(edges.get(root, []))]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                state[path.pop()] = 2
                if fields:
                    fields.pop()
                continue
            field, target = step
            if state.get(target) == 1:
                at = path.index(target)
                _report_cycle(path[at:], fields[at:] + [field], index_of, problems)
            elif target not in state:
                state[target] = 1
                path.append(target)
                fields.append(field)
                pending.append(iter(edges.get(target, [])))


def _report_cycle(cycle: list[str], leads: list[str], index_of: dict[str, int],
                  problems: Problems) -> None:
    first = min(range(len(cycle)), key=lambda k: index_of[cycle[k]])
    ring = cycle[first:] + cycle[:first] + [cycle[first]]
    problems.shot(index_of[cycle[first]], cycle[first], leads[first],
                  "references form a cycle " + " -> ".join(ring)
                  + "; a referenced shot must be generated first")


# --------------------------------------------------------------------------- files on disk
def outside_problem(path: Path, folder: Path | None, label: str) -> str | None:
    """Why ``path`` (written ``label``) may not be used: it lies outside ``folder``, the
    folder of a list from S3 (None: a local list, whose user owns every path it names).

    Symbolic links and ``..`` are resolved first, so neither can lead out of the folder.
    """
    if folder is None:
        return None
    real, top = os.path.realpath(path), os.path.realpath(folder)
    if os.path.commonpath([real, top]) == top:
        return None
    return (f"{show(label)} is outside the shot list's folder; a list from S3 may only name "
            "files in its own folder")


def file_fields(shotlist: Any) -> list[tuple[Any, str, Path]]:
    """Every file path in a resolved shot list (inputs and the output), as (shot or None,
    field, path): walked generically, so a file field added later is found too."""
    found: list[tuple[Any, str, Path]] = []

    def walk(value: Any, shot: Any, field: str) -> None:
        if isinstance(value, Path):
            found.append((shot, field, value))
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                walk(item, shot, f"{field}[{i}]")
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), shot, f"{field}.{name}" if field else name)

    walk(shotlist.output, None, "output")
    for shot in shotlist.shots:
        walk(shot, shot, "")
    return found


def escaping_paths(shotlist: Any, folder: Path) -> list[tuple[Any, str, Path]]:
    """Every file path in a resolved shot list that lies outside ``folder``, as (shot or
    None, field, path): the backstop behind the per-field checks, so a file field added
    later cannot lead a list from S3 out of its folder either."""
    return [(shot, field, path) for shot, field, path in file_fields(shotlist)
            if outside_problem(path, folder, str(path))]


def output_problem(path: Path) -> str | None:
    """Why the output file ``path`` cannot be written, or None: checked before any spend
    (a folder in the way, a file where a folder should be, no permission, read-only)."""
    if path.is_dir():
        return f"{show(str(path))} is a folder; the output must be a file path ending in .mp4"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{show(str(path))} cannot be written: {show(str(folder))} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "a read-only file system" if os.statvfs(folder).f_flag & os.ST_RDONLY else \
            "no permission to write"
        return f"{show(str(path))} cannot be written: {why} at {show(str(folder))}"
    return None


def _not_a_file(path: Path, label: str, what: str) -> str | None:
    """Why ``path`` (written ``label``) is not an existing regular file, or ``None``."""
    if path.is_file():
        return None
    return f"{what} file {show(label)} not found" if not path.exists() else f"{show(label)} is not a file"


def image_problem(path: Path, label: str) -> str | None:
    """Why ``path`` is not a usable PNG, JPEG or WebP keyframe, or ``None`` if it is.

    ``label`` is the path as the user wrote it. The header gives the format and size, so an
    image the API cannot take is refused for that reason; then a check whose memory does not
    grow with the image (``_image_header``) catches a truncated or corrupt file. Nothing is
    decoded at full size: any input is judged in well under 200 MB.
    """
    if missing := _not_a_file(path, label, "image"):
        return missing
    size = path.stat().st_size
    if size > spec.MAX_IMAGE_BYTES:
        return (f"{show(label)} is {size / 2**20:.1f} MB; keyframe images may be at most "
                f"{spec.MAX_IMAGE_BYTES // 2**20} MB")
    try:
        info = read_header(path)
        if info is None:
            return f"{show(label)} is not a PNG, JPEG or WebP image"
        if max(info.width, info.height) > spec.MAX_IMAGE_SIDE:
            return (f"{show(label)} is {info.width}x{info.height} pixels; keyframe images may be "
                    f"at most {spec.MAX_IMAGE_SIDE} pixels a side: scale it down")
        check_intact(path, info)
    except ImageDamaged as exc:
        return f"{show(label)} does not decode as a {exc.kind} image: {exc.reason}"
    except OSError as exc:
        return f"{show(label)} cannot be read: {exc.strerror or type(exc).__name__}"
    return None


def audio_problem(path: Path, label: str) -> str | None:
    """Why ``path`` (written ``label``) is not a readable audio file, or ``None``."""
    if missing := _not_a_file(path, label, "music"):
        return missing
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return f"{show(label)} has no audio stream"
    except Exception as exc:  # noqa: BLE001 - any demuxer failure means "unusable audio"
        logger.debug("probing %s failed: %s", path, exc)
        return f"{show(label)} is not a readable audio file"
    return None



def _clip_frames(av: Any, path: Path) -> tuple[int, float]:
    """(frames, frame rate) of a video clip in bounded memory: frames counted from the
    demuxed packets (one per frame), all of them read, so a cut-off file fails; only the
    first frame decoded, single-threaded, and only up to ``DECODE_MAX_PIXELS``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 24)
        frames = sum(1 for packet in container.demux(stream) if packet.size)
        if stream.frames and frames != stream.frames:
            raise ValueError(f"{frames} of {stream.frames} frames readable")
        if stream.codec_context.width * stream.codec_context.height <= DECODE_MAX_PIXELS:
            container.seek(0)
            stream.thread_type, stream.thread_count = "SLICE", 1
            next(container.decode(stream))
    return frames, fps


def clip_problem(path: Path, label: str, max_seconds: float) -> tuple[str | None, float | None]:
    """(why ``path`` is not a usable video clip of at most ``max_seconds``, its length in
    seconds): the problem is None for a clip that decodes; the length None when unknown."""
    if missing := _not_a_file(path, label, "video"):
        return missing, None
    import av

    try:
        frames, fps = _clip_frames(av, path)
    except Exception as exc:  # noqa: BLE001 - any demuxer/decoder failure means "unusable clip"
        logger.debug("decoding %s failed: %s", path, exc)
        return f"{show(label)} is not a readable video clip", None
    seconds = round(frames / fps, 3) if frames else 0.0
    if not 0 < seconds <= max_seconds:
        return (f"{show(label)} lasts {fmt_num(seconds)}s; a ray-3.2 edit takes a clip of "
                f"at most {fmt_num(max_seconds)}s"), None
    return None, seconds

"""The shot list's guarded reader, its one-line problem messages, and cross-shot checks.

Private to ``reelflow.flows.shotlist``. Three jobs:

* read a file safely: at most 1 MiB, UTF-8 only, YAML (JSON is YAML) through a loader
  that never expands aliases past a fixed number of values, nor recursive ones;
* turn every problem, including pydantic's errors, into one bounded line
  ``file: shot N (id): field: problem``, never echoing more than ~60 characters of input;
* the checks that span shots (transition fit, references and their cycles) and the
  checks that touch the disk (keyframe images, the music bed).
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Union
from urllib.parse import urlsplit

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field,
                      Tag, ValidationInfo, WithJsonSchema, field_validator)
from pydantic_core import PydanticCustomError

from reelflow import spec

logger = logging.getLogger("reelflow.flows.shotlist")

MAX_BYTES = 1 << 20          # a shot list is text; anything bigger is a mistake or an attack
MAX_VALUES = 200_000         # values after alias expansion (a real list has a few thousand)
MAX_DEPTH = 64               # the format nests 4 deep; deeper is an attack on the recursion limit
MAX_PROBLEMS = 100           # lines reported; the rest are counted
SHOW_MAX = 60                # characters of any user value quoted in a message
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
COLOUR_PATTERN = r"^#[0-9a-fA-F]{6}$"

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")


# --------------------------------------------------------------------------- messages
def show(value: Any, limit: int = SHOW_MAX) -> str:
    """Render a user value on one line, in YAML-ish syntax, at most ~``limit`` characters.

    Work is bounded too: containers are walked only until the budget is spent, so a huge
    (or alias-shared) structure costs nothing extra.
    """
    parts: list[str] = []
    budget = [limit]

    def emit(text: str) -> bool:
        parts.append(text[: max(budget[0], 0)])
        budget[0] -= len(text)
        return budget[0] > 0

    def walk(v: Any, depth: int) -> bool:
        if v is None or isinstance(v, bool):
            return emit({None: "null", True: "true", False: "false"}[v])
        if isinstance(v, (int, float)):
            return emit(repr(v))           # 1.0 stays "1.0": "expected a whole number, got 1.0"
        if isinstance(v, str):
            return emit(repr(v[: budget[0] + 1]))
        if isinstance(v, (list, tuple)) and depth < 3:
            if not emit("["):
                return False
            for i, item in enumerate(v):
                if (i and not emit(", ")) or not walk(item, depth + 1):
                    return False
            return emit("]")
        if isinstance(v, dict) and depth < 3:
            if not emit("{"):
                return False
            for i, (k, item) in enumerate(v.items()):
                if (i and not emit(", ")) or not walk(k, depth + 1) or not emit(": ") \
                        or not walk(item, depth + 1):
                    return False
            return emit("}")
        return emit(f"<{type(v).__name__}>")

    complete = walk(value, 0)
    text = "".join(parts)
    return text if complete and budget[0] >= 0 else text + "…"


def kind_of(value: Any) -> str:
    """``a list``, ``a string``...: what a value is, without quoting it."""
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a mapping", type(None): "nothing"}
    return names.get(type(value), f"a {type(value).__name__}")


def fmt_num(x: float) -> str:
    """Seconds and other numbers as people write them: 5, 0.5, 4.5."""
    return f"{x:g}"


def field_name(key: Any) -> str:
    """A mapping key as it may appear in a message: plain if name-like, else quoted."""
    return key if isinstance(key, str) and _SAFE_NAME.match(key) else show(key, 40)


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """``", did you mean 'x'?"`` for the closest choice, or ``""`` when nothing is close."""
    if not isinstance(word, str) or len(word) > 100:      # a long value is no typo; keep it cheap
        return ""
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""


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
        where = f"{field}: " if field else ""
        self._push((rank, 0), f"{self.file}: {where}{message}")

    def shot(self, number: int, shot_id: Any, field: str | None, message: str) -> None:
        """A problem in shot ``number`` (1-based); ``shot_id`` shown only when it is a string."""
        ident = ""
        if isinstance(shot_id, (int, float)) and not isinstance(shot_id, bool):
            shot_id = _numbers_as_text(shot_id)           # ShotIn reads id: 7 as "7" too
        if isinstance(shot_id, str) and shot_id:
            ident = f" ({shot_id})" if re.match(ID_PATTERN, shot_id) else f" ({show(shot_id, 30)})"
        where = f"{field}: " if field else ""
        self._push((3, number), f"{self.file}: shot {number}{ident}: {where}{message}")

    def _push(self, key: tuple[int, int], line: str) -> None:
        line = " ".join(line.split())          # one line, whatever went in
        self._items.append(((*key, len(self._items)), line))

    def lines(self) -> list[str]:
        """The problem lines in reading order, at most ``MAX_PROBLEMS`` of them."""
        ordered = [line for _, line in sorted(self._items)]
        if len(ordered) > MAX_PROBLEMS:
            extra = len(ordered) - MAX_PROBLEMS + 1
            ordered = ordered[: MAX_PROBLEMS - 1] + [f"{self.file}: {extra} more problems not shown"]
        return ordered


# --------------------------------------------------------------------------- reading
class _Refused(Exception):
    """The document is refused before construction (alias bomb, recursion, depth)."""


_YAML_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DROPPED_TAGS = {"tag:yaml.org,2002:" + t for t in ("bool", "int", "float", "timestamp")}


class _GuardedLoader(_YAML_BASE):  # type: ignore[misc, valid-type]
    """SafeLoader with YAML 1.2 (JSON-like) scalars: ``16:9``, ``no``/``on``, ``2027-01-01``
    and ``01`` (a shot id!) all stay strings instead of becoming 969, False, a date and 1."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


_GuardedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_GuardedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_GuardedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
_GuardedLoader.add_constructor(
    "tag:yaml.org,2002:int", lambda loader, node: int(loader.construct_scalar(node), 10))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _measure(root: yaml.Node) -> list[str]:
    """Walk the composed node graph (aliases are shared nodes) without expanding it.

    Raises ``_Refused`` for recursive aliases, deep nesting or more than ``MAX_VALUES``
    values once expanded; returns duplicate-key warnings as problem texts.
    """
    size: dict[int, int] = {}
    state: dict[int, int] = {}          # 1: on the current path, 2: measured
    duplicates: list[str] = []
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, leaving = stack.pop()
        key = id(node)
        if leaving:
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            if size[key] > MAX_VALUES:
                kind = "YAML aliases expand" if size[key] > 2 * len(size) else "the document has"
                raise _Refused(f"{kind} to more than {MAX_VALUES} values; refusing to expand it")
            state[key] = 2
            continue
        if state.get(key) == 2:
            continue
        if state.get(key) == 1:
            raise _Refused(f"line {node.start_mark.line + 1}: a YAML alias refers to a value "
                           "that contains it (recursive alias)")
        if depth > MAX_DEPTH:
            raise _Refused(f"line {node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        state[key] = 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    if k.value in seen:
                        duplicates.append(f"line {k.start_mark.line + 1}: duplicate key "
                                          f"{show(k.value)} (the last one would win)")
                    seen.add(k.value)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))
    return duplicates


def _yaml_error_text(exc: yaml.YAMLError) -> str:
    """One line from a PyYAML error: ``line L, column C: YAML syntax error: problem``."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        if isinstance(exc, yaml.constructor.ConstructorError):     # e.g. !!python/object
            return f"line {mark.line + 1}, column {mark.column + 1}: YAML error: {exc.problem}"[:240]
        context = f" ({exc.context})" if exc.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: " \
               f"{exc.problem}{context}"[:240]
    return f"YAML error: {' '.join(str(exc).split())}"[:240]


def _load_yaml(text: str) -> tuple[Any, list[str]]:
    loader = _GuardedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        warnings = _measure(node)
        return loader.construct_document(node), warnings
    finally:
        loader.dispose()


def _load_json(text: str) -> tuple[Any, list[str]]:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                duplicates.append(f"duplicate key {show(k)} in a JSON object (the last one would win)")
            out[k] = v
        return out

    return json.loads(text, object_pairs_hook=pairs), duplicates


def read_document(path: Path, problems: Problems) -> tuple[bool, Any]:
    """Read and parse ``path``; on failure add problem lines and return ``(False, None)``."""
    try:
        if path.is_dir():
            problems.add(None, "is a directory, not a shot list file")
            return False, None
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        problems.add(None, "file not found")
        return False, None
    except OSError as exc:
        problems.add(None, f"cannot read the file: {exc.strerror or type(exc).__name__}")
        return False, None
    if len(data) > MAX_BYTES:
        problems.add(None, "the file is larger than 1 MiB; a shot list must be smaller")
        return False, None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.add(None, f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line}; save the file as UTF-8")
        return False, None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        problems.add(None, "the file is empty; a shot list needs at least 'version: 1' and 'shots'")
        return False, None
    return _parse(text, path.suffix.lower() == ".json", problems)


def _parse(text: str, is_json: bool, problems: Problems) -> tuple[bool, Any]:
    """Parse JSON-looking text as JSON first (PyYAML rejects some valid JSON escapes)."""
    try:
        if text.lstrip()[:1] in ("{", "["):
            try:
                return _finish(*_load_json(text), problems)
            except json.JSONDecodeError as exc:
                if is_json:      # otherwise it may be flow-style YAML: let YAML judge it
                    problems.add(None, f"line {exc.lineno}, column {exc.colno}: "
                                       f"JSON syntax error: {exc.msg}")
                    return False, None
        return _finish(*_load_yaml(text), problems)
    except yaml.YAMLError as exc:
        problems.add(None, _yaml_error_text(exc))
    except _Refused as exc:
        problems.add(None, str(exc))
    except RecursionError:
        problems.add(None, f"nested more than {MAX_DEPTH} levels deep")
    return False, None


def _finish(data: Any, warnings: list[str], problems: Problems) -> tuple[bool, Any]:
    for warning in warnings:      # reported, but validation goes on to find the rest
        problems.add(None, warning)
    return True, data


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


def translate(err: dict[str, Any], fields_at: Callable[[tuple], Sequence[str]]) -> str:
    """One pydantic error -> the problem text after ``field: `` (no pydantic wording).

    ``fields_at(loc)`` lists the known field names of the mapping an unknown key sits in.
    """
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
def check_transitions(shots: Sequence[Any], inherited: set[int], problems: Problems) -> None:
    """Each transition of d seconds must fit inside both neighbours, and a shot's incoming
    plus outgoing overlaps must fit inside it (shots that failed to resolve are ``None``)."""
    for i, shot in enumerate(shots[:-1]):
        nxt = shots[i + 1]
        if shot is None or nxt is None or shot.transition.type == "cut":
            continue
        t = shot.transition
        what = f"{fmt_num(t.duration)}s {t.type}" + (" (from defaults)" if shot.index in inherited else "")
        if t.duration > shot.length_s:
            problems.shot(shot.index, shot.id, "transition",
                          f"{what} is longer than this shot ({fmt_num(shot.length_s)}s)")
        if t.duration > nxt.length_s:
            problems.shot(shot.index, shot.id, "transition",
                          f"{what} is longer than the next shot {nxt.id!r} ({fmt_num(nxt.length_s)}s)")
    for i, shot in enumerate(shots):
        if shot is None or i == 0 or shots[i - 1] is None:
            continue
        d_in, d_out = shots[i - 1].transition.duration, shot.transition.duration
        if d_in and d_out and d_in <= shot.length_s and d_out <= shot.length_s \
                and d_in + d_out > shot.length_s:
            problems.shot(shot.index, shot.id, "transition",
                          f"the incoming {fmt_num(d_in)}s and outgoing {fmt_num(d_out)}s transitions "
                          f"overlap inside this {fmt_num(shot.length_s)}s shot")


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
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))


def image_problem(path: Path, label: str) -> str | None:
    """Why ``path`` is not a usable PNG, JPEG or WebP image, or ``None`` if it is.

    ``label`` is the path as the user wrote it. The signature picks the format; PyAV then
    decodes the first frame, so a truncated or corrupt file is caught before anything is spent.
    """
    if not path.is_file():
        return f"image file {show(label)} not found" if not path.exists() else f"{show(label)} is not a file"
    with path.open("rb") as fh:
        head = fh.read(16)
    kind = next((name for magic, name in _IMAGE_MAGIC if head.startswith(magic)), None)
    if kind is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        kind = "WebP"
    if kind is None:
        return f"{show(label)} is not a PNG, JPEG or WebP image"
    import av  # here, not at import: the CLI refuses a bad list without loading codecs

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            if frame.width < 1 or frame.height < 1:
                raise ValueError("empty frame")
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "unusable image"
        logger.debug("decoding %s failed: %s", path, exc)
        return f"{show(label)} does not decode as a {kind} image (truncated or corrupt?)"
    return None


def audio_problem(path: Path, label: str) -> str | None:
    """Why ``path`` (written ``label``) is not a readable audio file, or ``None``."""
    if not path.is_file():
        return f"music file {show(label)} not found" if not path.exists() else f"{show(label)} is not a file"
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return f"{show(label)} has no audio stream"
    except Exception as exc:  # noqa: BLE001 - any demuxer failure means "unusable audio"
        logger.debug("probing %s failed: %s", path, exc)
        return f"{show(label)} is not a readable audio file"
    return None


# --------------------------------------------------------------------------- the user-facing format
# These input models ARE the file format: pydantic validates raw data with them (strict:
# no "5" for 5, no "yes" for true) and ``reelflow schema`` prints their JSON Schema.
def _fail(message: str) -> NoReturn:
    """Raise a validation error whose text is ``message`` verbatim (braces and all)."""
    raise PydanticCustomError("reelflow", "{msg}", {"msg": message})


def _numbers_as_text(value: Any) -> Any:
    """``title: 2027`` is text to a person; YAML made it a number."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _transition_type(value: str) -> str:
    if value not in spec.TRANSITION_TYPES:
        hint = did_you_mean(value, spec.TRANSITION_TYPES) or \
            "; use cut, crossfade, fade or an ffmpeg xfade name such as wipeleft or circleopen"
        _fail(f"{show(value)} is not a transition type{hint}")
    return value


def _transition_word(value: str) -> str:
    if _transition_type(value) != "cut":
        _fail(f"{value} needs a duration: write {{type: {value}, duration: 0.5}}")
    return value


def _transition_duration(value: float | None, info: ValidationInfo) -> float | None:
    kind = info.data.get("type")
    if kind == "cut" and value:
        _fail(f"a cut has no duration, got {fmt_num(value)}")
    if kind not in (None, "cut") and value is None:
        _fail(f"missing; a {kind} needs its overlap in seconds, e.g. duration: 0.5")
    if kind not in (None, "cut") and value is not None and value <= 0:
        _fail(f"must be more than 0 seconds, got {fmt_num(value)}")
    return value


def _keyframe_text(value: str) -> str:
    scheme = urlsplit(value).scheme.lower()
    if len(scheme) > 1:                       # one letter is a Windows drive, not a scheme
        if scheme != "https":
            _fail(f"{show(value)}: only https URLs can be used (Luma fetches the image itself); "
                  "or give a local file path")
        if not urlsplit(value).netloc:
            _fail(f"{show(value)} is not a valid https URL")
    return value


def _concept(value: str) -> str:
    if value not in spec.CONCEPTS:
        hint = did_you_mean(value, spec.CONCEPTS) or f" (known: {', '.join(sorted(spec.CONCEPTS))})"
        _fail(f"{show(value)} is not a Luma camera concept{hint}")
    return value


def _version(value: int) -> int:
    if value != 1:
        _fail(f"only version 1 is supported, got {show(value)}")
    return value


def _shape(value: Any) -> str | None:
    """Union tag by the shape of the raw value (tags start with '<' so messages drop them)."""
    if isinstance(value, str):
        return "<str>"
    if isinstance(value, dict):
        return "<map>"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "<num>"
    return None


def _one_of(error: str, message: str) -> Discriminator:
    return Discriminator(_shape, custom_error_type=f"form_{error}", custom_error_message=message)


Text = Annotated[str, BeforeValidator(_numbers_as_text)]
Colour = Annotated[str, Field(pattern=COLOUR_PATTERN)]
Seconds = Annotated[float, Field(ge=0)]
Position = Literal[spec.TEXT_POSITIONS]  # type: ignore[valid-type]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class TransitionIn(_In):
    """``{type: T, duration: seconds}``: how this shot goes into the next one."""

    type: Annotated[str, AfterValidator(_transition_type)] = Field(
        description="cut, crossfade, fade (through black) or an ffmpeg xfade transition name.",
        json_schema_extra={"enum": list(spec.TRANSITION_TYPES)})
    duration: float | None = Field(
        None, validate_default=True,
        description="Seconds the two shots overlap; required and above 0 unless the type is cut.")

    _check_duration = field_validator("duration")(_transition_duration)


TransitionField = Annotated[
    Union[Annotated[Annotated[str, AfterValidator(_transition_word), WithJsonSchema({"const": "cut"})],
                    Tag("<str>")],
          Annotated[TransitionIn, Tag("<map>")]],
    _one_of(error="transition", message="expected cut or {type: T, duration: seconds}"),
    Field(description="How the shot goes into the next: cut, or {type: T, duration: seconds}. "
                      "null means cut; the last shot's transition is ignored.")]


class ShotRefIn(_In):
    """``{shot: ID}``: use another generated shot of this list as the keyframe."""

    shot: str = Field(pattern=ID_PATTERN, description="The id of a generated shot in this list.")


Keyframe = Annotated[
    Union[Annotated[Annotated[str, Field(min_length=1, max_length=4096),
                              AfterValidator(_keyframe_text)], Tag("<str>")],
          Annotated[ShotRefIn, Tag("<map>")]],
    _one_of(error="keyframe", message="expected an image path, an https URL or {shot: ID}")]

Duration = Annotated[
    Union[Annotated[str, Tag("<str>"), WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?s$"})],
          Annotated[float, Tag("<num>")]],
    _one_of(error="duration", message="expected 5s, 9s, or a number of seconds for a card"),
    Field(description="Generated shots: 5s or 9s (5 and 9 accepted). "
                      "Title cards: seconds, more than 0 and at most 60.")]


class TextIn(_In):
    """Text drawn over the shot."""

    content: Text = Field(min_length=1, max_length=500, description="The text to draw.")
    position: Position = Field("bottom-left", description="Where in the frame.")
    size: int | None = Field(None, ge=8, le=1000,
                             description="Font height in output pixels; default: scaled to the frame.")
    colour: Colour | None = Field(None, description="Text colour, \"#rrggbb\"; default white.")
    color: Colour | None = Field(None, description="Same as colour.")
    start: Seconds | None = Field(None, description="Seconds into the shot where the text appears; default 0.")
    end: Seconds | None = Field(None, description="Seconds into the shot where it disappears; default the end.")


TextField = Annotated[
    Union[Annotated[Annotated[str, Field(min_length=1, max_length=500)], Tag("<str>")],
          Annotated[TextIn, Tag("<map>")]],
    _one_of(error="text", message="expected text or {content: ..., position: ...}"),
    Field(description="A text overlay: the text itself, or {content, position, size, colour, start, end}.")]

Model = Literal[spec.MODELS]  # type: ignore[valid-type]
Resolution = Literal[spec.RESOLUTIONS]  # type: ignore[valid-type]
Aspect = Literal[spec.ASPECT_RATIOS]  # type: ignore[valid-type]
Fps = Literal[spec.OUTPUT_FPS]  # type: ignore[valid-type]
Fit = Literal[spec.FITS]  # type: ignore[valid-type]
FilePath = Annotated[str, Field(min_length=1, max_length=4096)]


class ShotIn(_In):
    """One shot: generated from a ``prompt``, or a text card with a ``title``."""

    id: Annotated[str, BeforeValidator(_numbers_as_text)] = Field(
        pattern=ID_PATTERN, description="Unique slug, [a-z0-9][a-z0-9_-]{0,63}; names the shot's files.")
    prompt: Annotated[Text, Field(min_length=spec.PROMPT_MIN, max_length=spec.PROMPT_MAX)] | None = \
        Field(None, description="What to generate (3-5000 characters). Not with title.")
    title: Annotated[Text, Field(min_length=1, max_length=500)] | None = \
        Field(None, description="Makes the shot a text card showing this title. Needs duration.")
    model: Model | None = Field(None, description="Video model; default from defaults.")
    resolution: Resolution | None = Field(None, description="Generation resolution; default from defaults.")
    aspect_ratio: Aspect | None = Field(None, description="Generation aspect ratio; default from defaults.")
    duration: Duration | None = None
    loop: bool | None = Field(None, description="Generate a seamless loop (not with end).")
    camera: list[Annotated[str, AfterValidator(_concept), WithJsonSchema({"enum": list(spec.CONCEPTS)})]] | None = \
        Field(None, description="Luma camera concepts, e.g. [orbit_left].")
    take: int | None = Field(None, ge=1, le=1000,
                             description="Take number: another take of the same request, paid anew.")
    start: Keyframe | None = Field(None, description="First frame: an image (path or https URL), "
                                                     "or {shot: ID} to extend that shot.")
    end: Keyframe | None = Field(None, description="Last frame: an image (path or https URL), "
                                                   "or {shot: ID} to lead into that shot.")
    trim: list[float] | None = Field(None, min_length=2, max_length=2,
                                     description="[start, end]: the seconds of the generated clip to keep.")
    transition: TransitionField | None = None
    background: Colour | None = Field(None, description="Title cards: background colour, \"#rrggbb\"; default black.")
    text: TextField | None = None
    upscale: Literal[spec.UPSCALE_RESOLUTIONS] | None = Field(  # type: ignore[valid-type]
        None, description="Upscale the generated clip to 1080p or 4k (above its resolution).")
    audio: Annotated[Text, Field(min_length=1, max_length=spec.PROMPT_MAX)] | None = \
        Field(None, description="Generate audio for the clip from this prompt.")


class DefaultsIn(_In):
    """Values every shot inherits unless it sets its own."""

    model: Model | None = Field(None, description="Video model; built-in ray-2.")
    resolution: Resolution | None = Field(None, description="Generation resolution; built-in 720p.")
    aspect_ratio: Aspect | None = Field(None, description="Generation aspect ratio; built-in 16:9.")
    duration: Duration | None = Field(None, description="Generated clip length, 5s or 9s; built-in 5s.")
    transition: TransitionField | None = None


class OutputIn(_In):
    """How the edited video is delivered."""

    path: FilePath | None = Field(None, description="The .mp4 to write, relative to the shot list; "
                                                    "default renders/<stem>.mp4 beside it.")
    resolution: Resolution | None = Field(None, description="Delivery size (the short side); default 1080p.")
    aspect_ratio: Aspect | None = Field(None, description="Delivery aspect; default the shots' "
                                                          "(defaults.aspect_ratio).")
    fps: Fps | None = Field(None, description="Frame rate; default 24.")
    fit: Fit | None = Field(None, description="Fitting clips of another aspect; default cover.")
    music: FilePath | None = Field(None, description="A music bed (an audio file), relative to the shot list.")
    music_volume: float | None = Field(None, ge=0, le=2, description="Linear gain of the music bed, 0..2; default 0.5.")
    duck: bool | None = Field(None, description="Lower the music under generated audio; default true.")
    loudness: float | None = Field(None, ge=-70, le=0, description="Integrated LUFS target of the mix; default -14.")


class ShotListIn(_In):
    """A reelflow shot list, version 1."""

    version: Annotated[int, AfterValidator(_version)] = Field(description="Format version: 1.")
    title: Annotated[Text, Field(max_length=500)] | None = Field(None, description="A title for the video.")
    defaults: DefaultsIn | None = None
    output: OutputIn | None = None
    shots: list[ShotIn] = Field(min_length=1, description="The shots, in order.")


_MODELS_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): ShotListIn, ("defaults",): DefaultsIn, ("output",): OutputIn, ("shots",): ShotIn,
    ("shots", "text"): TextIn, ("shots", "transition"): TransitionIn,
    ("defaults", "transition"): TransitionIn, ("shots", "start"): ShotRefIn, ("shots", "end"): ShotRefIn,
}


def fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the mapping at ``loc`` (for "unknown field, did you mean")."""
    key = tuple(p for p in loc if isinstance(p, str) and not p.startswith("<"))
    return list(_MODELS_AT.get(key, ShotListIn).model_fields)

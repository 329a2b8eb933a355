"""The shot list's guarded reader: a file in, plain Python data (or problem lines) out.

Private to ``reelflow.flows.shotlist``. A shot list is read safely: at most 1 MiB, UTF-8
only, YAML (JSON is YAML) through a loader that never expands aliases past a fixed number
of values, nor recursive ones, and never nests deeper than the recursion limit allows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from reelflow.flows._shotlist_messages import show

if TYPE_CHECKING:
    from reelflow.flows._shotlist_checks import Problems

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "read_document"]

MAX_BYTES = 1 << 20          # a shot list is text; anything bigger is a mistake or an attack
MAX_VALUES = 200_000         # values after alias expansion (a real list has a few thousand)
MAX_DEPTH = 64               # the format nests 4 deep; deeper is an attack on the recursion limit


class _Refused(Exception):
    """The document is refused before it is constructed (unreadable, alias bomb, depth...);
    the message is the complete problem text."""


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
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        if isinstance(exc, yaml.constructor.ConstructorError):     # e.g. !!python/object
            return f"{where}: YAML error: {exc.problem}"[:240]
        context = f" ({exc.context})" if exc.context else ""
        return f"{where}: YAML syntax error: {exc.problem}{context}"[:240]
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


def _read_text(path: Path) -> str:
    """The file's text, or ``_Refused`` saying why it cannot be a shot list."""
    try:
        if path.is_dir():
            raise _Refused("is a directory, not a shot list file")
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise _Refused("file not found") from None
    except OSError as exc:
        raise _Refused(f"cannot read the file: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_BYTES:
        raise _Refused("the file is larger than 1 MiB; a shot list must be smaller")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _Refused(f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line}; "
                       "save the file as UTF-8") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise _Refused("the file is empty; a shot list needs at least 'version: 1' and 'shots'")
    return text


def _parse(text: str, is_json: bool) -> tuple[Any, list[str]]:
    """Parse JSON-looking text as JSON first (PyYAML rejects some valid JSON escapes)."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            return _load_json(text)
        except json.JSONDecodeError as exc:
            if is_json:      # otherwise it may be flow-style YAML: let YAML judge it
                raise _Refused(f"line {exc.lineno}, column {exc.colno}: "
                               f"JSON syntax error: {exc.msg}") from None
    return _load_yaml(text)


def read_document(path: Path, problems: Problems) -> tuple[bool, Any]:
    """Read and parse ``path``; on failure add problem lines and return ``(False, None)``.

    Duplicate keys are reported too, but do not stop validation from finding the rest.
    """
    try:
        data, warnings = _parse(_read_text(path), path.suffix.lower() == ".json")
    except _Refused as exc:
        problems.add(None, str(exc))
    except yaml.YAMLError as exc:
        problems.add(None, _yaml_error_text(exc))
    except RecursionError:
        problems.add(None, f"nested more than {MAX_DEPTH} levels deep")
    else:
        for warning in warnings:
            problems.add(None, warning)
        return True, data
    return False, None

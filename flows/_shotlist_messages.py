"""How user values appear in shot-list problem messages: bounded, one line, never a dump.

Private to ``reelflow.flows.shotlist``. Every message that quotes input goes through
``show``, so no message echoes more than ~60 characters of whatever the file held.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["SHOW_MAX", "did_you_mean", "field_name", "fmt_num", "is_number", "kind_of", "show"]

SHOW_MAX = 60                # characters of any user value quoted in a message

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")


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


def is_number(value: Any) -> bool:
    """True for an int or float; YAML's ``true``/``false`` are bools, which Python counts as ints."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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

"""Stills and characters in a shot list: resolved and checked before anything is spent.

Private to ``reelflow.flows.shotlist`` (the loader calls it). ``characters:`` maps names to
reference images (a path, checked to be an image like any keyframe, or an https URL),
optionally described; a still (``start: {image: prompt, model: uni-1, refs: [name]}``)
names them. Refused here, one line each naming the shot and field: a name the list does
not define (with the closest one), a name given twice, more than 9 references, a still
for an aspect ratio Uni-1 does not make. An image model that is not one (``model:
ray-2``) is refused by the input model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from reelflow import spec
from reelflow.flows._shotlist_input import Character as CharacterField, CharacterIn, StillIn
from reelflow.flows._shotlist_messages import did_you_mean
from reelflow.flows.shotlist import Character, ImageRef, StillRef

__all__ = ["check_still_aspect", "resolve_characters", "still_ref"]

Report = Callable[[str, str], None]
_ENTRY = TypeAdapter(CharacterField)


def resolve_characters(raw: Any, keyframe: Callable[[str, str, Report], Any],
                       add: Callable[[str, str], None]) -> tuple[dict[str, Character], set[str]]:
    """The list's characters by name (each image checked like a keyframe image), and the
    names whose entry has a problem (reported by validation or here)."""
    known: dict[str, Character] = {}
    bad: set[str] = set()
    if not isinstance(raw, dict):
        return known, bad
    for name, value in raw.items():
        try:
            entry = _ENTRY.validate_python(value, strict=True)
        except ValidationError:            # reported by the list's validation
            bad.add(str(name))
            continue
        text, description = (entry.image, entry.description) if isinstance(entry, CharacterIn) \
            else (entry, None)
        field = f"characters.{name}" + (".image" if isinstance(entry, CharacterIn) else "")
        problems: list[str] = []
        image = keyframe(text, field, lambda _f, line: problems.append(line))
        for line in problems:
            add(field, line)
        if problems or not isinstance(image, ImageRef):
            bad.add(str(name))
            continue
        known[name] = Character(name=name, image=image, description=description)
    return known, bad


def still_ref(value: StillIn, field: str, characters: dict[str, Character], bad: set[str],
              report: Report) -> StillRef | None:
    """The still with its references resolved; None when one cannot be (reported)."""
    refs, ok = [], True
    for i, name in enumerate(value.refs or ()):
        if name in bad:                     # its entry's own problem is reported there
            ok = False
        elif name not in characters:
            hint = did_you_mean(name, list(characters)) or (
                f"; the list's characters: {', '.join(characters)}" if characters
                else "; define it under characters: (name: image path or URL)")
            report(f"{field}.refs[{i}]", f"{name!r} is not a character of this list{hint}")
            ok = False
        elif characters[name] in refs:
            report(f"{field}.refs[{i}]", f"{name!r} is named twice")
            ok = False
        else:
            refs.append(characters[name])
    return StillRef(prompt=value.image, model=value.model, refs=tuple(refs)) if ok else None


def check_still_aspect(values: dict[str, Any], report: Report) -> None:
    """A still is made at its shot's aspect ratio: one Uni-1 does not make is refused."""
    aspect = values.get("aspect_ratio")
    for field in ("start", "end"):
        if isinstance(values.get(field), StillRef) and aspect not in spec.IMAGE_ASPECT_RATIOS:
            report(field, f"a still is made at the shot's aspect ratio, and Uni-1 does not make "
                          f"{aspect}; it makes {', '.join(spec.IMAGE_ASPECT_RATIOS)}")

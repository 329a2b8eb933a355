"""What `reelflow compare --models` asks for: variants of one shot list, each checked before spend.

A variant is a model, a profile, or both: ``ray-2`` (every generated shot with ray-2,
under the ``--profile``), ``ray-3.2@draft`` (ray-3.2 under the draft profile), or a bare
``draft`` / ``final`` (the list as written, under that profile). Each variant is the shot
list loaded again with its model on every generated shot, so a combination that model
does not offer (a 10 s shot on ray-2, camera moves on ray-3.2, ...) is a shot-list problem
naming the variant, before anything is paid; and a variant's requests are exactly those
a render of the list with that ``model:`` would make (the same cache keys: choosing a
model after comparing pays nothing twice).

Pure code: no Prefect, no SDK.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from reelflow import spec
from reelflow.errors import ShotListError
from reelflow.flows.plan import PROFILES
from reelflow.flows.shotlist import ShotList, load_shotlist

__all__ = ["MAX_VARIANTS", "Variant", "load_variants", "parse_variants"]

#: Panels in one comparison grid (3 x 3).
MAX_VARIANTS = 9


class Variant(BaseModel):
    """One column of a comparison: a model (None: the list's own) under a profile."""

    model_config = ConfigDict(frozen=True)

    model: str | None = None
    profile: str = "final"
    #: How the user wrote it (``ray-3.2@draft``): the name in the table, grid and sheets.
    label: str


def parse_variants(entries: list[str], profile: str = "final") -> list[Variant]:
    """``--models`` entries as variants (``profile`` for an entry without one).

    Raises:
        ShotListError: one line per entry that is neither a model nor a profile, a
            duplicate, none at all, or more than MAX_VARIANTS.
    """
    models, problems, variants = spec.MODELS, [], []
    for entry in (e.strip() for e in entries):
        model, _, wanted = entry.partition("@") if "@" in entry else (entry, "", "")
        if model in PROFILES and not wanted:
            model, wanted = "", model
        if model and model not in models:
            where = f"{entry!r}: {model!r}" if wanted else repr(entry)
            problems.append(f"--models: {where} is not a model ({', '.join(models)}) "
                            f"or a profile ({', '.join(PROFILES)})")
            continue
        if wanted and wanted not in PROFILES:
            problems.append(f"--models: {entry!r}: profile {wanted!r} is not one of {', '.join(PROFILES)}")
            continue
        variant = Variant(model=model or None, profile=wanted or profile, label=entry)
        if any((v.model, v.profile) == (variant.model, variant.profile) for v in variants):
            problems.append(f"--models: {entry!r} is listed twice")
            continue
        variants.append(variant)
    if not entries or not [e for e in entries if e.strip()]:
        problems.append(f"--models: name at least one model ({', '.join(models)}) or profile")
    elif len(variants) > MAX_VARIANTS:
        problems.append(f"--models: {len(variants)} variants; a comparison holds at most {MAX_VARIANTS}")
    if problems:
        raise ShotListError(problems)
    return variants


def load_variants(path: Path, variants: list[Variant]) -> list[tuple[Variant, ShotList]]:
    """The shot list as each variant makes it, every one validated before any spend.

    Raises:
        ShotListError: the list's own problems; else each variant's, every line ending
            ``(compare: <variant>)``.
    """
    load_shotlist(path)                    # the list's own problems first, reported once
    loaded, problems = [], []
    for variant in variants:
        try:
            loaded.append((variant, load_shotlist(path, model=variant.model)))
        except ShotListError as exc:
            problems += [f"{line} (compare: {variant.label})" for line in exc.problems]
    if problems:
        raise ShotListError(problems)
    return loaded

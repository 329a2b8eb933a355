"""Shot-list models and validation: a YAML/JSON file in, a fully resolved ``ShotList`` out.

The user-facing format is fixed in shared/shotlist.md; ``shotlist_json_schema()`` describes
it. ``load_shotlist`` checks everything before anything is spent and raises
``ShotListError`` with one line per problem (``teaser.yaml: shot 3 (pour): trim: ...``).

Defaults cascade once, at load (as editly does): built-in defaults <- the file's
``defaults:`` <- the shot. Code downstream only ever sees resolved values. Omitting an
inheritable field inherits it; ``null`` also inherits, except ``transition: null``, which
means an explicit cut (``model_fields_set`` tells the two apart). A shot's ``transition``
leads out of it; the last shot's is forced to ``cut`` (with a warning when the shot set
it itself). Nothing is guessed or shortened: a trim, transition or text that does not fit
in whole frames at the output rate is an error (``reelflow.flows.timeline``).

This module holds the public, resolved models and the entry points. The work is done in
private modules: ``_shotlist_read`` (the guarded YAML/JSON reader), ``_shotlist_input``
(the user-facing format as strict input models), ``_shotlist_checks`` (problem lines,
pydantic error translation, cross-shot and on-disk checks), ``_shotlist_resolve`` (one
load: the cascade) and ``_shotlist_messages`` (how user values are quoted).

Example:
    >>> from reelflow.flows.shotlist import load_shotlist
    >>> shot_list = load_shotlist("teaser.yaml")        # doctest: +SKIP
    >>> [(s.id, s.length_s) for s in shot_list.shots]   # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from reelflow import defaults as builtin, spec
from reelflow.config import s3_mirror_root
from reelflow.errors import ShotListError
from reelflow.flows._shotlist_checks import Problems, escaping_paths
from reelflow.flows._shotlist_input import ShotListIn
from reelflow.flows._shotlist_messages import kind_of, show
from reelflow.flows._shotlist_read import read_document

__all__ = [
    "BUILTIN_DEFAULTS", "CUT", "Character", "Defaults", "EditRef", "ImageRef", "Inherited",
    "Output", "PinnedImage", "Shot", "ShotList", "ShotRef", "StillRef",
    "TextOverlay", "Transition", "dependency_order", "load_shotlist", "shotlist_json_schema",
]

logger = logging.getLogger("reelflow.flows.shotlist")


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



CUT = Transition()


class ImageRef(_Resolved):
    """A keyframe image: an absolute local ``path`` (checked to decode) or an https ``url``;
    with ``video``, a local clip (the source of a ray-3.2 edit)."""

    path: Path | None = None
    url: str | None = None
    video: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        if (self.path is None) == (self.url is None):
            raise ValueError("an ImageRef has exactly one of path and url")
        return self


class ShotRef(_Resolved):
    """A keyframe taken from another generated shot of the same list."""

    shot: str


class Character(_Resolved):
    """A named reference image (``characters:``): the same person or product across stills."""

    name: str
    image: ImageRef
    description: str | None = None


class StillRef(_Resolved):
    """A keyframe still to generate first (Uni-1) from ``prompt``, guided by ``refs``."""

    prompt: str
    model: str = "uni-1"
    refs: tuple[Character, ...] = ()

    @property
    def full_prompt(self) -> str:
        """The prompt sent: the user's, then what each described reference is, by number."""
        described = [f"[{i}] {c.name}: {c.description}" for i, c in enumerate(self.refs, 1)
                     if c.description]
        return self.prompt + ("\n\nReference images: " + "; ".join(described) if described else "")


class PinnedImage(_Resolved):
    """ray-3.2: an image pinned at ``at`` seconds, frame ``index`` of the 24 fps grid."""

    at: float
    index: int
    image: ImageRef | StillRef


class EditRef(_Resolved):
    """ray-3.2 video_edit: restyle ``source`` (a shot of this list, or a local clip) with
    the API's ``strength`` (adhere_1 .. reimagine_3)."""

    source: ShotRef | ImageRef
    strength: str


class TextOverlay(_Resolved):
    """Text drawn over a shot; ``start``/``end`` are seconds within the shot (None: whole)."""

    content: str
    position: str = builtin.TEXT_POSITION
    size: int | None = None
    colour: str = builtin.TEXT_COLOUR
    start: float | None = None
    end: float | None = None


class Inherited(_Resolved):
    """The inheritable fields (``reelflow.defaults.INHERITED``), at their built-in values.

    ``Defaults`` (built-ins <- the file's ``defaults:``) and ``Shot`` (<- the shot) both
    are these fields; the loader merges the layers with ``reelflow.defaults.cascade``.
    """

    model: str = builtin.SHOT["model"]
    resolution: str = builtin.SHOT["resolution"]
    aspect_ratio: str = builtin.SHOT["aspect_ratio"]
    duration: str | float = builtin.SHOT["duration"]   # a title card's: seconds
    transition: Transition = CUT                       # built-in: cut


class Shot(Inherited):
    """One resolved shot: generated (``prompt``) or a title card (``title``)."""

    id: str
    index: int
    prompt: str | None = None
    title: str | None = None
    loop: bool = False
    camera: tuple[str, ...] = ()
    take: int = 1
    start: ImageRef | ShotRef | StillRef | None = None
    end: ImageRef | ShotRef | StillRef | None = None
    trim: tuple[float, float] | None = None
    background: str | None = None
    text: TextOverlay | None = None
    upscale: str | None = None
    audio: str | None = None
    hdr: bool = False
    exr: bool = False
    keyframes: tuple[PinnedImage, ...] = ()
    edit: EditRef | None = None
    reframe: ShotRef | None = None

    @property
    def is_card(self) -> bool:
        """True for a title card (nothing is generated)."""
        return self.title is not None

    @property
    def duration_s(self) -> float:
        """The untrimmed length in seconds: the generated clip's, or the card's."""
        return float(spec.DURATIONS[self.duration]) if isinstance(self.duration, str) else self.duration

    def references(self) -> list[str]:
        """Ids of the shots this one builds on (start/end, an edit's or a reframe's source)."""
        refs = (self.start, self.end, self.edit.source if self.edit else None, self.reframe)
        return [ref.shot for ref in refs if isinstance(ref, ShotRef)]

    @property
    def length_s(self) -> float:
        """Seconds this shot contributes before transitions overlap it: trim length or duration."""
        return self.trim[1] - self.trim[0] if self.trim else self.duration_s


class Defaults(Inherited):
    """The cascade's middle layer: built-in values overridden by the file's ``defaults:``."""


BUILTIN_DEFAULTS = Defaults()
assert tuple(Inherited.model_fields) == builtin.INHERITED, "one table of inheritable fields"
assert BUILTIN_DEFAULTS.transition.type == builtin.SHOT["transition"]


class Output(_Resolved):
    """Delivery settings; ``path`` and ``music`` are absolute."""

    path: Path
    resolution: str = builtin.OUTPUT["resolution"]
    aspect_ratio: str = builtin.SHOT["aspect_ratio"]   # the shots' (defaults.aspect_ratio)
    fps: int = builtin.OUTPUT["fps"]
    fit: str = builtin.OUTPUT["fit"]
    music: Path | None = None
    music_volume: float = builtin.OUTPUT["music_volume"]
    duck: bool = builtin.OUTPUT["duck"]
    loudness: float = builtin.OUTPUT["loudness"]

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
    on_moderation: Literal["fail", "skip", "placeholder"] = "fail"
    defaults: Defaults = BUILTIN_DEFAULTS
    output: Output
    shots: tuple[Shot, ...]
    source: Path
    #: Named reference images, by name (``characters:``).
    characters: dict[str, Character] = {}
    #: Lines about what the list asks for but will not get (a transition on the last
    #: shot); not problems: the CLI prints them to stderr, the render flow logs them.
    warnings: tuple[str, ...] = ()

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
        """Generated shots, each after the shots it references (``dependency_order``)."""
        gen = {s.id: s for s in self.shots if not s.is_card}
        return [gen[sid] for sid in dependency_order({sid: s.references() for sid, s in gen.items()})]


def dependency_order(needs: Mapping[str, Iterable[str]]) -> list[str]:
    """Ids ordered so each comes after the ids it needs; otherwise in the given order.

    The one topological sort of the package: the shot list's generation order and the
    render's submission of shots that build on others both use it.

    Raises:
        ValueError: some ids need each other in a cycle, or need an id not given (the
            shot list's checks refuse both before anything is planned).
    """
    position = {sid: i for i, sid in enumerate(needs)}
    waiting = {sid: set(refs) for sid, refs in needs.items()}
    users: dict[str, list[str]] = {}
    for sid, refs in waiting.items():
        for ref in refs:
            users.setdefault(ref, []).append(sid)
    ready = [(position[sid], sid) for sid, refs in waiting.items() if not refs]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, sid = heapq.heappop(ready)
        order.append(sid)
        for user in users.get(sid, []):
            waiting[user].discard(sid)
            if not waiting[user]:
                heapq.heappush(ready, (position[user], user))
    if len(order) != len(waiting):
        stuck = sorted(set(waiting) - set(order), key=position.__getitem__)
        raise ValueError(f"{', '.join(stuck)}: references form a cycle or name no shot")
    return order


# --------------------------------------------------------------------------- loading
def load_shotlist(path: str | Path, *, model: str | None = None) -> ShotList:
    """Read, validate and resolve a shot list file (YAML or JSON).

    Args:
        path: the shot list file; relative paths inside it resolve against its directory.
            A list mirrored from S3 (under ``s3_mirror_root()``) is untrusted: every file it
            names must be inside its own folder. A local list may name any path.
        model: make every generated shot with this model instead (``reelflow compare``),
            validated as if each shot said ``model: <model>``.

    Returns:
        The resolved ``ShotList``.

    Raises:
        ShotListError: every problem found, one line each (``file: shot N (id): field: problem``).
    """
    # Imported here: the loader builds this module's models, so it imports this module.
    from reelflow.flows._shotlist_resolve import Loader

    source = Path(path).expanduser().absolute()
    problems = Problems(source.name)
    mirror = s3_mirror_root().resolve()
    confine = source.parent.resolve() if source.resolve().is_relative_to(mirror) else None
    ok, raw = read_document(source, problems)
    if ok and not isinstance(raw, dict):
        problems.add(None, f"expected a mapping with 'version' and 'shots' at the top, got {kind_of(raw)}")
    elif ok:
        result = Loader(source, _with_model(raw, model), problems, confine=confine).run()
        for shot, field, escaping in escaping_paths(result, confine) if result and confine else ():
            text = f"{show(str(escaping))} is outside the shot list's folder"
            if shot is None:
                problems.add(field, text)
            else:
                problems.shot(shot.index, shot.id, field.removesuffix(".path"), text)
        if result is not None and not problems:
            logger.debug("loaded %s: %d shots", source, len(result.shots))
            return result
    raise ShotListError(problems.lines())


def _with_model(raw: dict[Any, Any], model: str | None) -> dict[Any, Any]:
    """``raw`` with ``model`` on every shot that is not a title card (None: unchanged)."""
    shots = raw.get("shots")
    if model is None or not isinstance(shots, list):
        return raw
    return {**raw, "shots": [{**shot, "model": model} if isinstance(shot, dict) and "title" not in shot
                             else shot for shot in shots]}


def shotlist_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the user-facing shot-list file, version 1."""
    schema = ShotListIn.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "reelflow shot list", **{k: v for k, v in schema.items() if k != "title"}}

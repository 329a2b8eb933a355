"""The user-facing shot-list format, as strict pydantic input models.

Private to ``reelflow.flows.shotlist``. These models ARE the file format: pydantic validates
raw data with them (strict: no "5" for 5, no "yes" for true) and ``reelflow schema`` prints
their JSON Schema. Our own validators raise ``fail(message)``, whose text reaches the user
verbatim; everything else is worded by ``_shotlist_checks.translate``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NoReturn, Union
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field,
                      Tag, ValidationInfo, WithJsonSchema, field_validator)
from pydantic_core import PydanticCustomError

from reelflow import defaults as builtin, spec
from reelflow.defaults import OUTPUT as _OUT, SHOT as _SHOT  # what the descriptions name
from reelflow.flows._shotlist_messages import did_you_mean, fmt_num, is_number, show

__all__ = [
    "COLOUR_PATTERN", "ID_PATTERN", "CharacterIn", "DefaultsIn", "EditIn", "OutputIn",
    "PinnedKeyframeIn", "ReframeIn", "ShotIn", "ShotListIn", "ShotRefIn", "StillIn", "TextIn",
    "TransitionIn", "fields_at", "numbers_as_text",
]

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
COLOUR_PATTERN = r"^#[0-9a-fA-F]{6}$"


# --------------------------------------------------------------------------- validators
def fail(message: str) -> NoReturn:
    """Raise a validation error whose text is ``message`` verbatim (braces and all)."""
    raise PydanticCustomError("reelflow", "{msg}", {"msg": message})


def numbers_as_text(value: Any) -> Any:
    """``title: 2027`` is text to a person; YAML made it a number."""
    return str(value) if is_number(value) else value


def _transition_type(value: str) -> str:
    if value not in spec.TRANSITION_TYPES:
        hint = did_you_mean(value, spec.TRANSITION_TYPES) or \
            "; use cut, crossfade, fade or an ffmpeg xfade name such as wipeleft or circleopen"
        fail(f"{show(value)} is not a transition type{hint}")
    return value


def _transition_word(value: str) -> str:
    if _transition_type(value) != "cut":
        fail(f"{value} needs a duration: write {{type: {value}, duration: 0.5}}")
    return value


def _transition_duration(value: float | None, info: ValidationInfo) -> float | None:
    kind = info.data.get("type")
    if kind == "cut":
        if value:
            fail(f"a cut has no duration, got {fmt_num(value)}")
    elif kind is not None:             # None: the type itself was invalid (reported there)
        if value is None:
            fail(f"missing; a {kind} needs its overlap in seconds, e.g. duration: 0.5")
        if value <= 0:
            fail(f"must be more than 0 seconds, got {fmt_num(value)}")
    return value


def _path_text(value: str) -> str:
    """A file path a filesystem can hold (no NUL) and ffmpeg can take (no control characters)."""
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad == "\0":
        fail(f"{show(value)} contains a NUL byte, which no file path can")
    if bad is not None:
        fail(f"{show(value)} contains the control character {bad!r}; rename the file without it")
    return value


def _keyframe_text(value: str) -> str:
    _path_text(value)
    scheme = urlsplit(value).scheme.lower()
    if len(scheme) > 1:                       # one letter is a Windows drive, not a scheme
        if scheme != "https":
            fail(f"{show(value)}: only https URLs can be used (Luma fetches the image itself); "
                 "or give a local file path")
        if not urlsplit(value).netloc:
            fail(f"{show(value)} is not a valid https URL")
    return value


def _concept(value: str) -> str:
    if value not in spec.CONCEPTS:
        hint = did_you_mean(value, spec.CONCEPTS) or f" (known: {', '.join(sorted(spec.CONCEPTS))})"
        fail(f"{show(value)} is not a Luma camera concept{hint}")
    return value


def _version(value: int) -> int:
    if value != 1:
        fail(f"only version 1 is supported, got {show(value)}")
    return value


def _shape(value: Any) -> str | None:
    """Union tag by the shape of the raw value (tags start with '<' so messages drop them)."""
    if isinstance(value, str):
        return "<str>"
    if isinstance(value, dict):
        return "<map>"
    if is_number(value):
        return "<num>"
    return None


def _by_shape(text: Any, other: Any, error: str, message: str, other_tag: str = "<map>") -> Any:
    """A field that is either a string (``text``) or a mapping/number (``other``).

    The raw value's shape picks the branch, so errors speak of that branch only; a value of
    neither shape fails as ``form_<error>`` with ``message``. The field using it carries the
    description (at the property, where editors read it).
    """
    return Annotated[Union[Annotated[text, Tag("<str>")], Annotated[other, Tag(other_tag)]],
                     Discriminator(_shape, custom_error_type=f"form_{error}", custom_error_message=message)]


# --------------------------------------------------------------------------- field types
Text = Annotated[str, BeforeValidator(numbers_as_text)]
Colour = Annotated[str, Field(pattern=COLOUR_PATTERN)]
Seconds = Annotated[float, Field(ge=0)]
Position = Literal[spec.TEXT_POSITIONS]  # type: ignore[valid-type]
Model = Literal[spec.MODELS]  # type: ignore[valid-type]
Resolution = Literal[spec.RESOLUTIONS]  # type: ignore[valid-type]
Aspect = Literal[spec.ASPECT_RATIOS]  # type: ignore[valid-type]
Fps = Literal[spec.OUTPUT_FPS]  # type: ignore[valid-type]
Fit = Literal[spec.FITS]  # type: ignore[valid-type]
FilePath = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_path_text)]


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


TransitionField = _by_shape(
    Annotated[str, AfterValidator(_transition_word), WithJsonSchema({"const": "cut"})], TransitionIn,
    error="transition", message="expected cut or {type: T, duration: seconds}")
TRANSITION_HELP = ("How the shot goes into the next: cut, or {type: T, duration: seconds} with T "
                   "crossfade, fade (through black) or an ffmpeg xfade name. null means cut; the last "
                   "shot's transition is ignored.")


class ShotRefIn(_In):
    """``{shot: ID}``: use another generated shot of this list as the keyframe."""

    shot: str = Field(pattern=ID_PATTERN, description="The id of a generated shot in this list.")


def _image_model(value: str) -> str:
    if value not in spec.IMAGE_MODELS:
        kind = "a video model" if value in spec.MODELS else "not an image model"
        fail(f"{show(value)} is {kind}; a still is made by {' or '.join(spec.IMAGE_MODELS)}")
    return value


class StillIn(_In):
    """``{image: prompt, model: uni-1, refs: [name, ...]}``: a keyframe still to generate."""

    image: Annotated[Text, Field(min_length=spec.PROMPT_MIN, max_length=spec.PROMPT_MAX)] = Field(
        description="What the still shows (a prompt, 3-5000 characters): it is generated once "
                    "with Uni-1 at the shot's aspect ratio, then used as this frame.")
    model: Annotated[str, AfterValidator(_image_model),
                     WithJsonSchema({"enum": list(spec.IMAGE_MODELS)})] = Field(
        "uni-1", description="The image model: uni-1 (default) or uni-1-max.")
    refs: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        None, max_length=spec.IMAGE_REFS_MAX,
        description="Names from the list's characters: their images guide the still (the "
                    "same person or product across shots); at most 9.")


def _keyframe_shape(value: Any) -> str | None:
    if isinstance(value, dict) and "image" in value:
        return "<still>"
    return _shape(value)


Keyframe = Annotated[Union[
    Annotated[Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_keyframe_text)],
              Tag("<str>")],
    Annotated[ShotRefIn, Tag("<map>")], Annotated[StillIn, Tag("<still>")]],
    Discriminator(_keyframe_shape, custom_error_type="form_keyframe",
                  custom_error_message="expected an image path, an https URL, {shot: ID} or "
                                       "{image: prompt, model: uni-1, refs: [...]}")]


class CharacterIn(_In):
    """``{image: path or URL, description: text}``: a named reference image."""

    image: Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_keyframe_text)] = \
        Field(description="The reference image: a local path (PNG, JPEG, WebP) or an https URL.")
    description: Annotated[Text, Field(min_length=1, max_length=500)] | None = Field(
        None, description="Who or what it is, in a few words; added to the prompt of every "
                          "still that names it.")


Character = _by_shape(
    Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_keyframe_text)], CharacterIn,
    error="character", message="expected an image path, an https URL or {image: ..., description: ...}")

Duration = _by_shape(
    Annotated[str, WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?s$"})], float,
    other_tag="<num>", error="duration",
    message="expected 5s, 9s, 10s, or a number of seconds for a card")


class PinnedKeyframeIn(_In):
    """``{at: seconds, image: path or URL}``: a ray-3.2 keyframe pinned to a moment."""

    at: float = Field(ge=0, description="Seconds into the clip where the image is pinned; it "
                                        "lands on the 24 fps grid at frame round(at x 24), "
                                        "from 0 to the clip's end (5s: frame 120).")
    image: _by_shape(  # type: ignore[valid-type]
        Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_keyframe_text)], StillIn,
        error="keyframe_image", message="expected an image path, an https URL or "
                                        "{image: prompt, model: uni-1, refs: [...]}") = \
        Field(description="The image: a local path (PNG, JPEG, WebP), an https URL, or a still "
                          "to generate, {image: prompt, model: uni-1, refs: [name, ...]}.")


class EditIn(_In):
    """``{source: {shot: ID} | clip.mp4, strength: 0..1}``: a ray-3.2 video edit."""

    source: _by_shape(  # type: ignore[valid-type]
        FilePath, ShotRefIn, error="edit_source",
        message="expected {shot: ID} or a path to a video clip") = Field(
        description="What to restyle: {shot: ID} (a ray-3.2 shot of this list) or a local "
                    "video clip (MP4/MOV, at most 18 s). The edit lasts as long as its source.")
    strength: float = Field(0.5, ge=0, le=1,
                            description="How far the edit may move from the source: 0 keeps it "
                                        "closest (adhere), 1 reimagines it; default 0.5.")


class ReframeIn(_In):
    """``{shot: ID, aspect_ratio: R}``: a ray-3.2 shot re-framed to another aspect ratio."""

    shot: str = Field(pattern=ID_PATTERN, description="The id of the ray-3.2 shot to re-frame.")
    aspect_ratio: Literal[spec.MODEL_ASPECT_RATIOS["ray-3.2"]] = Field(  # type: ignore[valid-type]
        description="The new aspect ratio; the model extends the scene to fill the frame.")


class TextIn(_In):
    """Text drawn over the shot."""

    content: Text = Field(min_length=1, max_length=500, description="The text to draw.")
    position: Position = Field(builtin.TEXT_POSITION, description="Where in the frame.")
    size: int | None = Field(None, ge=8, le=1000,
                             description="Font height in output pixels; default: scaled to the frame.")
    colour: Colour | None = Field(None, description="Text colour, \"#rrggbb\"; default white.")
    color: Colour | None = Field(None, description="Same as colour.")
    start: Seconds | None = Field(None, description="Seconds into the shot where the text appears; default 0.")
    end: Seconds | None = Field(None, description="Seconds into the shot where it disappears; default the end.")


TextField = _by_shape(
    Annotated[str, Field(min_length=1, max_length=500)], TextIn,
    error="text", message="expected text or {content: ..., position: ...}")


# --------------------------------------------------------------------------- the file's sections
class ShotIn(_In):
    """One shot: generated from a ``prompt``, or a text card with a ``title``."""

    id: Text = Field(
        pattern=ID_PATTERN, description="Unique slug, [a-z0-9][a-z0-9_-]{0,63}; names the shot's files.")
    prompt: Annotated[Text, Field(min_length=spec.PROMPT_MIN, max_length=spec.PROMPT_MAX)] | None = \
        Field(None, description="What to generate (3-5000 characters). Not with title.")
    title: Annotated[Text, Field(min_length=1, max_length=500)] | None = \
        Field(None, description="Makes the shot a text card showing this title. Needs duration.")
    model: Model | None = Field(None, description="Video model: ray-2, ray-flash-2 (Dream Machine "
                                                  "API) or ray-3.2 (Agents API); default from defaults.")
    resolution: Resolution | None = Field(None, description="Generation resolution; default from defaults.")
    aspect_ratio: Aspect | None = Field(None, description="Generation aspect ratio; default from defaults.")
    duration: Duration | None = Field(
        None, description="Generated shots: 5s or 9s with ray-2 / ray-flash-2, 5s or 10s with "
                          "ray-3.2 (5, 9 and 10 accepted; an edit or reframe lasts as long as its "
                          "source); default from defaults. "
                          "Title cards: seconds, more than 0 and at most 60 (required).")
    loop: bool | None = Field(None, description="Generate a seamless loop (not with end); default false.")
    camera: list[Annotated[str, AfterValidator(_concept), WithJsonSchema({"enum": list(spec.CONCEPTS)})]] | None = \
        Field(None, description="Luma camera concepts, e.g. [orbit_left].")
    take: int | None = Field(None, ge=1, le=1000,
                             description="Take number, default 1: take 2, 3, ... is another generation of the same request, paid anew.")
    start: Keyframe | None = Field(None, description="First frame: an image (path or https URL), "
                                                     "{shot: ID} to extend that shot, or a still "
                                                     "to generate, {image: prompt, model: uni-1, "
                                                     "refs: [name, ...]}.")
    end: Keyframe | None = Field(None, description="Last frame: an image (path or https URL), "
                                                   "{shot: ID} to lead into that shot, or a still "
                                                   "to generate, {image: prompt, ...}.")
    trim: list[float] | None = Field(None, min_length=2, max_length=2,
                                     description="[start, end]: the seconds of the generated clip to keep.")
    transition: TransitionField | None = Field(None, description=TRANSITION_HELP + " Default from defaults.")
    background: Colour | None = Field(None, description="Title cards: background colour, \"#rrggbb\"; default black.")
    text: TextField | None = Field(
        None, description="A text overlay: the text itself, or {content, position, size, colour, start, end}.")
    upscale: Literal[spec.UPSCALE_RESOLUTIONS] | None = Field(  # type: ignore[valid-type]
        None, description="Upscale the generated clip to 1080p or 4k (above its resolution; paid; skipped in drafts).")
    audio: Annotated[Text, Field(min_length=1, max_length=spec.PROMPT_MAX)] | None = \
        Field(None, description="Generate audio for the clip from this prompt (paid; ray-2, ray-flash-2).")
    hdr: bool | None = Field(None, description="ray-3.2: generate HDR video (720p or 1080p, 5s).")
    exr: bool | None = Field(None, description="ray-3.2: also export EXR frames (needs hdr: true).")
    keyframes: list[PinnedKeyframeIn] | None = Field(
        None, min_length=1, max_length=spec.KEYFRAMES_MAX,
        description="ray-3.2: images pinned at moments of the clip, e.g. [{at: 0, image: a.png}, "
                    "{at: 2.5, image: b.png}] (1-64; not with start, end or loop).")
    edit: EditIn | None = Field(
        None, description="ray-3.2 video edit: restyle {source: {shot: ID} | clip.mp4, "
                          "strength: 0..1} as the prompt says.")
    reframe: ReframeIn | None = Field(
        None, description="ray-3.2 reframe: {shot: ID, aspect_ratio: \"9:16\"}, a variant of "
                          "another shot at another aspect ratio (prompt optional: the source's).")


class DefaultsIn(_In):
    """Values every shot inherits unless it sets its own."""

    model: Model | None = Field(None, description=f"Video model; built-in {_SHOT['model']}.")
    resolution: Resolution | None = Field(None, description=f"Generation resolution; built-in {_SHOT['resolution']}.")
    aspect_ratio: Aspect | None = Field(None, description=f"Generation aspect ratio; built-in {_SHOT['aspect_ratio']}.")
    duration: Duration | None = Field(None, description="Generated clip length: 5s or 9s (ray-2, ray-flash-2), "
                                                       f"5s or 10s (ray-3.2); built-in {_SHOT['duration']}.")
    transition: TransitionField | None = Field(None, description=TRANSITION_HELP + f" Built-in {_SHOT['transition']}.")


class OutputIn(_In):
    """How the edited video is delivered."""

    path: FilePath | None = Field(None, description="The .mp4 to write, relative to the shot list; "
                                                    "default renders/<stem>.mp4 beside it.")
    resolution: Resolution | None = Field(None, description=f"Delivery size (the short side); default {_OUT['resolution']}.")
    aspect_ratio: Aspect | None = Field(None, description="Delivery aspect; default the shots' "
                                                          "(defaults.aspect_ratio).")
    fps: Fps | None = Field(None, description=f"Frame rate; default {_OUT['fps']}.")
    fit: Fit | None = Field(None, description=f"Fitting clips of another aspect; default {_OUT['fit']}.")
    music: FilePath | None = Field(None, description="A music bed (an audio file), relative to the shot list.")
    music_volume: float | None = Field(None, ge=0, le=2, description=f"Linear gain of the music bed, 0..2; default {_OUT['music_volume']:g}.")
    duck: bool | None = Field(None, description=f"Lower the music under generated audio; default {str(_OUT['duck']).lower()}.")
    loudness: float | None = Field(None, ge=-70, le=-5, description="Integrated LUFS target of the mix, -70..-5 (the range EBU R128 loudnorm accepts); "
                                                                    f"default {_OUT['loudness']:g}.")


class ShotListIn(_In):
    """A reelflow shot list, version 1."""

    version: Annotated[int, AfterValidator(_version)] = Field(description="Format version: 1.")
    title: Annotated[Text, Field(max_length=500)] | None = Field(None, description="A title for the video.")
    defaults: DefaultsIn | None = Field(
        None, description="Values every shot inherits unless it sets its own (model, resolution, "
                          "aspect_ratio, duration, transition).")
    output: OutputIn | None = Field(
        None, description="How the edited video is delivered: path, size, aspect, fps, fit, music, loudness.")
    on_moderation: Literal["fail", "skip", "placeholder"] | None = Field(
        None, description="When the API refuses a shot on moderation grounds: fail the render "
        "(default), skip the shot, or put a labelled slate in its place.")
    characters: dict[Annotated[str, Field(pattern=ID_PATTERN)], Character] | None = Field(  # type: ignore[valid-type]
        None, description="Named reference images for stills: name -> an image path or https "
                          "URL, or {image, description}. A still's refs name them, so the same "
                          "person or product carries through a sequence.")
    shots: list[ShotIn] = Field(min_length=1, description="The shots, in order.")


_MODELS_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): ShotListIn, ("defaults",): DefaultsIn, ("output",): OutputIn, ("shots",): ShotIn,
    ("shots", "text"): TextIn, ("shots", "transition"): TransitionIn,
    ("characters",): CharacterIn, ("shots", "start", "<still>"): StillIn,
    ("shots", "end", "<still>"): StillIn, ("shots", "keyframes", "image"): StillIn,
    ("defaults", "transition"): TransitionIn, ("shots", "start"): ShotRefIn, ("shots", "end"): ShotRefIn,
    ("shots", "keyframes"): PinnedKeyframeIn, ("shots", "edit"): EditIn,
    ("shots", "edit", "source"): ShotRefIn, ("shots", "reframe"): ReframeIn,
}


def fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the mapping at ``loc`` (for "unknown field, did you mean")."""
    if loc[:1] == ("characters",):               # characters.<name>: the name is the user's
        return list(CharacterIn.model_fields)
    key = tuple(p for p in loc if isinstance(p, str) and (not p.startswith("<") or p == "<still>"))
    return list(_MODELS_AT.get(key, ShotListIn).model_fields)

"""The emulator's tables (models, enums, sizes, prices) and request validation.

Every fact about what the Luma API accepts lives here, so a new model or size is a
one-line change. Validation answers like the real API: a list of problems that the
server turns into one ``400 {"detail": ...}`` response.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = [
    "API_PREFIX",
    "ASPECT_RATIOS",
    "AUDIO_USD_PER_SECOND",
    "CONCEPTS",
    "DEFAULT_ASPECT_RATIO",
    "DEFAULT_CREDITS",
    "DEFAULT_DURATION",
    "DEFAULT_RESOLUTION",
    "DURATION_FRAMES",
    "FPS",
    "MODELS",
    "PROMPT_MAX",
    "PROMPT_MIN",
    "RESOLUTIONS",
    "SIZES",
    "UPSCALE_PRICE_FACTOR",
    "USD_PER_MEGAPIXEL",
    "RequestInvalid",
    "content_hash",
    "frame_count",
    "frame_size",
    "generation_cost",
    "pixel_size",
    "query_int",
    "validate_audio_request",
    "validate_upscale_request",
    "validate_video_request",
]

#: The real API's path prefix; every route is also served under it.
API_PREFIX = "/dream-machine/v1"

#: Video models the API (and SDK 1.21.0) knows. A new model is one entry here and in
#: USD_PER_MEGAPIXEL.
MODELS: tuple[str, ...] = ("ray-2", "ray-flash-2")

ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")
RESOLUTIONS: tuple[str, ...] = ("540p", "720p", "1080p", "4k")  # ascending: upscale goes right
FPS = 24
#: Durations and their exact frame counts at 24 fps.
DURATION_FRAMES: dict[str, int] = {"5s": 120, "9s": 216}

# The account's limits, concept list and defaults are the API's own facts; reelflow keeps
# them in one place (reelflow.spec), which the emulator shares rather than copies.
from reelflow.spec import API_DEFAULTS, CONCEPTS, PROMPT_MAX, PROMPT_MIN  # noqa: E402

DEFAULT_ASPECT_RATIO: str = API_DEFAULTS["aspect_ratio"]
DEFAULT_RESOLUTION: str = API_DEFAULTS["resolution"]
DEFAULT_DURATION: str = API_DEFAULTS["duration"]

#: The short side in pixels of each resolution (16:9 540p is 960x540, 4k is 3840x2160).
_SHORT_SIDE = {"360p": 360, "540p": 540, "720p": 720, "1080p": 1080, "4k": 2160}


def pixel_size(aspect: str, resolution: str) -> tuple[int, int]:
    """Short side = the resolution's p-number, long side from the aspect, both even."""
    a, b = (int(x) for x in aspect.split(":"))
    short = _SHORT_SIDE[resolution]
    long_side = round(short * max(a, b) / min(a, b) / 2) * 2
    return (long_side, short) if a >= b else (short, long_side)


#: (aspect_ratio, resolution) -> (width, height). Luma documents only 16:9; the other
#: aspects keep the short side at the p-number (1:1 720p = 720x720, 21:9 720p = 1680x720).
SIZES: dict[tuple[str, str], tuple[int, int]] = {
    (aspect, res): pixel_size(aspect, res) for aspect in ASPECT_RATIOS for res in RESOLUTIONS
}

#: Credits are USD cents (the SDK documents credit_balance so). Default balance: $100.
DEFAULT_CREDITS = 10000.0
#: Price per million output pixels (width x height x frames), from reseller estimates:
#: ray-2 720p 5 s = 110.6 Mpx = $0.71, ray-flash-2 = $0.24.
USD_PER_MEGAPIXEL: dict[str, float] = {"ray-2": 0.0064, "ray-flash-2": 0.0022}
#: Emulator estimates for the in-place operations (no public price): an upscale costs this
#: fraction of generating at the target size; audio a flat rate per second of video.
UPSCALE_PRICE_FACTOR = 0.5
AUDIO_USD_PER_SECOND = 0.02


class RequestInvalid(Exception):
    """A request the API refuses; ``problems`` are joined into the 400 body's detail."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def frame_size(request: dict[str, Any], resolution: str | None = None) -> tuple[int, int]:
    """Return the output (width, height) of a valid video request (optionally re-sized)."""
    aspect = request.get("aspect_ratio") or DEFAULT_ASPECT_RATIO
    return SIZES[(aspect, resolution or request.get("resolution") or DEFAULT_RESOLUTION)]


def frame_count(request: dict[str, Any]) -> int:
    """Return the exact number of frames a valid video request renders."""
    return DURATION_FRAMES[request.get("duration") or DEFAULT_DURATION]


def generation_cost(request: dict[str, Any], resolution: str | None = None,
                    factor: float = 1.0) -> float:
    """Return the price in credits (USD cents) of rendering ``request`` (at ``resolution``)."""
    width, height = frame_size(request, resolution)
    megapixels = width * height * frame_count(request) / 1e6
    return round(megapixels * USD_PER_MEGAPIXEL[request["model"]] * 100 * factor, 2)


def content_hash(request: dict[str, Any]) -> str:
    """Hash of what a video shows: same request, same pixels (callback_url is irrelevant)."""
    keys = ("model", "prompt", "aspect_ratio", "resolution", "duration", "loop",
            "keyframes", "concepts")
    canonical = json.dumps({k: request.get(k) for k in keys}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_enum(body: dict[str, Any], field: str, allowed: tuple[str, ...],
                problems: list[str]) -> None:
    if field in body and body[field] is not None and body[field] not in allowed:
        problems.append(f"{field}: {body[field]!r} is not one of {', '.join(allowed)}")


def _check_prompt(body: dict[str, Any], problems: list[str], *, required: bool) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        if required:
            problems.append("prompt: field required")
    elif not isinstance(prompt, str):
        problems.append("prompt: must be a string")
    elif not PROMPT_MIN <= len(prompt) <= PROMPT_MAX:
        problems.append(f"prompt: length {len(prompt)} is outside {PROMPT_MIN}..{PROMPT_MAX}")


def _check_frame(name: str, frame: Any, problems: list[str]) -> None:
    where = f"keyframes.{name}"
    if not isinstance(frame, dict):
        problems.append(f"{where}: must be an object")
    elif frame.get("type") == "image":
        url = frame.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problems.append(f"{where}.url: must be an http(s) URL")
    elif frame.get("type") == "generation":
        if not isinstance(frame.get("id"), str) or not frame["id"]:
            problems.append(f"{where}.id: must be a generation id")
    else:
        problems.append(f"{where}.type: must be 'image' or 'generation'")


def _check_keyframes(body: dict[str, Any], problems: list[str], strict: bool) -> None:
    keyframes = body.get("keyframes")
    if keyframes is None:
        return
    if not isinstance(keyframes, dict):
        problems.append("keyframes: must be an object")
        return
    extra = sorted(set(keyframes) - {"frame0", "frame1"})
    if extra:
        problems.append(f"keyframes: unknown keys {', '.join(extra)} (frame0, frame1 only)")
    for name in ("frame0", "frame1"):
        if keyframes.get(name) is not None:
            _check_frame(name, keyframes[name], problems)
    if strict and body.get("loop") is True and keyframes.get("frame1") is not None:
        problems.append("loop: cannot be combined with keyframes.frame1")


def _check_concepts(body: dict[str, Any], problems: list[str], strict: bool) -> None:
    concepts = body.get("concepts")
    if concepts is None:
        return
    if not isinstance(concepts, list):
        problems.append("concepts: must be a list of {key}")
        return
    for i, concept in enumerate(concepts):
        key = concept.get("key") if isinstance(concept, dict) else None
        if not isinstance(key, str) or (strict and key not in CONCEPTS):
            problems.append(f"concepts[{i}].key: {key!r} is not a known concept")


def validate_video_request(body: Any, *, strict: bool = True) -> None:
    """Raise RequestInvalid unless ``body`` is a video request the API would accept.

    The prompt is optional, as in the API's schema (the SDK sends a create with only
    ``model``); when given it must be a string of PROMPT_MIN..PROMPT_MAX characters.
    ``strict=False`` (conformance mode) skips the checks beyond the schema: loop with
    frame1, concept keys the API does not know.
    """
    if not isinstance(body, dict):
        raise RequestInvalid(["body: must be a JSON object"])
    problems: list[str] = []
    if body.get("generation_type") not in (None, "video"):
        problems.append(f"generation_type: {body['generation_type']!r} is not 'video'")
    if body.get("model") is None:
        problems.append("model: field required")
    _check_enum(body, "model", MODELS, problems)
    _check_enum(body, "aspect_ratio", ASPECT_RATIOS, problems)
    _check_enum(body, "resolution", RESOLUTIONS, problems)
    _check_enum(body, "duration", tuple(DURATION_FRAMES), problems)
    _check_prompt(body, problems, required=False)
    if body.get("loop") is not None and not isinstance(body["loop"], bool):
        problems.append("loop: must be a boolean")
    if body.get("callback_url") is not None and not isinstance(body["callback_url"], str):
        problems.append("callback_url: must be a string")
    _check_keyframes(body, problems, strict)
    _check_concepts(body, problems, strict)
    if problems:
        raise RequestInvalid(problems)


def validate_upscale_request(body: Any, current_resolution: str) -> str:
    """Check an upscale body; return the target resolution (default: one step up)."""
    if not isinstance(body, dict):
        raise RequestInvalid(["body: must be a JSON object"])
    problems: list[str] = []
    if body.get("generation_type") not in (None, "upscale_video"):
        problems.append(f"generation_type: {body['generation_type']!r} is not 'upscale_video'")
    _check_enum(body, "resolution", RESOLUTIONS, problems)
    current = RESOLUTIONS.index(current_resolution)
    target = body.get("resolution") or RESOLUTIONS[min(current + 1, len(RESOLUTIONS) - 1)]
    if not problems and RESOLUTIONS.index(target) <= current:
        problems.append(f"resolution: {target} is not above the current {current_resolution}")
    if problems:
        raise RequestInvalid(problems)
    return target


def validate_audio_request(body: Any) -> None:
    """Check an add-audio body (prompt and negative_prompt optional, at most 5000 chars)."""
    if not isinstance(body, dict):
        raise RequestInvalid(["body: must be a JSON object"])
    problems: list[str] = []
    if body.get("generation_type") not in (None, "add_audio"):
        problems.append(f"generation_type: {body['generation_type']!r} is not 'add_audio'")
    for field in ("prompt", "negative_prompt"):
        value = body.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > PROMPT_MAX):
            problems.append(f"{field}: must be a string of at most {PROMPT_MAX} characters")
    if problems:
        raise RequestInvalid(problems)


def query_int(query: dict[str, list[str]], name: str, default: int, low: int,
              high: int | None) -> int:
    """An integer query parameter within ``low..high``; RequestInvalid (400) otherwise."""
    raw = query.get(name, [None])[-1]
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestInvalid([f"{name}: must be an integer"]) from None
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise RequestInvalid([f"{name}: {value} is outside {bounds}"])
    return value

"""The Agents API's tables (models, types, sizes, prices) and its request validation.

The Agents API (``luma-agents``: ray-3.2 video, uni-1 images) has its own routes and
shapes beside the Dream Machine API (``spec.py``). Validation answers like the service:
schema problems (a wrong type, an unknown enum value, a missing required field) are 422;
combinations the service refuses (10s with a start frame, HDR below 720p, keyframes with
start/end, ...) are 400. Both carry one line per problem naming the field.

Prices are USD cents (like the Dream Machine side's credits), billed by Luma's
pay-as-you-go list prices in ``reelflow.pricing`` (the same table ``plan`` estimates with,
without REELFLOW_PRICES overrides): uni-1 per image plus references, ray-3.2 by type
(video, extend, edit, reframe), resolution, dynamic range and duration.
"""

from __future__ import annotations

from typing import Any

from reelflow import pricing

from reelflow.emulator.spec import pixel_size

__all__ = [
    "ASPECTS", "DURATION_FRAMES", "FAILURE_CODES", "IMAGE_MODELS", "IMAGE_TYPES", "MODELS",
    "PRICES_DATED", "RAY_ASPECTS", "RESOLUTIONS", "STRENGTHS", "TYPES", "VIDEO_TYPES",
    "AgentsInvalid", "frame_count", "generation_cost", "image_size", "normalize", "price_kind",
    "refs_of", "validate", "video_size",
]

MODELS = ("uni-1", "uni-1-max", "ray-3.2")
IMAGE_MODELS = ("uni-1", "uni-1-max")
TYPES = ("image", "image_edit", "video", "video_edit", "video_reframe", "layering")
IMAGE_TYPES = ("image", "image_edit", "layering")
VIDEO_TYPES = ("video", "video_edit", "video_reframe")
ASPECTS = ("3:1", "2:1", "21:9", "16:9", "4:3", "3:2", "1:1", "3:4", "2:3", "9:16", "1:2", "1:3")
#: The aspect ratios ray-3.2 renders (docs: guides/videos/generation).
RAY_ASPECTS = ("9:16", "3:4", "1:1", "4:3", "16:9", "21:9")
RESOLUTIONS = ("360p", "540p", "720p", "1080p")
DURATION_FRAMES = {"5s": 120, "10s": 240}
FPS = 24
STRENGTHS = tuple(f"{kind}_{n}" for kind in ("adhere", "flex", "reimagine") for n in (1, 2, 3))
FAILURE_CODES = ("content_moderated", "generation_failed", "budget_exhausted",
                 "output_not_found", "image_too_large", "unsupported_format", "corrupt_input",
                 "invalid_request", "rate_limited")
PROMPT_MAX = 6000
MAX_KEYFRAMES = 64
#: A video_edit source is at most 18 s, a video_reframe source at most 30 s.
MAX_SOURCE_SECONDS = {"video_edit": 18.0, "video_reframe": 30.0}

PRICES_DATED = pricing.PRICES_DATED


class AgentsInvalid(Exception):
    """A refused request: ``status`` 422 (schema) or 400 (a refused combination)."""

    def __init__(self, status: int, problems: list[str]):
        self.status, self.problems = status, list(problems)
        super().__init__("; ".join(self.problems))


def normalize(body: dict[str, Any]) -> dict[str, Any]:
    """The request with the service's defaults filled in (model, type, video options)."""
    request = {k: v for k, v in body.items() if v is not None}
    if "type" not in request:
        request["type"] = "video" if request.get("model") == "ray-3.2" else "image"
    if "model" not in request:
        request["model"] = "ray-3.2" if request["type"] in VIDEO_TYPES else "uni-1"
    if request["type"] in VIDEO_TYPES:
        video = {k: v for k, v in (request.get("video") or {}).items() if v is not None}
        video.setdefault("resolution", "720p")
        video.setdefault("duration", "5s")
        request["video"] = video
        if request["type"] == "video":
            request.setdefault("aspect_ratio", "16:9")
    else:
        request.setdefault("aspect_ratio", "1:1")
        request.setdefault("output_format", "png")
    return request


def frame_count(request: dict[str, Any]) -> int:
    return DURATION_FRAMES[request["video"]["duration"]]


def video_size(aspect: str, resolution: str) -> tuple[int, int]:
    return pixel_size(aspect, resolution)


def image_size(aspect: str, long_side: int) -> tuple[int, int]:
    """Images: the long side is ``long_side`` (2048 on the service), both sides even."""
    a, b = (int(x) for x in aspect.split(":"))
    short = round(long_side * min(a, b) / max(a, b) / 2) * 2
    return (long_side, short) if a >= b else (short, long_side)


def refs_of(request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every ImageRef of a request with its field path (source, image_ref, frames...)."""
    refs: list[tuple[str, dict[str, Any]]] = []
    if isinstance(request.get("source"), dict):
        refs.append(("source", request["source"]))
    for i, ref in enumerate(request.get("image_ref") or []):
        refs.append((f"image_ref[{i}]", ref))
    video = request.get("video") or {}
    for name in ("start_frame", "end_frame"):
        if isinstance(video.get(name), dict):
            refs.append((f"video.{name}", video[name]))
    for i, ref in enumerate(video.get("keyframes") or []):
        refs.append((f"video.keyframes[{i}]", ref))
    for i, ref in enumerate((video.get("edit") or {}).get("keyframes") or []):
        refs.append((f"video.edit.keyframes[{i}]", ref))
    return [(path, ref) for path, ref in refs if isinstance(ref, dict)]


def price_kind(request: dict[str, Any]) -> str:
    """The price table's row of a video request: video, extend, edit or reframe."""
    if request["type"] != "video":
        return {"video_edit": "edit", "video_reframe": "reframe"}[request["type"]]
    video = request["video"]
    ends = [video[n] for n in ("start_frame", "end_frame") if isinstance(video.get(n), dict)]
    chained = len(ends) == 1 and ends[0].get("generation_id") and not video.get("keyframes")
    return "extend" if chained else "video"


def generation_cost(request: dict[str, Any], source_seconds: float | None = None) -> float:
    """Price in USD cents of a normalized, valid request (Luma's list prices)."""
    if request["type"] in IMAGE_TYPES:
        refs = len(request.get("image_ref") or []) + (1 if request.get("source") else 0)
        usd = pricing.list_image_usd(request["model"], refs)
        if request["type"] == "layering":
            usd *= 2  # two layers rendered (not on Luma's page: the emulator's choice)
        return round(usd * 100, 2)
    video = request["video"]
    seconds = 5.0 * (2 if video["duration"] == "10s" else 1)
    if source_seconds is not None and request["type"] != "video":
        seconds = source_seconds
    usd = pricing.list_ray32_usd(price_kind(request), video["resolution"], seconds,
                                 hdr=bool(video.get("hdr")), exr=bool(video.get("exr_export")))
    return round(usd * 100, 2)


# -- validation -----------------------------------------------------------------------

def _enum(where: str, value: Any, allowed: tuple[str, ...], out: list[str]) -> None:
    if value is not None and value not in allowed:
        out.append(f"{where}: {value!r} is not one of {', '.join(allowed)}")


def _ref_schema(where: str, ref: Any, out: list[str]) -> None:
    if not isinstance(ref, dict):
        out.append(f"{where}: must be an object")
        return
    for key in ("url", "data", "generation_id", "file_id", "media_type"):
        if ref.get(key) is not None and not isinstance(ref[key], str):
            out.append(f"{where}.{key}: must be a string")


def _schema(body: dict[str, Any]) -> list[str]:
    out: list[str] = []
    prompt = body.get("prompt")
    if prompt is None:
        out.append("prompt: field required")
    elif not isinstance(prompt, str):
        out.append("prompt: must be a string")
    elif len(prompt) > PROMPT_MAX:
        out.append(f"prompt: longer than {PROMPT_MAX} characters")
    _enum("model", body.get("model"), MODELS, out)
    _enum("type", body.get("type"), TYPES, out)
    _enum("aspect_ratio", body.get("aspect_ratio"), ASPECTS, out)
    _enum("output_format", body.get("output_format"), ("png", "jpeg"), out)
    _enum("style", body.get("style"), ("auto", "manga"), out)
    if body.get("web_search") is not None and not isinstance(body["web_search"], bool):
        out.append("web_search: must be a boolean")
    if body.get("image_ref") is not None and not isinstance(body["image_ref"], list):
        out.append("image_ref: must be a list")
    for path, ref in [("source", body.get("source"))] + [
            (f"image_ref[{i}]", r) for i, r in enumerate(body.get("image_ref") or [])]:
        if ref is not None:
            _ref_schema(path, ref, out)
    video = body.get("video")
    if video is not None and not isinstance(video, dict):
        out.append("video: must be an object")
    elif video:
        _video_schema(video, out)
    return out


def _video_schema(video: dict[str, Any], out: list[str]) -> None:
    _enum("video.resolution", video.get("resolution"), RESOLUTIONS, out)
    _enum("video.duration", video.get("duration"), tuple(DURATION_FRAMES), out)
    for flag in ("loop", "hdr", "exr_export"):
        if video.get(flag) is not None and not isinstance(video[flag], bool):
            out.append(f"video.{flag}: must be a boolean")
    for name in ("start_frame", "end_frame"):
        if video.get(name) is not None:
            _ref_schema(f"video.{name}", video[name], out)
    for where, holder in (("video", video), ("video.edit", video.get("edit") or {})):
        frames, indexes = holder.get("keyframes"), holder.get("keyframe_indexes")
        if frames is not None and not isinstance(frames, list):
            out.append(f"{where}.keyframes: must be a list")
        for i, ref in enumerate(frames if isinstance(frames, list) else []):
            _ref_schema(f"{where}.keyframes[{i}]", ref, out)
        if indexes is not None and (not isinstance(indexes, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in indexes)):
            out.append(f"{where}.keyframe_indexes: must be a list of integers")
    edit = video.get("edit")
    if isinstance(edit, dict):
        _enum("video.edit.strength", edit.get("strength"), STRENGTHS, out)
    position = video.get("source_position")
    if isinstance(position, dict):
        for key in ("x_norm", "y_norm", "w_norm", "h_norm"):
            if not isinstance(position.get(key), (int, float)):
                out.append(f"video.source_position.{key}: field required (a number)")


def _ref_rules(where: str, ref: dict[str, Any], out: list[str], *, video_ok: bool) -> None:
    given = [k for k in ("url", "data", "generation_id", "file_id") if ref.get(k) is not None]
    if len(given) != 1:
        out.append(f"{where}: exactly one of url, data, generation_id, file_id "
                   f"(got {', '.join(given) or 'none'})")
        return
    media = ref.get("media_type") or ""
    if given[0] == "data" and not media:
        out.append(f"{where}.media_type: required with data")
    if media.startswith("video/") and not video_ok:
        out.append(f"{where}.media_type: a video is only accepted as a video_edit or "
                   "video_reframe source")
    if given[0] == "url" and not ref["url"].startswith(("http://", "https://")):
        out.append(f"{where}.url: must be an http(s) URL")


def _combination(req: dict[str, Any]) -> list[str]:
    """The cross-field rules of a normalized, schema-valid request."""
    out: list[str] = []
    kind, model = req["type"], req["model"]
    video = req.get("video") or {}
    if kind in VIDEO_TYPES and model != "ray-3.2":
        out.append(f"model: {model} cannot make type {kind} (ray-3.2 only)")
    if kind in IMAGE_TYPES and model not in IMAGE_MODELS:
        out.append(f"model: {model} cannot make type {kind} (uni-1, uni-1-max)")
    if kind == "layering" and model != "uni-1":
        out.append("model: layering is uni-1 only")
    if kind in IMAGE_TYPES and req.get("video"):
        out.append(f"video: not valid for type {kind}")
    if kind in VIDEO_TYPES and "output_format" in req:
        out.append(f"output_format: not valid for type {kind}")
    if kind == "layering" and len(req.get("prompt") or "") > 500:
        out.append("prompt: at most 500 characters for layering")
    needs_source = kind in ("image_edit", "video_edit", "video_reframe", "layering")
    if needs_source and not req.get("source"):
        out.append(f"source: required for type {kind}")
    if not needs_source and req.get("source"):
        out.append(f"source: not valid for type {kind}")
    refs = req.get("image_ref") or []
    limit = {"image": 9, "image_edit": 8}.get(kind, 0)
    if len(refs) > limit:
        out.append(f"image_ref: at most {limit} for type {kind}" if limit else
                   f"image_ref: not valid for type {kind}")
    if "layering" in req and kind != "layering":
        out.append("layering: only valid for type layering")
    aspect = req.get("aspect_ratio")
    if kind in VIDEO_TYPES and aspect is not None and aspect not in RAY_ASPECTS:
        out.append(f"aspect_ratio: {aspect} is not one of ray-3.2's {', '.join(RAY_ASPECTS)}")
    if kind == "video_reframe" and aspect is None:
        out.append("aspect_ratio: required for video_reframe (the new aspect)")
    for where, ref in refs_of(req):
        _ref_rules(where, ref, out, video_ok=where == "source" and kind in
                   ("video_edit", "video_reframe"))
    if kind in VIDEO_TYPES:
        _video_rules(req, video, out)
    return out


def _video_rules(req: dict[str, Any], video: dict[str, Any], out: list[str]) -> None:
    kind = req["type"]
    res, ten = video["resolution"], video["duration"] == "10s"
    frames = video.get("keyframes") or []
    starts = [n for n in ("start_frame", "end_frame") if video.get(n)]
    if kind != "video":
        for name in starts + (["keyframes"] if frames else []) + \
                (["loop"] if video.get("loop") else []):
            out.append(f"video.{name}: only valid for type video")
    if video.get("edit") and kind != "video_edit":
        out.append("video.edit: only valid for type video_edit")
    if video.get("source_position") and kind != "video_reframe":
        out.append("video.source_position: only valid for type video_reframe")
    if ten and starts:
        out.append(f"video.duration: 10s is text-to-video only (not with {starts[0]})")
    if video.get("loop"):
        if ten:
            out.append("video.loop: not supported with duration 10s")
        if video.get("hdr"):
            out.append("video.loop: not supported with hdr")
        if video.get("end_frame"):
            out.append("video.loop: not supported with end_frame")
    if video.get("hdr"):
        if res not in ("720p", "1080p"):
            out.append(f"video.hdr: needs resolution 720p or 1080p (got {res})")
        if ten:
            out.append("video.hdr: 5s only (not with duration 10s)")
        chained = [n for n in starts if (video[n] or {}).get("generation_id")]
        if chained:
            out.append(f"video.hdr: extending a generation ({chained[0]}) is SDR only")
        if kind == "video_reframe":
            out.append("video.hdr: not supported for video_reframe")
    if video.get("exr_export") and not video.get("hdr"):
        out.append("video.exr_export: requires hdr true")
    if kind == "video_reframe" and res == "1080p" and req.get("aspect_ratio") in ("9:16", "3:4"):
        out.append("video.resolution: 1080p reframe is not available for vertical aspects")
    _keyframe_rules("video", video, DURATION_FRAMES[video["duration"]], out)
    if frames and (starts or video.get("loop")):
        clash = starts[0] if starts else "loop"
        out.append(f"video.keyframes: not with {clash} (use keyframes or start/end frames)")
    edit = video.get("edit") or {}
    if edit.get("keyframes") and video.get("start_frame"):
        out.append("video.edit.keyframes: not with video.start_frame")
    if edit.get("keyframes") or edit.get("keyframe_indexes"):
        _keyframe_rules("video.edit", edit, None, out)
    position = video.get("source_position") or {}
    for key in ("w_norm", "h_norm"):
        if key in position and not 0 < position[key] <= 2:
            out.append(f"video.source_position.{key}: must be in (0, 2]")


def _keyframe_rules(where: str, holder: dict[str, Any], grid: int | None,
                    out: list[str]) -> None:
    frames, indexes = holder.get("keyframes"), holder.get("keyframe_indexes")
    if frames is None and indexes is None:
        return
    frames, indexes = frames or [], indexes or []
    if not 1 <= len(frames) <= MAX_KEYFRAMES:
        out.append(f"{where}.keyframes: 1 to {MAX_KEYFRAMES} anchors (got {len(frames)})")
    if len(indexes) != len(frames):
        out.append(f"{where}.keyframe_indexes: {len(indexes)} indexes for "
                   f"{len(frames)} keyframes (must match)")
    if len(set(indexes)) != len(indexes):
        out.append(f"{where}.keyframe_indexes: must be unique")
    bad = [i for i in indexes if i < 0 or (grid is not None and i > grid)]
    if bad:
        span = f"0..{grid}" if grid is not None else ">= 0"
        out.append(f"{where}.keyframe_indexes: {bad[0]} is off the frame grid ({span})")


def validate(body: Any, *, combinations: bool = True) -> dict[str, Any]:
    """Return the normalized request or raise AgentsInvalid (422 schema, 400 combination).

    ``combinations=False`` (conformance mode) checks the schema only, as a mock server
    built from the API's schema does.
    """
    if not isinstance(body, dict):
        raise AgentsInvalid(422, ["body: must be a JSON object"])
    problems = _schema(body)
    if problems:
        raise AgentsInvalid(422, problems)
    request = normalize(body)
    if combinations:
        problems = _combination(request)
        if problems:
            raise AgentsInvalid(400, problems)
    return request

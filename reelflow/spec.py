"""Luma API and delivery constants: the ONE place both the shot list and the tasks read them.

A new model, size or transition is a one-line change here; the shot-list validation,
its JSON Schema and the emulator all follow. Values come from the lumaai 1.21.0 SDK
(ray-2, ray-flash-2: the Dream Machine API), the luma-agents 0.5.0 SDK and Luma's
Agents API docs (ray-3.2: guides/model, guides/videos/generation) and ffmpeg's
``xfade`` filter. Which API serves a model is ``MODEL_API``; what each model accepts is
``MODEL_RESOLUTIONS`` / ``MODEL_DURATIONS`` / ``MODEL_ASPECT_RATIOS``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AGENTS_API",
    "API_DEFAULTS",
    "ASPECT_RATIOS",
    "CONCEPTS",
    "DREAM_MACHINE_API",
    "DURATIONS",
    "EDIT_MAX_SECONDS",
    "EDIT_STRENGTHS",
    "FITS",
    "FRAME_RATE",
    "HDR_RESOLUTIONS",
    "IMAGE_ASPECT_RATIOS",
    "IMAGE_MODELS",
    "IMAGE_REFS_MAX",
    "KEYFRAMES_MAX",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_SIDE",
    "MODELS",
    "MODEL_API",
    "MODEL_ASPECT_RATIOS",
    "MODEL_DURATIONS",
    "MODEL_RESOLUTIONS",
    "OUTPUT_FPS",
    "PROMPT_MAX",
    "PROMPT_MIN",
    "RESOLUTIONS",
    "RESOLUTION_SHORT_SIDE",
    "TEXT_POSITIONS",
    "TRANSITION_ALIASES",
    "TRANSITION_TYPES",
    "UPSCALE_RESOLUTIONS",
    "XFADE_TRANSITIONS",
    "output_size",
    "xfade_name",
]

#: The two Luma APIs (each with its own SDK, key and base URL).
DREAM_MACHINE_API = "dream-machine"   # lumaai: LUMAAI_API_KEY, LUMAAI_BASE_URL
AGENTS_API = "agents"                 # luma-agents: LUMA_AGENTS_API_KEY, LUMA_BASE_URL

#: What the Dream Machine API assumes for a top-level request field left out (luma-api.md):
#: an absent field and its default compare equal, on our side and on the account's echo
#: alike, and the emulator fills in the same. These are
#: the API's facts; reelflow's own built-in defaults are ``reelflow.defaults``.
API_DEFAULTS: dict[str, Any] = {"generation_type": "video", "aspect_ratio": "16:9",
                                "resolution": "720p", "duration": "5s", "loop": False}

#: Video models a shot can name, and the API that serves each.
MODELS: tuple[str, ...] = ("ray-2", "ray-flash-2", "ray-3.2")
#: Still-image models (Agents API): the seam carries them as paid steps too.
IMAGE_MODELS: tuple[str, ...] = ("uni-1", "uni-1-max")
MODEL_API: dict[str, str] = {"ray-2": DREAM_MACHINE_API, "ray-flash-2": DREAM_MACHINE_API,
                             "ray-3.2": AGENTS_API, "uni-1": AGENTS_API, "uni-1-max": AGENTS_API}

#: Aspect ratios any model accepts, as "width:height" (ray-3.2: MODEL_ASPECT_RATIOS).
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")

#: Generation resolutions, smallest first (so list order is "above"/"below").
RESOLUTIONS: tuple[str, ...] = ("360p", "540p", "720p", "1080p", "4k")

#: The short side in pixels of each resolution (the p-number; 4k is 2160).
RESOLUTION_SHORT_SIDE: dict[str, int] = {"360p": 360, "540p": 540, "720p": 720, "1080p": 1080,
                                         "4k": 2160}

#: What each model accepts (360p is ray-3.2's SDR draft tier; 4k is ray-2's upscale size).
MODEL_RESOLUTIONS: dict[str, tuple[str, ...]] = {
    "ray-2": ("540p", "720p", "1080p", "4k"), "ray-flash-2": ("540p", "720p", "1080p", "4k"),
    "ray-3.2": ("360p", "540p", "720p", "1080p")}
MODEL_DURATIONS: dict[str, tuple[str, ...]] = {
    "ray-2": ("5s", "9s"), "ray-flash-2": ("5s", "9s"), "ray-3.2": ("5s", "10s")}
MODEL_ASPECT_RATIOS: dict[str, tuple[str, ...]] = {
    "ray-2": ASPECT_RATIOS, "ray-flash-2": ASPECT_RATIOS,
    "ray-3.2": ("9:16", "3:4", "1:1", "4:3", "16:9", "21:9")}

#: ray-3.2: HDR (and EXR export, which needs HDR) only at these resolutions.
HDR_RESOLUTIONS: tuple[str, ...] = ("720p", "1080p")
#: ray-3.2: the frame grid keyframes are pinned to (index = round(seconds x FRAME_RATE)).
FRAME_RATE = 24
#: ray-3.2: how many keyframes one clip may pin.
KEYFRAMES_MAX = 64
#: Stills (IMAGE_MODELS): the aspect ratios they make, and how many reference images
#: (image_ref) one still may carry.
IMAGE_ASPECT_RATIOS: tuple[str, ...] = ("3:1", "2:1", "21:9", "16:9", "4:3", "3:2", "1:1", "3:4",
                                        "2:3", "9:16", "1:2", "1:3")
IMAGE_REFS_MAX = 9
#: ray-3.2: the longest source a video edit accepts (its output matches the source length).
EDIT_MAX_SECONDS = 18.0
#: ray-3.2: the API's edit strengths, from keeping the source closest to reimagining it;
#: a shot's ``strength`` 0..1 picks one (round(strength x 8)).
EDIT_STRENGTHS: tuple[str, ...] = ("adhere_1", "adhere_2", "adhere_3", "flex_1", "flex_2",
                                   "flex_3", "reimagine_1", "reimagine_2", "reimagine_3")

#: Keyframe images: the largest file and the longest side the API is sent. Luma documents
#: no pixel limit for keyframes that we could find; these are conservative bounds (an 8K
#: frame, 7680 px, fits; 20 MB is what the emulator fetches), refused before any spend
#: with the reason instead of failing the generation after it is paid for.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_SIDE = 8192

#: Resolutions a generated clip can be upscaled to.
UPSCALE_RESOLUTIONS: tuple[str, ...] = ("1080p", "4k")

#: Clip durations some model accepts, with their length in seconds (iterate for the names).
DURATIONS: dict[str, int] = {"5s": 5, "9s": 9, "10s": 10}

#: Prompt length limits in characters (Luma's docs).
PROMPT_MIN = 3
PROMPT_MAX = 5000

#: Camera concept keys, as GET /generations/concepts/list returned them.
CONCEPTS: tuple[str, ...] = (
    "truck_left", "pan_right", "pedestal_down", "low_angle", "pedestal_up", "selfie",
    "pan_left", "roll_right", "zoom_in", "over_the_shoulder", "orbit_right", "orbit_left",
    "static", "tiny_planet", "high_angle", "bolt_cam", "dolly_zoom", "overhead", "zoom_out",
    "handheld", "roll_left", "pov", "aerial_drone", "push_in", "crane_down", "truck_right",
    "tilt_down", "elevator_doors", "tilt_up", "ground_level", "pull_out", "aerial",
    "crane_up", "eye_level",
)

#: ffmpeg ``xfade`` transition names (ffmpeg 6+; custom expressions excluded).
XFADE_TRANSITIONS: tuple[str, ...] = (
    "fade", "wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright",
    "slideup", "slidedown", "circlecrop", "rectcrop", "distance", "fadeblack", "fadewhite",
    "radial", "smoothleft", "smoothright", "smoothup", "smoothdown", "circleopen",
    "circleclose", "vertopen", "vertclose", "horzopen", "horzclose", "dissolve", "pixelize",
    "diagtl", "diagtr", "diagbl", "diagbr", "hlslice", "hrslice", "vuslice", "vdslice",
    "hblur", "fadegrays", "wipetl", "wipetr", "wipebl", "wipebr", "squeezeh", "squeezev",
    "zoomin",
)

#: Friendly transition names -> the xfade transition that draws them. The shot list's
#: "fade" means *through black* (xfade's "fadeblack"); xfade's own "fade" is a crossfade.
TRANSITION_ALIASES: dict[str, str] = {"crossfade": "fade", "fade": "fadeblack"}

#: Every transition type a shot list (and the timeline) may name: cut, the aliases, then
#: raw xfade names.
TRANSITION_TYPES: tuple[str, ...] = ("cut", *TRANSITION_ALIASES,
                                     *(t for t in XFADE_TRANSITIONS if t not in TRANSITION_ALIASES))


def xfade_name(transition: str) -> str:
    """The ffmpeg xfade transition that draws ``transition`` (crossfade -> fade, fade ->
    fadeblack, an xfade name -> itself; ``cut`` stays ``cut``)."""
    return TRANSITION_ALIASES.get(transition, transition)

#: Delivery frame rates.
OUTPUT_FPS: tuple[int, ...] = (24, 25, 30)

#: How a clip whose aspect differs from the output's is fitted into the frame.
FITS: tuple[str, ...] = ("cover", "contain", "blur")

#: Where a text overlay may sit in the frame.
TEXT_POSITIONS: tuple[str, ...] = (
    "top-left", "top", "top-right",
    "center-left", "center", "center-right",
    "bottom-left", "bottom", "bottom-right",
)


def output_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Frame size ``(width, height)`` for a resolution and an aspect ratio.

    The p-number is the short side (4k: 2160); the long side is rounded to an even
    number, because H.264 with 4:2:0 chroma needs even dimensions.

    Args:
        resolution: one of ``RESOLUTIONS``, e.g. ``"1080p"``.
        aspect_ratio: one of ``ASPECT_RATIOS``, e.g. ``"9:16"``.

    Returns:
        ``(width, height)`` in pixels, e.g. ``(1080, 1920)`` for 1080p 9:16.

    Raises:
        ValueError: an unknown resolution or aspect ratio.

    Example:
        >>> output_size("1080p", "21:9")
        (2520, 1080)
    """
    if resolution not in RESOLUTION_SHORT_SIDE:
        raise ValueError(f"unknown resolution {resolution!r}; expected one of {', '.join(RESOLUTIONS)}")
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValueError(f"unknown aspect ratio {aspect_ratio!r}; expected one of {', '.join(ASPECT_RATIOS)}")
    short = RESOLUTION_SHORT_SIDE[resolution]
    w, h = (int(part) for part in aspect_ratio.split(":"))
    long_side = 2 * round(short * max(w, h) / min(w, h) / 2)
    return (long_side, short) if w >= h else (short, long_side)

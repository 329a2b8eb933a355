"""Luma API and delivery constants: the ONE place both the shot list and the tasks read them.

A new model, size or transition is a one-line change here; the shot-list validation,
its JSON Schema and the emulator all follow. Values come from shared/luma-api.md
(the lumaai 1.21.0 SDK and Luma's docs) and ffmpeg's ``xfade`` filter.
"""

from __future__ import annotations

__all__ = [
    "ASPECT_RATIOS",
    "CONCEPTS",
    "DURATIONS",
    "FITS",
    "MODELS",
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
]

#: Video models the API (and SDK 1.21.0) accepts.
MODELS: tuple[str, ...] = ("ray-2", "ray-flash-2")

#: Aspect ratios the API accepts, as "width:height".
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")

#: Generation resolutions, smallest first (so list order is "above"/"below").
RESOLUTIONS: tuple[str, ...] = ("540p", "720p", "1080p", "4k")

#: The short side in pixels of each resolution (the p-number; 4k is 2160).
RESOLUTION_SHORT_SIDE: dict[str, int] = {"540p": 540, "720p": 720, "1080p": 1080, "4k": 2160}

#: Resolutions a generated clip can be upscaled to.
UPSCALE_RESOLUTIONS: tuple[str, ...] = ("1080p", "4k")

#: Clip durations the API accepts, with their length in seconds (iterate for the names).
DURATIONS: dict[str, int] = {"5s": 5, "9s": 9}

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

#: Every transition type a shot list may name: cut, the aliases, then raw xfade names.
TRANSITION_TYPES: tuple[str, ...] = ("cut", *TRANSITION_ALIASES,
                                     *(t for t in XFADE_TRANSITIONS if t not in TRANSITION_ALIASES))

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

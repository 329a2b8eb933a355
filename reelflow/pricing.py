"""What a generation costs, in one overridable table.

Dream Machine API (ray-2, ray-flash-2): billed by output pixels. Per-million-pixel rates
from third-party resellers (luma-api.md): ray-2 720p 5 s is about $0.71, ray-flash-2
720p 5 s about $0.24.

Agents API (ray-3.2, uni-1, uni-1-max): Luma's published pay-as-you-go table
(docs.agents.lumalabs.ai/guides/pricing, read ``PRICES_DATED``). Video is priced per
request by type, resolution, dynamic range and duration, in 5-second blocks (a 10 s
clip bills as two); a reframe is billed per second; uni-1 stills per image plus a
surcharge per reference image. The uni-1 rates are the page's own; the page's ray-3.2
table could not be read whole here, so those rates are Luma's list prices as a reseller
(Runware, which bills Luma's prices) lists them, and the edit rates as fal lists them:
check them against the page and override where they differ.

Override any entry with REELFLOW_PRICES, a JSON object of the keys below, e.g.
``'{"ray-2": 0.0064, "ray-3.2:video:720p:sdr": 0.30, "uni-1": 0.0404}'``.
"""

from __future__ import annotations

import json
import math
import os

__all__ = ["AUDIO_USD_PER_SECOND", "PRICES_DATED", "UPSCALE_USD_PER_MEGAPIXEL", "USD_PER_MEGAPIXEL",
           "audio_cost", "generation_cost", "image_cost", "price_table", "ray32_cost",
           "upscale_cost"]

#: USD per million output pixels (width x height x frames), by Dream Machine model.
USD_PER_MEGAPIXEL: dict[str, float] = {"ray-2": 0.0064, "ray-flash-2": 0.0022}

#: Upscale, USD per million output pixels (an estimate: Luma publishes no reseller-independent price).
UPSCALE_USD_PER_MEGAPIXEL = 0.0016
#: Generated audio, USD per second of clip (an estimate, likewise).
AUDIO_USD_PER_SECOND = 0.004

#: When the Agents API prices below were read from Luma's pricing page.
PRICES_DATED = "2026-11-28"

#: ray-3.2, USD per 5-second block: ``ray-3.2:<type>:<resolution>:<range>`` where type is
#: ``video`` (text/image-to-video, extend) or ``edit`` (video_edit), range ``sdr``,
#: ``hdr`` or ``hdr+exr``. HDR exists at 720p and 1080p only. The 360p SDR edit price is
#: derived (half the 360p HDR edit, as at the other sizes); the rest is Luma's table.
RAY32_BLOCK_USD: dict[str, float] = {
    "ray-3.2:video:360p:sdr": 0.06, "ray-3.2:video:540p:sdr": 0.15,
    "ray-3.2:video:720p:sdr": 0.30, "ray-3.2:video:1080p:sdr": 1.20,
    "ray-3.2:video:720p:hdr": 0.60, "ray-3.2:video:1080p:hdr": 2.40,
    "ray-3.2:video:720p:hdr+exr": 0.90, "ray-3.2:video:1080p:hdr+exr": 3.60,
    "ray-3.2:edit:360p:sdr": 0.54, "ray-3.2:edit:540p:sdr": 0.72,
    "ray-3.2:edit:720p:sdr": 1.08, "ray-3.2:edit:1080p:sdr": 2.16,
    "ray-3.2:edit:720p:hdr": 2.16, "ray-3.2:edit:1080p:hdr": 4.32,
    "ray-3.2:edit:720p:hdr+exr": 3.24, "ray-3.2:edit:1080p:hdr+exr": 6.48,
}
#: ray-3.2 video_reframe (SDR only), USD per second of output: ``ray-3.2:reframe:<resolution>``.
RAY32_REFRAME_USD_PER_SECOND: dict[str, float] = {
    "ray-3.2:reframe:360p": 0.03, "ray-3.2:reframe:540p": 0.06,
    "ray-3.2:reframe:720p": 0.12, "ray-3.2:reframe:1080p": 0.36,
}
#: uni-1 stills (2048 px), USD per image; ``<model>:ref`` is added per reference image.
IMAGE_USD: dict[str, float] = {"uni-1": 0.0404, "uni-1-max": 0.1000,
                               "uni-1:ref": 0.0030, "uni-1-max:ref": 0.0030}

_FPS = 24
_BLOCK_S = 5


def price_table() -> dict[str, float]:
    """Return the built-in rates updated with any REELFLOW_PRICES override."""
    table = {**USD_PER_MEGAPIXEL, **RAY32_BLOCK_USD, **RAY32_REFRAME_USD_PER_SECOND, **IMAGE_USD}
    override = os.environ.get("REELFLOW_PRICES")
    if override:
        table.update({str(k): float(v) for k, v in json.loads(override).items()})
    return table


def generation_cost(model: str, width: int, height: int, seconds: float) -> float:
    """Estimate one Dream Machine generation's price in USD, rounded to the cent."""
    megapixels = width * height * round(seconds * _FPS) / 1e6
    return round(price_table()[model] * megapixels, 2)


def ray32_cost(kind: str, resolution: str, seconds: float, *, hdr: bool = False,
               exr: bool = False) -> float:
    """A ray-3.2 request's price in USD: ``kind`` is ``video``, ``edit`` or ``reframe``.

    Video and edits bill whole 5-second blocks (10 s is two); a reframe bills per second.

    Raises:
        KeyError: a combination the table has no price for (the shot list refuses those).
    """
    table = price_table()
    if kind == "reframe":
        return round(table[f"ray-3.2:reframe:{resolution}"] * seconds, 2)
    dynamic = "hdr+exr" if exr else "hdr" if hdr else "sdr"
    blocks = max(1, math.ceil(round(seconds, 3) / _BLOCK_S))
    return round(table[f"ray-3.2:{kind}:{resolution}:{dynamic}"] * blocks, 2)


def image_cost(model: str, references: int = 0) -> float:
    """A uni-1 / uni-1-max still in USD (not rounded to the cent: stills cost cents)."""
    table = price_table()
    return round(table[model] + references * table.get(f"{model}:ref", 0.0), 4)


def upscale_cost(width: int, height: int, seconds: float) -> float:
    """Estimate an upscale to ``width`` x ``height`` in USD (REELFLOW_PRICES key ``upscale``)."""
    rate = price_table().get("upscale", UPSCALE_USD_PER_MEGAPIXEL)
    return round(rate * width * height * round(seconds * _FPS) / 1e6, 2)


def audio_cost(seconds: float) -> float:
    """Estimate generated audio for a clip in USD (REELFLOW_PRICES key ``audio``, per second)."""
    return round(price_table().get("audio", AUDIO_USD_PER_SECOND) * seconds, 2)

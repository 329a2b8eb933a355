"""What a generation costs, in one overridable table.

Dream Machine API (ray-2, ray-flash-2): billed by output pixels. Per-million-pixel rates
from third-party resellers (luma-api.md): ray-2 720p 5 s is about $0.71, ray-flash-2
720p 5 s about $0.24.

Agents API (ray-3.2, uni-1, uni-1-max): Luma's pay-as-you-go table, ``PRICES_URL``, read
``PRICES_DATED``. uni-1 and uni-1-max were read from that page itself: $0.0404 / $0.1000
per text-to-image, +$0.0030 per reference image. The page's ray-3.2 section (priced per
request by type, resolution, dynamic range and duration) could not be read whole from the
stored copy here; its cells below are the page's figures as three independent public
price tables that cite the page quote them (one verified against it on 2026-10-08), in
agreement with each other and with Runware's listing of Luma's list prices. The page
marks ray-3.2 prices as subject to change before GA. What the table says, cell by cell:

- ``video`` (text/image-to-video): a 5 s and a 10 s total per resolution. A 10 s clip is
  *three* times the 5 s price (720p: $0.30 vs $0.90), not two 5 s blocks. HDR and
  HDR + EXR exist at 720p/1080p for 5 s only.
- ``extend`` (a video chained from one prior generation): SDR only, always one 5 s block.
  The page lists 540p/720p/1080p; the 360p cell is not on it and is priced as a 360p
  5 s video.
- ``edit`` (video_edit): its own 5 s and 10 s totals (10 s is twice 5 s) for SDR, HDR and
  HDR + EXR at every resolution. An edit of a source longer than 10 s (the API allows
  18 s) is not on the page: it is billed in 5 s blocks at the 5 s total, rounding up.
- ``reframe`` (video_reframe): SDR only, per second of output; a started second counts.

The emulator's Agents account bills by ``list_price`` (this table without overrides), so
``plan``, ``--budget``, the ledger and the emulated account agree.

Override any entry with REELFLOW_PRICES, a JSON object of the keys below, e.g.
``'{"ray-2": 0.0064, "ray-3.2:video:720p:sdr": 0.30, "uni-1": 0.0404}'``.
"""

from __future__ import annotations

import json
import math

from reelflow.config import settings

__all__ = ["AUDIO_USD_PER_SECOND", "PRICES_DATED", "PRICES_URL", "RAY32_USD", "IMAGE_USD",
           "UPSCALE_USD_PER_MEGAPIXEL", "USD_PER_MEGAPIXEL", "audio_cost", "generation_cost",
           "image_cost", "list_image_usd", "list_ray32_usd", "price_table", "ray32_cost",
           "upscale_cost"]

#: USD per million output pixels (width x height x frames), by Dream Machine model.
USD_PER_MEGAPIXEL: dict[str, float] = {"ray-2": 0.0064, "ray-flash-2": 0.0022}

#: Upscale, USD per million output pixels (an estimate: Luma publishes no reseller-independent price).
UPSCALE_USD_PER_MEGAPIXEL = 0.0016
#: Generated audio, USD per second of clip (an estimate, likewise).
AUDIO_USD_PER_SECOND = 0.004

#: Luma's Agents API pricing page, and when the prices below were read.
PRICES_URL = "https://docs.agents.lumalabs.ai/guides/pricing/"
PRICES_DATED = "2026-12-06"


def _cells(kind: str, rows: dict[str, tuple[float, ...]], ranges=("sdr",)) -> dict[str, float]:
    """``{resolution: (5 s, 10 s) per range}`` -> ``ray-3.2:<kind>:<res>:<range>[:10s]``."""
    out: dict[str, float] = {}
    for resolution, prices in rows.items():
        for i, dynamic in enumerate(ranges):
            five, ten = prices[2 * i], prices[2 * i + 1]
            out[f"ray-3.2:{kind}:{resolution}:{dynamic}"] = five
            if ten is not None:
                out[f"ray-3.2:{kind}:{resolution}:{dynamic}:10s"] = ten
    return out


#: ray-3.2 list prices in USD. ``ray-3.2:<video|edit>:<res>:<sdr|hdr|hdr+exr>`` is the 5 s
#: total and ``...:10s`` the 10 s total; ``ray-3.2:extend:<res>`` one extension (5 s);
#: ``ray-3.2:reframe:<res>`` per second of output.
RAY32_USD: dict[str, float] = {
    **_cells("video", {"360p": (0.06, 0.18), "540p": (0.15, 0.45), "720p": (0.30, 0.90),
                       "1080p": (1.20, 3.60)}),
    **_cells("video", {"720p": (0.60, None, 0.90, None), "1080p": (2.40, None, 3.60, None)},
             ranges=("hdr", "hdr+exr")),
    "ray-3.2:extend:360p": 0.06,  # not on the page: priced as a 360p 5 s video
    "ray-3.2:extend:540p": 0.15, "ray-3.2:extend:720p": 0.30, "ray-3.2:extend:1080p": 1.20,
    **_cells("edit", {"360p": (0.54, 1.08, 1.08, 2.16, 1.62, 3.24),
                      "540p": (0.72, 1.44, 1.44, 2.88, 2.16, 4.32),
                      "720p": (1.08, 2.16, 2.16, 4.32, 3.24, 6.48),
                      "1080p": (2.16, 4.32, 4.32, 8.64, 6.48, 12.96)},
             ranges=("sdr", "hdr", "hdr+exr")),
    "ray-3.2:reframe:360p": 0.03, "ray-3.2:reframe:540p": 0.06,
    "ray-3.2:reframe:720p": 0.12, "ray-3.2:reframe:1080p": 0.36,
}
#: uni-1 stills (2048 px), USD per image; ``<model>:ref`` is added per reference image.
IMAGE_USD: dict[str, float] = {"uni-1": 0.0404, "uni-1-max": 0.1000,
                               "uni-1:ref": 0.0030, "uni-1-max:ref": 0.0030}

_FPS = 24
_BLOCK_S = 5


def _list_table() -> dict[str, float]:
    return {**USD_PER_MEGAPIXEL, **RAY32_USD, **IMAGE_USD}


def price_table() -> dict[str, float]:
    """Return the built-in rates updated with any REELFLOW_PRICES override."""
    table = _list_table()
    override = settings().prices
    if override:
        table.update({str(k): float(v) for k, v in json.loads(override).items()})
    return table


def generation_cost(model: str, width: int, height: int, seconds: float) -> float:
    """Estimate one Dream Machine generation's price in USD, rounded to the cent."""
    megapixels = width * height * round(seconds * _FPS) / 1e6
    return round(price_table()[model] * megapixels, 2)


def list_ray32_usd(kind: str, resolution: str, seconds: float, *, hdr: bool = False,
                   exr: bool = False, table: dict[str, float] | None = None) -> float:
    """A ray-3.2 request's price in USD by the table (Luma's list prices unless ``table``).

    ``kind``: ``video``, ``extend``, ``edit`` or ``reframe`` (see the module docstring).

    Raises:
        KeyError: a combination the table has no price for (the shot list refuses those).
    """
    table = _list_table() if table is None else table
    seconds = round(seconds, 3)
    if kind == "reframe":
        return round(table[f"ray-3.2:reframe:{resolution}"] * max(1, math.ceil(seconds)), 2)
    if kind == "extend":
        return round(table[f"ray-3.2:extend:{resolution}"], 2)
    dynamic = "hdr+exr" if exr else "hdr" if hdr else "sdr"
    key = f"ray-3.2:{kind}:{resolution}:{dynamic}"
    blocks = max(1, math.ceil(seconds / _BLOCK_S))
    if blocks == 2 and f"{key}:10s" in table:
        return round(table[f"{key}:10s"], 2)
    if kind == "video" and blocks > 1:
        raise KeyError(f"{key}:10s")
    return round(table[key] * blocks, 2)


def ray32_cost(kind: str, resolution: str, seconds: float, *, hdr: bool = False,
               exr: bool = False) -> float:
    """``list_ray32_usd`` with REELFLOW_PRICES applied: what ``plan`` and the ledger show."""
    return list_ray32_usd(kind, resolution, seconds, hdr=hdr, exr=exr, table=price_table())


def list_image_usd(model: str, references: int = 0,
                   table: dict[str, float] | None = None) -> float:
    """A uni-1 / uni-1-max still in USD by the table (not rounded to the cent)."""
    table = _list_table() if table is None else table
    return round(table[model] + references * table.get(f"{model}:ref", 0.0), 4)


def image_cost(model: str, references: int = 0) -> float:
    """``list_image_usd`` with REELFLOW_PRICES applied."""
    return list_image_usd(model, references, table=price_table())


def upscale_cost(width: int, height: int, seconds: float) -> float:
    """Estimate an upscale to ``width`` x ``height`` in USD (REELFLOW_PRICES key ``upscale``)."""
    rate = price_table().get("upscale", UPSCALE_USD_PER_MEGAPIXEL)
    return round(rate * width * height * round(seconds * _FPS) / 1e6, 2)


def audio_cost(seconds: float) -> float:
    """Estimate generated audio for a clip in USD (REELFLOW_PRICES key ``audio``, per second)."""
    return round(price_table().get("audio", AUDIO_USD_PER_SECOND) * seconds, 2)

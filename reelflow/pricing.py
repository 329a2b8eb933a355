"""What a generation costs, in one overridable table.

Luma bills by output pixels. Per-million-pixel rates from third-party resellers
(luma-api.md): ray-2 720p 5 s is about $0.71, ray-flash-2 720p 5 s about $0.24.
Override with REELFLOW_PRICES='{"ray-2": 0.0064, "ray-flash-2": 0.0022}' (USD per
million output pixels).
"""

from __future__ import annotations

import json
import os

__all__ = ["AUDIO_USD_PER_SECOND", "UPSCALE_USD_PER_MEGAPIXEL", "USD_PER_MEGAPIXEL", "audio_cost",
           "generation_cost", "price_table", "upscale_cost"]

#: USD per million output pixels (width x height x frames), by model.
USD_PER_MEGAPIXEL: dict[str, float] = {"ray-2": 0.0064, "ray-flash-2": 0.0022}

#: Upscale, USD per million output pixels (an estimate: Luma publishes no reseller-independent price).
UPSCALE_USD_PER_MEGAPIXEL = 0.0016
#: Generated audio, USD per second of clip (an estimate, likewise).
AUDIO_USD_PER_SECOND = 0.004

_FPS = 24


def price_table() -> dict[str, float]:
    """Return the built-in rates updated with any REELFLOW_PRICES override."""
    table = dict(USD_PER_MEGAPIXEL)
    override = os.environ.get("REELFLOW_PRICES")
    if override:
        table.update({str(k): float(v) for k, v in json.loads(override).items()})
    return table


def generation_cost(model: str, width: int, height: int, seconds: float) -> float:
    """Estimate one generation's price in USD, rounded to the cent."""
    megapixels = width * height * round(seconds * _FPS) / 1e6
    return round(price_table()[model] * megapixels, 2)


def upscale_cost(width: int, height: int, seconds: float) -> float:
    """Estimate an upscale to ``width`` x ``height`` in USD (REELFLOW_PRICES key ``upscale``)."""
    rate = price_table().get("upscale", UPSCALE_USD_PER_MEGAPIXEL)
    return round(rate * width * height * round(seconds * _FPS) / 1e6, 2)


def audio_cost(seconds: float) -> float:
    """Estimate generated audio for a clip in USD (REELFLOW_PRICES key ``audio``, per second)."""
    return round(price_table().get("audio", AUDIO_USD_PER_SECOND) * seconds, 2)

"""What a generation costs, in one overridable table.

Luma bills by output pixels. Per-million-pixel rates from third-party resellers
(luma-api.md): ray-2 720p 5 s is about $0.71, ray-flash-2 720p 5 s about $0.24.
Override with REELFLOW_PRICES='{"ray-2": 0.0064, "ray-flash-2": 0.0022}' (USD per
million output pixels).
"""

from __future__ import annotations

import json
import os

__all__ = ["USD_PER_MEGAPIXEL", "generation_cost", "price_table"]

#: USD per million output pixels (width x height x frames), by model.
USD_PER_MEGAPIXEL: dict[str, float] = {"ray-2": 0.0064, "ray-flash-2": 0.0022}

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

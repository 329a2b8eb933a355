"""Small typed requests and results that tasks take and return.

Importing this module does not import Prefect or the SDK, so planning and
validation stay fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CACHE_SALT", "Clip", "GenerationRequest", "canonical_hash"]

#: Bumped when the meaning of a cached generation changes; part of every cache key.
CACHE_SALT = "reelflow-generation-v1"


def canonical_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys, no spaces)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class GenerationRequest(BaseModel):
    """One paid text-to-video generation, normalised so equal requests hash equal."""

    model_config = ConfigDict(frozen=True)

    model: str
    prompt: str
    aspect_ratio: str = "16:9"
    resolution: str = "720p"
    duration: str = "5s"
    loop: bool = False
    concepts: tuple[str, ...] = ()
    take: int = Field(default=1, ge=1, description="Another take of the same request is paid anew.")

    def cache_key(self) -> str:
        """The explicit SHA-256 cache key: every field that changes the clip, plus the salt."""
        return canonical_hash({"salt": CACHE_SALT, **self.model_dump(mode="json")})

    def estimated_cost(self) -> float:
        """The price table's estimate for this request, in USD."""
        from reelflow.pricing import generation_cost
        from reelflow.spec import output_size

        width, height = output_size(self.resolution, self.aspect_ratio)
        return generation_cost(self.model, width, height, float(self.duration.rstrip("s")))

    def api_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``client.generations.video.create`` (``take`` is ours only)."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt,
            "aspect_ratio": self.aspect_ratio,
            "resolution": self.resolution,
            "duration": self.duration,
        }
        if self.loop:
            kwargs["loop"] = True
        if self.concepts:
            kwargs["concepts"] = [{"key": key} for key in self.concepts]
        return kwargs


class Clip(BaseModel):
    """A finished clip in the clip store."""

    sha256: str
    path: Path
    width: int
    height: int
    fps: float
    frames: int
    has_audio: bool
    generation_id: str | None = None
    paid: bool = Field(default=False, description="True when this run made the paid create call.")
    cost_usd: float = 0.0

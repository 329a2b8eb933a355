"""Small typed requests and results that tasks take and return.

Importing this module does not import Prefect or the SDK, so planning and
validation stay fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reelflow.spec import API_DEFAULTS

__all__ = ["CACHE_SALT", "Clip", "GenerationRequest", "Keyframe", "PinnedKeyframe", "canonical_hash"]

#: Bumped when the meaning of a cached generation changes; part of every cache key.
CACHE_SALT = "reelflow-generation-v1"


def canonical_hash(payload: Any, *, ascii_only: bool = False, default: Any = None) -> str:
    """SHA-256 (hex) of the canonical JSON of ``payload``: sorted keys, no spaces, UTF-8.

    ``ascii_only`` escapes non-ASCII text (``\\uXXXX``) and ``default`` turns what JSON
    cannot hold into JSON (``_ffmpeg.content_key`` uses both: its keys stay as they were).
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only,
                      default=default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Keyframe(BaseModel):
    """An input of a generation: an image (local file by content hash, or a URL), a local
    video clip (the source of a video edit), another generation (by its request's cache
    key; its id is filled in once it exists), or a still to generate first (``still``: by
    its request's key; the stored image's path and hash are filled in once it exists, and
    it then reaches the API like a local image)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["image", "generation", "video", "still"]
    path: Path | None = Field(default=None, description="Local image or clip; uploaded at submit.")
    sha256: str | None = Field(default=None, description="Content hash of the local file.")
    url: str | None = Field(default=None, description="An https image URL given by the user.")
    upstream_key: str | None = Field(default=None, description="Cache key of the referenced request.")
    upstream_shot: str | None = Field(default=None, description="The referenced shot, for messages.")
    generation_id: str | None = Field(default=None, description="Filled in once upstream exists.")

    def key_part(self) -> dict[str, Any]:
        """What identifies this input in a cache key (never a presigned URL or an id)."""
        if self.kind == "generation":
            return {"generation": self.upstream_key}
        if self.kind == "still":
            return {"still": self.upstream_key}
        if self.kind == "video":
            return {"video_sha256": self.sha256}
        return {"image_sha256": self.sha256} if self.sha256 else {"image_url": self.url}

    def api(self, image_url: str | None = None) -> dict[str, str]:
        """The Dream Machine API's keyframe object; a local image needs the URL it was uploaded to."""
        if self.kind == "generation":
            return {"type": "generation", "id": self.require_generation_id()}
        url = self.url or image_url
        if not url:
            raise ValueError(f"local keyframe {self.path} needs a URL the API can fetch")
        return {"type": "image", "url": url}

    def require_generation_id(self) -> str:
        """The upstream generation's id; ValueError while it does not exist yet."""
        if not self.generation_id:
            raise ValueError(f"input from shot {self.upstream_shot} has no generation yet")
        return self.generation_id


class PinnedKeyframe(BaseModel):
    """ray-3.2: an image pinned to a frame of the 24 fps output grid."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="Output frame the image is pinned to (seconds x 24).")
    frame: Keyframe = Field(description="The image.")


class GenerationRequest(BaseModel):
    """One paid video generation, normalised so equal requests hash equal.

    ``model`` decides the API (``reelflow.spec.MODEL_API``): ray-2 and ray-flash-2 go to
    the Dream Machine API, ray-3.2 to the Agents API. The ray-3.2-only fields (``hdr``,
    ``exr``, ``keyframes``, ``edit``, ``reframe``) enter the cache key only when set, so
    keys of requests made before they existed are unchanged.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    prompt: str
    aspect_ratio: str = API_DEFAULTS["aspect_ratio"]    # left out: what the API assumes
    resolution: str = API_DEFAULTS["resolution"]
    duration: str = API_DEFAULTS["duration"]
    loop: bool = API_DEFAULTS["loop"]
    concepts: tuple[str, ...] = ()
    take: int = Field(default=1, ge=1, description="Another take of the same request is paid anew.")
    frame0: Keyframe | None = None
    frame1: Keyframe | None = None
    upscale: str | None = Field(default=None, description="Upscale the clip to 1080p or 4k.")
    audio: str | None = Field(default=None, description="Prompt for generated audio.")
    hdr: bool = Field(default=False, description="ray-3.2: generate HDR video (720p/1080p).")
    exr: bool = Field(default=False, description="ray-3.2: export EXR beside the MP4 (needs hdr).")
    keyframes: tuple[PinnedKeyframe, ...] = Field(
        default=(), description="ray-3.2: images pinned to output frames (not with frame0/frame1).")
    edit: Keyframe | None = Field(
        default=None, description="ray-3.2 video_edit: the source (a generation or a local clip).")
    strength: str | None = Field(
        default=None, description="ray-3.2 video_edit: the API's strength, e.g. flex_2.")
    reframe: Keyframe | None = Field(
        default=None, description="ray-3.2 video_reframe: the generation to re-frame to aspect_ratio.")
    refs: tuple[Keyframe, ...] = Field(
        default=(), description="uni-1 stills: reference images (style/content guidance, up to 9).")

    @property
    def api(self) -> str:
        """Which Luma API serves this request (``spec.DREAM_MACHINE_API`` / ``AGENTS_API``)."""
        from reelflow.spec import MODEL_API

        return MODEL_API[self.model]

    @property
    def kind(self) -> str:
        """The Agents API's generation type: video, video_edit or video_reframe."""
        from reelflow.spec import IMAGE_MODELS

        if self.model in IMAGE_MODELS:
            return "image"
        return "video_edit" if self.edit else "video_reframe" if self.reframe else "video"

    @property
    def price_kind(self) -> str:
        """ray-3.2's row of the price table: video, extend (chained from exactly one prior
        generation), edit or reframe (``reelflow.pricing``)."""
        if self.kind != "video":
            return {"video_edit": "edit", "video_reframe": "reframe"}[self.kind]
        ends = [f for f in (self.frame0, self.frame1) if f is not None]
        chained = len(ends) == 1 and ends[0].kind == "generation" and not self.keyframes
        return "extend" if chained else "video"

    @property
    def seconds(self) -> float:
        """The clip's length in seconds (``duration`` is "5s", "10s", or a source's "7.25s")."""
        return float(self.duration.rstrip("s"))

    def inputs(self) -> list[Keyframe]:
        """Every input of the base generation: frames, pinned keyframes, edit/reframe source."""
        frames = [self.frame0, self.frame1, *(k.frame for k in self.keyframes), self.edit,
                  self.reframe, *self.refs]
        return [frame for frame in frames if frame is not None]

    def cache_key(self) -> str:
        """The explicit SHA-256 key of the base generation: every field that changes the clip
        (inputs by content or upstream key), plus the salt. Upscale and audio are later
        steps with keys of their own (``step_key``)."""
        inputs = {"frame0", "frame1", "keyframes", "edit", "reframe", "refs"}
        payload = self.model_dump(mode="json", exclude={*inputs, "upscale", "audio"})
        for name in ("hdr", "exr", "strength"):  # newer fields: only when set (old keys stay)
            if not payload[name]:
                del payload[name]
        for name in ("frame0", "frame1", "edit", "reframe"):
            frame = getattr(self, name)
            if frame is not None:
                payload[name] = frame.key_part()
        if self.keyframes:
            payload["keyframes"] = [[k.index, k.frame.key_part()] for k in self.keyframes]
        if self.refs:
            payload["refs"] = [ref.key_part() for ref in self.refs]
        return canonical_hash({"salt": CACHE_SALT, **payload})

    def step_key(self, step: str) -> str:
        """Key of the ``upscale`` or ``audio`` step: the key of what it acts on plus its setting."""
        if step == "upscale":
            return canonical_hash({"after": self.cache_key(), "upscale": self.upscale})
        before = self.step_key("upscale") if self.upscale else self.cache_key()
        return canonical_hash({"after": before, "audio": self.audio})

    def steps(self) -> list[str]:
        """The paid steps after the base generation, in order."""
        return [step for step in ("upscale", "audio") if getattr(self, step)]

    def paid_keys(self) -> list[tuple[str, str | None]]:
        """Every paid call's key with its step (None for the base generation), in order."""
        return [(self.cache_key(), None)] + [(self.step_key(s), s) for s in self.steps()]

    def final_key(self) -> str:
        """Key of the last paid call: its clip is the request's finished clip."""
        return self.paid_keys()[-1][0]

    def upstream_keys(self) -> list[str]:
        """Cache keys of the generations this request builds on."""
        return [f.upstream_key for f in self.inputs() if f.kind == "generation"]

    def with_generation_ids(self, ids: dict[str, str]) -> "GenerationRequest":
        """A copy whose generation inputs carry the upstream ids (``ids``: key -> id)."""
        update = {}
        for name in ("frame0", "frame1", "edit", "reframe"):
            frame = getattr(self, name)
            if frame is not None and frame.kind == "generation":
                update[name] = frame.model_copy(update={"generation_id": ids[frame.upstream_key]})
        return self.model_copy(update=update)

    def still_keys(self) -> list[str]:
        """Cache keys of the stills (``reelflow.tasks.stills``) this request starts from."""
        return [f.upstream_key for f in self.inputs() if f.kind == "still"]

    def with_stills(self, stored: dict[str, tuple[Path, str]]) -> "GenerationRequest":
        """A copy whose still inputs carry the stored image (``stored``: key -> (path, sha256))."""
        def filled(frame: Keyframe | None) -> Keyframe | None:
            if frame is None or frame.kind != "still":
                return frame
            path, sha = stored[frame.upstream_key]
            return frame.model_copy(update={"path": path, "sha256": sha})

        return self.map_inputs(filled)

    def map_inputs(self, change) -> "GenerationRequest":
        """A copy with ``change(keyframe)`` in place of every input (``inputs``' order)."""
        def each(frame: Keyframe | None) -> Keyframe | None:
            return None if frame is None else change(frame)

        return self.model_copy(update={
            "frame0": each(self.frame0), "frame1": each(self.frame1),
            "keyframes": tuple(k.model_copy(update={"frame": each(k.frame)}) for k in self.keyframes),
            "edit": each(self.edit), "reframe": each(self.reframe),
            "refs": tuple(each(ref) for ref in self.refs)})

    def estimated_cost(self, step: str | None = None) -> float:
        """The price table's estimate in USD: of the base generation, or of one step."""
        from reelflow.pricing import audio_cost, generation_cost, image_cost, ray32_cost, upscale_cost
        from reelflow.spec import AGENTS_API, output_size

        if self.kind == "image":
            return image_cost(self.model, len(self.refs))
        seconds = self.seconds
        if self.api == AGENTS_API:
            return ray32_cost(self.price_kind, self.resolution, seconds, hdr=self.hdr, exr=self.exr)
        if step == "audio":
            return audio_cost(seconds)
        if step == "upscale":
            return upscale_cost(*output_size(self.upscale, self.aspect_ratio), seconds)
        width, height = output_size(self.resolution, self.aspect_ratio)
        return generation_cost(self.model, width, height, seconds)

    def total_cost(self) -> float:
        """Base generation plus every step."""
        return round(self.estimated_cost() + sum(self.estimated_cost(s) for s in self.steps()), 2)

    def api_kwargs(self, image_urls: dict[str, str] | None = None) -> dict[str, Any]:
        """Dream Machine API: keyword arguments for ``client.generations.video.create``
        (``take`` is ours only). The Agents API's request is built by its provider
        (``reelflow.tasks._agents``)."""
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
        keyframes = {name: frame.api((image_urls or {}).get(name))
                     for name in ("frame0", "frame1") if (frame := getattr(self, name)) is not None}
        if keyframes:
            kwargs["keyframes"] = keyframes
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
    exr_sha256: str | None = Field(default=None, description=(
        "ray-3.2 with exr: the stored EXR export (ZIP of EXR frames, store suffix .zip)."))

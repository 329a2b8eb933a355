"""The one way reelflow runs ffmpeg, the encode settings every piece shares, and the disk cache.

Everything that touches pixels goes through :func:`_run_ffmpeg`; Python only builds
command lines (with ffmpeg-python where it helps) and keeps track of cached files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reelflow import defaults as builtin
from reelflow._binaries import ffmpeg_exe
from reelflow.config import encode_memory_mb
from reelflow.errors import FfmpegError

from reelflow.tasks._scratch import run_dir
from reelflow.tasks._verify import check, write_record
from reelflow.tasks.models import canonical_hash

__all__ = [
    "RECIPE_VERSION",
    "PREVIEW_CRF_OFFSET",
    "PREVIEW_PRESET",
    "OutputFormat",
    "atomic_output",
    "encode_estimate_mb",
    "encode_slot",
    "cache_output",
    "cached_file",
    "cached_or_made",
    "content_key",
    "x264_output_args",
]

logger = logging.getLogger("reelflow.tasks.media")

#: Bump when the encode recipe changes (filters, x264 options), so old cache entries miss.
RECIPE_VERSION = 2

#: How many bytes of ffmpeg's stderr an FfmpegError keeps.
_STDERR_TAIL = 4000

#: What a preview encodes with: ultrafast has no b-frames, no CABAC and a cheap search;
#: every preview piece still shares one SPS/PPS, so they concat by copy like finals.
PREVIEW_PRESET = "ultrafast"
PREVIEW_CRF_OFFSET = 8

_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium",
                 "slow", "slower", "veryslow", "placebo")


class OutputFormat(BaseModel):
    """The delivery format every piece is encoded to (size, rate, x264 quality)."""

    model_config = ConfigDict(frozen=True)

    width: int = Field(gt=0, le=8192, description="Output width in pixels (even).")
    height: int = Field(gt=0, le=8192, description="Output height in pixels (even).")
    fps: int = Field(gt=0, le=240, description="Output frames per second.")
    crf: int = Field(default=20, ge=0, le=51, description="x264 constant rate factor.")
    preset: str = Field(default="veryfast", description="x264 preset.")
    fit: Literal["cover", "contain", "blur"] = Field(
        default=builtin.OUTPUT["fit"], description="How a clip of another aspect fills the frame: crop, "
        "pad with black, or over a blurred copy of itself.")
    quality: Literal["final", "preview"] = Field(
        default="final", description="preview: x264 ultrafast at crf + 8 (no b-frames, "
        "no CABAC), several times faster, for drafts; cached apart from final.")

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in _X264_PRESETS:
            raise ValueError(f"preset {value!r} is not an x264 preset: {', '.join(_X264_PRESETS)}")
        return value

    @model_validator(mode="after")
    def _even_size(self) -> OutputFormat:
        # yuv420p halves chroma in both directions, so odd sizes cannot be encoded.
        if self.width % 2 or self.height % 2:
            raise ValueError(f"size {self.width}x{self.height} must be even in both directions")
        return self

    @property
    def gop(self) -> int:
        """Frames per closed GOP: half a second, the granularity pieces can be cut at."""
        return max(1, self.fps // 2)

    @property
    def timescale(self) -> int:
        """The mp4 track timescale forced on every piece (12288 at 24 fps), so joins agree."""
        return self.fps * 512

    @property
    def encode_preset(self) -> str:
        """The x264 preset pieces are encoded with (``ultrafast`` for previews)."""
        return PREVIEW_PRESET if self.quality == "preview" else self.preset

    @property
    def encode_crf(self) -> int:
        """The x264 crf pieces are encoded with (``crf + 8`` for previews, at most 51)."""
        return min(51, self.crf + PREVIEW_CRF_OFFSET) if self.quality == "preview" else self.crf

    def key(self) -> str:
        """Return a short stable hash of everything that decides the encoded bytes."""
        dump = self.model_dump()
        if self.quality == "final":
            # Keys from before ``quality`` existed stay valid: final is what they were.
            del dump["quality"]
        return content_key({"fmt": dump, "recipe": RECIPE_VERSION})[:12]


def content_key(value: Any) -> str:
    """Hash a JSON-able value (sorted keys) into a 64-bit hex key for cache file names."""
    return canonical_hash(value, ascii_only=True, default=str)[:16]


def x264_output_args(fmt: OutputFormat) -> dict[str, Any]:
    """Return ffmpeg-python output kwargs shared by every video piece we encode.

    Every piece gets the same preset/crf/profile and closed GOPs of exactly ``fmt.gop``
    frames with an IDR at each GOP start, so all pieces share one SPS/PPS and any GOP
    boundary can be cut by stream copy. One timescale for every mp4 keeps joins exact.

    The IDRs come from x264 itself (keyint = min-keyint = gop, no scene cuts, no open
    GOPs). ffmpeg's ``-force_key_frames`` is not used: with it, x264's output changed
    from run to run (measured), and the cache depends on identical bytes.
    """
    gop = fmt.gop
    return {
        "c:v": "libx264",
        "preset": fmt.encode_preset,
        "crf": fmt.encode_crf,
        "profile:v": "high",
        "pix_fmt": "yuv420p",
        "g": gop,
        "keyint_min": gop,
        "sc_threshold": 0,
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0",
        "video_track_timescale": fmt.timescale,
        **bitexact_args(),
    }


#: An x264 encode's resident memory, MB: a base plus bytes per pixel of the frame (measured
#: with ffmpeg's default threads: 128 MB at 540p, 173 at 720p, 304 at 1080p).
_ENCODE_BASE_MB, _ENCODE_BYTES_PER_PIXEL = 80, 105
_encoding = threading.Condition()
_encoding_mb = [0]


def encode_estimate_mb(fmt: OutputFormat) -> int:
    """What one x264 encode at ``fmt``'s size holds, by the measured rule above."""
    return round(_ENCODE_BASE_MB + _ENCODE_BYTES_PER_PIXEL * fmt.width * fmt.height / 1e6)


@contextlib.contextmanager
def encode_slot(fmt: OutputFormat) -> Iterator[None]:
    """Hold a share of the encode memory budget (:func:`reelflow.config.encode_memory_mb`)
    while an x264 encode runs: every thread of the process (the flow's conform tasks, the
    assembly's seams) waits until its encode fits beside the running ones; one encode
    always may run. The process tree stays bounded whatever the shot count or task runner.
    """
    need = encode_estimate_mb(fmt)
    with _encoding:
        _encoding.wait_for(lambda: _encoding_mb[0] == 0
                           or _encoding_mb[0] + need <= encode_memory_mb())
        _encoding_mb[0] += need
    try:
        yield
    finally:
        with _encoding:
            _encoding_mb[0] -= need
            _encoding.notify_all()


def bitexact_args() -> dict[str, Any]:
    """Output kwargs that keep time- and version-dependent bytes out of our files."""
    return {"fflags": "+bitexact", "flags:v": "+bitexact", "flags:a": "+bitexact",
            "map_metadata": -1}


def _run_ffmpeg(args: Sequence[str]) -> None:
    """Run ffmpeg with ``args``; raise FfmpegError with the argv and stderr tail on failure.

    Args:
        args: everything after the binary, e.g. from ``ffmpeg.compile(stream)[1:]``.
    """
    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", *map(str, args)]
    logger.debug("ffmpeg: %s", shlex.join(argv))
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace")[-_STDERR_TAIL:]
        raise FfmpegError(argv, proc.returncode, tail)


def run_stream(stream: Any) -> None:
    """Compile an ffmpeg-python output node and run it through :func:`_run_ffmpeg`."""
    _run_ffmpeg(stream.overwrite_output().get_args())


@contextlib.contextmanager
def atomic_output(final: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``final``; on success move it into place with os.replace.

    Readers never see a half-written file, and two workers making the same file both
    succeed (the last replace wins with identical bytes).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    # Only a unique name, not mkstemp's 0600 file: ffmpeg creates it with the usual mode.
    tmp = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:12]}{suffix or final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


#: What a cache entry is, by its folder under the cache root (for messages).
_KINDS = {"conform": "conformed clip", "pieces": "seam", "cards": "title card",
          "final": "finished sequence", "deliver": "deliverable", "thumbs": "thumbnail",
          "compare": "comparison grid", "loudness": "loudness measurement",
          "audio": "audio track", "tiles": "contact-sheet tile"}


@contextlib.contextmanager
def cache_output(final: Path, cache_dir: Path, *,
                 info: Callable[[Path], dict[str, Any]] | None = None) -> Iterator[Path]:
    """Yield a temp path for a cache entry; on success record it and move it onto ``final``.

    The temp file lives in this run's folder under ``cache_dir`` (swept by a later run
    if this one dies), and the checksum record (``reelflow.tasks._verify``) is written
    before the entry appears, so :func:`cached_file` can check every entry it finds.

    Args:
        final: the entry, ``<cache_dir>/<kind>/<name>``.
        cache_dir: the cache root.
        info: called with the finished temp file; what it returns is kept in the record.
    """
    tmp = run_dir(cache_dir) / f"{uuid.uuid4().hex[:12]}{final.suffix}"
    try:
        yield tmp
        final.parent.mkdir(parents=True, exist_ok=True)
        write_record(final, tmp, info=info(tmp) if info else None)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def cached_or_made(path: Path, cache_dir: Path, make: Callable[[Path], Any]) -> Path:
    """The cache entry at ``path``, checked; made by ``make(temp_path)`` when missing or damaged."""
    if not cached_file(path):
        with cache_output(path, cache_dir) as tmp:
            make(tmp)
    return path


def cached_file(path: Path) -> bool:
    """True when a cache entry exists and holds the bytes recorded when it was written.

    A damaged entry (cut short, bytes changed, no record) is discarded, with a warning
    naming it, so the caller makes it again.
    """
    return check(path, _KINDS.get(path.parent.name, "cache entry"))

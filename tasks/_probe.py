"""Reading media facts with PyAV (the ffmpeg wheel ships no ffprobe)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from pydantic import BaseModel, ConfigDict

__all__ = ["ClipInfo", "count_video_packets", "probe"]


class ClipInfo(BaseModel):
    """What a clip holds: size, rate, exact frame count and its streams."""

    model_config = ConfigDict(frozen=True)

    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    has_audio: bool
    video_codec: str
    audio_codec: str | None = None


def probe(path: str | Path, *, decode: bool = True) -> ClipInfo:
    """Probe ``path``: frames are counted by decoding (exact), or from packets if ``decode=False``.

    Args:
        path: a media file with at least one video stream.
        decode: count decoded frames (exact for any input); ``False`` counts packets,
            which is exact for files reelflow wrote itself and much faster.

    Returns:
        The clip's ClipInfo; ``duration_s`` is ``frames / fps``.

    Raises:
        ValueError: the file has no video stream.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        rate = video.average_rate or video.guessed_rate or video.base_rate or Fraction(0)
        if decode:
            video.thread_type = "AUTO"
            frames = sum(1 for _ in container.decode(video))
        else:
            frames = _count_packets(container, video)
        fps = float(rate)
        return ClipInfo(
            width=video.codec_context.width,
            height=video.codec_context.height,
            fps=fps,
            frames=frames,
            duration_s=frames / fps if fps else 0.0,
            has_audio=audio is not None,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
        )


def count_video_packets(path: str | Path) -> int:
    """Count the video packets of ``path`` without decoding (one per frame in our files)."""
    with av.open(str(path)) as container:
        return _count_packets(container, container.streams.video[0])


def _count_packets(container: av.container.InputContainer, video: av.VideoStream) -> int:
    # Flush packets (size 0) and packets an edit list discards are not frames.
    return sum(1 for p in container.demux(video) if p.size and not p.is_discard)

"""Where the ffmpeg binary comes from: a system ffmpeg on PATH, else imageio-ffmpeg's."""

from __future__ import annotations

import functools
import os
import shutil

__all__ = ["ffmpeg_exe", "font_file"]


@functools.cache
def ffmpeg_exe() -> str:
    """Return the ffmpeg to run: $REELFLOW_FFMPEG, then ffmpeg on PATH, then imageio-ffmpeg's."""
    from reelflow.config import settings

    explicit = settings().ffmpeg
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg  # the wheel ships a static ffmpeg with libx264, aac, xfade, drawtext

    return imageio_ffmpeg.get_ffmpeg_exe()


def font_file(bold: bool = False) -> str:
    """Return the bundled DejaVu font file, so text looks the same on every machine."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return os.path.join(os.path.dirname(__file__), "fonts", name)

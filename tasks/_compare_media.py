"""A side-by-side comparison video: the same sequence from several models, labelled."""

from __future__ import annotations

import tempfile
from pathlib import Path

import ffmpeg

from ._ffmpeg import OutputFormat, atomic_output, bitexact_args, run_stream, x264_output_args
from ._text import draw_text

__all__ = ["make_side_by_side"]


def make_side_by_side(videos: list[Path], labels: list[str], out: Path, *, fmt: OutputFormat) -> Path:
    """Scale each video to ``fmt``'s size, label it (top-left), and stack them left to right.

    The videos must have the same length (the same sequence rendered per model);
    the output is as long as the shortest. Audio is left out: it is a visual comparison.
    """
    if not videos or len(videos) != len(labels):
        raise ValueError("side by side needs one label per video, and at least one video")
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="reelflow-compare-") as tmp:
        panels = []
        for video, label in zip(videos, labels):
            panel = (ffmpeg.input(str(video)).video
                     .filter("scale", fmt.width, fmt.height, force_original_aspect_ratio="decrease")
                     .filter("pad", fmt.width, fmt.height, "(ow-iw)/2", "(oh-ih)/2")
                     .filter("setsar", 1))
            panels.append(draw_text(panel, label, fmt, Path(tmp), position="top-left", box=True,
                                    share=0.06))
        stacked = ffmpeg.filter(panels, "hstack", inputs=len(panels), shortest=1) if len(panels) > 1 \
            else panels[0]
        with atomic_output(out) as part:
            args = {**x264_output_args(fmt), **bitexact_args(), "movflags": "+faststart", "an": None}
            run_stream(ffmpeg.output(stacked, str(part), **args))
    return out

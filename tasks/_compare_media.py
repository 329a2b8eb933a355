"""The comparison grid: the same sequence from several models, one labelled panel each.

Panels fill a grid row by row (2 side by side, 3-4 in 2 x 2, up to 9 in 3 x 3; empty
cells are black). The grid is cached in the media cache by its inputs (the cuts'
content hashes, the labels and the format) and copied into place, so a rerun with
nothing new encodes nothing.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import ffmpeg

from reelflow.tasks._ffmpeg import (OutputFormat, bitexact_args, cache_output, cached_file,
                                    run_stream, x264_output_args)
from reelflow.tasks._text import draw_text
from reelflow.tasks.models import canonical_hash
from reelflow.tasks.store import atomic_write_path, sha256_file

__all__ = ["grid_columns", "make_grid"]


def grid_columns(panels: int) -> int:
    """Columns of a grid of ``panels``: as square as it gets (1, 2, 2, 2, 3, ...)."""
    return max(1, math.ceil(math.sqrt(panels)))


def make_grid(videos: list[Path], labels: list[str], out: Path, *, fmt: OutputFormat,
              cache_dir: Path) -> Path:
    """Scale each video to ``fmt``'s size (one panel), label it top-left, lay the panels out
    in a grid of ``grid_columns`` columns, and write ``out`` (H.264, no audio: a visual
    comparison). The output is as long as the shortest video.
    """
    if not videos or len(videos) != len(labels):
        raise ValueError("a comparison grid needs one label per video, and at least one video")
    key = canonical_hash({"grid": [sha256_file(v) for v in videos], "labels": labels,
                          "fmt": fmt.model_dump(mode="json"), "v": 1})
    cached = Path(cache_dir) / "compare" / f"{key}.mp4"
    if not cached_file(cached):
        _encode(videos, labels, cached, fmt, Path(cache_dir))
    out = Path(out)
    tmp = atomic_write_path(out)
    try:
        shutil.copyfile(cached, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _encode(videos: list[Path], labels: list[str], out: Path, fmt: OutputFormat,
            cache_dir: Path) -> None:
    columns = grid_columns(len(videos))
    with tempfile.TemporaryDirectory(prefix="reelflow-compare-") as tmp:
        panels = []
        for video, label in zip(videos, labels):
            panel = (ffmpeg.input(str(video)).video
                     .filter("scale", fmt.width, fmt.height, force_original_aspect_ratio="decrease")
                     .filter("pad", fmt.width, fmt.height, "(ow-iw)/2", "(oh-ih)/2")
                     .filter("setsar", 1))
            panels.append(draw_text(panel, label, fmt, Path(tmp), position="top-left", box=True,
                                    share=0.05))
        if len(panels) == 1:
            grid = panels[0]
        else:  # xstack sizes the output to the cells it holds: a short last row stays black
            layout = "|".join(f"{(i % columns) * fmt.width}_{(i // columns) * fmt.height}"
                              for i in range(len(panels)))
            grid = ffmpeg.filter(panels, "xstack", inputs=len(panels), layout=layout, fill="black",
                                 shortest=1)
        with cache_output(out, cache_dir) as part:
            args = {**x264_output_args(fmt), **bitexact_args(), "movflags": "+faststart", "an": None}
            run_stream(ffmpeg.output(grid, str(part), **args))

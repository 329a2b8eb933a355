"""Stills and mezzanine files made from a rendered video: poster, contact sheet, ProRes/DNxHR.

Every ffmpeg call goes through ``_ffmpeg._run_ffmpeg`` and every file is written
atomically (``atomic_output``). Image outputs use the image2 muxer with ``update=1`` so
the file name is taken literally (no ``%d`` pattern), whatever characters it holds.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections import Counter
from pathlib import Path

import ffmpeg
from pydantic import BaseModel, ConfigDict, Field

from reelflow._binaries import font_file

from reelflow.tasks import _ffmpeg
from reelflow.tasks._ffmpeg import atomic_output, cached_or_made, content_key, run_stream
from reelflow.tasks._pieces import TimelineItem, slots_for
from reelflow.tasks._probe import probe
from reelflow.tasks._verify import sha256_file

__all__ = ["MEZZANINE_CODECS", "SheetEntry", "edit_sheet_entries", "export_mezzanine",
           "frame_key", "frame_time", "make_contact_sheet", "make_poster"]

logger = logging.getLogger("reelflow.tasks.deliver")

#: Where the default poster frame sits, as a fraction of the video's length: past an
#: opening title or fade-in, and away from the last shot.
POSTER_POSITION = 1 / 3

#: The mezzanine codecs editors take, as ffmpeg video output options.
MEZZANINE_CODECS: dict[str, list[str]] = {
    # ProRes 422 HQ (profile 3), 10-bit 4:2:2, tagged as Apple's so NLEs trust it.
    "prores": ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le",
               "-vendor", "apl0"],
    # DNxHR HQ, 8-bit 4:2:2 (any resolution, unlike DNxHD's fixed ones).
    "dnxhr": ["-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p"],
}
_CODEC_ALIASES = {"prores_ks": "prores", "dnxhd": "dnxhr"}


class SheetEntry(BaseModel):
    """One cell of a contact sheet: the frame of ``video`` at ``at_s``, captioned ``label``."""

    model_config = ConfigDict(frozen=True)

    label: str = Field(description="Caption drawn under the thumbnail, taken literally.")
    video: Path = Field(description="The video to take the frame from.")
    at_s: float = Field(ge=0, description="Time of the frame in seconds.")
    key: str | None = Field(default=None, description=(
        "What names the frame's pixels whatever else the video holds (see frame_key); "
        "with a tile cache the cell is kept by it. None: the video's hash and the time."))


#: Bump when how a contact-sheet tile is drawn changes.
TILE_RECIPE = 1


def frame_time(frame: int, fps: int) -> float:
    """A seek time that lands on exactly ``frame``: half a frame before it (ffmpeg keeps
    the first frame at or after the time, and no rounding of the time can reach a
    neighbour)."""
    return max(0.0, (frame - 0.5) / fps)


def frame_key(pieces: list[tuple[str, int]], frame: int) -> str:
    """Frame ``frame`` of an assembled video as ``<piece key>@<offset>``: pieces are
    content-addressed and start with an IDR, so the key decides the decoded pixels."""
    start = 0
    for key, frames in pieces:
        if frame < start + frames:
            return f"{key}@{frame - start}"
        start += frames
    raise ValueError(f"frame {frame} is past the end of the video ({start} frames)")


def edit_sheet_entries(video: Path, items: list[TimelineItem], fps: int,
                       pieces: list[tuple[str, int]] | None = None) -> list[SheetEntry]:
    """One contact-sheet cell per item, taken from the finished ``video`` (overlays, fit and
    trims as delivered): the middle frame of the item's span clear of its transitions.
    With the assembly's ``pieces`` each entry is keyed by its frame (:func:`frame_key`)."""
    entries, out_start = [], 0
    for i, (item, slot) in enumerate(zip(items, slots_for(items, fps)), 1):
        frame = out_start + (slot.t_in + slot.frames - slot.t_out) // 2
        entries.append(SheetEntry(label=f"{i}. {item.label}", video=video,
                                  at_s=frame_time(frame, fps),
                                  key=frame_key(pieces, frame) if pieces else None))
        out_start += slot.frames - slot.t_out
    return entries


def make_poster(video: Path, out: Path, *, at_s: float | None = None,
                width: int | None = None) -> Path:
    """Write one frame of ``video`` as a JPEG, full size or scaled to ``width``.

    Args:
        video: the rendered video.
        out: the JPEG to write (atomically).
        at_s: time of the frame; default a third of the way in (``POSTER_POSITION``).
        width: scale to this width (keeping the aspect), e.g. for thumbnails.

    Returns:
        ``out``.

    Raises:
        ValueError: ``at_s`` is not inside the video.
        FfmpegError: ffmpeg could not read the video.
    """
    duration = _duration(video)
    at = duration * POSTER_POSITION if at_s is None else at_s
    _check_time(at, duration, f"poster of {video}")
    stream = ffmpeg.input(str(video), ss=f"{at:.6f}").video
    if width:
        stream = stream.filter("scale", width, -2)
    out = Path(out)
    with atomic_output(out) as tmp:
        run_stream(ffmpeg.output(stream, str(tmp), **{
            "frames:v": 1, "f": "image2", "update": 1, "c:v": "mjpeg", "q:v": 2,
            # mjpeg wants full-range input; ffmpeg converts to it with this.
            "pix_fmt": "yuvj420p", "color_range": "pc"}))
    logger.info("poster of %s at %.3fs -> %s", video, at, out)
    return out


def make_contact_sheet(entries: list[SheetEntry], out: Path, *, columns: int = 4,
                       thumb_width: int = 384, tiles: Path | None = None) -> Path:
    """Write a PNG grid with one captioned frame per entry, in order, row by row.

    Each cell is ``thumb_width`` wide: the frame scaled to fit (letterboxed to the first
    entry's aspect ratio) over a caption band. The sheet has ``min(columns, len(entries))``
    columns and as many rows as needed; empty cells of the last row are black. A label
    too long for its cell is cut with an ellipsis.

    Raises:
        ValueError: no entries, bad ``columns``/``thumb_width``, or a time outside a video.
        FfmpegError: ffmpeg failed.
    """
    if not entries:
        raise ValueError("contact sheet: no entries to draw")
    if columns < 1 or thumb_width < 16:
        raise ValueError(f"contact sheet: columns={columns} must be >= 1 and "
                         f"thumb_width={thumb_width} >= 16")
    layout = _SheetLayout.for_entries(entries, columns, thumb_width)
    if tiles is not None:
        return _sheet_of_tiles(entries, layout, Path(out), Path(tiles))
    for i, entry in enumerate(entries):
        _check_time(entry.at_s, _duration(entry.video),
                    f"contact sheet entry {i + 1} ({entry.label!r}, {entry.video})")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".sheet-") as tmpdir:
        cells = [_label(frame, entry, layout, Path(tmpdir) / f"label{i}.txt")
                 for i, (frame, entry) in enumerate(zip(_frames(entries, layout), entries))]
        sheet = cells[0] if len(cells) == 1 else ffmpeg.filter(
            cells, "xstack", inputs=len(cells), layout=layout.xstack(len(cells)), fill="black")
        with atomic_output(out) as tmp:
            run_stream(ffmpeg.output(sheet, str(tmp), **{
                "frames:v": 1, "f": "image2", "update": 1, "c:v": "png"}))
    logger.info("contact sheet of %d frames (%dx%d cells) -> %s", len(entries),
                layout.columns, layout.rows, out)
    return out


def _sheet_of_tiles(entries: list[SheetEntry], layout: _SheetLayout, out: Path,
                    tiles: Path) -> Path:
    """The sheet put together from one kept PNG per cell (``tiles/<key>.png``, checked on
    read like every cache entry): a rebuild draws only the cells whose frame changed."""
    durations: dict[Path, float] = {}
    paths = []
    for i, entry in enumerate(entries):
        what = entry.key or f"{sha256_file(entry.video)}@{entry.at_s:.6f}"
        name = content_key({"tile": what, "label": layout.fit(entry.label),
                            "layout": layout.model_dump(exclude={"columns", "rows"}), "font": Path(font_file()).name,
                            "recipe": TILE_RECIPE})
        paths.append(cached_or_made(tiles / f"{name}.png", tiles.parent,
                                    lambda tmp, e=entry, i=i: _tile(e, i, layout, tmp, durations)))
    uses, taken, made, cells = Counter(paths), Counter(), {}, []
    for path in paths:  # the same tile twice (identical takes) is one input, split
        if path not in made:
            tile = ffmpeg.input(str(path)).video
            made[path] = tile.filter_multi_output("split", uses[path]) if uses[path] > 1 else tile
        cells.append(made[path][taken[path]] if uses[path] > 1 else made[path])
        taken[path] += 1
    sheet = cells[0] if len(cells) == 1 else ffmpeg.filter(
        cells, "xstack", inputs=len(cells), layout=layout.xstack(len(cells)), fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        run_stream(ffmpeg.output(sheet, str(tmp), **{
            "frames:v": 1, "f": "image2", "update": 1, "c:v": "png"}))
    logger.info("contact sheet of %d kept tiles (%dx%d cells) -> %s", len(entries),
                layout.columns, layout.rows, out)
    return out


def _tile(entry: SheetEntry, i: int, layout: _SheetLayout, tmp: Path,
          durations: dict[Path, float]) -> None:
    if entry.video not in durations:
        durations[entry.video] = _duration(entry.video)
    _check_time(entry.at_s, durations[entry.video],
                f"contact sheet entry {i + 1} ({entry.label!r}, {entry.video})")
    with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".tile-") as tmpdir:
        cell = _label(_frame(entry, layout), entry, layout, Path(tmpdir) / "label.txt")
        run_stream(ffmpeg.output(cell, str(tmp), **{
            "frames:v": 1, "f": "image2", "update": 1, "c:v": "png"}))


class _SheetLayout(BaseModel):
    """Cell geometry of a contact sheet."""

    columns: int
    rows: int
    thumb_w: int
    thumb_h: int
    band: int
    font: int

    @classmethod
    def for_entries(cls, entries: list[SheetEntry], columns: int, thumb_width: int
                    ) -> _SheetLayout:
        width, height = _video_size(entries[0].video)
        cols = min(columns, len(entries))
        band = max(16, 2 * round(thumb_width * 0.04))  # about 8% of the width, even
        return cls(columns=cols, rows=math.ceil(len(entries) / cols), thumb_w=thumb_width,
                   thumb_h=max(2, 2 * round(thumb_width * height / width / 2)), band=band,
                   font=max(8, round(band * 0.6)))

    @property
    def cell_h(self) -> int:
        """Height of one cell: thumbnail plus caption band."""
        return self.thumb_h + self.band

    def xstack(self, count: int) -> str:
        """xstack's layout: cell ``i`` at column ``i % columns``, row ``i // columns``."""
        return "|".join(f"{(i % self.columns) * self.thumb_w}_{(i // self.columns) * self.cell_h}"
                        for i in range(count))

    def fit(self, label: str) -> str:
        """The label on one line, cut to what fits the cell (DejaVu averages ~0.6 em)."""
        text = " ".join(label.split())
        room = max(1, int((self.thumb_w - self.font) / (0.6 * self.font)))
        return text if len(text) <= room else text[:room - 1].rstrip() + "\u2026"


def _frames(entries: list[SheetEntry], layout: _SheetLayout) -> list:
    """One fitted frame per entry. Entries showing the same frame of the same video (takes
    that came out identical) share one decode through ``split``: ffmpeg-python merges
    identical nodes, and a node feeding several filters must be split."""
    keys = [(str(entry.video), f"{entry.at_s:.6f}") for entry in entries]
    uses, taken, made = Counter(keys), Counter(), {}
    frames = []
    for entry, key in zip(entries, keys):
        if key not in made:
            frame = _frame(entry, layout)
            made[key] = frame.filter_multi_output("split", uses[key]) if uses[key] > 1 else frame
        frames.append(made[key][taken[key]] if uses[key] > 1 else made[key])
        taken[key] += 1
    return frames


def _frame(entry: SheetEntry, layout: _SheetLayout):
    """The frame at ``at_s``, fitted and padded to a cell with room for the caption band."""
    w, h = layout.thumb_w, layout.thumb_h
    return (ffmpeg.input(str(entry.video), ss=f"{entry.at_s:.6f}").video
            .trim(end_frame=1).setpts("PTS-STARTPTS")
            .filter("scale", w, h, force_original_aspect_ratio="decrease")
            .filter("format", "rgb24")
            .filter("pad", w, layout.cell_h, "(ow-iw)/2", f"({h}-ih)/2", color="black")
            .filter("setsar", 1))


def _label(video, entry: SheetEntry, layout: _SheetLayout, text_file: Path):
    """The entry's label drawn in the band under its frame."""
    h = layout.thumb_h
    text = layout.fit(entry.label)
    if not text:
        return video
    # Text through a file with expansion=none: %, :, \ and quotes stay literal.
    text_file.write_text(text, encoding="utf-8")
    return video.drawtext(textfile=str(text_file), escape_text=False, expansion="none",
                          fontfile=font_file(), fontsize=layout.font, fontcolor="white",
                          x=layout.font // 2, y=f"{h}+({layout.band}-{layout.font})/2")


def export_mezzanine(video: Path, out: Path, *, codec: str = "prores") -> Path:
    """Re-encode ``video`` for editors: ProRes 422 HQ or DNxHR HQ with PCM audio, in a .mov.

    Every frame is kept as it is (``-fps_mode passthrough``), so the mezzanine has the
    input's frame count. Audio, when the input has any, becomes 24-bit PCM; a video
    without audio gives a video-only file. The container is always QuickTime, whatever
    the suffix of ``out``.

    Args:
        video: the rendered video.
        out: the file to write (atomically), normally ``*.mov``.
        codec: ``prores`` (also ``prores_ks``) or ``dnxhr`` (also ``dnxhd``).

    Returns:
        ``out``.

    Raises:
        ValueError: an unknown codec.
        FfmpegError: ffmpeg failed.
    """
    name = _CODEC_ALIASES.get(codec, codec)
    if name not in MEZZANINE_CODECS:
        raise ValueError(f"mezzanine codec {codec!r} is not one of "
                         f"{', '.join(sorted(MEZZANINE_CODECS))}")
    out = Path(out)
    with atomic_output(out) as tmp:
        _ffmpeg._run_ffmpeg([
            "-i", str(video), "-map", "0:v:0", "-map", "0:a?",
            *MEZZANINE_CODECS[name], "-fps_mode", "passthrough",
            "-c:a", "pcm_s24le", "-f", "mov", "-y", str(tmp)])
    logger.info("mezzanine %s of %s -> %s", name, video, out)
    return out


def _duration(video: Path) -> float:
    """Length of ``video`` in seconds (frames / rate, counting packets)."""
    return probe(video, decode=False).duration_s


def _video_size(video: Path) -> tuple[int, int]:
    info = probe(video, decode=False)
    return info.width, info.height


def _check_time(at_s: float, duration: float, what: str) -> None:
    if not 0 <= at_s < duration:
        raise ValueError(f"{what}: time {at_s:g}s is outside the video (0 to {duration:g}s)")

"""Text on video: the overlay model, the font's glyph coverage, and the one drawtext helper.

Title cards and shot overlays both draw through :func:`draw_text`. Text reaches ffmpeg
through a UTF-8 file with ``expansion=none``, so quotes, colons, backslashes, ``%`` and
braces appear literally. Characters the bundled DejaVu Sans has no glyph for (emoji and
most other astral-plane characters, CJK, ...) are replaced by a visible ``□`` (U+25A1)
and a warning is logged: ffmpeg would otherwise draw an empty box or nothing at all,
silently. An emoji sequence joined by ZWJ or followed by a variation selector or a skin
tone counts as one character and becomes one ``□``.
"""

from __future__ import annotations

import functools
import logging
import re
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reelflow import defaults as builtin
from reelflow._binaries import font_file
from reelflow.spec import TEXT_POSITIONS

from reelflow.tasks._ffmpeg import OutputFormat, content_key

__all__ = ["PLACEHOLDER", "TEXT_POSITIONS", "TEXT_RECIPE", "OverlayWindow", "TextOverlaySpec",
           "draw_overlays", "draw_text", "ffmpeg_colour", "font_covers", "printable_text"]

logger = logging.getLogger("reelflow.tasks.media")

#: Bump when the way text is drawn changes (layout, box, shadow), so cached text misses.
TEXT_RECIPE = 1

#: What stands in for a character the font cannot draw.
PLACEHOLDER = "\u25a1"

_COLOR = re.compile(r"^(#|0x)?([0-9a-fA-F]{6}([0-9a-fA-F]{2})?)$|^[A-Za-z]{3,30}$")
# Invisible joiners/modifiers that belong to the (uncovered) character before them.
_ZWJ = 0x200D
_CLINGERS = re.compile("[\u200d\ufe0e\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]")


class TextOverlaySpec(BaseModel):
    """Text drawn over a shot, e.g. ``{content: "Lisbon, 6am", position: bottom-left}``.

    ``start_s`` / ``end_s`` count from the item's first used frame (after its trim);
    None means from the item's start / to its end. The text sits on a translucent box
    with a soft shadow so it stays legible on any picture.
    """

    model_config = ConfigDict(frozen=True)

    content: str = Field(min_length=1, max_length=500, description="The text, taken literally.")
    position: str = Field(default=builtin.TEXT_POSITION, description="One of TEXT_POSITIONS.")
    size: int | None = Field(default=None, ge=6, le=1000,
                             description="Font size in pixels (default: 6% of the height).")
    colour: str = Field(default=builtin.TEXT_COLOUR, description="#rrggbb[aa] or an ffmpeg colour name.")
    start_s: float | None = Field(default=None, ge=0, description="First second it shows.")
    end_s: float | None = Field(default=None, gt=0, description="Second it disappears.")

    @field_validator("content")
    @classmethod
    def _visible(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text content is blank")
        return value

    @field_validator("position")
    @classmethod
    def _known_position(cls, value: str) -> str:
        if value not in TEXT_POSITIONS:
            raise ValueError(f"position {value!r} is not one of {', '.join(TEXT_POSITIONS)}")
        return value

    @field_validator("colour")
    @classmethod
    def _colour(cls, value: str) -> str:
        ffmpeg_colour(value, what="text colour")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TextOverlaySpec:
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"text end_s {self.end_s} is not after start_s {self.start_s}")
        return self

    def frames(self, length: int, fps: int) -> tuple[int, int]:
        """The window ``[start, end)`` in frames of an item ``length`` frames long (unclamped)."""
        start = 0 if self.start_s is None else round(self.start_s * fps)
        end = length if self.end_s is None else round(self.end_s * fps)
        return start, end


@dataclass(frozen=True)
class OverlayWindow:
    """An overlay drawn on frames ``[start, end)`` of the stream it is applied to."""

    spec: TextOverlaySpec
    start: int
    end: int

    def shifted(self, offset: int, frames: int) -> OverlayWindow | None:
        """This window seen from a stream starting ``offset`` frames in and ``frames`` long.

        Returns None when nothing of it falls inside that stream.
        """
        start, end = max(self.start - offset, 0), min(self.end - offset, frames)
        return OverlayWindow(self.spec, start, end) if start < end else None

    def key(self) -> list:
        """What decides the drawn pixels (the format is keyed by the caller)."""
        return [self.spec.model_dump(), self.start, self.end, Path(font_file()).name,
                TEXT_RECIPE]


def ffmpeg_colour(value: str, what: str = "background") -> str:
    """Check a colour (``#rrggbb[aa]``, ``0xrrggbb[aa]`` or a name); return ffmpeg's spelling."""
    match = _COLOR.match(value.strip())
    if not match:
        raise ValueError(f"{what} {value!r} is not a colour like '#101010' or 'black'")
    return f"0x{match.group(2)}" if match.group(2) else value.strip()


@functools.cache
def _font_codepoints(path: str) -> frozenset[int]:
    """Every code point the TrueType font's Unicode cmap maps to a glyph (formats 4 and 12)."""
    data = Path(path).read_bytes()
    tables = {data[12 + 16 * i:16 + 16 * i]: struct.unpack_from(">I", data, 20 + 16 * i)[0]
              for i in range(struct.unpack_from(">H", data, 4)[0])}
    cmap = tables[b"cmap"]
    points: set[int] = set()
    for i in range(struct.unpack_from(">H", data, cmap + 2)[0]):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * i)
        if (platform, encoding) not in {(0, 3), (0, 4), (3, 1), (3, 10)}:
            continue
        sub = cmap + offset
        fmt = struct.unpack_from(">H", data, sub)[0]
        if fmt == 4:
            points |= _format4(data, sub)
        elif fmt == 12:
            for g in range(struct.unpack_from(">I", data, sub + 12)[0]):
                first, last, _ = struct.unpack_from(">III", data, sub + 16 + 12 * g)
                points.update(range(first, last + 1))
    return frozenset(points)


def _format4(data: bytes, sub: int) -> set[int]:
    """Code points of a cmap format-4 subtable that map to a real glyph (not .notdef)."""
    segs = struct.unpack_from(">H", data, sub + 6)[0] // 2
    ends = struct.unpack_from(f">{segs}H", data, sub + 14)
    starts = struct.unpack_from(f">{segs}H", data, sub + 16 + 2 * segs)
    deltas = struct.unpack_from(f">{segs}h", data, sub + 16 + 4 * segs)
    range_at = sub + 16 + 6 * segs
    offsets = struct.unpack_from(f">{segs}H", data, range_at)
    points = set()
    for s, (first, last, delta, ro) in enumerate(zip(starts, ends, deltas, offsets)):
        for cp in range(first, min(last, 0xFFFE) + 1):
            if ro == 0:
                glyph = (cp + delta) & 0xFFFF
            else:
                at = range_at + 2 * s + ro + 2 * (cp - first)
                glyph = struct.unpack_from(">H", data, at)[0]
                glyph = (glyph + delta) & 0xFFFF if glyph else 0
            if glyph:
                points.add(cp)
    return points


def font_covers(char: str, font: str | None = None) -> bool:
    """True when the font (default: the bundled DejaVu Sans) has a glyph for ``char``."""
    return ord(char) in _font_codepoints(font or font_file())


def printable_text(text: str, font: str | None = None) -> str:
    """``text`` with every character the font lacks replaced by ``□``; logs a warning.

    Newlines are kept (they separate lines), tabs become spaces, other control
    characters are dropped. Joiners, variation selectors and skin-tone modifiers
    after a missing character are swallowed, so one emoji sequence gives one ``□``.
    """
    out: list[str] = []
    missing: list[str] = []
    joined = False  # the previous character was missing and a ZWJ followed it
    for char in text.replace("\r\n", "\n").replace("\t", " "):
        if char == "\n" or (char.isprintable() and font_covers(char, font)):
            out.append(char)
            joined = False
        elif _CLINGERS.match(char):
            joined = joined or (ord(char) == _ZWJ and out[-1:] == [PLACEHOLDER])
        elif unicodedata.category(char) in {"Cc", "Cf"}:
            continue  # a control or format character (bidi mark, ...): nothing to show
        elif char.isspace():
            out.append(" ")  # a space the font lacks (e.g. a thin space): a plain space
        else:
            missing.append(f"U+{ord(char):04X}")
            if not joined:
                out.append(PLACEHOLDER)
            joined = False
    if missing:
        logger.warning("text %r: the font has no glyph for %s; drawn as %s",
                       text[:60], " ".join(dict.fromkeys(missing)), PLACEHOLDER)
    return "".join(out)


def _font_size(lines: list[str], fmt: OutputFormat, share: float) -> int:
    # ``share`` of the height, smaller when the longest line would not fit in 90% of the
    # width (DejaVu Sans glyphs average about 0.6 em).
    longest = max((len(line) for line in lines), default=1) or 1
    return max(8, int(min(fmt.height * share, fmt.width * 0.9 / (0.6 * longest))))


def draw_text(video, text: str, fmt: OutputFormat, tmpdir: Path, *,
              position: str = "center", size: int | None = None, colour: str = "white",
              box: bool = False, enable: str | None = None, share: float = 0.08):
    """Draw ``text`` (any Unicode, taken literally) on an ffmpeg-python video stream.

    Each line is drawn by its own drawtext reading a file in ``tmpdir`` (which must
    outlive the ffmpeg run), aligned as ``position`` says within a 5% margin. A single
    centred line is centred on its ink exactly. Every line gets a soft shadow; ``box``
    adds a translucent black box behind it. ``enable`` is a drawtext timeline
    expression such as ``between(n,0,11)``.
    """
    lines = printable_text(text).strip("\n").split("\n")
    if not any(line.strip() for line in lines):
        return video
    size = size or _font_size(lines, fmt, share)
    border = max(2, round(size * 0.25)) if box else 0
    pad = round(fmt.height * 0.05) + border
    horizontal, vertical = _alignment(position)
    x = {"left": str(pad), "center": "(w-text_w)/2", "right": f"w-text_w-{pad}"}[horizontal]
    common = {"escape_text": False, "expansion": "none", "fontfile": font_file(),
              "fontsize": size, "fontcolor": ffmpeg_colour(colour, what="text colour"),
              "x": x, "shadowcolor": "black@0.6", "shadowx": max(1, size // 24),
              "shadowy": max(1, size // 24)}
    if box:
        common |= {"box": 1, "boxcolor": "black@0.45", "boxborderw": border}
    if enable:
        common["enable"] = enable
    tag = content_key([text, position, len(lines)])[:8]
    if len(lines) == 1:  # one line: place its ink exactly
        y = {"top": str(pad), "center": "(h-text_h)/2", "bottom": f"h-text_h-{pad}"}[vertical]
        return video.drawtext(textfile=str(_text_file(tmpdir, f"{tag}-0", lines[0])), y=y,
                              **common)
    # several lines: baselines a fixed 1.25 em apart, the block placed as a whole
    # (its visible height is about (n-1) steps plus 0.7 em; ascent ~0.8 em)
    step = round(size * 1.25)
    block = step * (len(lines) - 1) + 0.7 * size
    top = {"top": pad, "center": (fmt.height - block) / 2,
           "bottom": fmt.height - pad - block}[vertical]
    for i, line in enumerate(lines):
        if line.strip():
            video = video.drawtext(textfile=str(_text_file(tmpdir, f"{tag}-{i}", line)),
                                   y=f"{round(top + i * step)}-max_glyph_a+{round(0.8 * size)}",
                                   **common)
    return video


def draw_overlays(video, windows: tuple[OverlayWindow, ...] | list[OverlayWindow], frames: int,
                  fmt: OutputFormat, tmpdir: Path):
    """Draw each overlay on its frames of a stream that holds ``frames`` frames from n=0."""
    for window in windows:
        spec = window.spec
        whole = window.start <= 0 and window.end >= frames
        video = draw_text(
            video, spec.content, fmt, tmpdir, position=spec.position, size=spec.size,
            colour=spec.colour, box=True, share=0.06,
            enable=None if whole else f"between(n,{window.start},{window.end - 1})")
    return video


def _alignment(position: str) -> tuple[str, str]:
    """``"top-left"`` -> ``("left", "top")``; ``"top"`` -> ``("center", "top")``."""
    vertical, _, horizontal = position.partition("-")
    return horizontal or "center", vertical


def _text_file(tmpdir: Path, name: str, line: str) -> Path:
    path = Path(tmpdir) / f"text-{name}.txt"
    path.write_text(line, encoding="utf-8")
    return path

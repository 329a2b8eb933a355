"""Keyframe images read without decoding them whole: format and size from the header, and
an integrity check whose memory does not grow with the image.

Private to the shot-list checks (``_shotlist_checks.image_problem``). A 746 kB PNG can
hold 16000x16000 pixels (768 MB decoded), so nothing here decodes an image at full size:

* PNG: the IHDR chunk gives the size; every chunk's CRC is checked, IEND must come, and
  the IDAT stream is inflated in 1 MiB pieces (output discarded) to exactly the byte
  count the header implies — a truncated or corrupt file fails, memory stays flat.
* JPEG: the SOFn marker gives the size; an end-of-image marker must follow the first
  scan (entropy-coded data cannot hold one, so a cut-off file has none; data appended
  after it, as in phones' motion photos, is fine), and a baseline image is decoded at
  1/8 scale (libavcodec's ``lowres``) with decoder errors fatal. A progressive image
  above ``DECODE_MAX_PIXELS`` is not decoded (its decoder keeps every coefficient).
* WebP: the VP8 / VP8L / VP8X header gives the size; the RIFF size must match the
  file, and images up to ``DECODE_MAX_PIXELS`` are decoded with errors fatal.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DECODE_MAX_PIXELS", "ImageDamaged", "ImageInfo", "check_intact", "read_header"]

_log = logging.getLogger("reelflow.flows.shotlist")

#: Above this many pixels an image is checked by structure, not decoded (a decoded
#: 16 MP frame is at most 64 MB of RGBA).
DECODE_MAX_PIXELS = 16_000_000
_PIECE = 1 << 20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}      # colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))                           # (x0, y0, dx, dy) of the 7 interlace passes
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}


class ImageDamaged(Exception):
    """The file claims to be a ``kind`` image but is truncated or corrupt; ``reason`` says how."""

    def __init__(self, kind: str, reason: str):
        self.kind, self.reason = kind, reason
        super().__init__(f"{kind}: {reason}")


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: ``kind`` (PNG, JPEG, WebP) and the size in pixels."""

    kind: str
    width: int
    height: int
    progressive: bool = False
    png_ihdr: bytes = b""
    jpeg_scan: int = 0          # offset of a JPEG's first scan data


def read_header(path: Path) -> ImageInfo | None:
    """The image's format and size from its first bytes; None when it is not a PNG, JPEG
    or WebP file. Raises ImageDamaged when the signature is right but the header is not."""
    with open(path, "rb") as fh:
        head = fh.read(32)
        if head.startswith(_PNG_SIGNATURE):
            return _png_header(head)
        if head.startswith(b"\xff\xd8\xff"):
            return _jpeg_header(fh)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_header(head)
    return None


def check_intact(path: Path, info: ImageInfo) -> None:
    """Raise ImageDamaged when the image is truncated or corrupt (see the module doc)."""
    if info.kind == "PNG":
        _png_intact(path, info)
    elif info.kind == "WebP":
        _webp_intact(path, info)
    else:
        _jpeg_ends(path, info.jpeg_scan)
        if not info.progressive or info.width * info.height <= DECODE_MAX_PIXELS:
            _decode_reduced(path, "JPEG", lowres=3)


# --------------------------------------------------------------------------- PNG
def _png_header(head: bytes) -> ImageInfo:
    if len(head) < 29:
        raise ImageDamaged("PNG", "it ends inside its header (truncated)")
    length, kind = struct.unpack(">I4s", head[8:16])
    if length != 13 or kind != b"IHDR":
        raise ImageDamaged("PNG", "its header (IHDR) is missing")
    ihdr = head[16:29]
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    if width == 0 or height == 0 or colour not in _PNG_CHANNELS or interlace > 1 \
            or depth not in (1, 2, 4, 8, 16):
        raise ImageDamaged("PNG", "its header (IHDR) is invalid")
    return ImageInfo("PNG", width, height, png_ihdr=ihdr)


def _png_raw_bytes(ihdr: bytes) -> int:
    """Bytes the IDAT stream must inflate to: each (sub-)image row, plus its filter byte."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    bits = depth * _PNG_CHANNELS[colour]

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w and h else 0

    if not interlace:
        return rows(width, height)
    return sum(rows(max(0, (width - x0 + dx - 1) // dx), max(0, (height - y0 + dy - 1) // dy))
               for x0, y0, dx, dy in _ADAM7)


def _png_intact(path: Path, info: ImageInfo) -> None:
    expected = _png_raw_bytes(info.png_ihdr)
    inflater, inflated = zlib.decompressobj(), 0
    with open(path, "rb") as fh:
        fh.seek(len(_PNG_SIGNATURE))
        while True:
            header = fh.read(8)
            if len(header) < 8:
                raise ImageDamaged("PNG", "it ends before its IEND chunk (truncated)")
            length, kind = struct.unpack(">I4s", header)
            crc, left = zlib.crc32(kind), length
            while left:
                piece = fh.read(min(left, _PIECE))
                if not piece:
                    raise ImageDamaged("PNG", f"its {kind.decode('latin-1')!r} chunk is cut off "
                                       "(truncated)")
                left -= len(piece)
                crc = zlib.crc32(piece, crc)
                if kind == b"IDAT":
                    inflated += _inflate(inflater, piece, expected - inflated)
            stored = fh.read(4)
            if len(stored) < 4 or struct.unpack(">I", stored)[0] != crc:
                raise ImageDamaged("PNG", f"its {kind.decode('latin-1')!r} chunk fails its checksum "
                                   "(corrupt or truncated)")
            if kind == b"IEND":
                break
    if inflated != expected or not inflater.eof:
        raise ImageDamaged("PNG", f"its pixel data is incomplete ({inflated} of {expected} bytes)")


def _inflate(inflater, data: bytes, room: int) -> int:
    """Inflate ``data`` in pieces of at most 1 MiB, discarding them; the byte count."""
    total = 0
    try:
        while data and not inflater.eof:
            total += len(inflater.decompress(data, _PIECE))
            data = inflater.unconsumed_tail
            if total > room:
                raise ImageDamaged("PNG", "its pixel data is larger than its header says")
    except zlib.error as exc:
        raise ImageDamaged("PNG", f"its pixel data is corrupt ({exc})") from None
    return total


# --------------------------------------------------------------------------- JPEG
def _jpeg_header(fh) -> ImageInfo:
    """Walk the marker segments (seeking past their bodies) to the frame header, then on to
    the first scan."""
    fh.seek(2)
    frame: tuple[int, int, bool] | None = None
    while True:
        marker = _jpeg_marker(fh)
        if marker in (0x01, *range(0xD0, 0xD8)):            # no length field
            continue
        if marker in (0xD9, None) or (marker == 0xDA and frame is None):
            raise ImageDamaged("JPEG", "it has no frame header (SOF) and image data (truncated?)")
        length = fh.read(2)
        if len(length) < 2:
            raise ImageDamaged("JPEG", "it ends inside its header (truncated)")
        size = struct.unpack(">H", length)[0]
        if marker == 0xDA:
            width, height, progressive = frame
            return ImageInfo("JPEG", width, height, progressive=progressive,
                             jpeg_scan=fh.tell() + size - 2)
        if marker in _JPEG_SOF:
            data = fh.read(5)
            if len(data) < 5:
                raise ImageDamaged("JPEG", "it ends inside its frame header (truncated)")
            _, height, width = struct.unpack(">BHH", data)
            if not width or not height:
                raise ImageDamaged("JPEG", "its frame header gives no size")
            frame = (width, height, marker in _JPEG_PROGRESSIVE)
            size -= 5
        fh.seek(size - 2, 1)


def _jpeg_marker(fh) -> int | None:
    """The next marker code (after 0xFF and any fill bytes), or None at the end."""
    byte = fh.read(1)
    while byte and byte != b"\xff":
        byte = fh.read(1)
    while byte == b"\xff":
        byte = fh.read(1)
    return byte[0] if byte else None


def _jpeg_ends(path: Path, scan: int) -> None:
    """An end-of-image marker must follow the first scan (a cut-off file has none)."""
    with open(path, "rb") as fh:
        fh.seek(scan)
        last = b""
        while piece := fh.read(_PIECE):
            if b"\xff\xd9" in last[-1:] + piece:
                return
            last = piece
    raise ImageDamaged("JPEG", "it has no end-of-image marker after its image data (truncated)")


# --------------------------------------------------------------------------- WebP
def _webp_header(head: bytes) -> ImageInfo:
    kind, data = head[12:16], head[20:32]
    if len(data) < 10:
        raise ImageDamaged("WebP", "it ends inside its header (truncated)")
    if kind == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[6:10])
        return ImageInfo("WebP", width & 0x3FFF, height & 0x3FFF)
    if kind == b"VP8L" and data[:1] == b"\x2f":
        bits = struct.unpack("<I", data[1:5])[0]
        return ImageInfo("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X":
        return ImageInfo("WebP", int.from_bytes(data[4:7], "little") + 1,
                         int.from_bytes(data[7:10], "little") + 1)
    raise ImageDamaged("WebP", "its header (VP8, VP8L or VP8X) is missing or invalid")


def _webp_intact(path: Path, info: ImageInfo) -> None:
    with open(path, "rb") as fh:
        riff_size = struct.unpack("<I", fh.read(8)[4:])[0]
        file_size = fh.seek(0, 2)
    if file_size < riff_size + 8:
        raise ImageDamaged("WebP", f"it is {file_size} bytes but says {riff_size + 8} (truncated)")
    if info.width * info.height <= DECODE_MAX_PIXELS:
        _decode_reduced(path, "WebP")


# --------------------------------------------------------------------------- decoding
def _decode_reduced(path: Path, kind: str, lowres: int = 0) -> None:
    """Decode the first frame with every decoder error fatal (``lowres``: 1/2**n scale)."""
    import av  # here, not at import: the CLI refuses a bad list without loading codecs

    options = {"err_detect": "explode"} | ({"lowres": str(lowres)} if lowres else {})
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.options = options
            frame = next(container.decode(stream))
            if frame.width < 1 or frame.height < 1:
                raise ValueError("empty frame")
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "unusable image"
        _log.debug("decoding %s failed: %s", path, exc)
        raise ImageDamaged(kind, "the decoder stops with an error (truncated or corrupt)") from None

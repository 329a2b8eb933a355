"""Serving asset files over HTTP: whole or by Range, optionally truncated or corrupted."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["CORRUPT_AT", "CORRUPT_LEN", "DropConnection", "send_file"]

_CHUNK = 1 << 16
#: Where a corrupted download has its bytes flipped: inside the moov box, which
#: +faststart puts right after ftyp, so the file no longer parses as an MP4.
CORRUPT_AT, CORRUPT_LEN = 48, 512


class DropConnection(Exception):
    """Close the connection without (the rest of) an answer: an injected fault."""


def send_file(handler: Any, path: Any, content_type: str, *, head: bool,
              fault: str | None = None) -> None:
    """Send a file whole or one ``Range: bytes=a-b`` of it.

    ``fault``: "truncate" sends half the body under the full Content-Length, then
    closes the connection; "corrupt" flips the bytes of the moov box region.
    """
    with open(path, "rb") as fh:  # FileNotFoundError: the caller answers 404
        size = fh.seek(0, 2)
        start, end = 0, size - 1
        ranged = re.match(r"^bytes=(\d*)-(\d*)$", handler.headers.get("Range") or "")
        if ranged and (ranged[1] or ranged[2]):
            if ranged[1]:
                start, end = int(ranged[1]), min(int(ranged[2] or end), end)
            else:  # suffix range: the last N bytes
                start = max(0, size - int(ranged[2]))
            if start > end:
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{size}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
        handler.send_response(206 if ranged and (ranged[1] or ranged[2]) else 200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(end - start + 1))
        if ranged and (ranged[1] or ranged[2]):
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        handler.end_headers()
        if head:
            return
        fh.seek(start)
        if fault == "truncate":
            _copy_range(fh, handler.wfile, (end - start + 1) // 2)
            handler.wfile.flush()
            raise DropConnection()
        if fault == "corrupt":
            data = bytearray(fh.read(end - start + 1))
            for offset in range(max(start, CORRUPT_AT), min(end + 1, CORRUPT_AT + CORRUPT_LEN)):
                data[offset - start] ^= 0xFF
            handler.wfile.write(bytes(data))
            return
        _copy_range(fh, handler.wfile, end - start + 1)


def _copy_range(src: Any, dst: Any, length: int) -> None:
    """Copy ``length`` bytes in chunks (shutil.copyfileobj has no length limit)."""
    remaining = length
    while remaining > 0:
        chunk = src.read(min(_CHUNK, remaining))
        if not chunk:
            break
        dst.write(chunk)
        remaining -= len(chunk)


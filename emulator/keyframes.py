"""Keyframe inputs: fetch image URLs like Luma's servers do, and cut frames out of clips.

An image keyframe is fetched over HTTP(S) right after the create, in the background
(timeout, size limit, PNG/JPEG/WebP only), and stored under ``inputs/<sha256>.<ext>`` in
the account, so the lazy render, an upscale or a restart use the same bytes even after
a presigned URL has expired or a loopback server has stopped. A generation
keyframe becomes one still frame of the referenced clip: its last frame to extend it
forward, its first frame to lead into it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import threading
from pathlib import Path

import httpx

from reelflow._binaries import ffmpeg_exe
from reelflow.spec import MAX_IMAGE_BYTES

__all__ = ["FETCH_TIMEOUT", "MAX_IMAGE_BYTES", "InputUnavailable", "extract_frame", "fetch_tls",
           "fetch_image", "sniff_image"]

log = logging.getLogger("reelflow.emulator.keyframes")

#: Seconds to connect and between bytes when fetching a keyframe image.
FETCH_TIMEOUT = 10.0
# Larger images than reelflow.spec.MAX_IMAGE_BYTES are refused (Luma documents tens of MB;
# 20 MB keeps tests honest), the bound the shot-list checks apply too.


class InputUnavailable(Exception):
    """A keyframe could not be read; the message says why (for the log, not the API)."""


def sniff_image(data: bytes) -> str | None:
    """The extension of PNG/JPEG/WebP data from its magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def fetch_tls(trust_ca: str | Path | None) -> "ssl.SSLContext | bool":
    """What an input fetch verifies https with: the default trust store, plus ``trust_ca``
    (a PEM file) when given: the emulator told to trust a private CA, e.g. a test's
    loopback HTTPS server with a self-signed certificate."""
    if trust_ca is None:
        return True
    import ssl

    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(trust_ca))
    return context


def fetch_image(url: str, inputs_dir: Path) -> str:
    """GET ``url`` and store it by content; return the stored file's name.

    Raises InputUnavailable on a network error, a non-200 answer, more than
    MAX_IMAGE_BYTES, or data that is not a PNG, JPEG or WebP image.
    """
    chunks, size = [], 0
    try:
        with httpx.stream("GET", url, timeout=FETCH_TIMEOUT, follow_redirects=True) as response:
            if response.status_code != 200:
                raise InputUnavailable(f"{url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_IMAGE_BYTES:
                    raise InputUnavailable(f"{url}: larger than {MAX_IMAGE_BYTES} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as err:
        raise InputUnavailable(f"{url}: {type(err).__name__}: {err}") from None
    data = b"".join(chunks)
    ext = sniff_image(data)
    if ext is None:
        raise InputUnavailable(f"{url}: not a PNG, JPEG or WebP image")
    name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
    _write_once(inputs_dir / name, data)
    log.info("fetched keyframe %s (%d bytes) as %s", url, size, name)
    return name


def _write_once(path: Path, data: bytes) -> None:
    """Content-addressed: an existing file already holds these bytes."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def extract_frame(clip: Path, which: str, dest: Path) -> None:
    """Write the ``first`` or ``last`` frame of ``clip`` to ``dest`` (PNG), atomically."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.png")
    argv = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if which == "last":
        # Seek near the end, then keep overwriting one image: the last decoded frame wins.
        argv += ["-sseof", "-0.5", "-i", str(clip), "-update", "1"]
    else:
        argv += ["-i", str(clip), "-frames:v", "1"]
    argv += ["-map_metadata", "-1", "-flags", "+bitexact", "-f", "image2", str(tmp)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise InputUnavailable(f"cannot read the {which} frame of {clip.name}: "
                               f"{proc.stderr[-500:]}")
    os.replace(tmp, dest)

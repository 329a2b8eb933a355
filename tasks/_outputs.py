"""What a paid step's finished output becomes: a verified file in the store, read back checked.

The seam (``_generate``) is the same for every output; an ``Output`` says how one kind
is fetched and verified (``fetch``: URL -> stored result) and read back from the store
(``stored``). ``VIDEO`` is a clip (decodes, whole); ``STILL`` a uni-1 still (a PNG that
decodes). A short, corrupt or undecodable file never enters the store: it is fetched
again, and after the last attempt the step fails with ``DownloadError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

from reelflow.errors import DownloadError
from reelflow.tasks._ledger import LedgerEntry
from reelflow.tasks.models import Clip
from reelflow.tasks.store import ClipStore

__all__ = ["EXR_SUFFIX", "STILL", "VIDEO", "Output", "Still", "download", "download_exr",
           "download_still"]


class Still(BaseModel):
    """A generated still (uni-1) in the clip store."""

    sha256: str
    path: Path
    width: int
    height: int
    generation_id: str | None = None
    paid: bool = Field(default=False, description="True when this run made the paid create call.")
    cost_usd: float = 0.0


def _redact(url: str) -> str:
    """Drop the query string: presigned URLs carry credentials."""
    return url.split("?", 1)[0]


def _fetch(url: str, store: ClipStore, suffix: str, verify: Callable[[Path], Any],
           attempts: int = 6) -> tuple[str, Any]:
    """Stream ``url`` into the store under its hash once ``verify(staging)`` accepts it;
    returns (sha256, what verify returned)."""
    last_error: Exception | None = None
    for attempt in range(attempts):
        staging = store.staging_path(suffix)
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(60, connect=5),
                              follow_redirects=True) as response:
                response.raise_for_status()
                expected = int(response.headers.get("content-length") or 0)
                with open(staging, "wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
            size = staging.stat().st_size
            if size == 0 or (expected and size != expected):
                raise DownloadError(f"cut short: {size} of {expected} bytes")
            info = verify(staging)
            return store.put_file(staging, suffix=suffix), info
        except Exception as exc:  # any failure: the partial file never enters the store
            last_error = exc
            staging.unlink(missing_ok=True)
            time.sleep(0.2 * 2 ** attempt)
    raise DownloadError(f"could not download {_redact(url)}: {last_error}") from None


def download(url: str, store: ClipStore, *, attempts: int = 6) -> Clip:
    """Stream the video into the store, verify size and that it decodes, return the Clip."""
    from reelflow.tasks._probe import probe  # PyAV import only where media is touched

    sha, info = _fetch(url, store, ".mp4", probe, attempts)
    return Clip(sha256=sha, path=store.path_for(sha), width=info.width, height=info.height,
                fps=info.fps, frames=info.frames, has_audio=info.has_audio)


#: The store's suffix of an EXR export (a ZIP of OpenEXR frames).
EXR_SUFFIX = ".zip"
_EXR_MAGIC = b"\x76\x2f\x31\x01"


def _exr_frames(path: Path) -> int:
    """How many OpenEXR frames a ZIP export holds; ValueError when one is not EXR."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
        if not names:
            raise ValueError("the EXR export is empty")
        for name in names:
            with archive.open(name) as member:
                if member.read(4) != _EXR_MAGIC:
                    raise ValueError(f"{name} is not an OpenEXR file")
        if archive.testzip() is not None:
            raise ValueError("the EXR export's ZIP is damaged")
    return len(names)


def download_exr(url: str, store: ClipStore, frames: int, *, attempts: int = 6) -> str:
    """Stream an EXR export into the store once it holds ``frames`` EXR frames; its hash."""
    def verify(path: Path) -> int:
        count = _exr_frames(path)
        if count != frames:
            raise ValueError(f"the EXR export has {count} frames, the clip {frames}")
        return count

    return _fetch(url, store, EXR_SUFFIX, verify, attempts)[0]


def _stored_clip(store: ClipStore, entry: LedgerEntry) -> Clip:
    from reelflow.tasks._probe import probe

    path = store.path_for(entry.sha256)
    info = probe(path, decode=False)
    return Clip(sha256=entry.sha256, path=path, width=info.width, height=info.height, fps=info.fps,
                frames=info.frames, has_audio=info.has_audio, generation_id=entry.generation_id)


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG that decodes; ValueError otherwise."""
    import av

    if path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def download_still(url: str, store: ClipStore, *, attempts: int = 6) -> Still:
    """Stream a still into the store (a PNG that decodes) and return it."""
    sha, (width, height) = _fetch(url, store, ".png", _png_size, attempts)
    return Still(sha256=sha, path=store.path_for(sha, ".png"), width=width, height=height)


def _stored_still(store: ClipStore, entry: LedgerEntry) -> Still:
    path = store.path_for(entry.sha256, ".png")
    width, height = _png_size(path)
    return Still(sha256=entry.sha256, path=path, width=width, height=height,
                 generation_id=entry.generation_id)


@dataclass(frozen=True)
class Output:
    """How one kind of paid output is fetched into the store and read back from it."""

    name: str
    suffix: str
    fetch: Callable[[str, ClipStore], Any]
    stored: Callable[[ClipStore, LedgerEntry], Any]


VIDEO = Output("clip", ".mp4", download, _stored_clip)
STILL = Output("still", ".png", download_still, _stored_still)

"""ImageRefs of the Agents API made into local files: url, data, generation_id, file_id.

Resolved at create time, as the service ingests its inputs before it queues a job: a
URL is fetched (PNG/JPEG/WebP images; MP4/MOV for a video source), ``data`` is base64
decoded, ``generation_id`` names a completed generation of this account (its image, or
its video: the last frame to extend from a start frame, the first frame to lead into an
end frame, the clip itself as an edit/reframe source), ``file_id`` a Files API file in
state ``ready``. Bytes are stored by content under ``inputs/<sha256>.<ext>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Callable

import httpx

from reelflow.emulator.keyframes import FETCH_TIMEOUT, MAX_IMAGE_BYTES, extract_frame, sniff_image

__all__ = ["InputProblem", "MAX_VIDEO_BYTES", "Resolver", "sniff"]

#: Largest video source accepted (the service takes up to 18-30 s clips).
MAX_VIDEO_BYTES = 200 * 1024 * 1024


class InputProblem(Exception):
    """An input that cannot be used: ``code`` is the failure_code, or None for a 400."""

    def __init__(self, code: str | None, message: str):
        self.code, self.message = code, message
        super().__init__(message)


def sniff(data: bytes) -> str | None:
    """png/jpg/webp for images, mp4 for an ISO-BMFF video (ftyp box), else None."""
    ext = sniff_image(data)
    if ext is None and len(data) >= 12 and data[4:8] == b"ftyp":
        return "mp4"
    return ext


def _store(inputs: Path, data: bytes, where: str, *, video_ok: bool) -> Path:
    ext = sniff(data)
    if ext is None:
        raise InputProblem("unsupported_format", f"{where}: not a PNG, JPEG, WebP or MP4")
    if ext == "mp4" and not video_ok:
        raise InputProblem("unsupported_format", f"{where}: a video where an image is needed")
    if ext != "mp4" and len(data) > MAX_IMAGE_BYTES:
        raise InputProblem("image_too_large", f"{where}: larger than {MAX_IMAGE_BYTES} bytes")
    path = inputs / f"{hashlib.sha256(data).hexdigest()}.{ext}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def _fetch(url: str, where: str, verify: Any = True) -> bytes:
    chunks, size = [], 0
    try:
        with httpx.stream("GET", url, timeout=FETCH_TIMEOUT, follow_redirects=True,
                          verify=verify) as response:
            if response.status_code != 200:
                raise InputProblem("corrupt_input", f"{where}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_VIDEO_BYTES:
                    raise InputProblem("image_too_large", f"{where}: too large")
                chunks.append(chunk)
    except httpx.HTTPError as err:
        raise InputProblem("corrupt_input", f"{where}: {type(err).__name__}") from None
    return b"".join(chunks)


class Resolver:
    """Turns the refs of one request into local files, using the account's lookups.

    ``generation_output(id)`` returns the local output path of a completed generation
    (raise InputProblem when missing or not completed); ``file_blob(id)`` the bytes path of
    a ready file (raise InputProblem otherwise); ``verify`` is how a URL's https is
    checked (``keyframes.fetch_tls``).
    """

    def __init__(self, inputs: Path, generation_output: Callable[[str, str], Path],
                 file_blob: Callable[[str, str], Path], verify: Any = True):
        self.inputs, self.verify = inputs, verify
        self._generation_output = generation_output
        self._file_blob = file_blob

    def resolve(self, where: str, ref: dict[str, Any]) -> Path:
        """The local file of one ref at ``where`` (``source``, ``video.start_frame``...)."""
        video_ok = where == "source"
        if ref.get("url"):
            return _store(self.inputs, _fetch(ref["url"], where, self.verify), where,
                          video_ok=video_ok)
        if ref.get("data"):
            try:
                data = base64.b64decode(ref["data"], validate=True)
            except (binascii.Error, ValueError):
                raise InputProblem("corrupt_input", f"{where}.data: not valid base64") from None
            return _store(self.inputs, data, where, video_ok=video_ok)
        if ref.get("file_id"):
            path = self._file_blob(ref["file_id"], where)
            if path.suffix == ".mp4" and not video_ok:
                raise InputProblem(None, f"{where}.file_id: a video where an image is needed")
            return path
        path = self._generation_output(ref["generation_id"], where)
        if path.suffix != ".mp4" or video_ok:
            return path
        which = "first" if where == "video.end_frame" else "last"
        dest = self.inputs / f"{path.stem}-{which}.png"
        extract_frame(path, which, dest)
        return dest

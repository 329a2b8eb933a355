"""An optional, content-keyed store of the emulator's clips and stills, shared by processes.

The emulator's renders are deterministic (bit-exact ffmpeg, pinned x264 threads), so the
same request, inputs and render code always give the same bytes. When
``REELFLOW_EMULATOR_CLIP_CACHE`` names a folder, a render looks there first and copies a
verified hit instead of running ffmpeg again; a miss renders as usual and keeps a copy.
The test suite sets it (hundreds of identical 5 s clips across fresh emulators); a user's
emulator leaves it unset and renders every clip.

An entry is ``<key>/`` holding the files and ``manifest.json`` (name, size, SHA-256 of each),
written last by ``os.replace``: an entry without a manifest, or whose files do not match
it, is a miss (rendered again and rewritten), never copied out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ENV", "memo"]

ENV = "REELFLOW_EMULATOR_CLIP_CACHE"
_HERE = Path(__file__).resolve().parent
#: The code whose output is cached: a change to any of it is a new key.
_CODE = ("clips.py", "agents_clips.py", "spec.py", "agents_spec.py", "keyframes.py")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _code_version() -> str:
    digest = hashlib.sha256()
    for name in _CODE:
        path = _HERE / name
        if path.exists():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _key(what: Any, inputs: Iterable[Path], outputs: Sequence[Path]) -> str:
    parts = {"what": what, "inputs": [_sha256(Path(p)) for p in inputs],
             "outputs": [Path(p).suffix for p in outputs], "code": _code_version()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _verified(entry: Path, count: int) -> list[Path] | None:
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    files = [entry / item["name"] for item in manifest]
    if len(files) != count:
        return None
    for path, item in zip(files, manifest):
        try:
            if path.stat().st_size != item["size"] or _sha256(path) != item["sha256"]:
                return None
        except OSError:
            return None
    return files


def _copy_into(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cache-", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _keep(root: Path, key: str, outputs: Sequence[Path]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=root))
    try:
        manifest = []
        for index, path in enumerate(outputs):
            name = f"{index}{path.suffix}"
            shutil.copyfile(path, staging / name)
            manifest.append({"name": name, "size": (staging / name).stat().st_size,
                             "sha256": _sha256(staging / name)})
        (staging / "manifest.json").write_text(json.dumps(manifest))
        entry = root / key
        shutil.rmtree(entry, ignore_errors=True)  # a damaged entry is replaced whole
        try:
            os.replace(staging, entry)
        except OSError:  # another process kept the same entry first: theirs is as good
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def memo(what: Any, inputs: Iterable[Path], outputs: Sequence[Path],
         make: Callable[[], None]) -> bool:
    """Make ``outputs`` (in order) by ``make()``, or copy them from the cache; True on a hit.

    ``what`` is the JSON-able description of the render (request, size, frames, ...);
    ``inputs`` are the files it reads, keyed by content.
    """
    folder = os.environ.get(ENV)
    if not folder:
        make()
        return False
    root = Path(folder)
    key = _key(what, list(inputs), outputs)
    hit = _verified(root / key, len(outputs))
    if hit is not None:
        try:
            for source, target in zip(hit, outputs):
                _copy_into(source, Path(target))
            return True
        except OSError:  # the entry went away meanwhile: render as if it never was
            pass
    make()
    try:
        _keep(root, key, outputs)
    except OSError:  # a full or read-only cache folder never fails a render
        pass
    return False

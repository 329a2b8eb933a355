"""The content-addressed clip store: media files named by their SHA-256.

Local directory for now (REELFLOW_HOME/clips by default); Prefect results stay
tiny records that point here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from reelflow.config import reelflow_home

__all__ = ["ClipStore", "atomic_write_path", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_path(target: Path, suffix: str = "") -> Path:
    """Return a fresh temp path beside ``target``, to be ``os.replace``d onto it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix,
                                dir=target.parent)
    os.close(fd)
    return Path(name)


class ClipStore(BaseModel):
    """A local, content-addressed store of clips.

    Example:
        ```python
        store = ClipStore.default()
        sha = store.put_file(Path("clip.mp4"))
        assert store.path_for(sha).exists()
        ```
    """

    root: Path = Field(description="Directory that holds the clips.")

    @classmethod
    def default(cls) -> "ClipStore":
        """The store under REELFLOW_HOME."""
        return cls(root=reelflow_home() / "clips")

    def _resolve_path(self, sha256: str, suffix: str = ".mp4") -> Path:
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def path_for(self, sha256: str) -> Path:
        """Where the clip with this hash lives (whether or not it is there)."""
        return self._resolve_path(sha256)

    def has(self, sha256: str) -> bool:
        """True when the clip is in the store."""
        return self._resolve_path(sha256).is_file()

    def staging_path(self, suffix: str = ".mp4") -> Path:
        """A temp file inside the store, on the same filesystem, for downloads."""
        return atomic_write_path(self.root / "tmp" / f"incoming{suffix}")

    def put_file(self, path: Path) -> str:
        """Move ``path`` into the store under its hash (atomically) and return the hash."""
        sha = sha256_file(path)
        target = self._resolve_path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file():
            path.unlink()
        else:
            os.replace(path, target)
        return sha

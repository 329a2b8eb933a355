"""Small file helpers shared by the account and its renderer."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["NotFound", "stem", "write_json"]


class NotFound(Exception):
    """No generation (or asset) with that id."""


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: a unique temp file in the same directory, then os.replace."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def stem(gen_id: str, rev: int) -> str:
    """The asset file stem of a revision: the id, or ``<id>-r<N>`` after an upscale/audio."""
    return gen_id if rev == 0 else f"{gen_id}-r{rev}"

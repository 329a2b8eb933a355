"""Configuration that comes from the environment, in one place.

Built-in defaults are named constants here, as httpx keeps its own in ``_config``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_ENCODE_MEMORY_MB",
    "PREFECT_DEFAULTS",
    "apply_prefect_defaults",
    "encode_memory_mb",
    "reelflow_home",
    "s3_mirror_root",
]

#: How many shots generate at once; the Luma API allows about 10 in progress per account.
DEFAULT_CONCURRENCY = 10

#: What the x264 encodes running at once may hold together (MB, estimated from the frame
#: size: about 300 MB each at 1080p, 180 at 720p, 130 at 540p, measured). One always runs.
DEFAULT_ENCODE_MEMORY_MB = 400

#: Prefect settings reelflow applies unless the user set them: the default ephemeral
#: start-up timeout (20 s) fails on a fresh PREFECT_HOME on small machines, and the
#: telemetry heartbeat logs "database is locked" against SQLite.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def reelflow_home() -> Path:
    """Return REELFLOW_HOME, by default the per-user cache dir (``~/.cache/reelflow``)."""
    explicit = os.environ.get("REELFLOW_HOME")
    if explicit:
        return Path(explicit).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache, "reelflow").resolve()


def encode_memory_mb() -> int:
    """REELFLOW_ENCODE_MEMORY_MB, else DEFAULT_ENCODE_MEMORY_MB: the budget of :func:`reelflow
    .tasks._ffmpeg.encode_slot` (a bad value is the default)."""
    try:
        return max(1, int(os.environ.get("REELFLOW_ENCODE_MEMORY_MB", "")))
    except ValueError:
        return DEFAULT_ENCODE_MEMORY_MB


def s3_mirror_root() -> Path:
    """Where shot lists from S3 are mirrored: ``REELFLOW_HOME/production/s3/<bucket>/<prefix>``.

    A list under it came from S3 and is untrusted: it may name only files in its own folder.
    """
    return reelflow_home() / "production" / "s3"


def apply_prefect_defaults(environ: dict[str, str] | None = None) -> None:
    """Set PREFECT_DEFAULTS in the environment where the user has not set them."""
    env = os.environ if environ is None else environ
    for name, value in PREFECT_DEFAULTS.items():
        env.setdefault(name, value)

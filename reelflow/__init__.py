"""reelflow: a shot list in, a finished, edited video out, on Prefect.

The public names are imported lazily: `import reelflow` stays cheap, and the
CLI can validate a shot list before Prefect is loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AnswerLost",
    "BudgetExceeded",
    "ClipStore",
    "CredentialsMissing",
    "DownloadError",
    "FfmpegError",
    "GenerationFailed",
    "LedgerConflict",
    "LumaCredentials",
    "ModerationRefused",
    "NothingSent",
    "ReelflowError",
    "SendingElsewhere",
    "ShotList",
    "ShotListError",
    "StoreNotConfigured",
    "StoreUnavailable",
    "TimelineError",
    "WriteConflict",
    "load_shotlist",
    "render_sequence",
]

_WHERE = {
    "AnswerLost": "reelflow.errors",
    "BudgetExceeded": "reelflow.errors",
    "ClipStore": "reelflow.tasks.store",
    "CredentialsMissing": "reelflow.errors",
    "DownloadError": "reelflow.errors",
    "FfmpegError": "reelflow.errors",
    "GenerationFailed": "reelflow.errors",
    "LedgerConflict": "reelflow.errors",
    "LumaCredentials": "reelflow.tasks.luma",
    "ModerationRefused": "reelflow.errors",
    "NothingSent": "reelflow.errors",
    "ReelflowError": "reelflow.errors",
    "SendingElsewhere": "reelflow.errors",
    "ShotList": "reelflow.flows.shotlist",
    "ShotListError": "reelflow.errors",
    "StoreNotConfigured": "reelflow.errors",
    "StoreUnavailable": "reelflow.errors",
    "TimelineError": "reelflow.errors",
    "WriteConflict": "reelflow.errors",
    "load_shotlist": "reelflow.flows.shotlist",
    "render_sequence": "reelflow.flows.render",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'reelflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

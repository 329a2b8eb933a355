"""reelflow's exceptions, one tree.

    ReelflowError
    ├── ShotListError          bad input, before any spend (exit 2): .problems, one line each
    │   └── BudgetExceeded     the plan would pay more than the budget: .cost_usd, .budget_usd
    ├── GenerationFailed       a generation ended failed: .shot_id, .generation_id, .failure_reason
    │   ├── ModerationRefused  the API refused the prompt or image (resubmitting won't help)
    │   ├── AnswerLost         a create's answer was lost where the API cannot be asked
    │   └── NothingSent        the create is known not to have been made: nothing to adopt
    ├── CredentialsMissing     the list needs an API whose key is not set
    ├── StoreNotConfigured     a store that is not set up: no credentials, refused, bad bucket name
    ├── StoreUnavailable       the S3 store cannot be reached, or its server failed
    ├── WriteConflict          a conditional S3 write lost: the object changed since it was read
    │   └── LedgerConflict     a ledger record changed since it was read: read it, follow it
    │       └── SendingElsewhere  another machine is sending this request's create now: .since
    ├── DownloadError          a finished clip could not be fetched or failed verification
    ├── TimelineError          a timeline that cannot be cut: .problems (also a ValueError)
    └── FfmpegError            an ffmpeg call failed: .argv, .stderr_tail

Every exception raised on purpose is one of these. Two private ones never leave the
module that raises them: ``flows/_shotlist_read._Refused`` and
``flows/_image_header.ImageDamaged`` are caught there and become ``ShotListError``
lines (tests/test_exports.py checks that no other exception class is defined).
The CLI prints these by message only; exit 2 for ``ShotListError``,
``CredentialsMissing`` and ``StoreNotConfigured``, exit 1 for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AnswerLost",
    "BudgetExceeded",
    "CredentialsMissing",
    "DownloadError",
    "FfmpegError",
    "GenerationFailed",
    "LedgerConflict",
    "ModerationRefused",
    "NothingSent",
    "ReelflowError",
    "SendingElsewhere",
    "ShotListError",
    "StoreNotConfigured",
    "StoreUnavailable",
    "TimelineError",
    "WriteConflict",
]


class ReelflowError(Exception):
    """Base class of every error reelflow raises on purpose."""


class ShotListError(ReelflowError):
    """A shot list failed validation; ``problems`` holds one line per problem.

    Each line reads ``file: shot N (id): field: problem`` (or ``file: field: problem``
    for problems outside a shot).
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class BudgetExceeded(ShotListError):
    """The plan would pay more than the budget allows; refused before any spend (exit 2)."""

    def __init__(self, line: str, *, cost_usd: float, budget_usd: float):
        self.cost_usd = cost_usd
        self.budget_usd = budget_usd
        super().__init__([line])


class GenerationFailed(ReelflowError):
    """A generation finished in the ``failed`` state."""

    def __init__(self, message: str, *, shot_id: str | None = None,
                 generation_id: str | None = None, failure_reason: str | None = None,
                 failure_code: str | None = None):
        self.shot_id = shot_id
        self.generation_id = generation_id
        self.failure_reason = failure_reason
        #: The Agents API's machine-readable failure_code (None on the Dream Machine API).
        self.failure_code = failure_code
        super().__init__(message)


class ModerationRefused(GenerationFailed):
    """The API refused the request on moderation grounds; the same request fails again."""


class AnswerLost(GenerationFailed):
    """A create was sent but its answer never came, and the API cannot be asked whether it
    was made (the Agents API has no list route): nothing is sent again until the user
    adopts the generation or accepts paying again (``reelflow resolve``)."""


class NothingSent(GenerationFailed):
    """The create is known not to have been made (refused, or never sent): nothing to adopt."""


class CredentialsMissing(ReelflowError):
    """The shot list needs a Luma API whose key is not set (the other API's key is)."""


class StoreNotConfigured(ReelflowError):
    """A feature needs a clip store (for example S3) that is not configured."""


class StoreUnavailable(ReelflowError):
    """The S3 store did not answer (unreachable endpoint, server error): try again later."""


class WriteConflict(ReelflowError):
    """A conditional write lost: the object changed (or appeared) since it was read."""


class LedgerConflict(WriteConflict):
    """Another machine changed the ledger record since it was read: read it again and follow it."""


class SendingElsewhere(LedgerConflict):
    """Another machine recorded that it is sending this request right now (since ``since``)."""

    def __init__(self, since: str):
        super().__init__(f"sending elsewhere since {since}")
        self.since = since


class DownloadError(ReelflowError):
    """A clip could not be downloaded whole, or did not verify."""


class TimelineError(ReelflowError, ValueError):
    """A timeline that cannot be rendered; ``problems`` holds each reason.

    Each problem (``reelflow.tasks._timeline.TimelineProblem``) has the ``index`` of its
    span and a ``message`` without the span's name; ``names[index]`` is that name.
    """

    def __init__(self, problems: Sequence[Any], names: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{names[p.index]}: {p.message}" for p in self.problems))


class FfmpegError(ReelflowError):
    """An ffmpeg command failed; carries the argv and the end of its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr_tail: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        super().__init__(f"ffmpeg exited {returncode}: {stderr_tail.strip()[-800:]}")

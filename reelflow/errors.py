"""reelflow's exceptions, one tree.

    ReelflowError
    ├── ShotListError          bad shot list: .problems, one line each
    ├── GenerationFailed       a generation ended failed: .shot_id, .generation_id, .failure_reason
    │   ├── ModerationRefused  the API refused the prompt or image (resubmitting won't help)
    │   └── AnswerLost         a create's answer was lost where the API cannot be asked
    ├── CredentialsMissing     the list needs an API whose key is not set
    ├── StoreNotConfigured     a store that is not set up: no credentials, refused, bad bucket name
    ├── StoreUnavailable       the S3 store cannot be reached, or its server failed
    ├── DownloadError          a finished clip could not be fetched or failed verification
    ├── TimelineError          a timeline that cannot be cut: .problems (also a ValueError)
    └── FfmpegError            an ffmpeg call failed: .argv, .stderr_tail
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AnswerLost",
    "CredentialsMissing",
    "DownloadError",
    "FfmpegError",
    "GenerationFailed",
    "ModerationRefused",
    "ReelflowError",
    "ShotListError",
    "StoreNotConfigured",
    "StoreUnavailable",
    "TimelineError",
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


class CredentialsMissing(ReelflowError):
    """The shot list needs a Luma API whose key is not set (the other API's key is)."""


class StoreNotConfigured(ReelflowError):
    """A feature needs a clip store (for example S3) that is not configured."""


class StoreUnavailable(ReelflowError):
    """The S3 store did not answer (unreachable endpoint, server error): try again later."""


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

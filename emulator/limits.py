"""The account limits the real API enforces: credits, concurrency, creates per minute."""

from __future__ import annotations

import math
from typing import Callable

from reelflow.emulator.faults import Faults

__all__ = ["InsufficientCredits", "LimitExceeded", "check_limits"]

#: The creates-per-minute window, seconds.
WINDOW = 60.0


class LimitExceeded(Exception):
    """An account limit refused a create: answer 429 with ``retry_after`` seconds."""

    def __init__(self, detail: str, retry_after: int):
        self.detail, self.retry_after = detail, retry_after
        super().__init__(detail)


class InsufficientCredits(Exception):
    """The balance does not cover a create's cost (answered 402)."""


def check_limits(limits: Faults | None, balance: float, recent: list[float], cost: float,
                 now: float, in_progress: Callable[[], list[float]]) -> None:
    """Raise InsufficientCredits or LimitExceeded as the real account would.

    ``recent``: times of the accepted creates of the last WINDOW seconds;
    ``in_progress()``: seconds left for each queued/dreaming generation (called only
    when a concurrency limit is set: it reads every record).
    """
    if limits is None:
        return
    if limits.enforce_credits and balance < cost:
        raise InsufficientCredits(f"Insufficient credits: this generation costs {cost:.2f} "
                                  f"credits, the balance is {balance:.2f}")
    if limits.max_concurrent is not None:
        remaining = in_progress()
        if len(remaining) >= limits.max_concurrent:
            raise LimitExceeded(
                f"Too many concurrent generations: {len(remaining)} in progress, the limit "
                f"is {limits.max_concurrent}", max(1, math.ceil(min(remaining))))
    if limits.creates_per_minute is not None and len(recent) >= limits.creates_per_minute:
        raise LimitExceeded(
            f"Rate limit exceeded: {limits.creates_per_minute} generations per minute",
            max(1, math.ceil(min(recent) + WINDOW - now)))

"""A paid call, as the generation seam sees it: how it is prepared, sent and found again.

Each provider builds its own (``_dream_machine``: a new generation found again by its
exact request, an in-place step by the generation itself; ``_agents``: a lost answer is
the user's to resolve); ``_generate._paid_step`` decides when to send, recover or wait.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["PaidCall"]


@dataclass(frozen=True)
class PaidCall:
    """How one paid step is sent, and found again after a run died while sending it.

    ``prepare()`` reads what must be known before the send (an in-place step's current
    video URL; None for a new generation), which is recorded with the send's time.
    ``send(prior)`` creates once and returns the id (``create_once``). ``recover(since,
    prior)`` is the id of the generation a send interrupted by a crash made, or None.
    Sends sharing a ``one_at_a_time`` key (takes of one request: identical payloads) go
    out one after another from this machine; across machines the ledger's claims keep
    them apart. ``find_lost()`` is the id of the generation made for this request when
    its ledger record is unreadable (any time back), or None when it made none; a step
    without one (in-place steps: the account cannot tell) is never sent again then.
    """

    send: Callable[[str | None], str]
    recover: Callable[[datetime, str | None], str | None]
    prepare: Callable[[], str | None] = lambda: None
    one_at_a_time: str | None = None
    find_lost: Callable[[], str | None] | None = None

"""Shot states as a render changes them, told to listeners in the same process.

`reelflow render` runs the flow in its own process, so the places that log a shot's state
change also call :func:`shot_state` (and the flow :func:`stage`), and the CLI's live view
listens with :func:`listening`. Where nothing listens (a worker, a deployment, a test)
a call costs one empty-list check. A listener that raises is logged and forgotten about:
a view never breaks a render.

States, in the order a shot usually goes through them: ``cached`` (its clip was paid
for before), ``queued`` (sent, waiting at Luma), ``dreaming``, ``downloading``,
``conforming`` (encoding to the output format), ``done``, or ``failed``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["STATES", "ShotState", "Stage", "listening", "shot_state", "stage"]

STATES: tuple[str, ...] = ("cached", "queued", "dreaming", "downloading", "conforming", "done",
                           "failed")

_log = logging.getLogger("reelflow.progress")
_listeners: list[Callable[[ShotState | Stage], None]] = []
_lock = threading.Lock()


@dataclass(frozen=True)
class ShotState:
    """Shot ``shot`` is now in ``state``; ``paid_usd`` is money this change committed (a
    create or step sent), ``detail`` a short reason (why it failed)."""

    shot: str
    state: str
    paid_usd: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class Stage:
    """The render as a whole moved on: ``generating``, ``assembling``, ``delivering``."""

    name: str
    detail: str = ""


@contextlib.contextmanager
def listening(listener: Callable[[ShotState | Stage], None]) -> Iterator[None]:
    """Call ``listener`` with every state change in this process while the block runs."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def shot_state(shot: str, state: str, *, paid_usd: float = 0.0, detail: str = "") -> None:
    """Tell listeners that ``shot`` is now in ``state`` (one of STATES)."""
    if _listeners:
        _tell(ShotState(shot=shot, state=state, paid_usd=paid_usd, detail=detail))


def stage(name: str, detail: str = "") -> None:
    """Tell listeners the render reached ``name``."""
    if _listeners:
        _tell(Stage(name=name, detail=detail))


def _tell(event: ShotState | Stage) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # noqa: BLE001 - a view must never break a render
            _log.debug("progress listener failed on %s", event, exc_info=True)

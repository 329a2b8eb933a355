"""The encode memory budget: x264 encodes at once are bounded by their estimated memory."""

from __future__ import annotations

import threading
import time

import pytest

from reelflow.tasks._ffmpeg import OutputFormat, encode_estimate_mb, encode_slot

HD = OutputFormat(width=1920, height=1080, fps=24)
SMALL = OutputFormat(width=960, height=540, fps=24)


def _most_at_once(fmt: OutputFormat, threads: int = 4) -> int:
    running, most, lock = [0], [0], threading.Lock()

    def encode():
        with encode_slot(fmt):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.3)  # long enough for every thread to be waiting
            with lock:
                running[0] -= 1

    workers = [threading.Thread(target=encode) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    return most[0]


def test_estimates_follow_the_frame_size():
    assert encode_estimate_mb(HD) == pytest.approx(300, abs=10)
    assert encode_estimate_mb(SMALL) == pytest.approx(130, abs=10)


@pytest.mark.parametrize(("budget", "fmt", "expected"), [
    ("400", HD, 1),        # one 1080p encode at a time under the default budget
    ("100", HD, 1),        # one always runs, even over the budget
    ("400", SMALL, 2),     # two 540p encodes fit 400 MB, three do not
    ("10000", SMALL, 4),
])
def test_encodes_at_once_fit_the_budget(budget, fmt, expected, monkeypatch):
    monkeypatch.setenv("REELFLOW_ENCODE_MEMORY_MB", budget)
    assert _most_at_once(fmt) == expected

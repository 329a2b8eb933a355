"""The Prefect UI, checked in a real browser: scripts/screenshots.py end to end.

Opt-in: ``pytest -m browser`` (the default ``addopts`` deselects the ``browser`` marker).
Needs Chromium (``apt-get install -y chromium``) and takes about a minute: a real
``prefect server``, a standalone emulator that refuses one prompt, two real renders (one
failing on that shot, one completing with a placeholder), four headless screenshots.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "screenshots.py"


def _pixels(path: Path) -> np.ndarray:
    """The PNG as an (h, w, 3) uint8 array, decoded by PyAV."""
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _coloured_fraction(rgb: np.ndarray) -> float:
    """Share of strongly coloured pixels: the UI chrome is grey, state bars and thumbnails are not."""
    spread = rgb.max(axis=2).astype(int) - rgb.min(axis=2).astype(int)
    return float((spread > 60).mean())


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("screens")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LUMAAI_"))}
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [str(out / name) for name in PAGES]
    return out


PAGES = ["flow-run.png", "summary-artifact.png", "flow-run-completed.png", "summary-completed.png"]


@pytest.mark.parametrize("name", PAGES)
def test_screenshot_is_a_rendered_page(screenshots, name):
    rgb = _pixels(screenshots / name)
    height, width, _ = rgb.shape
    assert width >= 1000 and height >= 600
    _, counts = np.unique(rgb.reshape(-1, 3), axis=0, return_counts=True)
    # A blank or loading page is one background colour; a loaded one has text, bars, images.
    assert counts.max() / counts.sum() < 0.8
    assert len(counts) > 500


def _green_and_red(name: str, screenshots: Path) -> tuple[float, float]:
    rgb = _pixels(screenshots / name).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return float(((g > r + 40) & (g > b + 40)).mean()), float(((r > g + 60) & (r > b + 60)).mean())


def test_failed_run_page_shows_the_failure_beside_completed_task_runs(screenshots):
    # Completed task runs are green bars in the run graph; the failed refusal and the
    # run's "Failed" badge are red.
    green, red = _green_and_red("flow-run.png", screenshots)
    assert green > 0.005 and red > 0.0005


def test_completed_run_page_shows_completed_task_runs(screenshots):
    green, _ = _green_and_red("flow-run-completed.png", screenshots)
    assert green > 0.01


@pytest.mark.parametrize("name", ["summary-artifact.png", "summary-completed.png"])
def test_summary_artifact_shows_thumbnails(screenshots, name):
    # The markdown table's data-URI thumbnails are the only strongly coloured area of the page.
    assert _coloured_fraction(_pixels(screenshots / name)) > 0.005

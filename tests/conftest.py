"""Shared fixtures: one Prefect test harness and one emulator per session, isolated env."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import TEST_KEY
from tests.s3_server import s3_credentials, s3_server  # noqa: F401  (real S3: SeaweedFS)

# Prefect reads its settings at import: isolate them before anything imports it.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="reelflow-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(_SESSION_DIR / "prefect-results")
os.environ["REELFLOW_HOME"] = str(_SESSION_DIR / "home")
# No reelflow-managed Prefect server unless a test asks for one (tests/test_server.py):
# the rest pass the harness's URL, or run ephemeral as a user who opted out would.
os.environ["REELFLOW_PREFECT"] = "ephemeral"
# The emulator's renders are deterministic: one cache of them for the whole run, shared by
# pytest-xdist's workers (same testrunuid) and every emulator they start (emulator/clip_cache).
# The controller sets it before it starts the workers, which inherit it; who made it removes it.
_OWN_CLIP_CACHE = "REELFLOW_EMULATOR_CLIP_CACHE" not in os.environ
_CLIP_CACHE = Path(os.environ.setdefault(
    "REELFLOW_EMULATOR_CLIP_CACHE", str(_SESSION_DIR.with_name(_SESSION_DIR.name + "-renders"))))
for _name in list(os.environ):
    if _name.startswith(("LUMAAI_", "LUMA_", "AWS_")):
        del os.environ[_name]



def pytest_sessionfinish(session):
    """The process that made the run's render cache (xdist's controller) removes it."""
    if _OWN_CLIP_CACHE:
        shutil.rmtree(_CLIP_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    yield _SESSION_DIR
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_api(session_dir) -> str:
    """One Prefect test harness per session; returns its API URL for child processes."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def emulator(session_dir):
    """A zero-latency emulator on loopback, shared by the session."""
    from reelflow.emulator import Emulator

    emu = Emulator(session_dir / "emulator", latency=0.0)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A fresh REELFLOW_HOME (ledger, clip store, media cache) for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("REELFLOW_HOME", str(path))
    return path


@pytest.fixture()
def luma_env(emulator, monkeypatch):
    """Point the real SDK at the emulator the way a user points it at the API."""
    monkeypatch.setenv("LUMAAI_API_KEY", TEST_KEY)
    monkeypatch.setenv("LUMAAI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("LUMA_AGENTS_API_KEY", TEST_KEY)      # the Agents API (ray-3.2)
    monkeypatch.setenv("LUMA_BASE_URL", emulator.agents_base_url)
    return emulator

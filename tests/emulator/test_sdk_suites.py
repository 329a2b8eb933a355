"""The SDKs' own generated test suites pass against the emulator, sync and async.

``tests/api_resources`` of the lumaai 1.21.0 and luma-agents 0.5.0 sdists (Stainless
generated, Apache-2.0) run in a pytest subprocess with ``TEST_API_BASE_URL`` pointing at
an emulator in conformance mode (the suites are written for a schema-level mock server:
they ask for made-up ids and send every optional field at once; see
emulator/conformance.py). The sdists are fetched with ``pip download`` (PyPI is reachable
in CI) rather than vendored, so the suites are exactly the released ones and the
repository carries no generated copy to drift. The suites' own test dependencies
(pytest-asyncio; aiohttp and httpx-aiohttp for the ``[aiohttp]`` client variant) are
installed into a temporary target when the environment lacks them.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reelflow.emulator import Emulator

#: (distribution, version, API path under the emulator, tests the suite holds)
SUITES = [("lumaai", "1.21.0", "", 275), ("luma-agents", "0.5.0", "/v1", 140)]
#: The suites' test dependencies: (module, what to install when it is missing).
SUITE_DEPS = [("pytest_asyncio", "pytest-asyncio==1.2.0"), ("aiohttp", "aiohttp"),
              ("httpx_aiohttp", "httpx-aiohttp==0.1.12"), ("multidict", "multidict"),
              ("yarl", "yarl"), ("frozenlist", "frozenlist"), ("aiosignal", "aiosignal"),
              ("propcache", "propcache"), ("aiohappyeyeballs", "aiohappyeyeballs")]


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check",
                           "-q", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def suite_site(tmp_path_factory) -> str:
    """A directory for PYTHONPATH holding the suite dependencies this venv lacks."""
    site = tmp_path_factory.mktemp("sdk-suite-site")
    missing = [dist for module, dist in SUITE_DEPS if importlib.util.find_spec(module) is None]
    if missing:
        _pip("install", "--no-deps", "--target", str(site), *missing)
    return str(site)


def _suite(root: Path, dist: str, version: str) -> Path:
    """Download and unpack the sdist; return its root (holding tests/api_resources)."""
    _pip("download", f"{dist}=={version}", "--no-binary", ":all:", "--no-deps",
         "-d", str(root))
    archive = next(root.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    src = next(p for p in root.iterdir() if p.is_dir())
    assert (src / "tests" / "api_resources").is_dir() and "Apache" in \
        (src / "LICENSE").read_text(encoding="utf-8")[:200]
    return src


@pytest.mark.parametrize(("dist", "version", "prefix", "expected"), SUITES,
                         ids=[s[0] for s in SUITES])
def test_the_sdks_generated_suite_passes(tmp_path, suite_site, dist, version, prefix,
                                         expected):
    src = _suite(tmp_path / "sdist", dist, version)
    report = tmp_path / "report.xml"
    with Emulator(tmp_path / "acct", latency=0.0, conformance=True,
                  image_long_side=64) as emu:
        env = dict(os.environ, TEST_API_BASE_URL=emu.base_url + prefix,
                   PYTHONPATH=suite_site)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
             "tests/api_resources", f"--junitxml={report}"],
            cwd=src, env=env, capture_output=True, text=True, timeout=900)
        stats = emu.stats()
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}
    assert counts == {"tests": expected, "failures": 0, "errors": 0, "skipped": 0}, \
        proc.stdout[-3000:]
    assert proc.returncode == 0
    # The suite reached the emulator's routes, sync and async (3 client variants each).
    requests = stats["requests"]
    if dist == "lumaai":
        assert requests["create"] >= 12 and stats["created"] == requests["create"]
    else:
        assert requests["agents_create"] >= 12 and requests["files"] >= 40
        assert stats["agents"]["created"] == requests["agents_create"]

"""Checksum records and per-run temp folders: damaged entries are caught, dead runs' temps swept.

Real files, real flocks, real child processes killed with SIGKILL; no Prefect.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reelflow.tasks import _scratch, _verify
from reelflow.tasks._asset_server import asset_scope
from reelflow.tasks._ffmpeg import cache_output, cached_file
from reelflow.tasks._verify import read_record, record_path
from reelflow.tasks.store import ClipStore
from tests.helpers import flip_bytes, spy


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture()
def hashes(monkeypatch) -> list[Path]:
    """Every file _verify hashes (a spy on the real function)."""
    return spy(monkeypatch, _verify, "sha256_file", record=Path)


def _entry(cache: Path, data: bytes, kind: str = "pieces") -> Path:
    final = cache / kind / f"{secrets.token_hex(8)}.mp4"
    with cache_output(final, cache) as tmp:
        tmp.write_bytes(data)
    return final


# -- media cache entries ----------------------------------------------------------------------

def test_cache_entry_is_recorded_and_trusted_without_hashing(tmp_path, hashes):
    data = secrets.token_bytes(50_000)
    final = _entry(tmp_path / "cache", data)

    record = read_record(final)
    assert record.size == 50_000 and record.sha256 == hashlib.sha256(data).hexdigest()
    hashes.clear()
    assert cached_file(final) and cached_file(final)
    assert hashes == []  # size and mtime as recorded: nothing re-hashed
    assert list((tmp_path / "cache" / "tmp").glob("run-*/*")) == []  # the temp file was moved


@pytest.mark.parametrize("damage", ["truncate", "flip", "no record", "record garbled"])
def test_damaged_cache_entry_is_discarded(damage, tmp_path, caplog):
    final = _entry(tmp_path / "cache", secrets.token_bytes(50_000), "final")
    if damage == "truncate":
        os.truncate(final, 20_000)
    elif damage == "flip":
        flip_bytes(final)
    elif damage == "no record":
        record_path(final).unlink()
    else:
        record_path(final).write_text("{not json")

    assert not cached_file(final)
    assert not final.exists() and not record_path(final).exists()
    warnings = _warnings(caplog)
    if damage in ("truncate", "flip"):
        reason = "20000 bytes where 50000" if damage == "truncate" else "SHA-256"
        assert len(warnings) == 1 and "finished sequence" in warnings[0]
        assert str(final) in warnings[0] and reason in warnings[0], warnings
    else:  # an entry that cannot be checked is rebuilt quietly (older versions wrote none)
        assert warnings == []
    assert not cached_file(final) and len(_warnings(caplog)) == len(warnings)  # said once


def test_touched_but_unchanged_entry_is_hashed_once(tmp_path, hashes):
    final = _entry(tmp_path / "cache", secrets.token_bytes(50_000))
    os.utime(final, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    hashes.clear()

    assert cached_file(final) and cached_file(final)
    assert hashes == [final]  # hashed once, then its record was refreshed
    assert read_record(final).mtime_ns == final.stat().st_mtime_ns


# -- the clip store -----------------------------------------------------------------------------

@pytest.fixture()
def local_store(home, monkeypatch) -> ClipStore:
    monkeypatch.delenv("REELFLOW_STORE", raising=False)
    return ClipStore.default()


@pytest.mark.parametrize("suffix,kind", [(".mp4", "stored clip"), (".png", "stored image")])
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_stored_file_reads_as_absent(damage, suffix, kind, local_store, tmp_path, caplog,
                                             hashes):
    """Clips and stills (keyframes, generated images) alike."""
    source = tmp_path / f"file{suffix}"
    source.write_bytes(secrets.token_bytes(80_000))
    sha = local_store.put_file(source, suffix=suffix)
    path = local_store.path_for(sha, suffix)
    hashes.clear()
    assert local_store.has(sha, suffix) and hashes == []  # as written: no hash

    os.truncate(path, 20_000) if damage == "truncate" else flip_bytes(path)

    assert not local_store.has(sha, suffix)
    assert not path.exists()
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and kind in warnings[0] and sha in warnings[0], warnings


def test_stored_file_without_record_is_hashed_then_trusted(local_store, tmp_path, hashes):
    """Files stored by older versions have no record: the name is their hash, so they are
    checked once and recorded."""
    data = secrets.token_bytes(40_000)
    sha = hashlib.sha256(data).hexdigest()
    path = local_store.path_for(sha)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)

    assert local_store.has(sha) and local_store.has(sha)
    assert hashes == [path] and read_record(path).sha256 == sha


def test_damaged_stored_still_is_replaced_before_it_is_served(local_store, tmp_path, caplog):
    image = tmp_path / "still.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(30_000))
    sha = local_store.put_file(image, suffix=".png", keep_source=True)
    flip_bytes(local_store.path_for(sha, ".png"))

    with asset_scope() as render:
        url = local_store.image_url_for(image, loopback_ok=True, assets=render)
        assert httpx.get(url, timeout=10).content == image.read_bytes()
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "stored image" in warnings[0], warnings


# -- per-run temp folders -----------------------------------------------------------------------

_HOLDER = """
import sys, time
from pathlib import Path
from reelflow.tasks._scratch import run_dir
folder = run_dir(Path(sys.argv[1]))
(folder / "half-written.mp4").write_bytes(b"x" * 1000)
print(folder, flush=True)
time.sleep(600)
"""


def start_holder(root: Path) -> tuple[subprocess.Popen, Path]:
    """A process that made a temp file in its run folder under ``root`` and keeps running."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root)], stdout=subprocess.PIPE,
                            text=True)
    return proc, Path(proc.stdout.readline().strip())


def test_sweep_removes_dead_runs_and_keeps_live_ones(tmp_path):
    root = tmp_path / "media"
    dead, dead_dir = start_holder(root)
    live, live_dir = start_holder(root)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=10)
        assert (dead_dir / "half-written.mp4").exists()

        assert _scratch.sweep(root) == 1

        assert not dead_dir.exists() and not Path(f"{dead_dir}.lock").exists()
        assert (live_dir / "half-written.mp4").exists() and Path(f"{live_dir}.lock").exists()
    finally:
        live.kill()
        live.wait(timeout=10)
    assert _scratch.sweep(root) == 1 and list((root / "tmp").iterdir()) == []


def test_sweep_removes_old_loose_temp_files_of_older_versions(tmp_path):
    """Before per-run folders, temps sat beside entries (``.<key>.<random>.mp4``, ``tmpXXXXXXXX/``)
    and in ``clips/tmp``: those an hour old go; fresh ones (maybe a live writer's) and files
    that are not reelflow's temps (a store root can be a user's folder) stay."""
    root = tmp_path / "media"
    old = [root / "pieces" / ".0123456789abcdef.0123456789ab.mp4", root / "final" / "tmpk2j3h4ab",
           root / "tmp" / ".incoming.mp4.x1y2z3ab.mp4", root / "deliver" / ".sheet-abcd1234",
           root / "ab" / f".{'ab' * 32}.mp4.Zq81_x0a.mp4",
           root / "tmp" / "run-1-0123456789ab"]  # a run folder whose lock was deleted by hand
    fresh = [root / "pieces" / ".fedcba9876543210.0123456789ab.mp4",
             root / "tmp" / ".incoming.mp4.a1b2c3d4.mp4"]
    foreign = [root / "pieces" / ".DS_Store", root / "ab" / ".env.production",
               root / "tmp" / "notes.txt", root / "tmp" / "tmp"]
    kept = [root / "pieces" / "0123456789abcdef.mp4", root / "pieces" / "0123456789abcdef.mp4.sum"]
    for path in old + fresh + foreign + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if path.name.startswith(("tmp", ".sheet", "run-")) else path.write_bytes(b"x")
    hours_ago = time.time() - 2 * _scratch.LOOSE_AGE_S
    for path in old + foreign + kept:
        os.utime(path, (hours_ago, hours_ago))

    assert _scratch.sweep(root) == len(old)

    assert [p for p in old if p.exists()] == []
    assert all(p.exists() for p in fresh + foreign + kept)


def test_run_dir_is_one_locked_folder_per_process(tmp_path):
    root = tmp_path / "cache"
    first = _scratch.run_dir(root)
    assert _scratch.run_dir(root) == first and first.is_dir()
    assert _scratch.sweep(root) == 0 and first.is_dir()  # our own folder is never swept
    probe = subprocess.run(
        [sys.executable, "-c", "import fcntl, sys; fd = open(sys.argv[1], 'rb'); "
         "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", f"{first}.lock"],
        capture_output=True, text=True)
    assert probe.returncode != 0 and "BlockingIOError" in probe.stderr  # held by us

"""Per-run temp folders inside the media cache and the clip store, and the sweep of dead runs';
and ``atomic_write_path``, the temp file beside a target that is replaced onto it.

Every temp file reelflow makes inside a managed root (the media cache, the clip store)
lives in ``<root>/tmp/<run>/``, where ``<run>`` names this process, and the process holds
an exclusive ``flock`` on ``<root>/tmp/<run>.lock`` for as long as it lives. The kernel
drops the lock when the process dies, however it dies (kill -9 included), so the next run
tells a dead run's folder (its lock can be taken) from a live one's (it cannot) without
guessing from ages or pids, whatever the number of concurrent runs sharing the root.

The first use of a root in a process (and every ten minutes after, in a long-lived one)
sweeps it: the folders of dead runs, and the temp files versions before per-run folders
left beside entries and in ``<root>/tmp`` (matched by their exact name shapes, ``_LOOSE``)
once they are an hour old.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["LOOSE_AGE_S", "SWEEP_EVERY_S", "atomic_write_path", "run_dir", "sweep", "sweep_once"]

_log = logging.getLogger("reelflow.tasks.cache")

#: How old a loose temp file (one not in a run's folder) must be before a sweep removes it.
LOOSE_AGE_S = 3600
#: A long-lived process (a server, a watcher) sweeps a root again after this long.
SWEEP_EVERY_S = 600

_lock = threading.RLock()
#: root -> (pid, folder, lock fd) of this process's run folder there.
_runs: dict[Path, tuple[int, Path, int]] = {}
#: (pid, root) -> when this process last swept it (time.monotonic).
_swept: dict[tuple[int, Path], float] = {}


def run_dir(root: Path) -> Path:
    """This process's temp folder under ``root/tmp``, locked while the process lives.

    Files made here are on the root's filesystem, so they can be ``os.replace``d into it.
    The first call for a root also sweeps what dead runs left there.
    """
    root = Path(root)
    with _lock:
        held = _runs.get(root)
        if held and held[0] == os.getpid():
            if held[1].is_dir() and _same_file(held[2], Path(f"{held[1]}.lock")):
                return held[1]
            os.close(held[2])  # someone deleted the cache under us: claim a new folder
        sweep_once(root)
        area = root / "tmp"
        area.mkdir(parents=True, exist_ok=True)
        fd, name = _claim(area)
        folder = area / name
        folder.mkdir()
        _runs[root] = (os.getpid(), folder, fd)
        return folder


def _claim(area: Path) -> tuple[int, str]:
    """Create and lock ``<area>/<run>.lock`` for this process; return its fd and the run name."""
    while True:
        name = f"run-{os.getpid()}-{secrets.token_hex(6)}"
        path = area / f"{name}.lock"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(fd, path):  # a sweep may have taken it between create and lock
            return fd, name
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def sweep_once(root: Path) -> None:
    """:func:`sweep` ``root`` unless this process did in the last SWEEP_EVERY_S seconds."""
    root, now = Path(root), time.monotonic()
    with _lock:
        if now - _swept.get((os.getpid(), root), -SWEEP_EVERY_S) < SWEEP_EVERY_S:
            return
        _swept[(os.getpid(), root)] = now
    try:
        removed = sweep(root)
    except OSError as exc:  # tidying never fails a run
        _log.debug("could not sweep %s: %s", root, exc)
        return
    if removed:
        _log.info("removed %d temp files and folders left by dead runs in %s", removed, root)


def sweep(root: Path, *, loose_age_s: float = LOOSE_AGE_S) -> int:
    """Remove what no live run owns under ``root``; return how many entries went.

    A run's folder goes when its lock can be taken (its process is gone); loose temp
    entries go once older than ``loose_age_s``.
    """
    root, removed = Path(root), 0
    area = root / "tmp"
    mine = {held[1].name for held in _runs.values() if held[0] == os.getpid()}
    runs = set()
    if area.is_dir():
        for lock_path in area.glob("run-*.lock"):
            name = lock_path.name[:-len(".lock")]
            runs.add(name)
            if name not in mine and _remove_dead_run(area, name):
                removed += 1
    old = time.time() - loose_age_s
    for entry in _loose_entries(root, area, runs):
        if _mtime(entry) < old:
            _remove(entry)
            removed += 1
    return removed


def _remove_dead_run(area: Path, name: str) -> bool:
    """Remove run ``name``'s folder and lock if no process holds the lock."""
    lock_path = area / f"{name}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # alive
        if not _same_file(fd, lock_path):
            return False  # another sweep removed it meanwhile
        shutil.rmtree(area / name, ignore_errors=True)
        lock_path.unlink(missing_ok=True)  # last: a folder never outlives its lock unnoticed
        return True
    finally:
        os.close(fd)


#: Temp names older versions left: ``.<hex key or sha>.<random>...`` (atomic writes beside
#: an entry), ``.incoming.mp4.<random>.mp4`` (downloads), ``tmpXXXXXXXX`` and
#: ``.sheet-XXXXXXXX`` folders. Nothing else (a user's ``.DS_Store``, ``.env.local``) matches.
_LOOSE = re.compile(r"\.(incoming|[0-9a-f][0-9a-f-]{7,})\..+|tmp[a-z0-9_]{8}|\.sheet-[a-z0-9_]{8}")


def _loose_entries(root: Path, area: Path, runs: set[str]):
    """Temp entries outside run folders: what older versions left in the root's folders."""
    if area.is_dir():  # a run folder whose lock file someone deleted
        for entry in area.glob("run-*"):
            if entry.is_dir() and entry.name not in runs:
                yield entry
    if not root.is_dir():
        return
    for sub in root.iterdir():
        if not sub.is_dir() or sub.is_symlink():
            continue
        for entry in os.scandir(sub):
            if _LOOSE.fullmatch(entry.name):
                yield Path(entry.path)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


_UMASK_LOCK = threading.Lock()


def atomic_write_path(target: Path, suffix: str = "") -> Path:
    """Return a fresh temp path beside ``target``, to be ``os.replace``d onto it.

    The file has the mode a plain ``open(..., "w")`` would give (0666 less the umask),
    not mkstemp's 0600, so what is replaced into place honours the umask.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix,
                                dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(name)


def _umask() -> int:
    """The process umask, read without changing it where the kernel says it (Linux 4.7+)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (umask is process-wide)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask

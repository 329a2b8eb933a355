"""reelflow's own local Prefect server: started on first use, reused, stopped when idle.

Without PREFECT_API_URL (in the environment, a profile, prefect.toml or .env) Prefect
would start a temporary server in every command (10+ s each). Instead the first command
that runs a flow starts one ``prefect server start`` on loopback, under a tiny watchdog
process, and later commands reuse it (``/api/health``)::

    REELFLOW_HOME/prefect-server/<PREFECT_HOME key>/
        state.json     watchdog pid, server pid, port, API URL, idle limit (written by the watchdog)
        last-used      touched by every command when it starts and ends using the server
        in-use.lock    every command using the server holds a shared flock on it
        start.lock     serialises starts (two first commands start one server)
        server.log     the server's output

The watchdog (``python -m reelflow._server``) is the server's parent: the server dies with
it (PR_SET_PDEATHSIG on Linux). It stops the server once nobody holds ``in-use.lock`` and
``last-used`` is older than the idle limit (REELFLOW_SERVER_IDLE seconds, default 1800),
and on SIGTERM (``reelflow server stop``). A command takes its shared lock before it looks
at the state, so a server is never stopped under a command that is about to use it.

REELFLOW_PREFECT=ephemeral opts out (Prefect's temporary server per command, as before).
Nothing here imports Prefect except ``use_prefect`` (to read the effective settings); the
server process itself is started and stopped by ``_prefect_process.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from reelflow._prefect_process import (free_port, healthy, port_free, server_env,
                                       spawn_prefect_server, stop_process, wait_healthy)
from reelflow.config import apply_prefect_defaults, export_prefect_api_url, reelflow_home, settings
from reelflow.errors import ReelflowError

__all__ = ["ServerState", "configured_api_url", "duration", "ensure_server", "running_server",
           "server_dir", "stop_server", "use_prefect"]

#: Seconds without a command before the managed server stops (REELFLOW_SERVER_IDLE).
DEFAULT_IDLE_S = 1800.0
_WATCHDOG_MARK = "reelflow._server"


@dataclass
class ServerState:
    """What state.json says about the running managed server."""

    pid: int            # the watchdog
    server_pid: int
    port: int
    api_url: str
    prefect_home: str
    idle_s: float
    started: float

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


# -- where the managed server is recorded ------------------------------------------------

def _prefect_home() -> Path:
    return settings().prefect_home_dir().expanduser().resolve()


def server_dir() -> Path:
    """The managed server's folder: one per PREFECT_HOME (its database lives there)."""
    key = hashlib.sha256(str(_prefect_home()).encode()).hexdigest()[:12]
    return reelflow_home() / "prefect-server" / key


def duration(seconds: float) -> str:
    """``30 min``, ``1 h 5 min``, ``20 s``: a span as people say it."""
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _idle_limit() -> float:
    value = settings().server_idle
    try:
        return float(value) if value else DEFAULT_IDLE_S
    except ValueError:
        raise ReelflowError(f"REELFLOW_SERVER_IDLE={value!r} is not a number of seconds") from None


def _alive(pid: int, mark: str | None = None) -> bool:
    """PID runs (and, where /proc tells, its command line holds MARK: no reused pid)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if mark is None or not cmdline.exists():
        return True
    try:
        return mark.encode() in cmdline.read_bytes()
    except OSError:
        return False


def _read_state(folder: Path) -> ServerState | None:
    try:
        state = ServerState(**json.loads((folder / "state.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return state if _alive(state.pid, _WATCHDOG_MARK) else None


def running_server() -> ServerState | None:
    """The managed server of this REELFLOW_HOME and PREFECT_HOME, if one runs and answers."""
    state = _read_state(server_dir())
    return state if state is not None and healthy(state.api_url) else None


def last_used(folder: Path) -> float:
    try:
        return (folder / "last-used").stat().st_mtime
    except OSError:
        return 0.0


def _touch(folder: Path) -> None:
    with contextlib.suppress(OSError):
        (folder / "last-used").touch()


_LEASE: list = []


def _take_lease(folder: Path) -> None:
    """Hold a shared lock on in-use.lock until this process ends: the watchdog never stops
    the server while a command uses it (the lock goes with the process, even on kill -9)."""
    if _LEASE:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "in-use.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # waits while a watchdog is stopping an idle server
    _LEASE.append(fd)
    _touch(folder)
    import atexit

    atexit.register(_touch, folder)


@contextlib.contextmanager
def _exclusive(path: Path, blocking: bool = True):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


# -- start, reuse, stop -------------------------------------------------------------------

def ensure_server(announce: Callable[[str], None] = lambda _l: None, *,
                  port: int | None = None, idle_s: float | None = None) -> tuple[ServerState, bool]:
    """The running managed server, started if none answers; returns ``(state, started)``.

    The calling process holds a lease on it until it exits.
    """
    folder = server_dir()
    _take_lease(folder)
    with _exclusive(folder / "start.lock"):
        state = _read_state(folder)
        if state is not None and healthy(state.api_url, timeout=5):
            return state, False
        if state is not None:  # a watchdog whose server does not answer: replace both
            _terminate(state.pid)
        return _start(folder, announce, port, idle_s if idle_s is not None else _idle_limit()), True


def _start(folder: Path, announce, port: int | None, idle_s: float) -> ServerState:
    previous = _previous_port(folder)
    if port is None:
        port = previous if previous and port_free(previous) else free_port()
    elif not port_free(port):
        raise ReelflowError(f"port {port} is in use: pick another (--port) or stop what listens")
    api_url = f"http://127.0.0.1:{port}/api"
    announce(f"Prefect: starting reelflow's local server on 127.0.0.1:{port} (once; it stops "
             f"after {duration(idle_s)} unused, `reelflow server stop` sooner)...")
    (folder / "state.json").unlink(missing_ok=True)
    log_path = folder / "server.log"
    with open(log_path, "ab") as log:
        watchdog = subprocess.Popen(
            [sys.executable, "-m", _WATCHDOG_MARK, str(folder), str(port), str(idle_s)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=server_env(), start_new_session=True)  # detached: outlives this command
    wait_healthy(api_url, watchdog, log_path)
    deadline = time.monotonic() + 10
    while (state := _read_state(folder)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if state is None:
        stop_process(watchdog)
        raise ReelflowError(f"the Prefect server's watchdog wrote no state (log {log_path})")
    return state


def _previous_port(folder: Path) -> int | None:
    try:
        return int((folder / "port").read_text())
    except (OSError, ValueError):
        return None


def _terminate(pid: int, timeout_s: float = 30) -> bool:
    """SIGTERM a watchdog and wait until it is gone; True when it was running."""
    if not _alive(pid, _WATCHDOG_MARK):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid, _WATCHDOG_MARK) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid, _WATCHDOG_MARK):
        os.kill(pid, signal.SIGKILL)
    return True


def stop_server() -> ServerState | None:
    """Stop the managed server (its watchdog stops it); returns what was stopped."""
    folder = server_dir()
    state = _read_state(folder)
    if state is None or not _terminate(state.pid):
        return None
    return state


def configured_api_url() -> str | None:
    """The API URL Prefect would use as things stand (environment, profile, prefect.toml,
    .env, or a test harness's temporary settings), or None: ephemeral."""
    if url := settings().prefect_api_url:
        return url
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def use_prefect(announce: Callable[[str], None] = lambda _l: None) -> str | None:
    """Settle which Prefect API this process uses, before any flow runs.

    Returns the UI URL (a configured server, or reelflow's managed one), or None when
    REELFLOW_PREFECT=ephemeral leaves Prefect to its temporary server.
    """
    apply_prefect_defaults()
    mode = (settings().prefect_mode or "managed").lower()
    if mode not in ("managed", "ephemeral"):
        raise ReelflowError(f"REELFLOW_PREFECT={mode!r}: use managed (default) or ephemeral")
    configured = configured_api_url()
    if configured:
        return configured.rstrip("/").removesuffix("/api")
    if mode == "ephemeral":
        return None
    state, _started = ensure_server(announce)
    export_prefect_api_url(state.api_url)
    import prefect.context

    prefect.context.refresh_global_settings_context()  # Prefect read its settings at import
    return state.ui_url


# -- the watchdog process -----------------------------------------------------------------

def _die_with_parent() -> None:
    """In the server's child: SIGTERM it when the watchdog dies, however it dies."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _idle_for(folder: Path, state: ServerState) -> float:
    return time.time() - max(last_used(folder), state.started)


def _write_state(folder: Path, state: ServerState) -> None:
    tmp = folder / f"state.json.{state.pid}"
    tmp.write_text(json.dumps(asdict(state)))
    os.replace(tmp, folder / "state.json")
    (folder / "port").write_text(str(state.port))


def _stop_if_idle(folder: Path, state: ServerState, server: subprocess.Popen) -> bool:
    """Stop the server when nobody holds a lease and it is past its idle limit; the lock
    is held while stopping, so a command that comes now waits and then starts a new one."""
    if _idle_for(folder, state) < state.idle_s:
        return False
    with _exclusive(folder / "in-use.lock", blocking=False) as nobody_uses_it:
        if not nobody_uses_it or _idle_for(folder, state) < state.idle_s:
            return False
        (folder / "state.json").unlink(missing_ok=True)
        stop_process(server)
        return True


def watchdog(folder: Path, port: int, idle_s: float) -> int:
    """Run the server as a child; stop it when idle, on SIGTERM, or when it exits."""
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda num, _f: stopping.append(num))
    server = spawn_prefect_server(port, folder / "server.log", preexec_fn=_die_with_parent)
    state = ServerState(pid=os.getpid(), server_pid=server.pid, port=port,
                        api_url=f"http://127.0.0.1:{port}/api", prefect_home=str(_prefect_home()),
                        idle_s=idle_s, started=time.time())
    _write_state(folder, state)
    step = max(0.2, min(5.0, idle_s / 10))
    why = "stopped (reelflow server stop)"
    while not stopping:
        if server.poll() is not None:
            why = f"the server exited ({server.returncode})"
            break
        if _stop_if_idle(folder, state, server):
            why = f"unused for {idle_s:g} s"
            break
        time.sleep(step)
    (folder / "state.json").unlink(missing_ok=True)
    stop_process(server)
    print(f"reelflow: Prefect server on port {port} stopped: {why}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(watchdog(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))

"""One `prefect server start` process: spawn it, wait until it answers, stop it.

The one place reelflow starts a Prefect server: the managed server's watchdog
(``_server.py``) and ``reelflow serve`` (deployments/serve.py) both call
`spawn_prefect_server`. The server's environment carries no secrets.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from reelflow.config import environment_without
from reelflow.errors import ReelflowError

__all__ = ["SERVER_START_TIMEOUT_S", "free_port", "healthy", "port_free", "server_env",
           "spawn_prefect_server", "stop_process", "wait_healthy"]

#: `prefect server start` was ready in ~19 s on a loaded 2-core machine: leave room.
SERVER_START_TIMEOUT_S = 120.0
#: Environment the server never needs (keys stay out of its process and log).
_SECRET_PREFIXES = ("LUMAAI_", "LUMA_", "AWS_")


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True when ``<api_url>/health`` answers 200."""
    import httpx

    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:PORT."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env() -> dict[str, str]:
    """The server's environment: no API URL of its own, no analytics, no secrets."""
    env = environment_without(("PREFECT_API_URL",), _SECRET_PREFIXES)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def spawn_prefect_server(port: int, log_path: Path, **popen: object) -> subprocess.Popen:
    """Start ``prefect server start`` on 127.0.0.1:PORT (foreground, one process), its
    output appended to LOG_PATH. The one place reelflow starts a Prefect server."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=server_env(), **popen)


def wait_healthy(api_url: str, proc: subprocess.Popen, log_path: Path,
                 timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
    """Wait until the server answers; stop PROC and raise with the log's tail otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if healthy(api_url):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.25)
    stop_process(proc)
    tail = log_path.read_text(errors="replace")[-800:] if log_path.exists() else ""
    raise ReelflowError(f"the Prefect server did not become healthy on {api_url} "
                        f"(log {log_path}):\n{tail}")


def stop_process(proc: subprocess.Popen | None, timeout_s: float = 20) -> None:
    """SIGTERM, then SIGKILL after TIMEOUT_S."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""A loopback file server, so renders' MP4s and clips open from the Prefect UI in a browser.

A browser showing the UI over http does not follow ``file://`` links. This server binds
127.0.0.1 and serves ``GET``/``HEAD /f/<token>/<name>`` (with byte ranges, so videos
seek) for files a render registered, nothing else: no listing, no paths from the
request. A token is an HMAC of the file's path under a secret kept in
``$REELFLOW_HOME/links`` (mode 0600), so only what a render linked can be fetched, and
the same file keeps the same link. Renders in any process of the same REELFLOW_HOME
register files by writing ``links/<token>.json``; the server reads them per request.

Lifetime: the host decides. ``reelflow files`` runs one in the foreground;
``reelflow serve`` starts one beside the Prefect server (and a warm local server can
host it the same way: ``FileServer(port).start()``). A running server records its URL
and pid in ``links/server.json``; ``link_for`` links a file only when that server
answers, so no summary gets a dead link. The HTTP side (GET/HEAD, byte ranges) is
``_loopback.LoopbackServer``, shared with the asset server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote

import httpx

from reelflow.config import reelflow_home
from reelflow.tasks._loopback import LoopbackServer
from reelflow.tasks.store import atomic_write_path

__all__ = ["DEFAULT_PORT", "FileServer", "link_for", "running_url", "start_file_server"]

_log = logging.getLogger("reelflow.tasks.file_server")

#: Beside Prefect's 4200.
DEFAULT_PORT = 4201
_ROUTE = re.compile(r"/f/(?P<token>[0-9a-f]{32})/[^/]+")


def _links_dir() -> Path:
    path = reelflow_home() / "links"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _private_tmp(path: Path, text: str) -> Path:
    """A temp file beside ``path`` holding ``text``, readable by this user only."""
    tmp = atomic_write_path(path)
    with open(tmp, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
    return tmp


def _write(path: Path, text: str) -> None:
    os.replace(_private_tmp(path, text), path)


def _secret() -> bytes:
    path = _links_dir() / "secret"
    if not path.is_file():
        tmp = _private_tmp(path, secrets.token_hex(32))
        try:
            os.link(tmp, path)  # the first writer wins; everyone uses the same secret
        except FileExistsError:
            pass
        tmp.unlink()
    return path.read_bytes().strip()


def _register(path: Path) -> str:
    """The token that serves ``path`` (recorded for the server)."""
    path = Path(path).resolve()
    token = hmac.new(_secret(), str(path).encode(), hashlib.sha256).hexdigest()[:32]
    record = _links_dir() / f"{token}.json"
    if not record.is_file():
        _write(record, json.dumps({"path": str(path)}))
    return token


def _registered(token: str) -> Path | None:
    try:
        path = Path(json.loads((_links_dir() / f"{token}.json").read_text())["path"])
    except (OSError, ValueError, KeyError):
        return None
    return path if path.is_file() else None


def running_url() -> str | None:
    """The URL of this REELFLOW_HOME's file server if one answers now, else None."""
    try:
        info = json.loads((_links_dir() / "server.json").read_text())
        os.kill(int(info["pid"]), 0)
        answer = httpx.get(f"{info['url']}/health", timeout=1.0)
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return None
    return info["url"] if answer.status_code == 200 else None


def link_for(path: Path) -> str | None:
    """A loopback link to ``path`` when a file server is running, else None."""
    url = running_url()
    if url is None or not Path(path).is_file():
        return None
    return f"{url}/f/{_register(path)}/{quote(Path(path).name)}"


def start_file_server(port: int = DEFAULT_PORT) -> "FileServer | None":
    """Start a file server in this process (on ``port``, else any free port), or None when
    one already answers for this REELFLOW_HOME (renders link to that one)."""
    if running_url():
        return None
    try:
        return FileServer(port).start()
    except OSError:  # the port is taken by something else
        return FileServer(0).start()


class FileServer:
    """The loopback server (``_loopback.LoopbackServer``) over the registered files of this
    REELFLOW_HOME."""

    def __init__(self, port: int = DEFAULT_PORT) -> None:
        self._links = _links_dir()
        self._http = LoopbackServer(self._find, port, name="reelflow-files")

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> "FileServer":
        """Serve in a daemon thread and record this server for renders to link to."""
        self._http.start()
        _write(self._links / "server.json", json.dumps({"url": self.url, "pid": os.getpid()}))
        return self

    def stop(self) -> None:
        """Stop serving; forget the record if it is still this server's."""
        record = self._links / "server.json"
        try:
            if json.loads(record.read_text()).get("url") == self.url:
                record.unlink()
        except (OSError, ValueError):
            pass
        self._http.stop()

    def find(self, request_path: str) -> Path | None:
        match = _ROUTE.fullmatch(request_path.split("?", 1)[0])
        return _registered(match["token"]) if match else None

    def _find(self, request_path: str) -> tuple[Path, str] | None:
        path = self.find(request_path)
        return (path, path.name) if path else None

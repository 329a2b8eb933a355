"""A loopback HTTP server that lets a local Luma emulator fetch a render's keyframe images.

The real API fetches keyframe images by URL; with the zero-config local store and
the embedded (or a standalone loopback) emulator, this server is that URL. It binds
127.0.0.1 on a random port and is started once per process on first need. Any local
process can connect to it, so it serves nothing by default: each render opens an
``AssetScope`` (an unguessable path, ``secrets.token_urlsafe``), registers the files
it sends to the API, and closes the scope when its generations are done. Only
``GET``/``HEAD /r/<token>/<sha256><.ext>`` of a registered file answers; anything
else (another render's token, an unregistered store file, a guessed path) is 404.
The HTTP side (GET/HEAD, byte ranges) is ``_loopback.LoopbackServer``, shared with the
file server.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from pathlib import Path

from reelflow.tasks._loopback import LoopbackServer

__all__ = ["AssetScope", "AssetServer", "asset_scope", "asset_server", "stop_asset_server"]

_log = logging.getLogger("reelflow.tasks._asset_server")

#: The only request path served; matched on the raw path, so %-escapes and ``..`` never match.
_ROUTE = re.compile(r"/r/(?P<token>[A-Za-z0-9_-]{43})/(?P<name>[0-9a-f]{64}\.[a-z0-9]{1,8})")
#: Random bytes in a scope's token (43 URL-safe characters).
_TOKEN_BYTES = 32

class AssetScope:
    """The files one render lets the API fetch, under the render's own unguessable path."""

    def __init__(self, server: AssetServer, token: str):
        self._server, self._token = server, token

    def url_for(self, path: Path, name: str) -> str:
        """Serve ``path`` as ``name`` (``<sha256><.ext>``) in this scope; return its URL."""
        if not re.fullmatch(r"[0-9a-f]{64}\.[a-z0-9]{1,8}", name):
            raise ValueError(f"not a stored file name like '<sha256>.png': {name!r}")
        self._server._register(self._token, name, Path(path).resolve())
        return f"{self._server.base_url}/r/{self._token}/{name}"

    def close(self) -> None:
        """Stop serving this scope's files (idempotent)."""
        self._server._forget(self._token)

    def __enter__(self) -> AssetScope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:             # the token is the secret: never in a log line
        return "AssetScope(<token>)"


class AssetServer:
    """The process's loopback server (``_loopback.LoopbackServer``) over the files its open
    scopes registered."""

    def __init__(self) -> None:
        self._scopes: dict[str, dict[str, Path]] = {}
        self._lock = threading.Lock()
        self._http = LoopbackServer(self._find, name="reelflow-assets").start()
        _log.debug("asset server on %s", self.base_url)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self._http.url

    def scope(self) -> AssetScope:
        """A new, empty scope for one render."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        with self._lock:
            self._scopes[token] = {}
        return AssetScope(self, token)

    def _register(self, token: str, name: str, path: Path) -> None:
        with self._lock:
            if token not in self._scopes:
                raise ValueError("this asset scope is closed")
            self._scopes[token][name] = path

    def _forget(self, token: str) -> None:
        with self._lock:
            self._scopes.pop(token, None)

    def find(self, token: str, name: str) -> Path | None:
        """The file registered as ``name`` in the scope ``token``, if it is still a file."""
        with self._lock:
            path = self._scopes.get(token, {}).get(name)
        return path if path is not None and path.is_file() else None

    def _find(self, request_path: str) -> tuple[Path, str] | None:
        match = _ROUTE.fullmatch(request_path.split("?", 1)[0])
        path = match and self.find(match["token"], match["name"])
        return (path, match["name"]) if path else None

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._http.stop()


_server: AssetServer | None = None
_server_lock = threading.Lock()


def asset_server() -> AssetServer:
    """The process's asset server, started on first call."""
    global _server
    with _server_lock:
        if _server is None:
            _server = AssetServer()
        return _server


def asset_scope() -> AssetScope:
    """A new scope on the process's asset server (started once): one per render."""
    return asset_server().scope()


def stop_asset_server() -> None:
    """Stop the process's asset server, if running (the next ``asset_scope`` starts a new one)."""
    global _server
    with _server_lock:
        if _server is not None:
            _server.stop()
            _server = None

"""A loopback HTTP server that lets a local Luma emulator fetch a render's keyframe images.

The real API fetches keyframe images by URL; with the zero-config local store and
the embedded (or a standalone loopback) emulator, this server is that URL. It binds
127.0.0.1 on a random port and is started once per process on first need. Any local
process can connect to it, so it serves nothing by default: each render opens an
``AssetScope`` (an unguessable path, ``secrets.token_urlsafe``), registers the files
it sends to the API, and closes the scope when its generations are done. Only
``GET``/``HEAD /r/<token>/<sha256><.ext>`` of a registered file answers; anything
else (another render's token, an unregistered store file, a guessed path) is 404.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["AssetScope", "AssetServer", "asset_scope", "asset_server", "stop_asset_server"]

_log = logging.getLogger("reelflow.tasks._asset_server")

#: The only request path served; matched on the raw path, so %-escapes and ``..`` never match.
_ROUTE = re.compile(r"/r/(?P<token>[A-Za-z0-9_-]{43})/(?P<name>[0-9a-f]{64}\.[a-z0-9]{1,8})")
#: Random bytes in a scope's token (43 URL-safe characters).
_TOKEN_BYTES = 32

_CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                  ".webp": "image/webp", ".mp4": "video/mp4"}


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


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-file is routine: logged at debug, never a traceback on stderr."""

    def handle_error(self, request, client_address) -> None:
        _log.debug("asset request from %s failed", client_address, exc_info=True)


class AssetServer:
    """One threaded loopback server over the files its open scopes registered."""

    def __init__(self) -> None:
        self._scopes: dict[str, dict[str, Path]] = {}
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="reelflow-assets",
                                        daemon=True)
        self._thread.start()
        _log.debug("asset server on %s", self.base_url)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

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

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler_for(server: AssetServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _serve(self, *, body: bool) -> None:
            match = _ROUTE.fullmatch(self.path.split("?", 1)[0])
            path = match and server.find(match["token"], match["name"])
            if not path:
                self._refuse()
                return
            suffix = Path(match["name"]).suffix
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", _CONTENT_TYPES.get(suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            if body:
                with open(path, "rb") as handle:
                    shutil.copyfileobj(handle, self.wfile, 1 << 20)

        def _refuse(self) -> None:
            self.send_response(HTTPStatus.NOT_FOUND)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (signature is fixed)
            _log.debug("asset server answered %s", args[1] if len(args) > 1 else args)  # no path:
            # the path holds the scope's token

    return Handler


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

"""A loopback HTTP server that lets a local Luma emulator fetch files from local clip stores.

The real API fetches keyframe images by URL; with the zero-config local store and
the embedded (or a standalone loopback) emulator, this server is that URL. It binds
127.0.0.1 on a random port, is started once per process on first need, and serves
only ``GET``/``HEAD /clips/<sha256><.ext>`` from the store roots registered with it:
no listing, no other paths, nothing outside a store.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["AssetServer", "asset_server", "asset_url", "stop_asset_server"]

_log = logging.getLogger("reelflow.tasks._asset_server")

#: The only request path served; matched on the raw path, so %-escapes and ``..`` never match.
_ROUTE = re.compile(r"/clips/(?P<sha>[0-9a-f]{64})(?P<suffix>\.[a-z0-9]{1,8})")

_CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                  ".webp": "image/webp", ".mp4": "video/mp4"}


class AssetServer:
    """One threaded loopback server over a set of content-addressed store roots."""

    def __init__(self) -> None:
        self._roots: list[Path] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
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

    def add_root(self, root: Path) -> None:
        """Serve files from this store root too (idempotent)."""
        root = Path(root).resolve()
        with self._lock:
            if root not in self._roots:
                self._roots.append(root)

    def find(self, sha256: str, suffix: str) -> Path | None:
        """The stored file for this hash and extension in any registered root, or None."""
        with self._lock:
            roots = list(self._roots)
        for root in roots:
            candidate = root / sha256[:2] / f"{sha256}{suffix}"
            if candidate.is_file():
                return candidate
        return None

    def url_for(self, sha256: str, suffix: str) -> str:
        """The URL this server answers for a stored file."""
        return f"{self.base_url}/clips/{sha256}{suffix}"

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
            path = match and server.find(match["sha"], match["suffix"])
            if not path:
                self._refuse()
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", _CONTENT_TYPES.get(match["suffix"],
                                                                "application/octet-stream"))
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
            _log.debug("%s " + format, self.address_string(), *args)

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


def asset_url(root: Path, sha256: str, suffix: str) -> str:
    """A loopback URL for a file in the local store at ``root`` (starts the server once)."""
    server = asset_server()
    server.add_root(root)
    return server.url_for(sha256, suffix)


def stop_asset_server() -> None:
    """Stop the process's asset server, if running (the next ``asset_url`` starts a new one)."""
    global _server
    with _server_lock:
        if _server is not None:
            _server.stop()
            _server = None

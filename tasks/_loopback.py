"""One loopback HTTP server of token-scoped files: GET/HEAD, byte ranges, ``/health``.

Both servers reelflow runs on 127.0.0.1 are this one: the asset server
(``_asset_server.py``: ``/r/<token>/<sha256><.ext>``, the files one render registered for
the API to fetch) and the file server (``file_server.py``: ``/f/<token>/<name>``, the
files renders linked for the Prefect UI). Each passes its own ``find``, which maps the raw
request path to ``(file, name)`` or None (404); nothing else is ever served, and no path
from the request is opened. ``name``'s extension sets the Content-Type.

Request paths hold the tokens, so they never reach a log line; a client that hangs up
mid-file is routine (logged at debug, no traceback on stderr).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["Find", "LoopbackServer", "byte_range"]

_log = logging.getLogger("reelflow.tasks._loopback")

#: Maps a raw request path (query included) to the file to serve and the name it is served as.
Find = Callable[[str], tuple[Path, str] | None]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".jpg": "image/jpeg",
          ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
          ".otio": "application/json"}


def byte_range(header: str, size: int) -> tuple[int, int, bool] | None:
    """(start, end inclusive, partial?) for a ``Range`` header; None when unsatisfiable."""
    match = _RANGE.fullmatch(header.strip())
    if not match or not (match[1] or match[2]):
        return 0, size - 1, False
    if match[1]:
        start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
    else:  # the last N bytes
        start, end = max(size - int(match[2]), 0), size - 1
    return (start, end, True) if start <= end else None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        _log.debug("loopback request from %s failed", client_address, exc_info=True)


class LoopbackServer:
    """A threaded server on 127.0.0.1:PORT (0: any free port) over what ``find`` resolves."""

    def __init__(self, find: Find, port: int = 0, *, name: str = "reelflow-loopback") -> None:
        self._httpd = _QuietServer(("127.0.0.1", port), _handler_for(find))
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self._name,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)


def _handler_for(find: Find) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _serve(self, *, body: bool) -> None:
            if self.path == "/health":
                self._answer(HTTPStatus.OK, b"ok", body)
                return
            found = find(self.path)
            if found is None:
                self._answer(HTTPStatus.NOT_FOUND, b"", body)
                return
            path, name = found
            size = path.stat().st_size
            span = byte_range(self.headers.get("Range", ""), size)
            if span is None:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end, partial = span
            self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Type", _TYPES.get(Path(name).suffix.lower(),
                                                        "application/octet-stream"))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            if body:
                self._copy(path, start, end - start + 1)

        def _copy(self, path: Path, start: int, left: int) -> None:
            with open(path, "rb") as handle:
                handle.seek(start)
                while left > 0 and (chunk := handle.read(min(left, 1 << 20))):
                    self.wfile.write(chunk)
                    left -= len(chunk)

        def _answer(self, status: HTTPStatus, data: bytes, body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (signature is fixed)
            # the request line holds a token: log the status only
            _log.debug("loopback server answered %s", args[1] if len(args) > 1 else args)

    return Handler

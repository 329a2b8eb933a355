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
answers, so no summary gets a dead link.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx

from reelflow.config import reelflow_home
from reelflow.tasks.store import atomic_write_path

__all__ = ["DEFAULT_PORT", "FileServer", "link_for", "running_url", "start_file_server"]

_log = logging.getLogger("reelflow.tasks.file_server")

#: Beside Prefect's 4200.
DEFAULT_PORT = 4201
_ROUTE = re.compile(r"/f/(?P<token>[0-9a-f]{32})/[^/]+")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".jpg": "image/jpeg",
          ".jpeg": "image/jpeg", ".png": "image/png", ".otio": "application/json"}


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
    """One threaded loopback server over the registered files of this REELFLOW_HOME."""

    def __init__(self, port: int = DEFAULT_PORT) -> None:
        self._links = _links_dir()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FileServer":
        """Serve in a daemon thread and record this server for renders to link to."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="reelflow-files",
                                        daemon=True)
        self._thread.start()
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
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def find(self, request_path: str) -> Path | None:
        match = _ROUTE.fullmatch(request_path.split("?", 1)[0])
        return _registered(match["token"]) if match else None


def _byte_range(header: str, size: int) -> tuple[int, int, bool] | None:
    """(start, end inclusive, partial?) for a ``Range`` header; None when unsatisfiable."""
    match = _RANGE.fullmatch(header.strip())
    if not match or not (match[1] or match[2]):
        return 0, size - 1, False
    if match[1]:
        start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
    else:  # the last N bytes
        start, end = max(size - int(match[2]), 0), size - 1
    return (start, end, True) if start <= end else None


def _handler_for(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _serve(self, *, body: bool) -> None:
            if self.path == "/health":
                self._answer(HTTPStatus.OK, b"ok", "text/plain", body)
                return
            path = server.find(self.path)
            if path is None:
                self._answer(HTTPStatus.NOT_FOUND, b"", "text/plain", body)
                return
            size = path.stat().st_size
            span = _byte_range(self.headers.get("Range", ""), size)
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
            self.send_header("Content-Type", _TYPES.get(path.suffix.lower(), "application/octet-stream"))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            if body:
                with open(path, "rb") as handle:
                    handle.seek(start)
                    left = end - start + 1
                    while left > 0 and (chunk := handle.read(min(left, 1 << 20))):
                        self.wfile.write(chunk)
                        left -= len(chunk)

        def _answer(self, status: HTTPStatus, data: bytes, kind: str, body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (signature is fixed)
            _log.debug("%s " + format, self.address_string(), *args)

    return Handler

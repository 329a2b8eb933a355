"""The HTTP side of the emulator: Luma's routes over stdlib ``http.server``.

Every Dream Machine route is served at the root and under ``/dream-machine/v1``; the
Agents API lives under ``/v1`` (agents_server.py). JSON errors carry
``{"detail": "..."}`` like the real (FastAPI) service; all invalid requests answer 400,
so the SDK raises ``BadRequestError``. Assets (``/assets/...``) and the test counters
(``/_emulator/stats``) need no token, as the real API's CDN URLs need none.

The routes themselves are ``routes.py``. Injected faults (see ``faults.py``) act here: a 429/500/503 answered instead of a route
(after authentication, before anything is recorded), a create's connection closed
without an answer before or after the generation is recorded, an MP4 download cut
short or with flipped bytes. Test-only: ``GET/POST /_emulator/faults`` reads/replaces
the live Faults (JSON body).
"""

from __future__ import annotations

import collections
import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from reelflow.emulator import agents_server, conformance, spec
from reelflow.emulator.account import Account, NotFound
from reelflow.emulator.agents_account import AgentsAccount
from reelflow.emulator.assets import DropConnection
from reelflow.emulator.faults import FaultInjector, Faults
from reelflow.emulator.routes import ROUTES, ApiError, DreamMachineRoutes

__all__ = ["EmulatorServer"]

log = logging.getLogger("reelflow.emulator.server")

_FAULT_DETAIL = {429: "Too many requests, please retry later", 500: "Internal Server Error",
                 503: "Service temporarily unavailable"}


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one Account, counting requests per route."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], account: Account,
                 injector: FaultInjector | None = None, agents: AgentsAccount | None = None,
                 *, conformance: bool = False, output_url_ttl: float = 3600.0,
                 hdr_access: bool = True):
        super().__init__(address, _Handler)
        self.account = account
        self.agents = agents or AgentsAccount(account.root, latency=account.latency)
        self.conformance, self.output_url_ttl = conformance, output_url_ttl
        self.hdr_access = hdr_access
        self.injector = injector or FaultInjector()
        host, port = self.server_address[:2]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.base_url = f"http://{host}:{port}"
        self._counts: collections.Counter[str] = collections.Counter()
        self._counts_lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def track(self, connection: socket.socket, open_: bool) -> None:
        """Remember open client connections, so stop() can cut keep-alive ones."""
        with self._counts_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open client connection, as a killed server would."""
        with self._counts_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def count(self, key: str) -> None:
        with self._counts_lock:
            self._counts[key] += 1

    def stats(self) -> dict[str, Any]:
        """Persisted account counters + this process's requests, injected faults, retries."""
        stats = self.account.stats()
        stats["agents"] = self.agents.summary()
        stats["requests"] = self.request_counts()
        stats["injected"] = self.injector.injected()
        stats["create_retries"] = self.injector.create_retries
        return stats

    def request_counts(self) -> dict[str, int]:
        """Requests seen by this process per route (in memory, reset on restart)."""
        with self._counts_lock:
            return dict(self._counts)


class _Handler(DreamMachineRoutes, BaseHTTPRequestHandler):
    """One request: route, authenticate, call the account, answer JSON (the Dream Machine
    routes are `DreamMachineRoutes`' methods)."""

    protocol_version = "HTTP/1.1"  # keep-alive for the SDK's connection pool
    server_version = "reelflow-emulator"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end, and their threads with them
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    @staticmethod
    def api_error(status: int, detail: str, headers: dict[str, str] | None = None,
                  body: Any = None) -> ApiError:
        """An error answer for the Agents routes (agents_server.py)."""
        return ApiError(status, detail, headers, body)

    # -- plumbing ----------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path.startswith(spec.API_PREFIX + "/"):
            path = path[len(spec.API_PREFIX):]
        try:
            if path == agents_server.PREFIX or path.startswith(agents_server.PREFIX + "/"):
                return agents_server.dispatch(self, method, path[len(agents_server.PREFIX):],
                                              parse_qs(url.query), body)
            if path.startswith("/assets/") and method in ("GET", "HEAD"):
                self.server.count("asset")
                return self._asset(path[len("/assets/"):], head=method == "HEAD")
            if path.startswith("/_emulator/"):
                return self._control(method, path, body)
            handler, match, key = self._route(method, path)
            self.server.count(key)
            retried = self.headers.get("x-stainless-retry-count", "0") not in ("", "0")
            if retried:
                self.server.count("retries")
                if key == "create":
                    self.server.injector.note_create_retry()
            self._authenticate()
            self._inject_status(key)
            status, payload = handler(match, parse_qs(url.query), body)
            self._json(status, payload)
        except DropConnection:
            self._drop()
        except ApiError as err:
            self._json(err.status, err.body, err.headers)
        except spec.RequestInvalid as err:
            self._json(400, {"detail": "; ".join(err.problems)})
        except NotFound as err:
            if not self.server.conformance:
                return self._json(404, {"detail": f"Generation {err.args[0]} not found"})
            self._json(*((204, None) if method == "DELETE" else
                         (200, conformance.dream_machine_generation(err.args[0]))))
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away during %s %s", method, self.path)
        except Exception:  # noqa: BLE001 - the service must answer, as a 500
            log.exception("%s %s failed", method, self.path)
            self._json(500, {"detail": "Internal Server Error"})

    def _inject_status(self, key: str) -> None:
        """Answer an injected 429/500/503 instead of the route (nothing is recorded)."""
        status = self.server.injector.status_fault(key)
        if status is None:
            return
        headers = {}
        if status == 429:
            retry = self.server.injector.faults.retry_after
            headers["retry-after"] = f"{retry:g}"
            headers.update(agents_server.rate_headers(0, 0, time.time() + retry))
        raise ApiError(status, _FAULT_DETAIL[status], headers)

    def _drop(self) -> None:
        """Close the connection with no answer at all: the client sees it disconnect."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _control(self, method: str, path: str, body: bytes) -> None:
        """The test-only routes: stats, and reading/replacing the live faults."""
        injector = self.server.injector
        if path == "/_emulator/stats" and method == "GET":
            return self._json(200, self._stats())
        if path == "/_emulator/faults" and method == "GET":
            return self._json(200, injector.faults.model_dump())
        if path == "/_emulator/faults" and method == "POST":
            try:
                faults = Faults.model_validate(self._parse_json(body) or {})
            except ValidationError as err:
                raise ApiError(400, f"faults: {err}") from None
            injector.set(faults)
            return self._json(200, faults.model_dump())
        raise ApiError(404, "Not Found")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _route(self, method: str, path: str) -> tuple[Callable[..., Any], re.Match[str], str]:
        allowed = False
        for route_method, pattern, key, name in ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                return getattr(self, name), match, key
            allowed = allowed or bool(match)
        raise ApiError(405, "Method Not Allowed") if allowed else ApiError(404, "Not Found")

    def _authenticate(self) -> None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.server.count("unauthorized")
            raise ApiError(401, "Invalid or missing bearer token")

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if status == 204 else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    @staticmethod
    def _parse_json(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "body: invalid JSON") from None

    def _stats(self) -> dict[str, Any]:
        return self.server.stats()

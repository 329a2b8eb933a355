"""The Dream Machine API's routes: ping, credits, concepts, generations (create, get, list,
delete, upscale, audio) and the rendered assets.

`ROUTES` maps a method and path to a `DreamMachineRoutes` method; the request plumbing
(routing, authentication, injected status faults, JSON answers) is server.py's handler,
which inherits these. Each route answers ``(status, payload)`` or raises `ApiError`.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from reelflow.emulator import conformance, spec
from reelflow.emulator.account import InsufficientCredits, LimitExceeded, parse_asset_name
from reelflow.emulator.assets import DropConnection, send_file

__all__ = ["ROUTES", "ApiError", "DreamMachineRoutes"]

NOT_SUPPORTED = "not supported by the emulator yet"
_DEFAULT_LIMIT, _MAX_LIMIT = 10, 1000


class ApiError(Exception):
    """An error answer: HTTP status, the detail text and extra headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None,
                 body: Any = None):
        self.status, self.detail, self.headers = status, detail, headers or {}
        self.body = body if body is not None else {"detail": detail}
        super().__init__(f"{status} {detail}")


Route = tuple[str, re.Pattern[str], str, str]  # method, path, route key, handler name
_ID = r"(?P<id>[^/]+)"
ROUTES: list[Route] = [(m, re.compile(f"^{p}$"), key, fn) for m, p, key, fn in [
    ("GET", "/ping", "ping", "_ping"),
    ("GET", "/credits", "credits", "_credits"),
    ("GET", "/generations/concepts/list", "concepts", "_concepts"),
    ("GET", "/generations", "list", "_list"),
    ("POST", "/generations", "create", "_create"),
    ("POST", "/generations/video", "create", "_create"),
    ("POST", "/generations/(?:image|image/reframe|video/reframe|video/modify)",
     "unsupported", "_unsupported"),
    ("GET", f"/generations/{_ID}", "get", "_get"),
    ("DELETE", f"/generations/{_ID}", "delete", "_delete"),
    ("POST", f"/generations/{_ID}/upscale", "upscale", "_upscale"),
    ("POST", f"/generations/{_ID}/audio", "audio", "_audio"),
]]


class DreamMachineRoutes:
    """The route handlers of server.py's request handler (a mixin: ``self`` is the handler,
    ``self.server`` the EmulatorServer, ``self._parse_json`` the handler's body reader)."""

    def _ping(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        return 200, {"message": "pong"}

    def _credits(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        return 200, {"credit_balance": self.server.account.credit_balance()}

    def _concepts(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        return 200, list(spec.CONCEPTS)

    def _unsupported(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        if self.server.conformance:  # a stand-in: never rendered
            kind = "image" if "/image" in self.path else "video"
            return 201, conformance.dream_machine_generation(str(uuid.uuid4()), kind)
        raise ApiError(400, f"{self.path.split('?')[0]}: {NOT_SUPPORTED}")

    def _create(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        payload = self._parse_json(body)
        if isinstance(payload, dict) and payload.get("generation_type") not in (None, "video"):
            raise ApiError(400, f"generation_type {payload['generation_type']!r}: {NOT_SUPPORTED}")
        injector, account = self.server.injector, self.server.account
        if injector.drop_before_create():
            raise DropConnection()
        strict = not self.server.conformance
        spec.validate_video_request(payload, strict=strict)  # refused: draws no failure
        try:
            record = account.create(payload, latency=injector.latency(account.latency),
                                    failure=lambda: injector.failure_for(payload.get("prompt")),
                                    limits=injector.faults, strict=strict)
        except LimitExceeded as err:
            injector.count("limit_429")
            raise ApiError(429, err.detail, {"retry-after": str(err.retry_after)}) from None
        except InsufficientCredits as err:
            injector.count("insufficient_credits")
            raise ApiError(402, err.args[0]) from None
        account.prefetch_images(record)
        if injector.drop_after_create():
            raise DropConnection()  # recorded and billed; the client never hears of it
        if injector.faults.create_answer_delay:
            time.sleep(injector.faults.create_answer_delay)  # recorded; the answer is late
        # A create always answers "queued", as the API does; rendering stays lazy.
        return 201, account.public(record, self.server.base_url, block=False, fresh=True)

    def _get(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        account = self.server.account
        return 200, account.public(account.record(match["id"]), self.server.base_url,
                                   block=True)

    def _list(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        low = 0 if self.server.conformance else 1
        limit = spec.query_int(query, "limit", _DEFAULT_LIMIT, low, _MAX_LIMIT)
        offset = spec.query_int(query, "offset", 0, 0, None)
        account = self.server.account
        records = account.records()
        page = records[offset:offset + limit]
        generations = [account.public(r, self.server.base_url, block=False) for r in page]
        return 200, {"generations": generations, "count": len(records),
                     "has_more": offset + len(page) < len(records),
                     "limit": limit, "offset": offset}

    def _delete(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        self.server.account.delete(match["id"])
        return 204, None

    def _upscale(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        return self._revise(match["id"], "upscale_video", body)

    def _audio(self, match: re.Match[str], query: dict, body: bytes) -> tuple[int, Any]:
        return self._revise(match["id"], "add_audio", body)

    def _revise(self, gen_id: str, kind: str, body: bytes) -> tuple[int, Any]:
        account, injector = self.server.account, self.server.injector
        try:
            record = account.revise(gen_id, kind, self._parse_json(body) or {},
                                    latency=injector.latency(account.latency),
                                    limits=injector.faults)
        except InsufficientCredits as err:
            injector.count("insufficient_credits")
            raise ApiError(402, err.args[0]) from None
        return 201, account.public(record, self.server.base_url, block=False)

    # -- assets ------------------------------------------------------------------------

    def _asset(self, name: str, *, head: bool) -> None:
        """Serve a rendered clip or thumbnail, rendering it first if it is due."""
        parsed = parse_asset_name(name)
        if parsed is None:
            raise ApiError(404, "Not Found")
        gen_id, rev, ext = parsed
        account = self.server.account
        path = account.asset_path(gen_id, rev, ext)
        if not path.exists():
            record = account.asset_due(gen_id, rev)
            if not account.ensure_rendered(record, rev, wait=account.render_wait):
                raise ApiError(503, "asset is still rendering")
        fault = None
        if ext == "mp4" and not head:  # download faults hit clips, not thumbnails
            injector = self.server.injector
            fault = "truncate" if injector.truncate_download() else \
                "corrupt" if injector.corrupt_download() else None
        try:
            send_file(self, path, "video/mp4" if ext == "mp4" else "image/jpeg", head=head,
                      fault=fault)
        except FileNotFoundError:  # deleted in between
            raise ApiError(404, "Not Found") from None

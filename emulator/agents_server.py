"""The Agents API's routes, served by the same HTTP server under ``/v1``.

The luma-agents SDK's base URL is ``<emulator>/v1`` (its default path shape,
``https://agents.lumalabs.ai/v1``); the Dream Machine API stays at the root and under
``/dream-machine/v1``, so the two never share a path. Output URLs
(``/v1/outputs/...``) and presigned uploads (``/v1/uploads/...``) need no token but carry
an expiry and an HMAC signature, like S3 presigned URLs: an expired one is refused 403.

In conformance mode (conformance.py) unknown ids answer stand-ins instead of 404 and only
the schema is validated.
"""

from __future__ import annotations

import email.parser
import email.policy
import math
import re
import time
from typing import Any

from reelflow.emulator import conformance, spec
from reelflow.emulator._util import NotFound
from reelflow.emulator.account import _iso
from reelflow.emulator.agents_files import FileInvalid
from reelflow.emulator.agents_spec import AgentsInvalid
from reelflow.emulator.assets import DropConnection, send_file
from reelflow.emulator.limits import LimitExceeded

__all__ = ["PREFIX", "dispatch", "rate_headers"]

PREFIX = "/v1"
_ID = r"(?P<id>[^/]+)"
_ROUTES = [(m, re.compile(f"^{p}$"), key, fn) for m, p, key, fn in [
    ("POST", "/generations", "agents_create", "_create"),
    ("GET", f"/generations/{_ID}", "agents_get", "_get"),
    ("POST", "/files", "files", "_file_create"),
    ("GET", "/files", "files", "_file_list"),
    ("GET", f"/files/{_ID}", "files", "_file_get"),
    ("DELETE", f"/files/{_ID}", "files", "_file_delete"),
    ("POST", f"/files/{_ID}/complete", "files", "_file_complete"),
]]
_OUTPUT_RE = re.compile(r"^/outputs/(?P<id>[0-9a-f-]{36})-(?P<n>\d+)\.(?P<ext>mp4|png|jpg|zip)$")
_UPLOAD_RE = re.compile(r"^/uploads/(?P<id>[0-9a-f-]{36})$")
_TYPES = {"mp4": "video/mp4", "png": "image/png", "jpg": "image/jpeg",
          "zip": "application/zip"}
#: The two layers of a type=layering output, front to back.
_LAYERS = [{"index": 0, "label": "subject", "alpha_hint": "soft",
            "description": "the subject of the source image"},
           {"index": 1, "label": "background", "alpha_hint": "none",
            "description": "the background of the source image"}]


def rate_headers(limit: int | None, remaining: int, reset: float) -> dict[str, str]:
    """The X-RateLimit-* headers of an answer (none when no limit is configured)."""
    if limit is None:
        return {}
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset": str(math.ceil(reset))}


def dispatch(handler: Any, method: str, path: str, query: dict, body: bytes) -> None:
    """Serve one request under /v1 (``path`` without the prefix)."""
    api = _Agents(handler)
    if path.startswith("/outputs/") and method in ("GET", "HEAD"):
        return api.output(path, query, head=method == "HEAD")
    if path.startswith("/uploads/") and method == "PUT":
        return api.upload(path, query, body)
    allowed = False
    for route_method, pattern, key, name in _ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            handler.server.count(key)
            if handler.headers.get("x-stainless-retry-count", "0") not in ("", "0"):
                handler.server.count("retries")
                if key == "agents_create":  # no idempotency key: a second paid request
                    handler.server.injector.note_create_retry()
            handler._authenticate()
            handler._inject_status(key)
            status, payload, headers = getattr(api, name)(match, query, body)
            return handler._json(status, payload, headers)
        allowed = allowed or bool(match)
    raise handler.api_error(405 if allowed else 404,
                            "Method Not Allowed" if allowed else "Not Found")


class _Agents:
    """The route handlers of one request."""

    def __init__(self, handler: Any):
        self.h = handler
        self.server = handler.server
        self.account = handler.server.agents
        self.conformance = handler.server.conformance

    def _error(self, status: int, problems: list[str]) -> Exception:
        return self.h.api_error(status, "; ".join(problems), body={
            "detail": "; ".join(problems), "errors": [{"message": p} for p in problems]})

    # -- generations -------------------------------------------------------------------

    def _create(self, match, query, body) -> tuple[int, Any, dict]:
        payload = self.h._parse_json(body)
        video = payload.get("video") if isinstance(payload, dict) else None
        if isinstance(video, dict) and video.get("hdr") and not self.server.hdr_access:
            raise self._error(403, ["video.hdr: HDR access is not enabled for this account"])
        injector = self.server.injector
        if injector.drop_before_create():
            raise DropConnection()
        limits = injector.faults

        def failure():
            decision = injector.failure_for((payload or {}).get("prompt"))
            if decision is None:
                return None
            code = "content_moderated" if "moderation" in decision.reason else \
                limits.fail_code
            return code, "processing" if code == "content_moderated" else "done"

        try:
            record = self.account.create(payload, latency=injector.latency(
                self.account.latency), strict=not self.conformance, failure=failure,
                limits=limits)
        except AgentsInvalid as err:
            raise self._error(err.status, err.problems) from None
        except LimitExceeded as err:
            injector.count("limit_429")
            reset = time.time() + err.retry_after
            headers = {"Retry-After": str(err.retry_after),
                       **rate_headers(limits.creates_per_minute or limits.max_concurrent,
                                      0, reset)}
            raise self.h.api_error(429, err.detail, headers) from None
        if injector.drop_after_create():
            raise DropConnection()
        if limits.create_answer_delay:
            time.sleep(limits.create_answer_delay)
        now = time.time()
        recent = [t for t in self.account.state().get("recent_creates", []) if now - t < 60]
        headers = rate_headers(limits.creates_per_minute,
                               (limits.creates_per_minute or 0) - len(recent),
                               min(recent, default=now) + 60)
        return 201, self._generation(record, fresh=True), headers

    def _get(self, match, query, body) -> tuple[int, Any, dict]:
        try:
            record = self.account.record(match["id"])
        except NotFound:
            if not self.conformance:
                raise self._error(404, [f"Generation {match['id']} not found"]) from None
            return 200, conformance.agents_generation(match["id"]), {}
        return 200, self._generation(record), {}

    def _generation(self, record: dict[str, Any], fresh: bool = False) -> dict[str, Any]:
        state = "queued" if fresh else self.account.state_of(record, block=True)
        failure = record.get("failure") if state == "failed" else None
        output = None
        if state == "completed":
            output = [{"type": kind, "url": self._output_url(record["id"], i, ext)}
                      for i, (kind, ext) in enumerate(self.account.outputs_of(record))]
            if record["type"] == "layering":
                for i, item in enumerate(output):
                    item["layer"] = _LAYERS[i]
        return {"id": record["id"], "created_at": record["created_at"],
                "model": record["model"], "type": record["type"], "state": state,
                "failure_code": failure["code"] if failure else None,
                "failure_reason": failure["reason"] if failure else None, "output": output}

    def _output_url(self, gen_id: str, index: int, ext: str) -> str:
        path = f"/outputs/{gen_id}-{index}.{ext}"
        expires = math.ceil(time.time() + self.server.output_url_ttl)
        return (f"{self.server.base_url}{PREFIX}{path}?expires={expires}"
                f"&signature={self.account.sign(path, expires)}")

    def output(self, path: str, query: dict, *, head: bool) -> None:
        """A presigned output download: signature and expiry checked, no token."""
        self.server.count("agents_output")
        match = _OUTPUT_RE.match(path)
        refused = self.account.signed_ok(path, _q(query, "expires"), _q(query, "signature")) \
            if match else "Not Found"
        if refused is not None:
            raise self.h.api_error(403 if match else 404, refused)
        file = self.account.output_path(match["id"], int(match["n"]), match["ext"])
        fault = None
        if match["ext"] == "mp4" and not head:
            injector = self.server.injector
            fault = "truncate" if injector.truncate_download() else \
                "corrupt" if injector.corrupt_download() else None
        try:
            send_file(self.h, file, _TYPES[match["ext"]], head=head, fault=fault)
        except FileNotFoundError:
            raise self.h.api_error(404, "Not Found") from None

    # -- files -------------------------------------------------------------------------

    def _file_create(self, match, query, body) -> tuple[int, Any, dict]:
        ctype = self.h.headers.get("Content-Type") or ""
        try:
            if ctype.startswith("multipart/form-data"):
                fields, data = _multipart(ctype, body)
                if data is None:
                    raise FileInvalid(422, ["file: the multipart upload has no file part"])
                record = self.account.create_file(fields, data)
                answer = self.account.file_public(record)  # answered pending, as documented
                return 201, {"id": record["id"], "file": answer, "state": "pending",
                             "upload": None}, {}
            fields = self.h._parse_json(body)
            if not isinstance(fields, dict):
                raise FileInvalid(422, ["body: must be a JSON object"])
            record = self.account.create_file(dict(fields), None)
        except FileInvalid as err:
            raise self._error(err.status, err.problems) from None
        path = f"/uploads/{record['id']}"
        expires = record["upload_expires"]
        upload = {"url": f"{self.server.base_url}{PREFIX}{path}?expires={expires}"
                         f"&signature={self.account.sign(path, expires)}",
                  "method": "PUT", "headers": {"Content-Type": record["mime_type"]},
                  "expires_at": _iso(expires)}
        public = self.account.file_public(record)
        return 201, {"id": record["id"], "file": public, "state": public["state"],
                     "upload": upload}, {}

    def upload(self, path: str, query: dict, body: bytes) -> None:
        """The presigned PUT of a file's bytes."""
        self.server.count("agents_upload")
        match = _UPLOAD_RE.match(path)
        refused = self.account.signed_ok(path, _q(query, "expires"), _q(query, "signature")) \
            if match else "Not Found"
        if refused is not None:
            raise self.h.api_error(403 if match else 404, refused)
        try:
            self.account.receive_upload(match["id"], body)
        except FileInvalid as err:
            raise self._error(err.status, err.problems) from None
        self.h._json(200, {})

    def _file_get(self, match, query, body) -> tuple[int, Any, dict]:
        return 200, self._file(match["id"], lambda: None), {}

    def _file_complete(self, match, query, body) -> tuple[int, Any, dict]:
        try:
            return 200, self._file(match["id"], self.account.complete_file), {}
        except FileInvalid as err:
            raise self._error(err.status, err.problems) from None

    def _file(self, file_id: str, action) -> dict[str, Any]:
        try:
            record = action(file_id) if action.__name__ != "<lambda>" else \
                self.account.file_record(file_id)
        except NotFound:
            if not self.conformance:
                raise self._error(404, [f"File {file_id} not found"]) from None
            return conformance.agents_file(file_id)
        return self.account.file_public(record)

    def _file_list(self, match, query, body) -> tuple[int, Any, dict]:
        limit = spec.query_int(query, "limit", 25, 1, 100)
        try:
            return 200, self.account.list_files(_q(query, "cursor") or None, limit,
                                                _q(query, "purpose") or None,
                                                _q(query, "state") or None,
                                                strict=not self.conformance), {}
        except FileInvalid as err:
            raise self._error(err.status, err.problems) from None

    def _file_delete(self, match, query, body) -> tuple[int, Any, dict]:
        try:
            self.account.delete_file(match["id"])
        except NotFound:
            if not self.conformance:
                raise self._error(404, [f"File {match['id']} not found"]) from None
        return 204, None, {}


def _q(query: dict, name: str) -> str:
    return (query.get(name) or [""])[-1]


def _multipart(ctype: str, body: bytes) -> tuple[dict[str, Any], bytes | None]:
    """The form fields and the ``file`` part's bytes of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    fields: dict[str, Any] = {}
    data = None
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name == "file":
            data = payload
            fields.setdefault("filename", part.get_filename())
            if part.get_content_type() not in ("application/octet-stream", "text/plain"):
                fields.setdefault("mime_type", part.get_content_type())
        elif name:
            fields[name] = payload.decode("utf-8", "replace")
    return fields, data


"""Conformance mode: what the emulator answers where a schema-level mock server would.

The SDKs' generated suites (``tests/api_resources`` of the lumaai and luma-agents
sdists) are written for a mock server built from the API's schema: they GET, DELETE,
upscale and complete made-up ids ("id", a fixed UUID) and send every optional field at
once, combinations the real service refuses. ``Emulator(conformance=True)`` (``reelflow
emulator --conformance``) serves them: the schema (types, enums, required fields) is
still enforced, the cross-field rules and reference checks are not (a bad reference
fails the generation instead), and an id the account does not know answers one of the
stand-ins below (always ``failed``, saying why) instead of 404. Never for real runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["STAND_IN_REASON", "agents_file", "agents_generation", "dream_machine_generation"]

#: failure_reason / failure text of every stand-in.
STAND_IN_REASON = "no such id in this emulator account (conformance mode stand-in)"
_EPOCH = "1970-01-01T00:00:00.000000Z"


def dream_machine_generation(gen_id: str, generation_type: str = "video") -> dict[str, Any]:
    """A failed Dream Machine Generation for an unknown id or an unemulated route."""
    return {"id": gen_id, "generation_type": generation_type, "state": "failed",
            "failure_reason": STAND_IN_REASON, "created_at": _EPOCH, "model": None,
            "assets": None, "request": None}


def agents_generation(gen_id: str) -> dict[str, Any]:
    """A failed Agents API Generation for an unknown id."""
    return {"id": gen_id, "created_at": _EPOCH, "model": "ray-3.2", "type": "video",
            "state": "failed", "failure_code": "output_not_found",
            "failure_reason": STAND_IN_REASON, "output": None}


def agents_file(file_id: str) -> dict[str, Any]:
    """A failed Agents API File for an unknown id."""
    return {"id": file_id, "created_at": _EPOCH, "mime_type": "application/octet-stream",
            "purpose": "input", "size_bytes": 0, "state": "failed", "deleted_at": None,
            "expires_at": None, "failure_reason": STAND_IN_REASON, "filename": None,
            "user_id": None}

"""Fault injection for the emulator: what to break, how often, and the counters of what broke.

A :class:`Faults` model configures one run (``Emulator(faults=...)``, ``set_faults``,
``POST /_emulator/faults``, ``reelflow emulator --faults FILE``). Every probabilistic
decision comes from one ``random.Random(seed)`` behind a lock, so a sequential run with
the same seed injects the same faults. The account limits (concurrency, creates per
minute, credits) are not random: the account enforces them from its persisted state.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["FailureDecision", "FaultInjector", "Faults", "load_faults",
           "JOB_FAILED", "MODERATION_FAILED", "INPUT_FRAMES_FAILED"]

Probability = Annotated[float, Field(ge=0.0, le=1.0)]

#: Route keys of the API (server.py's route table) that status faults may target.
ROUTE_KEYS = ("ping", "credits", "concepts", "list", "create", "get", "delete", "upscale",
              "audio", "unsupported", "agents_create", "agents_get", "files")

#: failure_reason of a generic failure (Luma docs: "Job failed"; a resubmit usually works).
JOB_FAILED = "Job failed"
#: failure_reason of a prompt refused by moderation (Luma's errors page: "Advanced prompt
#: moderation failed"; the API prefixes such reasons with "400: ").
MODERATION_FAILED = "400: Advanced prompt moderation failed"
#: failure_reason when a keyframe image cannot be fetched or read (Luma's errors page:
#: "Failed to read user input frames").
INPUT_FRAMES_FAILED = "400: Failed to read user input frames"


class Faults(BaseModel):
    """What the emulator breaks on purpose. Probabilities are 0..1 per request."""

    model_config = ConfigDict(extra="forbid")

    latency_jitter: float = Field(0.0, ge=0.0, description=(
        "Seconds: each generation's latency is latency +- uniform(0, jitter), at least 0."))
    rate_429: Probability = Field(0.0, description=(
        "Answer 429 with retry-after (nothing recorded)."))
    rate_500: Probability = Field(0.0, description="Answer 500 (nothing recorded).")
    rate_503: Probability = Field(0.0, description="Answer 503 (nothing recorded).")
    retry_after: float = Field(1.0, ge=0.0, description=(
        "Seconds in the retry-after header of injected 429s."))
    status_routes: list[str] | None = Field(None, description=(
        "Route keys (create, get, list, delete, upscale, audio, credits, ping, concepts; "
        "the Agents API's agents_create, agents_get, files) that may get injected "
        "429/500/503; None: every API route."))
    drop_before_create: Probability = Field(0.0, description=(
        "Close a create's connection without an answer, recording nothing."))
    drop_after_create: Probability = Field(0.0, description=(
        "Record (and bill) the generation, then close the connection without an answer."))
    create_answer_delay: float = Field(0.0, ge=0.0, le=600.0, description=(
        "Seconds a create's answer is held after the generation is recorded and billed (a "
        "slow link): a client killed meanwhile has paid without learning the id."))
    moderation_pattern: str | None = Field(None, description=(
        "Regex (case-insensitive search): matching prompts end failed on moderation."))
    fail_rate: Probability = Field(0.0, description=(
        "A new generation ends failed with 'Job failed' (decided at create, persisted)."))
    fail_first: int = Field(0, ge=0, description=(
        "The first N new generations end failed like fail_rate's (fail_code), whatever the "
        "draw: a deterministic failure, e.g. one rate_limited generation that a retry cures."))
    fail_code: str = Field("generation_failed", description=(
        "Agents API: the failure_code of a generation failed by fail_rate (generation_failed, "
        "rate_limited, output_not_found, ...)."))
    truncate_download_rate: Probability = Field(0.0, description=(
        "An asset answer stops early although Content-Length says the full size."))
    corrupt_download_rate: Probability = Field(0.0, description=(
        "An asset answer has bytes flipped in its container header (full length)."))
    max_concurrent: int | None = Field(None, ge=1, description=(
        "Generations queued/dreaming at once; a create beyond gets 429 (real API: ~10)."))
    creates_per_minute: int | None = Field(None, ge=1, description=(
        "Accepted creates in any 60 s window; beyond: 429 with retry-after (real API: ~20)."))
    enforce_credits: bool = Field(False, description=(
        "Refuse a create that costs more than the balance with 402 'Insufficient credits'."))

    @field_validator("status_routes")
    @classmethod
    def _known_routes(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(ROUTE_KEYS))
        if unknown:
            raise ValueError(f"unknown route keys {unknown}; known: {', '.join(ROUTE_KEYS)}")
        return value

    @field_validator("fail_code")
    @classmethod
    def _known_code(cls, value: str) -> str:
        from reelflow.emulator.agents_spec import FAILURE_CODES

        if value not in FAILURE_CODES:
            raise ValueError(f"unknown failure_code {value!r}; known: {', '.join(FAILURE_CODES)}")
        return value

    @field_validator("moderation_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as err:
                raise ValueError(f"not a valid regular expression: {err}") from None
        return value

    @classmethod
    def account_limits(cls, **overrides: Any) -> Faults:
        """The real account's limits: 10 in progress, 20 creates a minute, credits enforced."""
        values = {"max_concurrent": 10, "creates_per_minute": 20, "enforce_credits": True}
        return cls(**{**values, **overrides})


def load_faults(path: str | Path) -> Faults:
    """Read a Faults file: JSON (``.json``) or YAML (anything else; JSON is YAML too)."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    return Faults.model_validate(data or {})


class FailureDecision(BaseModel):
    """A failure decided at create time and persisted with the generation."""

    reason: str
    #: "dreaming": visible once the generation leaves the queue (moderation runs first);
    #: "done": visible when it would have completed (the job ran and failed).
    when: str


class FaultInjector:
    """The live configuration plus a seeded RNG and counters of injected faults."""

    def __init__(self, faults: Faults | None = None, seed: int = 0):
        self._lock = threading.Lock()
        self._faults = faults or Faults()
        self._pattern = self._compile(self._faults)
        self._random = random.Random(seed)
        self._injected: Counter[str] = Counter()
        self.create_retries = 0

    @staticmethod
    def _compile(faults: Faults) -> re.Pattern[str] | None:
        pattern = faults.moderation_pattern
        return re.compile(pattern, re.IGNORECASE) if pattern else None

    @property
    def faults(self) -> Faults:
        return self._faults

    def set(self, faults: Faults) -> None:
        """Replace the configuration; counters and the RNG carry on."""
        with self._lock:
            self._faults, self._pattern = faults, self._compile(faults)

    def count(self, name: str) -> None:
        with self._lock:
            self._injected[name] += 1

    def injected(self) -> dict[str, int]:
        with self._lock:
            return dict(self._injected)

    def note_create_retry(self) -> None:
        with self._lock:
            self.create_retries += 1

    def _draw(self, name: str, probability: float) -> bool:
        """One decision; counts the fault when it fires. Callers hold no lock."""
        if probability <= 0:
            return False
        with self._lock:
            fired = self._random.random() < probability
            if fired:
                self._injected[name] += 1
        return fired

    def status_fault(self, route: str) -> int | None:
        """429, 500 or 503 to answer instead of handling ``route``, or None."""
        faults = self._faults
        if faults.status_routes is not None and route not in faults.status_routes:
            return None
        for status, name, rate in ((429, "rate_429", faults.rate_429),
                                   (500, "rate_500", faults.rate_500),
                                   (503, "rate_503", faults.rate_503)):
            if self._draw(name, rate):
                return status
        return None

    def drop_before_create(self) -> bool:
        return self._draw("drop_before_create", self._faults.drop_before_create)

    def drop_after_create(self) -> bool:
        return self._draw("drop_after_create", self._faults.drop_after_create)

    def truncate_download(self) -> bool:
        return self._draw("truncate_download", self._faults.truncate_download_rate)

    def corrupt_download(self) -> bool:
        return self._draw("corrupt_download", self._faults.corrupt_download_rate)

    def latency(self, base: float) -> float:
        """The latency of one new generation or revision: base +- jitter, never negative."""
        jitter = self._faults.latency_jitter
        if jitter <= 0:
            return base
        with self._lock:
            offset = self._random.uniform(-jitter, jitter)
        return max(0.0, base + offset)

    def failure_for(self, prompt: Any) -> FailureDecision | None:
        """Moderation (pattern on the prompt) first, then the generic fail_rate draw."""
        if self._pattern is not None and isinstance(prompt, str) and self._pattern.search(prompt):
            self.count("moderation")
            return FailureDecision(reason=MODERATION_FAILED, when="dreaming")
        with self._lock:
            first = self._injected["fail_first"] < self._faults.fail_first
            if first:
                self._injected["fail_first"] += 1
        if first or self._draw("fail_rate", self._faults.fail_rate):
            return FailureDecision(reason=JOB_FAILED, when="done")
        return None

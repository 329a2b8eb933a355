"""The story of one render, kept as it happens, told whatever the outcome.

A ``RenderStory`` is filled in by the render flow step by step (plan, balance, each
shot's outcome, the output); when the run ends, completed or failed, it holds what the
summary, the cost ledger, the events and the tags tell. Each shot's attempts (every
paid create, with its generation id, cost, outcome and dream time) are read from the
spend ledger, which records them as they happen: the summary can name every billed
attempt, also of a shot that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from reelflow.flows.stills import StillResult

__all__ = ["Attempt", "RenderReport", "RenderStory", "ShotResult", "one_line"]


class Attempt(BaseModel):
    """One paid call made for a shot in this run (a create, an upscale or an audio step)."""

    generation_id: str
    step: str = "generate"
    #: "completed", "failed" (resubmitted or given up), "refused" (moderation) or "dreaming".
    outcome: str
    reason: str | None = None
    #: Billed by the account: charged at create and given back when the generation fails
    #: (as the emulator does; the summary checks it against the balance).
    billed: bool = True
    #: The call's price (what it costs when billed).
    cost_usd: float = 0.0
    dream_s: float | None = None


class ShotResult(BaseModel):
    """How one shot was produced in this run."""

    id: str
    kind: Literal["generate", "card"]
    #: "failed": no clip (after its attempts); "pending": the render stopped before it finished.
    status: Literal["paid", "cached", "card", "refused", "failed", "pending"]
    model: str | None = None
    generation_id: str | None = None
    sha256: str | None = None
    length_s: float
    #: What this run paid for the shot: its billed attempts (failed ones are refunded).
    cost_usd: float = 0.0
    failure_reason: str | None = None
    attempts: list[Attempt] = []
    #: Seconds the shot's generations dreamt in this run (sum over its attempts).
    dream_s: float | None = None


class RenderReport(BaseModel):
    """What a render produced and what it cost."""

    output: Path
    profile: str
    duration_s: float
    frames: int
    shots: int
    generated: int
    cached: int
    cost_usd: float
    encoded_pieces: int
    reused_pieces: int
    shot_results: list[ShotResult]
    #: The stills shots start from (``flows.stills.StillResult``): paid, cached or refused
    #: in this run; what they paid is in ``cost_usd``.
    stills: list[StillResult] = []
    poster: Path | None = None
    contact_sheet: Path | None = None
    otio: Path | None = None
    mezzanine: Path | None = None
    #: ray-3.2 EXR exports delivered beside the output (``<stem>.exr/<shot id>.exr.zip``).
    exr: list[Path] = []
    #: Where the output was published when the list came from S3 (``s3://``), else None.
    output_uri: str | None = None
    flow_run_url: str | None = None
    flow_s: float = 0.0
    #: The account's credit balance (USD cents) before and after, where the API offers it.
    balance_before: float | None = None
    balance_after: float | None = None


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and first line (``ModerationRefused: shot knife: ...``)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class RenderStory:
    """What is known about a render so far; the flow fills it in as it goes."""

    sequence: str
    profile: str
    title: str = ""
    policy: str | None = None
    started_at: datetime = field(default_factory=datetime.now)
    plan: object | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    #: shot id -> Clip, Refused or Failed (flows.generation), as each shot finishes.
    outcomes: dict = field(default_factory=dict)
    shots: list[ShotResult] = field(default_factory=list)
    items: list = field(default_factory=list)
    balance_before: float | None = None
    balance_after: float | None = None
    report: RenderReport | None = None
    error: str | None = None
    #: The store the clips are in (for links and the ledger), and the Luma credentials.
    store: object | None = None
    credentials: object | None = None
    #: The Prefect flow run (its paid attempts are this run's in the ledger).
    run_id: str | None = None
    #: shot id -> its ShotResult, made as the shot finishes.
    results: dict[str, ShotResult] = field(default_factory=dict)
    #: The stills made or reused for the shots (``flows.stills.StillResult``).
    stills: list = field(default_factory=list)

    def record(self, shot_id: str, outcome, ledger) -> ShotResult:
        """A shot finished: keep its outcome and its row (attempts read from ``ledger``)."""
        shot = next(s for s in self.plan.shots if s.id == shot_id)
        self.outcomes[shot_id] = outcome
        self.results[shot_id] = shot_result(shot, outcome, run_attempts(shot.request, ledger, self.run_id))
        return self.results[shot_id]

    def shot_results(self) -> list[ShotResult]:
        """Every shot of the plan in order: its row, or "pending" when it never finished."""
        if self.plan is None:
            return []
        self.shots = [self.results.get(shot.id) or shot_result(shot, None, [])
                      for shot in self.plan.shots]
        return self.shots

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def cost_usd(self) -> float:
        """What this run paid: the billed attempts of every shot, and the stills it paid for."""
        return round(sum(s.cost_usd for s in self.shots)
                     + sum(s.cost_usd for s in self.stills if s.status == "paid"), 2)

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.shots)

    def outcome_tag(self) -> str:
        """``completed`` or ``failed``: the run's outcome for tags and events."""
        return "failed" if self.failed else "completed"


def _seconds(start: str | None, end: str | None) -> float | None:
    if not (start and end):
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)


def run_attempts(request, ledger, run_id: str | None) -> list[Attempt]:
    """Every paid call this run made for ``request`` (base generation and steps), from the
    ledger's history, in order."""
    attempts = []
    for key, step in request.paid_keys():
        entry = ledger.read(key)
        for paid in (entry.history if entry else []):
            if run_id is None or paid.run_id != run_id:
                continue
            refused = paid.state == "failed" and _is_moderation(paid.failure_reason)
            attempts.append(Attempt(billed=paid.state != "failed",
                generation_id=paid.generation_id, step=step or "generate",
                outcome="refused" if refused else "dreaming" if paid.state == "sent" else paid.state,
                reason=paid.failure_reason, cost_usd=paid.cost_usd,
                dream_s=_seconds(paid.sent_at, paid.ended_at)))
    return attempts


def _is_moderation(reason: str | None) -> bool:
    from reelflow.tasks._generate import is_moderation

    return is_moderation(reason)


def shot_result(shot, outcome, attempts: list[Attempt]) -> ShotResult:
    """One shot's row: its outcome in this run, its attempts and what they cost."""
    from reelflow.flows.generation import Failed, Refused

    if shot.kind == "card":
        return ShotResult(id=shot.id, kind="card", status="card", length_s=shot.length_s)
    dreams = [a.dream_s for a in attempts if a.dream_s is not None]
    common = dict(id=shot.id, kind="generate", model=shot.model, length_s=shot.length_s,
                  attempts=attempts, cost_usd=round(sum(a.cost_usd for a in attempts if a.billed), 2),
                  dream_s=round(sum(dreams), 1) if dreams else None)
    if isinstance(outcome, Refused):
        return ShotResult(status="refused", generation_id=outcome.generation_id,
                          failure_reason=outcome.reason, **common)
    if isinstance(outcome, Failed):
        error = outcome.error
        return ShotResult(status="refused" if outcome.refused else "failed",
                          generation_id=getattr(error, "generation_id", None),
                          failure_reason=outcome.reason, **common)
    if outcome is None:
        return ShotResult(status="pending", **common)
    return ShotResult(status="paid" if outcome.paid else "cached",
                      generation_id=outcome.generation_id, sha256=outcome.sha256, **common)

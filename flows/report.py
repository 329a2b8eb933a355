"""The run summary a user reads in the Prefect UI, completed or failed.

* a markdown artifact: a status line first (what failed and why; paid, cached, spent),
  the output (a link that opens in the browser, and its path to copy), the account's
  balance before and after with what it says about the spend, then one compact row
  per shot (thumbnail, a link to the clip, outcome, every attempt with its generation
  id and whether it was billed or refunded, dream time, cost) and a total row; it
  fits 1600 px;
* a table artifact: the cost ledger, one row per paid call (billed, or refunded when
  it failed) and per reused shot, amounts in USD as "0.00", a total row and the
  account's own figure.

Thumbnails are small data-URI JPEGs, so they show without a file server.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from reelflow.flows.endpoint import credits_text
from reelflow.tasks._ffmpeg import cached_or_made
from reelflow.tasks.deliver import make_poster
from reelflow.tasks.media import default_media_cache
from reelflow.tasks.models import canonical_hash

__all__ = ["artifact_key", "cost_ledger_rows", "reconciliation", "status_line", "summary_markdown",
           "thumbnail"]

THUMB_WIDTH = 96
#: Characters of a prompt shown in the summary (the whole prompt is in the shot list).
PROMPT_EXCERPT = 24
#: Each call's price is rounded to the cent; the account counts hundredths of a cent.
ROUNDING_USD = 0.005
#: What an empty table cell shows ("-" alone is read as a markdown list item).
NONE = "—"


def artifact_key(prefix: str, name: str) -> str:
    """An artifact key (lowercase letters, digits and dashes only)."""
    return f"{prefix}-" + (re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "sequence")


def thumbnail(video: Path, at_s: float) -> str:
    """A small JPEG of one frame as a data URI, made once per clip and time."""
    cache = default_media_cache()
    path = cached_or_made(cache / "thumbs" / f"{canonical_hash([str(video), at_s, THUMB_WIDTH])[:24]}.jpg",
                          cache, lambda tmp: make_poster(video, tmp, at_s=at_s, width=THUMB_WIDTH))
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def _cell(text: str | None, limit: int = 80) -> str:
    text = (text or NONE).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


def _short(generation_id: str | None) -> str:
    return f"`{generation_id[:8]}`" if generation_id else NONE


def status_line(story) -> str:
    """The first line: outcome (what failed and why), then paid, cached, refused, spent."""
    shots = story.shots
    counts = [f"**{story.count(k)}** {k}" for k in ("paid", "cached", "refused", "failed")
              if story.count(k) or k in ("paid", "cached")]
    billed = sum(a.billed for s in shots for a in s.attempts)
    refunded = sum(not a.billed for s in shots for a in s.attempts)
    spent = (f"**spent {_usd(story.cost_usd)}** ({billed} billed call{'s' * (billed != 1)}"
             + (f", {refunded} failed and refunded)" if refunded else ")"))
    head = f"✗ **Failed:** {_cell(story.error, 240)}" if story.failed else "✓ **Completed**"
    return " · ".join([head, *counts, spent])


def _on_balance(shot) -> bool:
    """True when the shot's generations are billed to the account ``credits.get()`` reads
    (the Dream Machine API's; ray-3.2 and uni-1 go through the Agents API)."""
    from reelflow.spec import DREAM_MACHINE_API, MODEL_API

    return MODEL_API.get(shot.model or "", DREAM_MACHINE_API) == DREAM_MACHINE_API


def reconciliation(story) -> str:
    """The account's balance before and after, and whether it matches what the run counted."""
    before, after = story.balance_before, story.balance_after
    if before is None or after is None:
        return ("**Account:** the API offered no credit balance, so the spend above is "
                "reelflow's price estimate for every billed attempt.")
    shots = [s for s in story.shots if _on_balance(s)]
    counted = round(sum(s.cost_usd for s in shots), 2)
    elsewhere = round(story.cost_usd - counted, 2)
    charged = round((before - after) / 100, 2)
    text = (f"**Account:** {credits_text(before)} → {after:.2f}: charged {_usd(charged)}, "
            f"counted {_usd(counted)}")
    if elsewhere:
        text += f" (and {_usd(elsewhere)} on the Agents API, whose balance is not read)"
    calls = max(sum(len(s.attempts) for s in shots), 1)
    if _near(charged, counted, calls):
        return text + (" ✓ reconciles" if round(charged - counted, 2) == 0 else
                       " ✓ reconciles (prices are rounded to the cent per call)")
    kept = sum(a.cost_usd for s in shots for a in s.attempts if not a.billed)
    if kept and _near(charged, counted + kept, calls):
        return (text + f" ⚠ the account kept {_usd(kept)} for failed attempts, which are "
                "counted as refunded: counted with them, it reconciles")
    return (text + f" ⚠ differs by {_usd(charged - counted)} (other spending on the account "
            "during this render, or prices that are estimates: upscale, audio)")


def _near(charged: float, counted: float, calls: int) -> bool:
    """Equal up to each call's price being rounded to the cent."""
    return abs(charged - counted) <= ROUNDING_USD * calls + 1e-9


def _outcome_cell(story, shot) -> str:
    tries = len(shot.attempts)
    if shot.status == "refused":
        handled = {"placeholder": f"`placeholder-{shot.id}`", "skip": "skipped"}
        return f"refused → {handled.get(story.policy, 'render failed')}"
    if shot.status == "failed":
        return (f"failed after {tries} tr{'ies' if tries != 1 else 'y'}" if tries else "failed") + \
            f": {_cell(shot.failure_reason, 28)}"
    if shot.status == "paid" and tries > 1:
        return f"paid after {tries} tries"
    return {"pending": "not started", "card": "title card"}.get(shot.status, shot.status)


def _attempt_cells(shot) -> list[tuple[str, str, str]]:
    """(attempt, dream, cost) per attempt of the shot: one table line each."""
    if not shot.attempts:
        reused = NONE if not shot.generation_id else (
            f"{_short(shot.generation_id)} refused in an earlier run" if shot.status == "refused"
            else f"{_short(shot.generation_id)} reused")
        return [(reused, NONE, _usd(0) if shot.kind == "generate" else NONE)]
    return [(f"{_short(a.generation_id)} {'✓ billed' if a.billed else f'✗ {a.outcome}, refunded'}"
             + ("" if a.step == "generate" else f" ({a.step})"),
             f"{a.dream_s:.1f} s" if a.dream_s is not None else NONE,
             _usd(a.cost_usd if a.billed else 0)) for a in shot.attempts]


def _shot_cell(story, shot, link: str | None) -> str:
    prompt = story.prompts.get(shot.id)
    excerpt = f" · “{_cell(prompt, PROMPT_EXCERPT)}”" if prompt else ""
    clip = f" · [clip]({link})" if link else ""
    return f"**{shot.id}** {shot.length_s:g} s{clip}{excerpt}"


def summary_markdown(story, thumbs: dict[str, str], links: dict[str, str], output: str) -> str:
    """The summary as markdown: status line, output, account, the shot table and its total.

    One line per attempt (a shot resubmitted twice has three), so the table stays narrow.
    """
    dream = [s.dream_s for s in story.shots if s.dream_s is not None]
    lines = [f"# {_cell(story.title, 200)}", "", status_line(story), "", output, "",
             reconciliation(story), "",
             f"**Profile:** {story.profile} · **on moderation:** {story.policy or NONE} · "
             f"**run:** {story.started_at:%Y-%m-%d %H:%M:%S}", "",
             "| | shot | outcome | generation | dream | cost |",
             "|---|---|---|---|---|---|"]
    for shot in story.shots:
        thumb = f"![{shot.id}]({thumbs[shot.id]})" if shot.id in thumbs else ""
        first, *more = _attempt_cells(shot)
        lines.append(f"| {thumb} | {_shot_cell(story, shot, links.get(shot.id))} | "
                     f"{_outcome_cell(story, shot)} | {' | '.join(first)} |")
        lines += [f"| | | | {' | '.join(cells)} |" for cells in more]
    attempts = sum(len(s.attempts) for s in story.shots)
    billed = sum(a.billed for s in story.shots for a in s.attempts)
    outcomes = " · ".join(f"{story.count(k)} {k}" for k in ("paid", "cached", "refused", "failed")
                          if story.count(k) or k in ("paid", "cached"))
    lines.append(f"| | **total** ({len(story.shots)} shots) | {outcomes} | "
                 f"{attempts} attempts, {billed} billed | "
                 f"{f'{sum(dream):.1f} s' if dream else NONE} | **{_usd(story.cost_usd)}** |")
    return "\n".join(lines + _stills_lines(story))


def _stills_lines(story) -> list[str]:
    """The stills the shots start from (in the total above): what each cost, who uses it."""
    if not story.stills:
        return []
    return ["", "**Stills** (Uni-1, made once and used as frames):", ""] + [
        f"- `{s.label}` · {s.model} · {s.status}" + (f" ${s.cost_usd:.4f}" if s.status == "paid" else "")
        + f" · used by {', '.join(s.used_by)}" + (f" · {_cell(s.failure_reason, 60)}" if s.failure_reason else "")
        for s in story.stills]


def cost_ledger_rows(story) -> list[dict[str, str]]:
    """The cost ledger: one row per paid call or reused shot, a total, the account's figure."""
    rows = []
    for shot in story.shots:
        for a in shot.attempts:
            rows.append({"shot": shot.id, "step": a.step, "generation": a.generation_id,
                         "outcome": a.outcome + (f": {a.reason}" if a.reason else ""),
                         "billed": "yes" if a.billed else f"refunded ({a.cost_usd:.2f})",
                         "cost (USD)": f"{a.cost_usd if a.billed else 0:.2f}"})
        if not shot.attempts:
            rows.append({"shot": shot.id, "step": "generate" if shot.kind == "generate" else "card",
                         "generation": shot.generation_id or NONE,
                         "outcome": {"cached": "cached (reused)", "card": "title card"}.get(
                             shot.status, shot.status), "billed": "no", "cost (USD)": "0.00"})
    billed = sum(r["billed"] == "yes" for r in rows)
    rows.append({"shot": "total", "step": NONE, "generation": f"{billed} billed", "outcome": NONE,
                 "billed": str(billed), "cost (USD)": f"{story.cost_usd:.2f}"})
    if story.balance_before is not None and story.balance_after is not None:
        charged = (story.balance_before - story.balance_after) / 100
        rows.append({"shot": "account", "step": NONE,
                     "generation": f"{story.balance_before:.2f} → {story.balance_after:.2f} credits",
                     "outcome": "charged (credits are USD cents)", "billed": NONE,
                     "cost (USD)": f"{charged:.2f}"})
    return rows

"""The run summary a user reads in the Prefect UI.

* a markdown artifact: the shot table (thumbnail, prompt, model, state, cached or paid,
  cost, length, link to the clip) and the totals; thumbnails are small data-URI JPEGs
  so they show without a file server;
* a table artifact: the cost ledger of this run, one row per shot;
* a link artifact to the output.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from reelflow.flows.s3_lists import presigned_link
from reelflow.tasks._ffmpeg import cached_or_made
from reelflow.tasks.deliver import make_poster
from reelflow.tasks.media import default_media_cache
from reelflow.tasks.models import canonical_hash

__all__ = ["publish_summary", "summary_markdown"]

THUMB_WIDTH = 160


def _artifact_key(prefix: str, name: str) -> str:
    # Artifact keys allow lowercase letters, digits and dashes only.
    return f"{prefix}-" + (re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "sequence")


def _thumbnail(video: Path, at_s: float) -> str:
    """A small JPEG of one frame as a data URI, made once per clip and time."""
    cache = default_media_cache()
    path = cached_or_made(cache / "thumbs" / f"{canonical_hash([str(video), at_s])[:24]}.jpg",
                          cache, lambda tmp: make_poster(video, tmp, at_s=at_s, width=THUMB_WIDTH))
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def _cell(text: str | None, limit: int = 80) -> str:
    text = (text or "-").replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_markdown(report, title: str, prompts: dict[str, str], items) -> str:
    """The shot table and the totals, as markdown."""
    sources = {item.label: item for item in items}
    lines = [f"# {_cell(title, 200)}", "", f"**Output:** `{report.output}`  ",
             f"**Duration:** {report.duration_s:.2f} s · **profile:** {report.profile} · "
             f"**paid:** {report.generated} · **cached:** {report.cached} · "
             f"**spent:** ${report.cost_usd:.2f}", "",
             "| # | thumbnail | shot | prompt | model | state | cost | length | clip |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, shot in enumerate(report.shot_results, 1):
        item = sources.get(shot.id)
        thumb = f"![{shot.id}]({_thumbnail(item.source, item.start_s + item.length_s / 2)})" if item else ""
        clip = f"[clip]({item.source.as_uri()})" if item and shot.kind == "generate" else "-"
        state = shot.status if not shot.failure_reason else f"{shot.status}: {_cell(shot.failure_reason, 60)}"
        lines.append(f"| {i} | {thumb} | {shot.id} | {_cell(prompts.get(shot.id))} | "
                     f"{shot.model or '-'} | {state} | ${shot.cost_usd:.2f} | {shot.length_s:g} s | {clip} |")
    return "\n".join(lines)


def publish_summary(report, title: str, sequence: str, prompts: dict[str, str], items) -> None:
    """Attach the summary, the cost ledger and the output link to the current flow run."""
    create_markdown_artifact(key=_artifact_key("render", sequence),
                             markdown=summary_markdown(report, title, prompts, items),
                             description=f"reelflow render of {sequence}")
    create_table_artifact(key=_artifact_key("cost", sequence), description=f"Cost ledger of {sequence}",
                          table=[{"shot": s.id, "kind": s.kind, "model": s.model or "-",
                                  "state": s.status, "generation": s.generation_id or "-",
                                  "cost_usd": s.cost_usd} for s in report.shot_results])
    if report.output_uri:  # published to S3: a link that opens anywhere, for seven days
        link, text = presigned_link(report.output_uri), report.output_uri
    else:
        link, text = Path(report.output).as_uri(), Path(report.output).name
    create_link_artifact(key=_artifact_key("output", sequence), link=link, link_text=text,
                         description=f"Output of {sequence}")

"""The run summary a user reads in the Prefect UI: a markdown artifact with the shot table."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact

__all__ = ["publish_summary", "summary_markdown"]


def _artifact_key(name: str) -> str:
    # Artifact keys allow lowercase letters, digits and dashes only.
    return "render-" + (re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "sequence")


def summary_markdown(report, title: str) -> str:
    """The shot table (state, model, cached or paid, cost, length) and the totals."""
    lines = [f"# {title}", "", f"**Output:** `{report.output}`  ",
             f"**Duration:** {report.duration_s:.2f} s · **profile:** {report.profile} · "
             f"**paid:** {report.generated} · **cached:** {report.cached} · "
             f"**spent:** ${report.cost_usd:.2f}", "",
             "| # | shot | kind | model | state | cost | length | generation |",
             "|---|---|---|---|---|---|---|---|"]
    for i, shot in enumerate(report.shot_results, 1):
        lines.append(f"| {i} | {shot.id} | {shot.kind} | {shot.model or '-'} | {shot.status} | "
                     f"${shot.cost_usd:.2f} | {shot.length_s:g} s | {shot.generation_id or '-'} |")
    return "\n".join(lines)


def publish_summary(report, title: str, sequence: str) -> None:
    """Attach the summary to the current flow run."""
    create_markdown_artifact(key=_artifact_key(sequence), markdown=summary_markdown(report, title),
                             description=f"reelflow render of {sequence}")

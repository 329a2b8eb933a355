"""Telling a render's story when it ends, completed or failed.

``tell_story`` runs in the render flow's ``finally``: it reads the account's balance
after the render, then attaches the summary, the cost ledger and the output artifacts,
tags the flow run with its outcome, profile and policy, and emits
``reelflow.sequence.rendered`` or ``reelflow.sequence.failed``. Each part is attempted
on its own and a part that fails is a warning: telling never hides the render's error.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from reelflow.flows.endpoint import account_balance
from reelflow.flows.links import clip_link, output_link
from reelflow.flows.observe import emit, tag_run
from reelflow.flows.report import artifact_key, cost_ledger_rows, summary_markdown, thumbnail

__all__ = ["tell_story"]

_log = logging.getLogger("reelflow.flows.tell")


def _logger():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run
        return _log


def tell_story(story) -> None:
    """Publish everything the UI shows about ``story``; never raises."""
    for part in (_balance_after, _shots, _publish, _tag, _event):
        try:
            part(story)
        except Exception as exc:  # noqa: BLE001 - one part missing must not hide the rest
            _logger().warning("Could not publish the render's %s: %s", part.__name__.strip("_"), exc)


def _balance_after(story) -> None:
    if story.credentials is not None and story.balance_before is not None:
        story.balance_after = account_balance(story.credentials)
        if story.report is not None:
            story.report.balance_after = story.balance_after


def _shots(story) -> None:
    story.shot_results()


def _thumbs(story) -> dict[str, str]:
    """Per shot, a data-URI thumbnail from the timeline item, or from its clip."""
    thumbs = {}
    for item in story.items:
        thumbs[item.label] = thumbnail(item.source, item.start_s + item.length_s / 2)
    for shot_id, outcome in story.outcomes.items():
        if shot_id not in thumbs and getattr(outcome, "path", None) and outcome.frames:
            thumbs[shot_id] = thumbnail(outcome.path, outcome.frames / outcome.fps / 2)
    return thumbs


def _clip_links(story) -> dict[str, str]:
    links = {}
    for shot in story.shots:
        if shot.sha256 and story.store is not None:
            link = clip_link(story.store, shot.sha256)
            if link:
                links[shot.id] = link
    return links


def _output_markdown(story) -> tuple[str, str | None]:
    """The summary's output line, and the link the output artifact points at (or None)."""
    report = story.report
    if report is None:
        where = f" (it would have been `{story.plan.output}`)" if story.plan is not None else ""
        return f"**Output:** none, the render stopped before writing it{where}.", None
    link, hint = output_link(report.output, report.output_uri)
    path = report.output_uri or str(report.output)
    shown = f"[{Path(path).name}]({link})" if link else Path(path).name
    text = f"**Output:** {shown} · {report.duration_s:.2f} s · `{path}`"
    return (text + (f"  \n{hint}" if hint else "")), link


def _publish(story) -> None:
    sequence = story.sequence
    output, link = _output_markdown(story)
    create_markdown_artifact(key=artifact_key("render", sequence),
                             markdown=summary_markdown(story, _thumbs(story), _clip_links(story), output),
                             description=f"reelflow render of {sequence}: {story.outcome_tag()}")
    create_table_artifact(key=artifact_key("cost", sequence), table=cost_ledger_rows(story),
                          description=f"Cost ledger of {sequence} (USD)")
    if link:
        create_link_artifact(key=artifact_key("output", sequence), link=link,
                             link_text=Path(story.report.output_uri or story.report.output).name,
                             description=f"Output of {sequence}")
    else:
        create_markdown_artifact(key=artifact_key("output", sequence), markdown=output,
                                 description=f"Output of {sequence}")


def _tag(story) -> None:
    tags = [f"outcome:{story.outcome_tag()}", f"profile:{story.profile}"]
    if story.policy:
        tags.append(f"on-moderation:{story.policy}")
    if story.count("refused"):
        tags.append("refused")
    if any(len(s.attempts) > 1 or any(a.outcome == "failed" for a in s.attempts) for s in story.shots):
        tags.append("retried")
    tag_run(tags)


def _event(story) -> None:
    common = dict(cost_usd=story.cost_usd, paid=story.cost_usd > 0, profile=story.profile,
                  policy=story.policy, balance_before=story.balance_before,
                  balance_after=story.balance_after, generated=story.count("paid"),
                  cached=story.count("cached"), refused=story.count("refused"),
                  failed=story.count("failed"))
    if story.report is not None and not story.failed:
        report = story.report
        emit("reelflow.sequence.rendered", sequence=story.sequence, output=str(report.output),
             output_uri=report.output_uri, duration_s=report.duration_s, **common)
    else:
        emit("reelflow.sequence.failed", sequence=story.sequence, error=story.error, **common)

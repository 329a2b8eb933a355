"""Try the prompts across models before committing: `reelflow compare FILE --models a,b`.

Every generated shot is generated under each variant (a model, a profile, or both:
``ray-2,ray-3.2@draft``; see ``_compare_variants``), each request cached and paid once
like any render: a variant's requests are the ones a render of the list with that
``model:`` makes, so choosing it afterwards pays nothing again. Each variant's cut of the
sequence is assembled from the planned frame timeline (trims as the list says, cuts
only, cards left out; a shot moderation refused is a labelled slate of its length), and
the cuts play in one grid, each panel labelled with variant, resolution, price and
generation time. A contact sheet per shot shows its first, middle and last kept frame
under every variant. The summary (per shot and variant: price, what this run paid,
generation time) is printed by the CLI and attached to the flow run as a table and a
markdown artifact.

Written beside the list's output: ``<stem>.compare.mp4`` and ``<stem>.compare/<shot>.png``
(sheets of shots no longer in the list are removed from that folder); the per-variant
cuts live in the media cache, nothing else is left in the output folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from reelflow.config import DEFAULT_CONCURRENCY
from reelflow.flows._compare_summary import CompareCell, CompareReport, VariantTotal, markdown
from reelflow.flows._compare_variants import Variant, load_variants, parse_variants
from reelflow.flows.endpoint import check_credentials, image_url_resolver, luma_credentials
from reelflow.flows.generation import Refused, first_failure, generate_all
from reelflow.flows.observe import ensure_limits, run_name
from reelflow.flows.plan import RenderPlan, make_plan
from reelflow.flows.report import artifact_key
from reelflow.flows.shotlist import ShotList
from reelflow.flows.stills import generate_stills
from reelflow.tasks._compare_media import grid_columns, make_grid
from reelflow.tasks._ledger import Ledger
from reelflow.tasks._scratch import run_dir
from reelflow.tasks.deliver import SheetEntry, make_contact_sheet
from reelflow.tasks.media import OutputFormat, TimelineItem, assemble, default_media_cache, make_title_card
from reelflow.tasks.models import Clip
from reelflow.tasks.store import ClipStore

__all__ = ["CompareReport", "compare_models"]


def _run_name() -> str:
    return run_name("compare", Path(flow_run.parameters["shotlist_path"]).stem)


class _Variant:
    """One variant's plan and clips in this run."""

    def __init__(self, variant: Variant, shotlist: ShotList, plan: RenderPlan,
                 clips: dict[str, Clip | Refused]):
        self.variant, self.shotlist, self.plan, self.clips = variant, shotlist, plan, clips

    def generated(self):
        return [s for s in self.plan.shots if s.kind == "generate" and s.id in self.clips]


@flow(name="compare-models", flow_run_name=_run_name, log_prints=False,
      task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_CONCURRENCY))
def compare_models(shotlist_path: str, models: list[str], profile: str = "final",
                   out: str | None = None) -> CompareReport:
    """Generate every shot under each variant and render a labelled comparison grid.

    Args:
        shotlist_path: The shot list (YAML or JSON).
        models: Variants: models (``ray-2``), ``model@profile`` (``ray-3.2@draft``) or a
            profile alone (the list's own models under it).
        profile: The profile of a variant that names none.
        out: The grid MP4; ``<stem>.compare.mp4`` beside the list's output when omitted.

    Example:
        ```python
        report = compare_models("examples/demo.yaml", ["ray-2", "ray-flash-2"])
        print(report.video, report.paid_usd)
        ```
    """
    log = get_run_logger()
    lists = load_variants(Path(shotlist_path), parse_variants(models, profile))
    first = lists[0][1]
    target = Path(out).resolve() if out else \
        first.output.path.with_name(f"{first.source.stem}.compare.mp4")
    store = ClipStore.default()
    plans = [(v, sl, make_plan(sl, v.profile, store=store)) for v, sl in lists]  # every check first
    credentials = luma_credentials()
    for _, _, plan in plans:
        check_credentials(plan, credentials)
    ensure_limits()
    runs, stills_paid = [], 0.0
    for variant, shotlist, plan in plans:
        image_url = image_url_resolver(plan, store=store, credentials=credentials)
        sequence = f"{shotlist.source.stem}-{variant.label}"
        try:   # stills first (shared by every variant: paid once), then the shots
            stills = generate_stills(plan, credentials=credentials, store=store, sequence=sequence,
                                     on_moderation="skip")
            clips = generate_all(stills.plan, credentials=credentials, store=store,
                                 image_url=image_url, on_moderation="skip", sequence=sequence)
            clips |= {sid: Refused(shot_id=sid, reason=why) for sid, why in stills.refused_shots.items()}
            stills_paid += stills.paid_usd
            if (error := first_failure(clips)) is not None:
                raise error
        finally:
            if image_url is not None:
                image_url.close()
        if (error := first_failure(clips)) is not None:  # a refusal is a slate; a failure stops
            raise error
        runs.append(_Variant(variant, shotlist, plan, clips))
    cells = [cell for run in runs for cell in _cells(run, Ledger.for_store(store))]
    totals = [_total(run.variant, [c for c in cells if c.variant == run.variant.label]) for run in runs]
    columns = grid_columns(len(runs))
    panel = OutputFormat(width=max(2, first.output.width // columns // 2 * 2),
                         height=max(2, first.output.height // columns // 2 * 2),
                         fps=first.output.fps, fit=first.output.fit)
    with tempfile.TemporaryDirectory(prefix="compare-", dir=run_dir(default_media_cache())) as tmp:
        cuts = [_cut(run, panel, Path(tmp) / f"{i}.mp4") for i, run in enumerate(runs)]
        make_grid(cuts, [t.label for t in totals], target, fmt=panel, cache_dir=default_media_cache())
    sheets = _sheets(runs, target.with_suffix(""))
    report = CompareReport(video=target, contact_sheets=sheets, cells=cells, variants=totals,
                           paid_usd=round(sum(c.paid_usd for c in cells) + stills_paid, 2),
                           stills_paid_usd=round(stills_paid, 4),
                           cost_usd={t.variant: t.price_usd for t in totals},
                           flow_run_name=flow_run.name)
    _publish(report, first)
    log.info("Compared %s: paid $%.2f this run (%d paid, %d cached); grid %s",
             ", ".join(t.variant for t in totals), report.paid_usd, sum(t.paid for t in totals),
             sum(t.cached for t in totals), target)
    return report


def _cells(run: _Variant, ledger: Ledger) -> list[CompareCell]:
    cells = []
    for shot in run.generated():
        clip, request = run.clips[shot.id], shot.request
        common = dict(shot=shot.id, variant=run.variant.label, model=request.model,
                      resolution=request.resolution, duration=request.duration,
                      price_usd=shot.cost_usd, gen_s=_gen_seconds(ledger, request.cache_key()))
        if isinstance(clip, Refused):
            cells.append(CompareCell(status="refused", **common))
            continue
        cells.append(CompareCell(status="paid" if clip.paid else "cached",
                                 paid_usd=clip.cost_usd if clip.paid else 0.0,
                                 generation_id=clip.generation_id, sha256=clip.sha256, **common))
    return cells


def _gen_seconds(ledger: Ledger, key: str) -> float | None:
    """How long the completed generation behind ``key`` took, from the ledger's history."""
    from datetime import datetime

    entry = ledger.read(key)
    for attempt in reversed(getattr(entry, "history", None) or []):
        if getattr(attempt, "state", None) == "completed" and attempt.sent_at and attempt.ended_at:
            took = datetime.fromisoformat(attempt.ended_at) - datetime.fromisoformat(attempt.sent_at)
            return round(took.total_seconds(), 1)
    return None


def _total(variant: Variant, cells: list[CompareCell]) -> VariantTotal:
    gens = [c.gen_s for c in cells if c.gen_s is not None]
    return VariantTotal(
        variant=variant.label, models=sorted({c.model for c in cells}) or [variant.model or "-"],
        resolutions=sorted({c.resolution for c in cells}) or ["-"],
        price_usd=round(sum(c.price_usd for c in cells), 2),
        paid_usd=round(sum(c.paid_usd for c in cells), 2),
        paid=sum(c.status == "paid" for c in cells), cached=sum(c.status == "cached" for c in cells),
        refused=sum(c.status == "refused" for c in cells), gen_s=round(sum(gens), 1) if gens else None)


def _cut(run: _Variant, fmt: OutputFormat, out: Path) -> Path:
    """The variant's generated shots as planned (trims kept), cut together, no text."""
    spans = {span.label: span for span in run.plan.timeline}
    items = []
    for shot in run.generated():
        span = spans[shot.id].model_copy(update={"transition": "cut", "transition_s": 0.0,
                                                 "overlays": ()})
        clip = run.clips[shot.id]
        if isinstance(clip, Refused):  # a slate as long as the shot keeps the grid in step
            card = Path(make_title_card(f"{shot.id}: refused by moderation", duration_s=span.length_s,
                                        fmt=fmt, cache_dir=default_media_cache()))
            items.append(TimelineItem.of(span.model_copy(update={"start_s": 0.0}), card,
                                         f"card:{card.stem}"))
        else:
            items.append(TimelineItem.of(span, clip.path, clip.sha256))
    if not items:
        raise ValueError(f"{run.shotlist.source.name}: no generated shot to compare")
    assemble(items, fmt, out, default_media_cache())
    return out


def _sheets(runs: list[_Variant], folder: Path) -> dict[str, Path]:
    """Per shot, a sheet with a row per variant: its first, middle and last kept frame."""
    sheets = {}
    for shot in runs[0].generated():
        entries = []
        for run in runs:
            clip = run.clips.get(shot.id)
            if not isinstance(clip, Clip):
                continue
            span = next(s for s in run.plan.timeline if s.label == shot.id)
            last = span.start_s + span.length_s - 1 / run.shotlist.output.fps
            for name, at in (("first", span.start_s), ("middle", span.start_s + span.length_s / 2),
                             ("last", max(span.start_s, last))):
                entries.append(SheetEntry(label=f"{shot.id} · {run.variant.label} · {name} {at:.2f}s",
                                          video=clip.path, at_s=round(at, 3)))
        if entries:
            sheets[shot.id] = make_contact_sheet(entries, folder / f"{shot.id}.png", columns=3)
    for stale in folder.glob("*.png") if folder.is_dir() else ():
        if stale not in sheets.values():
            stale.unlink()
    return sheets


def _publish(report: CompareReport, shotlist: ShotList) -> None:
    """The summary as a table artifact and a markdown one on the flow run."""
    key = artifact_key("compare", shotlist.source.stem)
    title = shotlist.title or shotlist.source.stem
    create_table_artifact(key=key + "-cost", description=f"Compare {title}: price and paid per shot",
                          table=[c.model_dump(mode="json", exclude={"sha256"}) for c in report.cells])
    create_markdown_artifact(key=key, markdown=markdown(report, title),
                             description=f"Compare {title}: {', '.join(report.cost_usd)}")

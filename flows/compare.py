"""Try the prompts across models before committing: `reelflow compare FILE --models a,b`.

Every generated shot is generated with each model (each request cached and paid once,
like any render), each model's cut of the sequence is assembled (cuts only, cards
left out), and the cuts are stacked side by side, labelled with model and cost. A
contact sheet shows every shot under every model. Pick per shot with `model:` in the
shot list.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

from reelflow.config import DEFAULT_CONCURRENCY
from reelflow.flows.endpoint import image_url_resolver, luma_credentials
from reelflow.flows.generation import generate_all
from reelflow.flows.observe import ensure_limits
from reelflow.flows.plan import make_plan
from reelflow.flows.shotlist import ShotList, load_shotlist
from reelflow.spec import MODELS
from reelflow.tasks._compare_media import make_side_by_side
from reelflow.tasks.deliver import SheetEntry, make_contact_sheet
from reelflow.tasks.media import OutputFormat, TimelineItem, assemble, default_media_cache
from reelflow.tasks.models import Clip
from reelflow.tasks.store import ClipStore

__all__ = ["CompareReport", "compare_models"]


class CompareReport(BaseModel):
    """The comparison video, the contact sheet, and the cost per model."""

    video: Path
    contact_sheet: Path
    cost_usd: dict[str, float]
    paid_usd: float


def _for_model(shotlist: ShotList, model: str) -> ShotList:
    shots = tuple(s if s.is_card else s.model_copy(update={"model": model}) for s in shotlist.shots)
    return shotlist.model_copy(update={"shots": shots})


@flow(name="compare-models", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_CONCURRENCY))
def compare_models(shotlist_path: str, models: list[str], profile: str = "final",
                   out: str | None = None) -> CompareReport:
    """Generate every shot with each model and render a labelled side-by-side comparison.

    Example:
        ```python
        report = compare_models("examples/demo.yaml", ["ray-2", "ray-flash-2"])
        print(report.video, report.cost_usd)
        ```
    """
    log = get_run_logger()
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"models must be some of {', '.join(MODELS)}; got {', '.join(models)}")
    shotlist = load_shotlist(Path(shotlist_path))
    target = Path(out) if out else shotlist.output.path.with_name(f"{shotlist.source.stem}.compare.mp4")
    panel = OutputFormat(width=max(2, shotlist.output.width // len(models) // 2 * 2),
                         height=max(2, shotlist.output.height // len(models) // 2 * 2),
                         fps=shotlist.output.fps)
    ensure_limits()
    credentials, store = luma_credentials(), ClipStore.default()
    cuts, labels, entries, costs, paid = [], [], [], {}, 0.0
    for model in models:
        plan = make_plan(_for_model(shotlist, model), profile)
        clips = generate_all(plan, credentials=credentials, store=store,
                             image_url=image_url_resolver(plan), on_moderation="skip",
                             sequence=f"{shotlist.source.stem}-{model}")
        shots = [s for s in plan.shots if isinstance(clips.get(s.id), Clip)]  # not cards or refused
        items = [TimelineItem(source=clips[s.id].path, source_sha256=clips[s.id].sha256,
                              start_s=0, length_s=s.length_s, label=s.id) for s in shots]
        cut = target.with_name(f".{target.stem}.{model}.mp4")
        assemble(items, panel, cut, default_media_cache())
        costs[model] = round(sum(s.cost_usd for s in shots), 2)
        paid += sum(clips[s.id].cost_usd for s in shots)
        cuts.append(cut)
        labels.append(f"{model} · ${costs[model]:.2f}")
        entries += [SheetEntry(label=f"{s.id} · {model} · ${s.cost_usd:.2f}", video=clips[s.id].path,
                               at_s=s.length_s / 2) for s in shots]
    make_side_by_side(cuts, labels, target, fmt=panel)
    sheet = make_contact_sheet(_by_shot(entries, len(models)), target.with_suffix(".png"),
                               columns=len(models))
    log.info("Comparison of %s: %s (%s)", ", ".join(models), target, costs)
    return CompareReport(video=target, contact_sheet=sheet, cost_usd=costs, paid_usd=round(paid, 2))


def _by_shot(entries: list[SheetEntry], models: int) -> list[SheetEntry]:
    """Reorder model-major entries into rows of one shot, a column per model."""
    per_model = len(entries) // models
    return [entries[m * per_model + s] for s in range(per_model) for m in range(models)]

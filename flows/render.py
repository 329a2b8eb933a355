"""The main job: a shot list in, a finished MP4 out, every step cached.

    shot list ─validate─▶ plan ─▶ generate-<shot> (concurrent, paid once per request)
                                ─▶ conform-<shot> / title-<card> / placeholder-<shot>
                                ─▶ assemble ─▶ output (atomic)

Whatever the outcome, the run's story (summary, cost ledger, output link, tags and the
sequence event) is published when it ends (flows/report.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from reelflow import _progress, defaults as builtin
from reelflow.config import DEFAULT_CONCURRENCY
from reelflow.flows.deliverables import deliver_extras
from reelflow.flows.distribute import Heartbeat, RemoteShots, distribute_default
from reelflow.flows.sweep import flow_heartbeat_name
from reelflow.flows.endpoint import (account_balance, check_credentials, check_credits,
                                     image_url_resolver, luma_credentials)
from reelflow.flows.generation import Refused, first_failure, generate_all
from reelflow.flows.lineage import record_lineage
from reelflow.flows.observe import emit_shot, ensure_limits, run_name, step_name
from reelflow.flows.plan import PlannedRender, RenderPlan, check_budget, plan_render
from reelflow.flows.s3_lists import local_shotlist, publish_to_origin, s3_origin
from reelflow.flows.shotlist import ShotList, load_shotlist
from reelflow.flows.stills import generate_stills
from reelflow.flows.timeline import without_skipped
from reelflow.tasks.media import (AudioMix, OutputFormat, TimelineItem,
                                  assemble_sequence, card_if_cached, conform_clip,
                                  conformed_if_cached, default_media_cache, make_title_card)
from reelflow.tasks.models import Clip
from reelflow.flows.tell import tell_story
from reelflow.flows.story import RenderReport, RenderStory, ShotResult, one_line
from reelflow.tasks._ledger import Ledger
from reelflow.tasks._outputs import EXR_SUFFIX

__all__ = ["RenderReport", "ShotResult", "render_planned", "render_sequence"]

#: Plans handed to the flow by ``render_planned``, by the flow parameters they were made for.
_handed: dict[tuple[str, str, str | None, str | None], PlannedRender] = {}
_handed_lock = threading.Lock()


def _run_name() -> str:
    return run_name("render", Path(flow_run.parameters["shotlist_path"]).stem)


def _card_text(shot, clips) -> str | None:
    refused = clips.get(shot.id)
    if isinstance(refused, Refused):
        return f"{shot.id}: refused by moderation"
    return shot.title if shot.is_card else None


def _timeline(shotlist: ShotList, plan: RenderPlan, clips: dict[str, Clip | Refused],
              fmt: OutputFormat, skip: set[str]) -> list[TimelineItem]:
    """The plan's timeline with each shot's clip or card: the frames the plan checked.

    A card or conformed clip already in the media cache (checked) is used as it is; only
    what must be made is a task run (conform-<shot>, title-<card>, placeholder-<shot>).
    """
    cache = default_media_cache()
    cards, conforms = {}, []
    for shot in shotlist.shots:
        if shot.id in skip:
            continue
        if text := _card_text(shot, clips):  # a refused shot's slate: placeholder-<shot>
            card = dict(background=shot.background or builtin.CARD_BACKGROUND, duration_s=shot.length_s, fmt=fmt)
            if (kept := card_if_cached(text, **card, cache_dir=cache)) is not None:
                cards[shot.id] = kept
                _progress.shot_state(shot.id, "done")
                continue
            cards[shot.id] = make_title_card.with_options(task_run_name=step_name(
                "title" if shot.is_card else "placeholder", shot.id)).submit(
                text, **card, cache_dir=cache, shot_id=shot.id if shot.is_card else None)
        elif isinstance(clip := clips.get(shot.id), Clip):
            if conformed_if_cached(clip.sha256, fmt, cache) is not None:
                _progress.shot_state(shot.id, "done")
                continue  # conformed once per clip and format; else a named step in the UI
            conforms.append(conform_clip.with_options(task_run_name=step_name(
                "conform", shot.id)).submit(clip.path, clip.sha256, fmt, cache, shot_id=shot.id))
    spans, notes = without_skipped(plan.timeline, skip, fmt.fps)
    for note in notes:
        get_run_logger().warning("%s", note)
    items = []
    for shot, span in zip((s for s in shotlist.shots if s.id not in skip), spans):
        if shot.id in cards:  # a card (or a refused shot's placeholder) starts at its frame 0
            card = cards[shot.id]
            source = card if isinstance(card, Path) else Path(card.result())
            items.append(TimelineItem.of(span.model_copy(update={"start_s": 0.0}), source,
                                         f"card:{source.stem}"))
        else:
            items.append(TimelineItem.of(span, clips[shot.id].path, clips[shot.id].sha256))
    wait(conforms)
    return items


def _audio_mix(shotlist: ShotList) -> AudioMix:
    out = shotlist.output
    return AudioMix(music=out.music, music_volume=out.music_volume, duck=out.duck,
                    loudness=out.loudness)


def _clip_metadata(shots: list[ShotResult], items: list[TimelineItem]) -> list[dict]:
    """Per timeline item, what the OTIO clip records (stable across reruns: no run status)."""
    by_id = {s.id: s.model_dump(mode="json", exclude={"id", "status", "cost_usd", "attempts", "dream_s"}) for s in shots}
    return [by_id[item.label] for item in items]


@flow(name="render-sequence", flow_run_name=_run_name, log_prints=False,
      task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_CONCURRENCY))
def render_sequence(shotlist_path: str, profile: str = "final", out: str | None = None,
                    mezzanine: str | None = None, on_moderation: str | None = None,
                    budget_usd: float | None = None, luma_block: str | None = None,
                    store_block: str | None = None, distribute: bool | None = None) -> RenderReport:
    """Render a shot list to a finished MP4, generating only what is not already paid for.

    Args:
        shotlist_path: The shot list (YAML or JSON): a path, or an ``s3://bucket/key`` URI
            (its folder is mirrored locally with the assets beside it, and the output
            and deliverables are uploaded back beside it once the render is whole).
        profile: ``final``, or ``draft`` (ray-flash-2 at 540p, written beside the final).
        out: Output path; the shot list's ``output.path`` when omitted.
        mezzanine: Also write a ``prores`` or ``dnxhr`` .mov for editors.
        on_moderation: ``fail``, ``skip`` or ``placeholder``; the list's setting when omitted.
        budget_usd: Refuse, before any spend, a plan that would pay more than this.
        luma_block: Name of a saved ``LumaCredentials`` block; LUMAAI_API_KEY /
            LUMAAI_BASE_URL and LUMA_AGENTS_API_KEY / LUMA_BASE_URL (or, with neither
            key, the built-in emulator for both APIs) when omitted.
        store_block: Name of a saved ``ClipStoreBlock`` ("Clip Store"); REELFLOW_STORE
            (else the local REELFLOW_HOME/clips) when omitted.
        distribute: Generate the shots on Prefect task workers (``reelflow worker``, on
            any machine sharing the S3 store) instead of this run's threads; default
            REELFLOW_DISTRIBUTE (off). See docs/scaling.md.

    Returns:
        A RenderReport: output path, duration, paid and cached shot counts, cost.

    Example:
        ```python
        from reelflow import render_sequence
        report = render_sequence("examples/demo.yaml", profile="draft")
        print(report.output, report.cost_usd)
        ```
    """
    story = RenderStory(sequence=Path(shotlist_path).stem, profile=profile,
                        policy=on_moderation, run_id=str(flow_run.id) if flow_run.id else None)
    try:
        with contextlib.ExitStack() as held:  # a distributed run's heartbeat, to its end
            return _render(story, shotlist_path, profile, out, mezzanine, on_moderation,
                           budget_usd, luma_block, store_block, distribute, held)
    except BaseException as exc:
        story.error = one_line(exc)
        raise
    finally:
        tell_story(story)


def render_planned(planned: PlannedRender, shotlist_path: str, **options) -> RenderReport:
    """Run ``render_sequence`` on a plan already made (the CLI's): the flow does not plan again.

    ``shotlist_path`` is the flow's parameter (the list ``planned`` was loaded from); the
    profile, output and store block are the plan's. ``options`` are the flow's others.
    """
    key = (shotlist_path, planned.plan.profile, str(planned.plan.output), planned.store_block)
    with _handed_lock:
        _handed[key] = planned
    try:
        return render_sequence(shotlist_path, profile=planned.plan.profile,
                               out=str(planned.plan.output), store_block=planned.store_block,
                               **options)
    finally:
        with _handed_lock:
            _handed.pop(key, None)


def _planned(shotlist_path: str, profile: str, out: str | None,
             store_block: str | None) -> PlannedRender:
    """The plan handed over for these parameters, else one made now (load, then plan)."""
    with _handed_lock:
        planned = _handed.get((shotlist_path, profile, out, store_block))
    shotlist = planned.shotlist if planned else load_shotlist(local_shotlist(shotlist_path))
    for line in shotlist.warnings:  # the run's log keeps them (the CLI printed them too)
        get_run_logger().warning("%s", line)
    return planned or plan_render(shotlist, profile, out=Path(out) if out else None,
                                  store_block=store_block)


def _render(story: RenderStory, shotlist_path, profile, out, mezzanine, on_moderation,
            budget_usd, luma_block, store_block, distribute=None, held=None) -> RenderReport:
    started = time.monotonic()
    log = get_run_logger()
    planned = _planned(shotlist_path, profile, out, store_block)
    shotlist, store = planned.shotlist, planned.store
    story.title, story.prompts = shotlist.title or story.sequence, {
        shot.id: shot.prompt or shot.title for shot in shotlist.shots}
    story.policy = policy = on_moderation or shotlist.on_moderation
    story.store, story.plan = store, planned.plan
    plan = planned.plan
    distributed = distribute if distribute is not None else distribute_default()
    if distributed and store.is_s3 and flow_run.id and held is not None:
        # kept from here to the run's end (removed then): a sweep resumes the run if it stays
        held.enter_context(Heartbeat(store, flow_heartbeat_name(flow_run.id)))
    check_budget(plan, budget_usd)
    credentials = story.credentials = luma_credentials(block=luma_block)
    check_credentials(plan, credentials)
    image_url = image_url_resolver(plan, store=store, credentials=credentials)
    log.info("Rendering %s (%d shots, profile %s, on moderation: %s): %d to generate, est. $%.2f",
             shotlist.source.name, len(plan.shots), profile, policy,
             sum(s.status == "to generate" for s in plan.shots), plan.cost_usd)
    story.balance_before = account_balance(credentials)
    check_credits(story.balance_before, plan.cost_usd)
    ensure_limits()
    _progress.stage("generating")
    ledger = Ledger.for_store(store)

    def on_done(shot_id, outcome):
        story.record(shot_id, outcome, ledger)
        emit_shot(story.sequence, story.results[shot_id], policy)

    remote = None
    if distributed:
        remote = RemoteShots(store, sequence=story.sequence, profile=profile, on_moderation=policy)
    try:
        stills = generate_stills(plan, credentials=credentials, store=store,
                                 sequence=story.sequence, on_moderation=policy)
        story.stills = stills.results
        clips = generate_all(stills.plan, credentials=credentials, store=store, image_url=image_url,
                             on_moderation=policy, sequence=story.sequence, on_done=on_done,
                             remote=remote)
        for sid, why in stills.refused_shots.items():   # their still was refused: policy applies
            on_done(sid, clips.setdefault(sid, Refused(shot_id=sid, reason=why)))
    finally:
        if image_url is not None:
            image_url.close()          # the asset server stops serving this render's files
    if (error := first_failure(clips)) is not None:
        raise error
    skip = {sid for sid, c in clips.items() if isinstance(c, Refused)} if policy == "skip" else set()
    fmt = OutputFormat(width=shotlist.output.width, height=shotlist.output.height,
                       fps=shotlist.output.fps, fit=shotlist.output.fit,
                       quality="preview" if profile == "draft" else "final")
    items = story.items = _timeline(shotlist, plan, clips, fmt, skip)
    _progress.stage("assembling")
    result = assemble_sequence.with_options(task_run_name=step_name("assemble", story.sequence))(
        items, fmt=fmt, out_path=plan.output, cache_dir=default_media_cache(),
        mix=_audio_mix(shotlist))
    shots = story.shot_results()
    _progress.stage("delivering")
    extras = deliver_extras.with_options(task_run_name=step_name("deliver", story.sequence))(
        result.path, items, fmt, name=shotlist.title or shotlist.source.stem,
        metadata=_clip_metadata(shots, items),
        mezzanine=mezzanine, video_sha256=result.sha256, pieces=result.pieces,
        stills=[(s.label, s.path) for s in story.stills if s.path is not None],
        exr=[(sid, store.fetch(c.exr_sha256, EXR_SUFFIX)) for sid, c in clips.items()
             if getattr(c, "exr_sha256", None)])
    delivered = [p for v in extras.model_dump().values() if v
                 for p in (v if isinstance(v, list) else [v])]
    published = {} if s3_origin(result.path) is None else publish_to_origin.with_options(
        task_run_name=step_name("publish", story.sequence))([result.path, *delivered])
    paid = [s for s in shots if s.status == "paid"]
    log.info("Wrote %s (%.2fs): %d paid, %d cached, $%.2f spent", result.path, result.duration_s,
             len(paid), story.count("cached"), story.cost_usd)
    story.report = RenderReport(
        output=result.path, profile=profile, duration_s=result.duration_s, frames=result.frames,
        shots=len(shots), generated=len(paid), cached=story.count("cached"),
        cost_usd=story.cost_usd, encoded_pieces=result.encoded_pieces,
        reused_pieces=result.reused_pieces, shot_results=shots, stills=story.stills,
        flow_run_url=flow_run.ui_url,
        **extras.model_dump(), output_uri=published.get(str(result.path)),
        flow_s=round(time.monotonic() - started, 3), balance_before=story.balance_before)
    record_lineage(story.report, store, story.sequence, story.prompts)
    return story.report

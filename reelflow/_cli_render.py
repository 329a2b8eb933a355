"""The commands that read a shot list and run flows: plan, render, watch, compare.

Each validates and plans before Prefect is imported (a bad list is refused in about a
second, nothing spent), then makes the checks a render needs before Prefect
(`preflight`), settles the Prefect API (`prefect_api`) and runs the flow.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path

from reelflow._cli_console import EXIT_OK, err, quiet_console

__all__ = ["cmd_compare", "cmd_plan", "cmd_render", "cmd_watch", "planned", "preflight",
           "prefect_api", "validated"]


def planned(path: Path, profile: str, out: Path | None = None, budget: float | None = None,
            store_block: str | None = None, before_block=None):
    """Load and plan the list once, against the store its render uses (``PlannedRender``).

    Problems in the list are exit 2 before Prefect; a saved store block is read from
    Prefect's API, so ``before_block()`` (starting it) runs only then, after the list checks.
    """
    from reelflow.flows.plan import check_budget, plan_render
    from reelflow.flows.shotlist import load_shotlist

    shotlist = load_shotlist(path)
    if store_block and before_block is not None:
        before_block()
    made = plan_render(shotlist, profile, out=out, store_block=store_block)
    for line in shotlist.warnings:
        err(line)
    check_budget(made.plan, budget)
    return made


def validated(path: Path, profile: str, out: Path | None = None, budget: float | None = None):
    return planned(path, profile, out, budget).plan


def cmd_plan(args) -> int:
    plan = validated(args.file, args.profile)
    if args.json:
        print(json.dumps({
            "source": str(plan.source), "profile": plan.profile, "output": str(plan.output),
            "shots": [s.model_dump(mode="json", exclude={"request"}) for s in plan.shots],
            "stills": [s.model_dump(mode="json", exclude={"request"}) for s in plan.stills],
            "cost_usd": plan.cost_usd,
        }))
        return EXIT_OK
    from reelflow.flows.plan import plan_table

    print(plan_table(plan))
    return EXIT_OK


def cmd_render(args) -> int:
    say = (lambda _line: None) if args.quiet else err
    prefect = functools.cache(lambda: prefect_api(say))   # settled once, when first needed
    made = planned(args.file, args.profile, args.out, args.budget, args.store_block,
                   before_block=prefect)
    plan = made.plan
    preflight(plan, args.luma_block, args.store_block, say)
    ui = prefect()
    from reelflow.flows.render import render_planned

    if not args.verbose:
        quiet_console()
    view = None if args.quiet else render_view(plan)
    with view or contextlib.nullcontext():     # the flow renders this plan: no second one
        report = render_planned(made, str(args.file.resolve()), mezzanine=args.mezzanine,
                                on_moderation=args.on_moderation, budget_usd=args.budget,
                                luma_block=args.luma_block, distribute=args.distribute)
    if view:
        view.summary(report)
    if report.flow_run_url and ui:
        say(f"Flow run: {report.flow_run_url}")
    if args.json:
        print(json.dumps({
            "output": str(report.output), "duration_s": report.duration_s, "frames": report.frames,
            "shots": report.shots, "generated": report.generated, "cached": report.cached,
            "cost_usd": report.cost_usd, "profile": report.profile,
            "encoded_pieces": report.encoded_pieces, "reused_pieces": report.reused_pieces,
            "flow_s": report.flow_s, "poster": _str(report.poster),
            "contact_sheet": _str(report.contact_sheet), "otio": _str(report.otio),
            "mezzanine": _str(report.mezzanine), "exr": [str(p) for p in report.exr],
            "output_uri": report.output_uri,
            "shot_results": [s.model_dump(mode="json") for s in report.shot_results],
            "stills": [s.model_dump(mode="json") for s in report.stills],
        }))
    else:
        print(report.output)
    return EXIT_OK


def preflight(plan, luma_block: str | None, store_block: str | None, say) -> None:
    """The checks `render` (and `watch`) make after the plan and before Prefect."""
    from reelflow.flows.endpoint import check_credentials, image_url_resolver, luma_credentials

    if luma_block:  # the flow checks with the block's credentials, still before any spend
        return
    check_credentials(plan)  # a list needing an API whose key is missing: before Prefect
    credentials = luma_credentials(announce=say)  # starts the embedded emulator now, says so
    if not store_block:  # (a block's store is checked in the flow, still before any spend)
        urls = image_url_resolver(plan, credentials=credentials)  # local keyframes with the
        if urls is not None:   # real API need S3: refuse before Prefect (the flow opens its
            urls.close()       # own asset scope)


def cmd_watch(args) -> int:
    from reelflow._watch import Watch

    def check(path: Path, profile: str, budget: float | None):
        made = planned(path, profile, args.out, budget)
        preflight(made.plan, None, None, err)
        return made.shotlist, made

    def render(path: Path, profile: str, budget: float | None, made):
        from reelflow.flows.render import render_planned

        report = render_planned(made, str(path.resolve()), on_moderation=args.on_moderation,
                                budget_usd=budget)
        if report.flow_run_url and ui:
            err(f"Flow run: {report.flow_run_url}")
        return report

    ui = prefect_api(err)
    import reelflow.flows.render  # noqa: F401 - Prefect and the flow warm before the first save

    if not args.verbose:
        quiet_console()
    return Watch(args.file, "draft" if args.draft else "final", args.budget, check, render,
                 err).run(keys=sys.stdin)  # None when there is no stdin


def prefect_api(say) -> str | None:
    """The Prefect UI this command reports to (reelflow's managed server unless one is
    configured), or None in ephemeral mode, which says so."""
    from reelflow._server import use_prefect

    ui = use_prefect(say)
    if ui is None:
        say("Prefect runs ephemeral (REELFLOW_PREFECT=ephemeral: a temporary server per "
            "command, no UI)")
    return ui


def render_view(plan):
    """The progress view on stderr: live on a terminal, plain lines otherwise."""
    from reelflow._live import RenderView

    return RenderView(plan, stream=sys.stderr, live=sys.stderr.isatty())


def _str(path) -> str | None:
    return None if path is None else str(path)


def cmd_compare(args) -> int:
    from reelflow.flows._compare_variants import load_variants, parse_variants
    from reelflow.flows.endpoint import check_credentials, image_url_resolver
    from reelflow.flows.plan import make_plan

    models = args.models.split(",")
    for variant, shotlist in load_variants(args.file, parse_variants(models, args.profile)):
        plan = make_plan(shotlist, variant.profile)       # keys and URLs checked before Prefect
        check_credentials(plan)
        urls = image_url_resolver(plan)
        if urls is not None:
            urls.close()
    from reelflow.flows.endpoint import luma_credentials

    luma_credentials(announce=err)
    if ui := prefect_api(err):
        err(f"Prefect UI: {ui}")
    from reelflow.flows._compare_summary import print_summary
    from reelflow.flows.compare import compare_models

    if not args.verbose:
        quiet_console()
    report = compare_models(str(args.file.resolve()), models, profile=args.profile,
                            out=str(args.out.resolve()) if args.out else None)
    if args.json:
        print(report.model_dump_json())
    else:
        print_summary(report, sys.stdout)
    return EXIT_OK

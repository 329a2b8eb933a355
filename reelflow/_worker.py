"""``reelflow worker``: a Prefect task worker that generates shots of distributed renders.

It serves ``reelflow.flows.distribute.generate_remote`` (``render_sequence(...,
distribute=True)`` delays one per shot) until interrupted. Run one per machine with the
environment that machine renders with: PREFECT_API_URL (the shared server), REELFLOW_STORE
(the shared S3 store) and its S3 keys, LUMAAI_API_KEY (or LUMAAI_BASE_URL for an emulator),
and REELFLOW_HOME. Flow runs of the deployments still need a process worker
(``prefect worker start --pool NAME``); scripts/scale.py starts both.
"""

from __future__ import annotations

import argparse
import sys

from reelflow.config import Settings, settings

__all__ = ["main"]

#: Shots one worker runs at once by default: a shot mostly waits on Luma, so more than
#: the cores; the account's global limit bounds all workers together.
DEFAULT_LIMIT = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelflow worker",
                                     description="Serve shot generation for distributed renders.")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                        help=f"shots this worker runs at once (default {DEFAULT_LIMIT})")
    return parser


def _unset(env: Settings, who: str) -> list[str]:
    """A line for each of PREFECT_API_URL and REELFLOW_STORE that is not set."""
    return [f"{who}: {name} is not set" for name, value in
            (("PREFECT_API_URL", env.prefect_api_url), ("REELFLOW_STORE", env.store)) if not value]


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    env = settings()
    problems = _unset(env, "reelflow worker")
    if not (env.luma_api_key or env.luma_base_url):
        problems.append("reelflow worker: set LUMAAI_API_KEY (or LUMAAI_BASE_URL for an emulator)")
    if args.limit < 1:
        problems.append("reelflow worker: --limit must be at least 1")
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 2
    from reelflow.config import apply_prefect_defaults

    apply_prefect_defaults()
    from prefect.task_worker import serve

    from reelflow.flows.distribute import generate_remote
    from reelflow.flows.sweep import AutoSweep, sweep_every_s
    from reelflow.tasks.store import ClipStore

    every = sweep_every_s()
    if every > 0:  # lost renders resumed without anyone running `reelflow sweep`
        AutoSweep(ClipStore.default(), every, report=_say).start()
    sweeping = f"sweeping lost renders every {every:g}s" if every > 0 else "not sweeping"
    _say(f"reelflow worker: serving shot generation (limit {args.limit}); {sweeping}")
    serve(generate_remote, limit=args.limit)
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main_sweep(argv: list[str]) -> int:
    """``reelflow sweep``: find distributed render runs whose machine was lost; run them again."""
    parser = argparse.ArgumentParser(prog="reelflow sweep", description=main_sweep.__doc__)
    parser.add_argument("--older-than", type=float, default=None, metavar="S",
                        help="a Running run whose heartbeat is older than S seconds is lost "
                             "(default REELFLOW_FLOW_STALE_S, else 45)")
    parser.add_argument("--every", type=float, default=None, metavar="S",
                        help="keep sweeping every S seconds (default: once; every "
                             "`reelflow worker` already sweeps, see docs/scaling.md)")
    args = parser.parse_args(argv)
    problems = _unset(settings(), "reelflow sweep")
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 2
    import time

    from reelflow.flows.sweep import describe, sweep
    from reelflow.tasks.store import ClipStore

    store = ClipStore.default()
    while True:
        for lost in sweep(store, args.older_than):
            print(describe(lost), flush=True)
        if args.every is None:
            return 0
        time.sleep(args.every)

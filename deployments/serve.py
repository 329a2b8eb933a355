"""`reelflow serve` and `reelflow deploy`: the two reelflow deployments, served or registered.

* ``render``  — ``render-sequence/render``: one shot list (path, profile, budget) per run.
* ``produce`` — ``produce/produce``: a folder of shot lists on a cron schedule, rebuilding
  only the lists whose shots, edits or inputs changed (reelflow.flows.production).

Both use module entrypoints (``reelflow.flows.render.render_sequence``), so whatever
process runs them — the serving process, or a process worker — imports the installed
package: nothing is built, pushed or pulled.

Prefect is imported only inside the functions: ``serve_deployments`` must settle
PREFECT_API_URL (and start a server if needed) before Prefect reads its settings.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from reelflow._prefect_process import (SERVER_START_TIMEOUT_S, healthy, port_free,
                                       spawn_prefect_server, stop_process, wait_healthy)
from reelflow.config import export_prefect_api_url, settings
from reelflow.errors import ReelflowError

__all__ = [
    "DEFAULT_CRON", "PRODUCE_DEPLOYMENT", "RENDER_DEPLOYMENT", "build_deployments",
    "deploy_to_pool", "main_deploy", "main_serve", "serve_deployments", "start_local_server",
]

_log = logging.getLogger("reelflow.deployments.serve")

#: Every hour, on the hour.
DEFAULT_CRON = "0 * * * *"
RENDER_DEPLOYMENT = "render"
PRODUCE_DEPLOYMENT = "produce"
#: Where `prefect server start` listens by default.
DEFAULT_SERVER_PORT = 4200


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_deployments(folder: str | None, cron: str | None = DEFAULT_CRON, *,
                      interval: float | None = None, profile: str = "final",
                      budget_usd: float | None = None) -> list:
    """The two RunnerDeployments: ``render`` (no schedule) and ``produce`` (scheduled).

    Args:
        folder: The production folder (or s3:// prefix) the schedule renders. Without one,
            ``produce`` gets no schedule: runs then need ``folder`` as a parameter.
        cron: The ``produce`` schedule (default: hourly); ignored when ``interval`` is given.
        interval: Seconds between ``produce`` runs instead of a cron expression.
        profile: Default profile of both deployments.
        budget_usd: Default per-list budget of both deployments.

    Returns:
        ``[render, produce]`` as ``prefect.deployments.runner.RunnerDeployment``.
    """
    from prefect.deployments.runner import EntrypointType

    from reelflow.flows.production import produce
    from reelflow.flows.render import render_sequence

    common = {"profile": profile, "budget_usd": budget_usd}
    module = EntrypointType.MODULE_PATH  # the installed package, not a file beside the cwd
    render = render_sequence.to_deployment(
        RENDER_DEPLOYMENT, parameters=common, entrypoint_type=module, tags=["reelflow"],
        description="Render one shot list (path, profile, budget) to an MP4.")
    schedule: dict = {}
    if folder is not None:
        schedule = {"interval": interval} if interval else {"cron": cron}
    produce_deployment = produce.to_deployment(
        PRODUCE_DEPLOYMENT, parameters={**common, **({"folder": folder} if folder else {})},
        entrypoint_type=module, tags=["reelflow"], **schedule,
        description="Render every changed shot list of a folder, on a schedule.")
    return [render, produce_deployment]


def start_local_server(port: int = DEFAULT_SERVER_PORT,
                       timeout_s: float = SERVER_START_TIMEOUT_S) -> tuple[subprocess.Popen | None, str]:
    """Start `prefect server start` on 127.0.0.1:PORT in the background, or reuse one there.

    Returns:
        ``(process, api_url)``; ``process`` is None when a healthy server already listened
        on the port (it is reused and left running).

    Raises:
        ReelflowError: the port is taken by something else, or the server did not become
            healthy within ``timeout_s`` (its output tail is in the message).
    """
    api_url = f"http://127.0.0.1:{port}/api"
    if healthy(api_url):
        _log.info("Reusing the Prefect server at %s", api_url)
        return None, api_url
    if not port_free(port):
        raise ReelflowError(f"port {port} is in use by something that is not a Prefect server; "
                            "set PREFECT_API_URL or pass another port")
    log_path = settings().prefect_home_dir() / "reelflow-server.log"
    # its own session: a terminal's Ctrl-C must reach only us, so the runner can pause its
    # schedules before we stop the server
    proc = spawn_prefect_server(port, log_path, start_new_session=True)
    wait_healthy(api_url, proc, log_path, timeout_s)
    return proc, api_url


def serve_deployments(folder: str | None, cron: str = DEFAULT_CRON, *, interval: float | None = None,
                      profile: str = "final", budget_usd: float | None = None,
                      port: int = DEFAULT_SERVER_PORT,
                      announce: Callable[[str], None] = _stderr) -> None:
    """Serve the ``render`` and ``produce`` deployments from this process until interrupted.

    The Prefect API: if PREFECT_API_URL is set, that server is used and no server is
    started. Otherwise a local ``prefect server start --host 127.0.0.1 --port PORT`` is
    started in the background (or a healthy one already on PORT is reused), this function
    waits until ``/api/health`` answers, exports ``PREFECT_API_URL`` to this process (and so
    to the flow-run processes it spawns), announces the UI URL, and stops the server it
    started when serving ends (Ctrl-C or SIGTERM). The server's output goes to
    ``$PREFECT_HOME/reelflow-server.log``. Beside it, a loopback file server
    (``reelflow.tasks.file_server``) serves the renders' videos and clips the runs'
    summaries link to, for as long as serving lasts.

    Args:
        folder: The folder (or s3:// prefix) ``produce`` renders on schedule; None: no schedule.
        cron: When ``produce`` runs (default hourly, ``0 * * * *``).
        interval: Seconds between ``produce`` runs, instead of ``cron``.
        profile: Default profile of both deployments.
        budget_usd: Default per-list budget.
        port: Where to start (or find) the local server when PREFECT_API_URL is unset.
        announce: Where user-facing lines go (stderr by default).

    Raises:
        ReelflowError: no API was set and a local server could not be started.
    """
    from reelflow.config import apply_prefect_defaults

    apply_prefect_defaults()
    server = None
    api_url = settings().prefect_api_url
    if not api_url:
        announce(f"PREFECT_API_URL is not set: starting a local Prefect server on port {port}...")
        server, api_url = start_local_server(port)
        export_prefect_api_url(api_url)
    from reelflow.tasks.file_server import running_url, start_file_server

    files = start_file_server()  # links in the runs' summaries open the MP4s and clips
    announce(f"Files linked from the UI: {files.url if files else running_url()}")
    try:
        _serve(folder, cron, interval, profile, budget_usd, api_url, announce)
    finally:
        if files is not None:
            files.stop()
        if server is not None:
            announce("Stopping the local Prefect server")
            stop_process(server)


def _serve(folder, cron, interval, profile, budget_usd, api_url: str, announce) -> None:
    import prefect
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):  # wins over an earlier import
        deployments = build_deployments(folder, cron, interval=interval, profile=profile,
                                        budget_usd=budget_usd)
        ui = api_url.rstrip("/").removesuffix("/api")
        when = (f"every {interval:g} s" if interval else f"on cron {cron!r}") if folder else "(no schedule: no --folder)"
        announce(f"Prefect UI: {ui}")
        announce(f"Serving render-sequence/{RENDER_DEPLOYMENT} and produce/{PRODUCE_DEPLOYMENT} "
                 f"{when}{f' over {folder}' if folder else ''}; Ctrl-C stops")
        prefect.serve(*deployments, print_starting_message=False)


def deploy_to_pool(pool: str, folder: str | None = None, cron: str = DEFAULT_CRON, *,
                   interval: float | None = None, profile: str = "final",
                   budget_usd: float | None = None, create_pool: bool = True) -> list:
    """Register ``render`` and ``produce`` for a work pool; a worker runs them.

    Nothing is built or pushed: the entrypoints are module paths, so the worker's Python
    environment must have reelflow installed (``prefect worker start --pool POOL`` from the
    same environment). Registering again updates the deployments in place.

    Args:
        pool: The work pool. When missing and ``create_pool``, a ``process`` pool is created.
        folder, cron, interval, profile, budget_usd: As for ``build_deployments``.
        create_pool: Create a missing pool (type ``process``) instead of failing.

    Returns:
        The deployment ids (UUIDs), ``[render, produce]``.

    Raises:
        ReelflowError: the pool does not exist and ``create_pool`` is False.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments.runner import deploy
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            if not create_pool:
                raise ReelflowError(f"work pool {pool!r} does not exist: "
                                    f"`prefect work-pool create {pool} --type process`") from None
            _log.info("Creating work pool %s (type process)", pool)
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployments = build_deployments(folder, cron, interval=interval, profile=profile,
                                    budget_usd=budget_usd)
    return deploy(*deployments, work_pool_name=pool, build=False, push=False,
                  print_next_steps_message=False, ignore_warnings=True)


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", default=None,
                        help="folder or s3://bucket/prefix of shot lists that `produce` renders on schedule "
                             "(default: none: produce is served unscheduled, each run names its folder)")
    parser.add_argument("--cron", default=DEFAULT_CRON, help=f"produce schedule (default {DEFAULT_CRON!r})")
    parser.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                        help="produce every SECONDS instead of --cron (default: use --cron)")
    parser.add_argument("--profile", choices=("draft", "final"), default="final",
                        help="the profile scheduled renders use (default: final)")
    parser.add_argument("--budget", type=float, default=None, metavar="USD",
                        help="per-list budget: refuse lists that would pay more (default: no limit)")


def serve_parser() -> argparse.ArgumentParser:
    """The arguments of `reelflow serve`."""
    parser = argparse.ArgumentParser(prog="reelflow serve",
                                     description="Serve the render and produce deployments.")
    _common_args(parser)
    parser.add_argument("--port", type=int, default=DEFAULT_SERVER_PORT,
                        help="local Prefect server port when PREFECT_API_URL is unset (default 4200)")
    return parser


def main_serve(argv: list[str]) -> int:
    """`reelflow serve [--folder DIR] [--cron EXPR] [--interval S] [--port N]`; returns an exit code."""
    args = serve_parser().parse_args(argv)
    try:
        serve_deployments(_folder(args.folder), args.cron, interval=args.interval,
                          profile=args.profile, budget_usd=args.budget, port=args.port)
    except ReelflowError as exc:
        _stderr(f"reelflow: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def deploy_parser() -> argparse.ArgumentParser:
    """The arguments of `reelflow deploy`."""
    parser = argparse.ArgumentParser(prog="reelflow deploy",
                                     description="Register the render and produce deployments for a work pool.")
    parser.add_argument("--pool", required=True,
                        help="work pool name, created as type process if missing (required)")
    _common_args(parser)
    return parser


def main_deploy(argv: list[str]) -> int:
    """`reelflow deploy --pool NAME [--folder DIR] [--cron EXPR]`; returns an exit code."""
    args = deploy_parser().parse_args(argv)
    if not settings().prefect_api_url:
        _stderr("reelflow: PREFECT_API_URL is not set, so the deployments would go to a throwaway "
                "ephemeral server: start one (`prefect server start --background`) and "
                "export PREFECT_API_URL=http://127.0.0.1:4200/api")
        return 2
    from reelflow.config import apply_prefect_defaults

    apply_prefect_defaults()
    try:
        ids = deploy_to_pool(args.pool, _folder(args.folder), args.cron, interval=args.interval,
                             profile=args.profile, budget_usd=args.budget)
    except ReelflowError as exc:
        _stderr(f"reelflow: {exc}")
        return 1
    print(f"Registered render-sequence/{RENDER_DEPLOYMENT} ({ids[0]}) and "
          f"produce/{PRODUCE_DEPLOYMENT} ({ids[1]}) for work pool {args.pool!r}.")
    print(f"Start a worker: prefect worker start --pool {args.pool}")
    print(f"Run one: prefect deployment run render-sequence/{RENDER_DEPLOYMENT} "
          "--param shotlist_path=/abs/path/list.yaml")
    return 0


def _folder(folder: str | None) -> str | None:
    """Local folders become absolute: the serving process and workers may run elsewhere."""
    if folder is None or folder.startswith("s3://"):
        return folder
    return str(Path(folder).expanduser().resolve())

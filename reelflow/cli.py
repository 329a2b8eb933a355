"""The `reelflow` command: render, plan, schema, emulator.

Validation and planning run before Prefect is imported, so a bad shot list is
refused in about a second, with nothing spent and no traceback.

Every failure is one line on stderr: bad input exits 2, anything else exits 1 as
``reelflow: <command> failed: <what>``, whatever raised it (Prefect's console log of a
failed run included). ``--verbose`` shows the tracebacks instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from reelflow.errors import CredentialsMissing, ReelflowError, ShotListError, StoreNotConfigured

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


_PROFILE_HELP = ("final: the list as written; draft: every shot with ray-flash-2 at 540p, no "
                 "upscales, a fast encode, cached apart (default: final)")
_VERBOSE_HELP = ("show tracebacks of failures and Prefect's INFO log on the console "
                 "(default: off)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelflow", description="Shot list in, edited video out.")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="render a shot list to an MP4")
    render.add_argument("file", help="shot list: a path or an s3://bucket/key URI")
    render.add_argument("--out", type=Path, default=None,
                        help="the MP4 to write (default: the list's output.path; drafts .draft.mp4)")
    render.add_argument("--profile", choices=("draft", "final"), default="final", help=_PROFILE_HELP)
    render.add_argument("--json", action="store_true",
                        help="print one JSON object about the render instead of the output path "
                             "(default: off)")
    render.add_argument("--budget", type=float, default=None, metavar="USD",
                        help="refuse before any spend when the plan would pay more than USD "
                             "(default: no limit)")
    render.add_argument("--on-moderation", choices=("fail", "skip", "placeholder"), default=None,
                        help="what a moderation refusal does (default: the list's, else fail)")
    render.add_argument("--luma-block", default=None, metavar="NAME",
                        help="a saved LumaCredentials block (default: LUMAAI_* env or the emulator)")
    render.add_argument("--store-block", default=None, metavar="NAME",
                        help="a saved ClipStoreBlock (default: REELFLOW_STORE or the local store)")
    render.add_argument("--mezzanine", choices=("prores", "dnxhr"), default=None,
                        help="also write a ProRes 422 HQ or DNxHR HQ .mov for editors (default: none)")
    render.add_argument("--distribute", action="store_true", default=None,
                        help="generate the shots on `reelflow worker`s sharing the S3 store "
                             "(default: off, or REELFLOW_DISTRIBUTE=1)")
    render.add_argument("-q", "--quiet", action="store_true",
                        help="no progress view and no summary on stderr, only failures; stdout "
                             "still gets the output path or JSON (default: off: a live view on a "
                             "terminal, plain lines when piped)")
    plan = commands.add_parser("plan", help="show what a render would generate and cost")
    plan.add_argument("file", help="shot list: a path or an s3://bucket/key URI")
    plan.add_argument("--profile", choices=("draft", "final"), default="final", help=_PROFILE_HELP)
    plan.add_argument("--json", action="store_true",
                      help="print the plan as one JSON object (default: a table)")
    compare = commands.add_parser("compare", help="render each shot with several models, side by side")
    compare.add_argument("file", help="shot list: a path or an s3://bucket/key URI")
    compare.add_argument("--models", default="ray-2,ray-flash-2",
                         help="comma-separated variants, each a model (ray-2), model@profile "
                              "(ray-2@draft) or a profile alone (the list's own models): "
                              "every generated shot under each (default: ray-2,ray-flash-2)")
    compare.add_argument("--profile", choices=("draft", "final"), default="final",
                         help="the profile of a variant that names none; " + _PROFILE_HELP)
    compare.add_argument("--out", type=Path, default=None,
                         help="the grid MP4 to write; the sheets go in a folder of its name "
                              "(default: <list stem>.compare.mp4 beside the list's output)")
    compare.add_argument("--json", action="store_true",
                         help="print one JSON object instead of the video's path (default: off)")
    schema = commands.add_parser("schema", help="print the shot list's JSON Schema")
    resolve = commands.add_parser(
        "resolve", help="decide a ray-3.2 create whose answer was lost: adopt or send again")
    resolve.add_argument("shot", help="the shot id the failed render named")
    decision = resolve.add_mutually_exclusive_group(required=True)
    decision.add_argument("--generation-id", default=None, metavar="ID",
                          help="adopt this generation (from Luma's dashboard): no new payment "
                               "(this or --resend is required)")
    decision.add_argument("--resend", action="store_true",
                          help="accept paying again: the next render sends the create anew "
                               "(this or --generation-id is required)")
    resolve.add_argument("--key", default=None, help="the record's key (or its start), when a "
                                                     "shot id has several creates in doubt "
                                                     "(default: the shot's only one)")
    resolve.add_argument("--luma-block", default=None, metavar="NAME",
                         help="a saved LumaCredentials block to check the id with "
                              "(default: the LUMAAI_*/LUMA_* environment, else the emulator)")
    resolve.add_argument("--store-block", default=None, metavar="NAME",
                         help="the ClipStoreBlock whose ledger holds the record "
                              "(default: REELFLOW_STORE or the local store)")
    files = commands.add_parser(
        "files", help="serve renders' videos and clips on loopback, so the Prefect UI's links open them")
    files.add_argument("--port", type=int, default=4201,
                       help="loopback port (default: 4201; 0 takes any free port)")
    server = _server_parser(commands)
    watch = _watch_parser(commands)
    for sub in (render, plan, compare, schema, resolve, server, watch):  # also after the command (`main` reads both)
        sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                         help=_VERBOSE_HELP)
    for name, text in (("emulator", "run the Luma API emulator"),
                       ("worker", "generate shots of distributed renders (a Prefect task worker)"),
                       ("sweep", "find distributed renders whose machine was lost; run them again"),
                       ("serve", "serve the render and production deployments (schedules)"),
                       ("deploy", "register the deployments for a work pool")):
        commands.add_parser(name, help=text, add_help=False).add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _server_parser(commands) -> argparse.ArgumentParser:
    server = commands.add_parser(
        "server", help="reelflow's local Prefect server: status, start or stop",
        description="Without PREFECT_API_URL (or a profile that sets one), render, compare and "
                    "watch start a local Prefect server on first use and reuse it; it stops "
                    "after REELFLOW_SERVER_IDLE seconds unused (default 1800). "
                    "REELFLOW_PREFECT=ephemeral opts out.")
    server.add_argument("action", choices=("status", "start", "stop"),
                        help="status: running or not, its UI and pids (exit 3 when not running); "
                             "start: start it now (or reuse it); stop: stop it")
    server.add_argument("--port", type=int, default=None,
                        help="start: the port (default: the last one if free, else any free port)")
    server.add_argument("--idle", type=float, default=None, metavar="SECONDS",
                        help="start: stop after this long unused (default: REELFLOW_SERVER_IDLE "
                             "or 1800)")
    return server


def _watch_parser(commands) -> argparse.ArgumentParser:
    watch = commands.add_parser(
        "watch", help="re-render a shot list on every save of it or of a file it names")
    watch.add_argument("file", help="shot list: a local path")
    watch.add_argument("--draft", action="store_true",
                       help="start with the draft profile: draft models at 540p, a fast "
                            "preview encode; typing d + Enter toggles it while watching "
                            "(default: off: the list as written)")
    watch.add_argument("--out", type=Path, default=None,
                       help="the MP4 to write (default: the list's output.path; drafts .draft.mp4)")
    watch.add_argument("--budget", type=float, default=None, metavar="USD",
                       help="the most this watch session may pay, all renders together; a save "
                            "whose render would pay more is refused before any spend "
                            "(default: no limit)")
    watch.add_argument("--on-moderation", choices=("fail", "skip", "placeholder"), default=None,
                       help="what a moderation refusal does (default: the list's, else fail)")
    return watch


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


#: Environment variables whose values never appear in a line the CLI prints.
_SECRET_NAMES = ("LUMAAI_API_KEY", "LUMA_AGENTS_API_KEY", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN")


def _masked(exc: BaseException) -> str:
    """The exception's message on one line, at most 600 characters, known secrets masked."""
    text = " ".join(str(exc).split()) or "(no message)"
    for name in _SECRET_NAMES:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text[:600]


def _one_line(command: str, exc: BaseException) -> str:
    """``reelflow: <command> failed: <Type>: <message>``: an exception nobody translated."""
    return f"reelflow: {command} failed: {type(exc).__name__}: {_masked(exc)}"


def _thread_failure_hook(command: str):
    """A ``threading.excepthook`` that reports a crashed background thread in one line."""

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            where = f"{command} (thread {args.thread.name})" if args.thread else command
            _err(_one_line(where, args.exc_value))

    return hook


class _NoTraceback(logging.Filter):
    """Drops a record's traceback on the console (the record still reaches Prefect's API
    handler, which runs before the root's console, with its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


_NO_TRACEBACK = _NoTraceback()


def _quiet_console() -> None:
    """Keep tracebacks out of the console log handlers (Prefect logs a failed run's
    traceback at ERROR), and Prefect's INFO chatter off the console (the flow-run log in
    Prefect keeps it); call once Prefect has configured logging. The filter is undone by
    ``main``; the level stays (Prefect's last INFO line comes at interpreter exit)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and \
                getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__):
            handler.addFilter(_NO_TRACEBACK)
            handler.setLevel(max(handler.level, logging.WARNING))


def _shotlist_path(value: str) -> Path:
    """A local shot-list path; an s3:// URI is mirrored first (its folder, with the assets),
    and the render made there is published back beside the list."""
    if not value.startswith("s3://"):
        return Path(value)
    from reelflow.flows.s3_lists import local_shotlist  # boto3 and Prefect: S3 lists only

    return local_shotlist(value)


def _validated(path: Path, profile: str, out: Path | None = None, budget: float | None = None):
    from reelflow.flows.plan import check_budget, make_plan
    from reelflow.flows.shotlist import load_shotlist

    shotlist = load_shotlist(path)
    plan = make_plan(shotlist, profile, out=out)
    for line in shotlist.warnings:
        _err(line)
    check_budget(plan, budget)
    return plan


def _cmd_plan(args) -> int:
    plan = _validated(args.file, args.profile)
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


def _cmd_render(args) -> int:
    plan = _validated(args.file, args.profile, args.out, args.budget)
    say = (lambda _line: None) if args.quiet else _err
    _preflight(plan, args.luma_block, args.store_block, say)
    ui = _prefect_api(say)
    from reelflow.flows.render import render_sequence

    if not args.verbose:
        _quiet_console()
    view = None if args.quiet else _render_view(plan)
    with view or contextlib.nullcontext():
        report = render_sequence(str(args.file.resolve()), profile=args.profile,
                                 out=str(plan.output), mezzanine=args.mezzanine,
                                 on_moderation=args.on_moderation, budget_usd=args.budget,
                                 luma_block=args.luma_block, store_block=args.store_block,
                                 distribute=args.distribute)
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
            "mezzanine": _str(report.mezzanine), "output_uri": report.output_uri,
            "shot_results": [s.model_dump(mode="json") for s in report.shot_results],
            "stills": [s.model_dump(mode="json") for s in report.stills],
        }))
    else:
        print(report.output)
    return EXIT_OK


def _preflight(plan, luma_block: str | None, store_block: str | None, say) -> None:
    """The checks `render` (and `watch`) make after the plan and before Prefect."""
    from reelflow.flows.endpoint import check_credentials, image_url_resolver, luma_credentials

    if not luma_block:
        check_credentials(plan)  # a list needing an API whose key is missing: before Prefect
        luma_credentials(announce=say)  # starts the embedded emulator now, and says so
    if not store_block:  # (a block's store is checked in the flow, still before any spend)
        urls = image_url_resolver(plan)  # local keyframes with the real API need S3: refuse
        if urls is not None:             # before Prefect (the flow opens its own asset scope)
            urls.close()


def _cmd_watch(args) -> int:
    from reelflow._watch import Watch
    from reelflow.flows.plan import check_budget, make_plan
    from reelflow.flows.shotlist import load_shotlist

    def check(path: Path, profile: str, budget: float | None):
        shotlist = load_shotlist(path)
        plan = make_plan(shotlist, profile, out=args.out)
        for line in shotlist.warnings:
            _err(line)
        check_budget(plan, budget)
        _preflight(plan, None, None, _err)
        return shotlist, plan

    def render(path: Path, profile: str, budget: float | None, plan):
        from reelflow.flows.render import render_sequence

        report = render_sequence(str(path.resolve()), profile=profile, out=str(plan.output),
                                 on_moderation=args.on_moderation, budget_usd=budget)
        if report.flow_run_url and ui:
            _err(f"Flow run: {report.flow_run_url}")
        return report

    ui = _prefect_api(_err)
    import reelflow.flows.render  # noqa: F401 - Prefect and the flow warm before the first save

    if not args.verbose:
        _quiet_console()
    return Watch(args.file, "draft" if args.draft else "final", args.budget, check, render,
                 _err).run(keys=sys.stdin)  # None when there is no stdin


def _prefect_api(say) -> str | None:
    """The Prefect UI this command reports to (reelflow's managed server unless one is
    configured), or None in ephemeral mode, which says so."""
    from reelflow._server import use_prefect

    ui = use_prefect(say)
    if ui is None:
        say("Prefect runs ephemeral (REELFLOW_PREFECT=ephemeral: a temporary server per "
            "command, no UI)")
    return ui


def _render_view(plan):
    """The progress view on stderr: live on a terminal, plain lines otherwise."""
    from reelflow._live import RenderView

    return RenderView(plan, stream=sys.stderr, live=sys.stderr.isatty())


def _cmd_files(args) -> int:
    """Serve this REELFLOW_HOME's linked files until interrupted (Ctrl-C)."""
    import time

    from reelflow.tasks.file_server import FileServer, running_url

    if running_url():
        _err(f"reelflow: a file server already serves this REELFLOW_HOME at {running_url()}")
        return EXIT_FAILED
    server = FileServer(args.port).start()
    print(f"Serving the files renders link to at {server.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _str(path) -> str | None:
    return None if path is None else str(path)


def _cmd_compare(args) -> int:
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

    luma_credentials(announce=_err)
    if ui := _prefect_api(_err):
        _err(f"Prefect UI: {ui}")
    from reelflow.flows._compare_summary import print_summary
    from reelflow.flows.compare import compare_models

    if not args.verbose:
        _quiet_console()
    report = compare_models(str(args.file.resolve()), models, profile=args.profile,
                            out=str(args.out.resolve()) if args.out else None)
    if args.json:
        print(report.model_dump_json())
    else:
        print_summary(report, sys.stdout)
    return EXIT_OK


def _cmd_resolve(args) -> int:
    from reelflow.flows.endpoint import luma_credentials
    from reelflow.flows.resolve import resolve_send
    from reelflow.tasks._ledger import Ledger
    from reelflow.tasks.store import ClipStore

    store = ClipStore.default()
    if args.store_block:
        from reelflow.tasks.store_block import store_from_block

        store = store_from_block(args.store_block)
    credentials = luma_credentials(block=args.luma_block) if args.generation_id else None
    done = resolve_send(args.shot, generation_id=args.generation_id, resend=args.resend,
                        key=args.key, ledger=Ledger.for_store(store), credentials=credentials)
    what = (f"adopted generation {done.generation_id}: the next render waits on it and pays "
            "nothing" if done.generation_id else "cleared: the next render sends the create "
                                                 "again (and pays for it)")
    print(f"shot {done.shot_id}: {what} (ledger record {done.record})")
    return EXIT_OK


def _cmd_server(args) -> int:
    from reelflow import _server

    configured = _server.configured_api_url()
    if configured and args.action != "stop":
        print(f"Prefect API: {configured} (PREFECT_API_URL or the active profile): reelflow "
              "starts no server of its own")
        return EXIT_OK
    if args.action == "stop":
        stopped = _server.stop_server()
        print(f"stopped the Prefect server at {stopped.ui_url} (pid {stopped.server_pid})"
              if stopped else "no reelflow Prefect server is running")
        return EXIT_OK
    if args.action == "start":
        state, started = _server.ensure_server(_err, port=args.port, idle_s=args.idle)
    else:
        state, started = _server.running_server(), False
        if state is None:
            print("no reelflow Prefect server is running (render, compare or watch starts one)")
            return 3
    idle = _server.duration(max(0.0, time.time() - _server.last_used(_server.server_dir())))
    print(f"{'started' if started else 'running'}: Prefect UI {state.ui_url} (API {state.api_url}); "
          f"pid {state.server_pid}, watchdog {state.pid}; unused for {idle}, stops after "
          f"{_server.duration(state.idle_s)}; PREFECT_HOME {state.prefect_home}; "
          f"log {_server.server_dir() / 'server.log'}")
    return EXIT_OK


def _cmd_schema(_args) -> int:
    from reelflow.flows.shotlist import shotlist_json_schema

    print(json.dumps(shotlist_json_schema(), indent=2))
    return EXIT_OK


_PASSTHROUGH = ("emulator", "serve", "deploy", "worker", "sweep")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `reelflow` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = argv[:1] == ["--verbose"]
    if verbose:
        argv.pop(0)
    command = argv[0] if argv else "reelflow"
    verbose = verbose or (command not in _PASSTHROUGH and "--verbose" in argv)
    thread_hook = threading.excepthook
    if not verbose:
        threading.excepthook = _thread_failure_hook(command)
    try:
        return _dispatch(argv, verbose)
    except KeyboardInterrupt:
        _err("reelflow: interrupted; paid generations are recorded and the next run resumes them")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last guard: every failure is one line
        if verbose:
            raise
        _err(_one_line(command, exc))
        return EXIT_FAILED
    finally:
        threading.excepthook = thread_hook
        for handler in logging.getLogger().handlers:
            handler.removeFilter(_NO_TRACEBACK)


def _dispatch(argv: list[str], verbose: bool) -> int:
    if argv[:1] == ["emulator"]:
        from reelflow.emulator import main as emulator_main

        return emulator_main(argv[1:])
    if argv[:1] in (["worker"], ["sweep"]):
        from reelflow._worker import main as worker_main, main_sweep

        return (worker_main if argv[0] == "worker" else main_sweep)(argv[1:])
    if argv[:1] in (["serve"], ["deploy"]):
        from reelflow.deployments.serve import main_deploy, main_serve  # configures Prefect's logs

        if not verbose:
            _quiet_console()
        return (main_serve if argv[0] == "serve" else main_deploy)(argv[1:])
    args = _parser().parse_args(argv)
    args.verbose = verbose
    handler = {"render": _cmd_render, "plan": _cmd_plan, "schema": _cmd_schema,
               "compare": _cmd_compare, "resolve": _cmd_resolve, "files": _cmd_files,
               "server": _cmd_server, "watch": _cmd_watch}[args.command]
    try:
        if getattr(args, "file", None) is not None:
            args.file = _shotlist_path(args.file)
        return handler(args)
    except ShotListError as exc:
        for line in exc.problems:
            _err(line)
        return EXIT_BAD_INPUT
    except (StoreNotConfigured, CredentialsMissing) as exc:
        _err(f"reelflow: {_masked(exc)}")
        return EXIT_BAD_INPUT
    except ReelflowError as exc:
        if verbose:
            raise
        _err(f"reelflow: {_masked(exc)}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

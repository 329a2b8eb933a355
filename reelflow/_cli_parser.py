"""The `reelflow` command line: every command, flag and help text (`build_parser`).

The commands that hand their arguments to another parser (emulator, worker, sweep, serve,
deploy) are listed here too, so `reelflow --help` names them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["build_parser"]


_PROFILE_HELP = ("final: the list as written; draft: every shot with ray-flash-2 at 540p, no "
                 "upscales, a fast encode, cached apart (default: final)")
_VERBOSE_HELP = ("show tracebacks of failures and Prefect's INFO log on the console "
                 "(default: off)")


def build_parser() -> argparse.ArgumentParser:
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

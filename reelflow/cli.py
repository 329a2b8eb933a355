"""The `reelflow` command: render, plan, schema, emulator.

Validation and planning run before Prefect is imported, so a bad shot list is
refused in about a second, with nothing spent and no traceback.

Every failure is one line on stderr: bad input exits 2, anything else exits 1 as
``reelflow: <command> failed: <what>``, whatever raised it (Prefect's console log of a
failed run included). ``--verbose`` shows the tracebacks instead.

This module is the dispatch and the last guard; the commands live in
``_cli_render.py`` (plan, render, watch, compare) and ``_cli_commands.py`` (files,
resolve, server, schema), the flags in ``_cli_parser.py``, the one-line failure output
in ``_cli_console.py``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from reelflow._cli_commands import cmd_files, cmd_resolve, cmd_schema, cmd_server
from reelflow._cli_console import (EXIT_BAD_INPUT, EXIT_FAILED, err, loud_console, masked,
                                   one_line, quiet_console, thread_failure_hook)
from reelflow._cli_parser import build_parser
from reelflow._cli_render import cmd_compare, cmd_plan, cmd_render, cmd_watch
from reelflow.errors import CredentialsMissing, ReelflowError, ShotListError, StoreNotConfigured

__all__ = ["main"]

_PASSTHROUGH = ("emulator", "serve", "deploy", "worker", "sweep")
_COMMANDS = {"render": cmd_render, "plan": cmd_plan, "schema": cmd_schema,
             "compare": cmd_compare, "resolve": cmd_resolve, "files": cmd_files,
             "server": cmd_server, "watch": cmd_watch}


def _shotlist_path(value: str) -> Path:
    """A local shot-list path; an s3:// URI is mirrored first (its folder, with the assets),
    and the render made there is published back beside the list."""
    if not value.startswith("s3://"):
        return Path(value)
    from reelflow.flows.s3_lists import local_shotlist  # boto3 and Prefect: S3 lists only

    return local_shotlist(value)


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
        threading.excepthook = thread_failure_hook(command)
    try:
        return _dispatch(argv, verbose)
    except KeyboardInterrupt:
        err("reelflow: interrupted; paid generations are recorded and the next run resumes them")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last guard: every failure is one line
        if verbose:
            raise
        err(one_line(command, exc))
        return EXIT_FAILED
    finally:
        threading.excepthook = thread_hook
        loud_console()


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
            quiet_console()
        return (main_serve if argv[0] == "serve" else main_deploy)(argv[1:])
    args = build_parser().parse_args(argv)
    args.verbose = verbose
    handler = _COMMANDS[args.command]
    try:
        if getattr(args, "file", None) is not None:
            args.file = _shotlist_path(args.file)
        return handler(args)
    except ShotListError as exc:
        for line in exc.problems:
            err(line)
        return EXIT_BAD_INPUT
    except (StoreNotConfigured, CredentialsMissing) as exc:
        err(f"reelflow: {masked(exc)}")
        return EXIT_BAD_INPUT
    except ReelflowError as exc:
        if verbose:
            raise
        err(f"reelflow: {masked(exc)}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

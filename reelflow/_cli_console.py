"""What the `reelflow` command prints when something fails: exit codes, one line per failure,
known secrets masked, no tracebacks on the console unless ``--verbose``."""

from __future__ import annotations

import logging
import sys
import threading

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "err", "loud_console", "masked",
           "one_line", "quiet_console", "thread_failure_hook"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def masked(exc: BaseException) -> str:
    """The exception's message on one line, at most 600 characters, known secrets masked
    (every secret ``reelflow.config.Settings`` reads)."""
    from reelflow.config import settings

    text = " ".join(str(exc).split()) or "(no message)"
    for secret in settings().secret_values():
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text[:600]


def one_line(command: str, exc: BaseException) -> str:
    """``reelflow: <command> failed: <Type>: <message>``: an exception nobody translated."""
    return f"reelflow: {command} failed: {type(exc).__name__}: {masked(exc)}"


def thread_failure_hook(command: str):
    """A ``threading.excepthook`` that reports a crashed background thread in one line."""

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            where = f"{command} (thread {args.thread.name})" if args.thread else command
            err(one_line(where, args.exc_value))

    return hook


class _NoTraceback(logging.Filter):
    """Drops a record's traceback on the console (the record still reaches Prefect's API
    handler, which runs before the root's console, with its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


_NO_TRACEBACK = _NoTraceback()


def quiet_console() -> None:
    """Keep tracebacks out of the console log handlers (Prefect logs a failed run's
    traceback at ERROR), and Prefect's INFO chatter off the console (the flow-run log in
    Prefect keeps it); call once Prefect has configured logging. The filter is undone by
    ``main``; the level stays (Prefect's last INFO line comes at interpreter exit)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and \
                getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__):
            handler.addFilter(_NO_TRACEBACK)
            handler.setLevel(max(handler.level, logging.WARNING))


def loud_console() -> None:
    """Undo `quiet_console`'s traceback filter (``main`` calls it when a command ends)."""
    for handler in logging.getLogger().handlers:
        handler.removeFilter(_NO_TRACEBACK)

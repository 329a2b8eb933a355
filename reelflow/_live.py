"""What `reelflow render` shows while it works, on stderr (stdout keeps the path or JSON).

* On a terminal: a live table (rich) of every shot's state (cached / queued / dreaming /
  downloading / conforming / done / failed), its elapsed time and cost, the money spent
  so far against the plan's estimate, and the shot that holds the sequence up; then a
  one-screen summary.
* Otherwise (piped, redirected): one plain line per change, ``  12.3s shot nets: dreaming``,
  and the summary as plain lines: easy to grep.
* On a terminal, Prefect's console log lines (the CLI holds them at WARNING unless
  ``--verbose``) are printed above the live table.

States come from :mod:`reelflow._progress`, which the flow feeds in this process.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from reelflow._progress import ShotState, Stage, listening

__all__ = ["RenderView"]

_FINAL = ("done", "failed")
_STYLE = {"cached": "cyan", "queued": "yellow", "dreaming": "magenta", "downloading": "blue",
          "conforming": "blue", "done": "green", "failed": "bold red"}


@dataclass
class _Row:
    id: str
    kind: str
    state: str
    price: float
    paid: float = 0.0
    ended: float | None = None
    detail: str = ""


class RenderView:
    """A render's progress on ``stream``: live on a terminal, plain lines elsewhere.

    Use as a context manager around the render; call :meth:`summary` with the report.
    """

    def __init__(self, plan, *, stream: TextIO, live: bool):
        self.plan = plan
        self.rows = {s.id: _Row(s.id, s.kind, "cached" if s.status == "cached" else "queued",
                                s.to_pay_usd) for s in plan.shots}
        self.stage = "starting Prefect"
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.console = Console(file=stream, highlight=False, soft_wrap=not live,
                               force_terminal=live or None)
        self._live = Live(console=self.console, get_renderable=self._table,
                          refresh_per_second=4, transient=True) if live else None
        self._listening = listening(self._on_event)
        self._prefect: list[tuple[logging.Handler, Console]] = []

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> RenderView:
        self._through_view()
        self._listening.__enter__()
        if self._live:
            self._live.start()
        else:
            self._line(f"{self.plan.source.name}: {len(self.rows)} shots, profile {self.plan.profile}, "
                       f"est. ${self.plan.cost_usd:.2f} to spend")
            for row in self.rows.values():
                if row.state == "cached":
                    self._line(f"shot {row.id}: cached")
        return self

    def __exit__(self, *exc) -> None:
        self._listening.__exit__(*exc)
        if self._live:
            self._live.stop()
            if exc[0] is not None:                 # leave the last state on screen
                self.console.print(self._table())
        self._restore_prefect()

    def _through_view(self) -> None:
        """On a terminal, Prefect's console handlers print through the view's console, so
        their lines (warnings; everything with --verbose) land above the live table."""
        from prefect.logging.handlers import PrefectConsoleHandler

        if not self._live:
            return
        for handler in logging.getLogger().handlers:
            if isinstance(handler, PrefectConsoleHandler) and hasattr(handler, "console"):
                self._prefect.append((handler, handler.console))
                handler.console = self.console

    def _restore_prefect(self) -> None:
        for handler, console in self._prefect:
            handler.console = console
        self._prefect.clear()

    # ----------------------------------------------------------------- events
    def _on_event(self, event: ShotState | Stage) -> None:
        with self._lock:
            if isinstance(event, Stage):
                self.stage = event.name
                line = event.name
            else:
                line = self._shot_event(event)
        if line and not self._live:
            self._line(line)

    def _shot_event(self, event: ShotState) -> str | None:
        row = self.rows.get(event.shot)
        if row is None:
            return None
        row.paid = round(row.paid + event.paid_usd, 2)
        if event.state == row.state and not event.paid_usd:
            return None
        row.state, row.detail = event.state, event.detail or row.detail
        if event.state in _FINAL:
            row.ended = time.monotonic()
        paid = f" (paid ${event.paid_usd:.2f})" if event.paid_usd else ""
        why = f": {event.detail}" if event.detail else ""
        return f"shot {row.id}: {row.state}{paid}{why}"

    def _line(self, text: str) -> None:
        self.console.print(f"{time.monotonic() - self.started:7.1f}s  {text}", markup=False)

    # ----------------------------------------------------------------- the live table
    @property
    def spent(self) -> float:
        """What this run has committed so far (creates and steps sent)."""
        return round(sum(r.paid for r in self.rows.values()), 2)

    def holding_up(self) -> _Row | None:
        """The first shot, in edit order, that is not ready yet: the sequence waits for it."""
        return next((r for r in self.rows.values() if r.state not in _FINAL), None)

    def _elapsed(self, row: _Row) -> str:
        return f"{(row.ended or time.monotonic()) - self.started:5.1f}s"

    def _cost(self, row: _Row) -> Text:
        if row.kind == "card":
            return Text("card", style="dim")
        if row.paid:
            return Text(f"${row.paid:.2f}")
        if row.state == "cached" or (row.state in _FINAL and not row.price):
            return Text("cached", style="dim")
        return Text(f"est. ${row.price:.2f}", style="dim")

    def _table(self) -> Group:
        with self._lock:
            table = Table(box=None, pad_edge=False, show_edge=False)
            for name, justify in (("#", "right"), ("shot", "left"), ("state", "left"),
                                  ("elapsed", "right"), ("cost", "right")):
                table.add_column(name, justify=justify, no_wrap=True)
            for i, row in enumerate(self.rows.values(), 1):
                table.add_row(str(i), row.id, Text(row.state, style=_STYLE.get(row.state, "")),
                              self._elapsed(row), self._cost(row))
            head = Text.assemble(
                (f"{self.plan.source.name}", "bold"), f" · {self.plan.profile} · {self.stage} · ",
                f"{time.monotonic() - self.started:.0f}s · spent ${self.spent:.2f} of est. "
                f"${self.plan.cost_usd:.2f}")
            late = self.holding_up()
            foot = Text(f"waiting on: {late.id} ({late.state})" if late else "", style="yellow")
        return Group(head, table, foot)

    # ----------------------------------------------------------------- the end
    def summary(self, report) -> None:
        """One screen about the finished render: per shot how it was made, totals, files."""
        took = time.monotonic() - self.started
        counts = {k: sum(s.status == k for s in report.shot_results)
                  for k in ("paid", "cached", "card", "refused")}
        totals = (f"{report.shots} shots: {counts['paid']} paid (${report.cost_usd:.2f}), "
                  f"{counts['cached']} cached, {counts['card']} card{'s' * (counts['card'] != 1)}"
                  + (f", {counts['refused']} refused" if counts["refused"] else "")
                  + f"; {report.duration_s:.1f}s of video in {took:.1f}s")
        files = [("output", report.output), ("poster", report.poster),
                 ("contact sheet", report.contact_sheet), ("otio", report.otio),
                 ("mezzanine", report.mezzanine),
                 *(("exr", path) for path in report.exr), ("published", report.output_uri)]
        if not self._live:
            self._line(f"done: {totals}")
            for name, value in files:
                if value:
                    self._line(f"{name}: {value}")
            return
        table = Table(title=f"{self.plan.source.name} ({report.profile})", title_justify="left")
        for name, justify in (("shot", "left"), ("made", "left"), ("model", "left"),
                              ("length", "right"), ("cost", "right")):
            table.add_column(name, justify=justify)
        for s in report.shot_results:
            table.add_row(s.id, s.status + (f": {s.failure_reason}" if s.failure_reason else ""),
                          s.model or "-", f"{s.length_s:g}s", f"${s.cost_usd:.2f}")
        self.console.print(table)
        self.console.print(Text(totals, style="bold"))
        for name, value in files:
            if value:
                self.console.print(f"{name + ':':<15}{value}", markup=False, highlight=False)

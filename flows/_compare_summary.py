"""What `reelflow compare` reports: one row per shot and variant, a total per variant.

The same rows become a rich table on a terminal, plain aligned text when the output is
piped, and a table and a markdown artifact in Prefect. ``price`` is the list price of
the shot under the variant (what choosing it costs); ``paid`` is what this run paid
(0 for a clip reused from the ledger); ``gen`` is how long the model took to make the
clip when it was paid for (the ledger keeps it, so a cached cell still shows it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TextIO

from pydantic import BaseModel, Field

__all__ = ["CompareCell", "CompareReport", "VariantTotal", "markdown", "print_summary", "table_rows"]


class CompareCell(BaseModel):
    """One shot under one variant."""

    shot: str
    variant: str = Field(description="The variant as written in --models (ray-3.2@draft).")
    model: str = Field(description="The model the clip was made with (a draft's ray-flash-2).")
    resolution: str
    duration: str
    status: Literal["paid", "cached", "refused"]
    price_usd: float = Field(description="The list price of the shot under this variant.")
    paid_usd: float = Field(default=0.0, description="What this run paid for it.")
    gen_s: float | None = Field(default=None, description="Seconds the model took to make it.")
    generation_id: str | None = None
    sha256: str | None = None


class VariantTotal(BaseModel):
    """A variant's whole sequence: what it costs, what this run paid, how long it took."""

    variant: str
    models: list[str]
    resolutions: list[str]
    price_usd: float
    paid_usd: float
    paid: int
    cached: int
    refused: int
    gen_s: float | None = None

    @property
    def label(self) -> str:
        """The grid panel's caption: variant (model), resolution, price, generation time."""
        name = self.variant if self.models == [self.variant] else \
            f"{self.variant} ({', '.join(self.models)})"
        gen = f" · gen {self.gen_s:.0f}s" if self.gen_s is not None else ""
        return f"{name} · {'/'.join(self.resolutions)} · ${self.price_usd:.2f}{gen}"


class CompareReport(BaseModel):
    """The comparison grid, a contact sheet per shot, and the cost of every cell."""

    video: Path
    contact_sheets: dict[str, Path] = Field(description="Shot id -> its sheet (a row per variant).")
    cells: list[CompareCell]
    variants: list[VariantTotal]
    paid_usd: float = Field(description="What this run paid, every variant and still.")
    stills_paid_usd: float = Field(default=0.0, description="Of which stills (shared by variants).")
    cost_usd: dict[str, float] = Field(description="Variant -> the list price of its sequence.")
    flow_run_name: str | None = None


_HEAD = ("shot", "variant", "model", "res", "dur", "status", "price", "paid", "gen")


def _gen(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f}s"


def table_rows(report: CompareReport) -> list[tuple[str, ...]]:
    """Every cell, then one ``total`` row per variant, as the table's text."""
    rows = [(c.shot, c.variant, c.model, c.resolution, c.duration, c.status, f"${c.price_usd:.2f}",
             f"${c.paid_usd:.2f}", _gen(c.gen_s)) for c in report.cells]
    rows += [("total", v.variant, ", ".join(v.models), "/".join(v.resolutions), "",
              f"{v.paid} paid, {v.cached} cached" + (f", {v.refused} refused" if v.refused else ""),
              f"${v.price_usd:.2f}", f"${v.paid_usd:.2f}", _gen(v.gen_s)) for v in report.variants]
    return rows


def _footer(report: CompareReport) -> list[str]:
    stills = f" (stills ${report.stills_paid_usd:.3f})" if report.stills_paid_usd else ""
    lines = [f"paid this run: ${report.paid_usd:.2f}{stills}", f"grid: {report.video}"]
    if report.contact_sheets:
        folder = next(iter(report.contact_sheets.values())).parent
        lines.append(f"contact sheets: {folder}/ (one per shot: {len(report.contact_sheets)})")
    return lines


def plain_text(report: CompareReport) -> str:
    """The table as aligned plain text (for pipes and logs), then the totals and paths."""
    rows = [_HEAD, *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]
    right = {6, 7, 8}
    lines = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    return "\n".join(lines + _footer(report))


def print_summary(report: CompareReport, stream: TextIO) -> None:
    """A rich table when ``stream`` is a terminal, else :func:`plain_text`."""
    if not stream.isatty():
        print(plain_text(report), file=stream)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"compare: {', '.join(v.variant for v in report.variants)}")
    for i, name in enumerate(_HEAD):
        table.add_column(name, justify="right" if i >= 6 else "left")
    cells = table_rows(report)
    for n, row in enumerate(cells):
        table.add_row(*row, end_section=n == len(report.cells) - 1,
                      style="bold" if n >= len(report.cells) else None)
    console = Console(file=stream)
    console.print(table)
    for line in _footer(report):
        console.print(line, markup=False, highlight=False)


def markdown(report: CompareReport, title: str) -> str:
    """The summary as a markdown artifact: the totals per variant, then every cell."""
    def cell(text: str) -> str:
        return (text or "—").replace("|", "\\|")

    lines = [f"# Compare: {cell(title)}", "", f"**Paid this run:** ${report.paid_usd:.2f} · "
             f"**grid:** `{report.video}`", "",
             "| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table_rows(report)]
    return "\n".join(lines)

"""Rich tables of the commands' results: core modules return plain data (rows, captions), this module draws it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from edge_tl.bench.results import BenchResult
    from edge_tl.train.metrics import ClassReport


def class_table(report: ClassReport, title: str) -> Table:
    """Per-class accuracy of ``report`` with the overall accuracy as the last row (``train``, ``eval``)."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("class")
    t.add_column("images", justify="right")
    t.add_column("correct", justify="right")
    t.add_column("accuracy %", justify="right")
    for r in report.per_class():
        acc = "-" if r["images"] == 0 else f"{100 * r['accuracy']:.1f}"
        t.add_row(r["class"], str(r["images"]), str(r["correct"]), acc)
    t.add_section()
    correct = sum(r["correct"] for r in report.per_class())
    t.add_row("all", str(report.total), str(correct), f"{100 * report.accuracy:.2f}", style="bold")
    return t


def bench_table(result: BenchResult) -> Table:
    """``edge-tl bench`` rows (fastest first) in :data:`edge_tl.bench.format.COLUMNS`, the recommendation in bold
    green with a marker, failures red, noisy rows yellow; :func:`edge_tl.bench.format.caption` below."""
    from rich.table import Table

    from edge_tl.bench.format import COLUMNS, caption

    s = result.settings
    table = Table(title=f"edge-tl bench ({s.profile}, batch {s.batch}, min-time {s.min_time:g} s)",
                  caption=caption(result), caption_justify="left")
    table.add_column("")
    for c in COLUMNS:
        table.add_column(c.header, justify="right" if c.right else "left", no_wrap=c.header == "artefact")
    for r in result.rows:
        best = r.key == result.recommended
        style = "bold green" if best else "red" if not r.ok or r.parity_failed else "yellow" if r.noise else None
        table.add_row("*" if best else "", *(c.cell(r) for c in COLUMNS), style=style)
    return table

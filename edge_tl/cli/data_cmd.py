"""``edge-tl data check PATH``: the hygiene scan as a command (rich table, ``--json``, exit status)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_tl.cli.options import emit_json, json_option

if TYPE_CHECKING:
    from rich.console import Console

    from edge_tl.data.hygiene import ScanReport


@click.group("data")
def data() -> None:
    """Inspect datasets: hygiene scan of an image folder."""


@data.command("check")
@click.argument("path")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Extracted copy of a named dataset (oxford-pets, cats-vs-dogs), or the folder for 'folder'.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Decoding threads (default: all cores).")
@click.option("--show", type=click.IntRange(min=0), default=20, show_default=True,
              help="List at most N bad files and N duplicate groups.")
@json_option
def check(path: str, data_root: Path | None, threads: int | None, show: int, json_path: str | None) -> None:
    """Scan PATH for files that would break or bias training.

    PATH is an ImageFolder-layout folder (optionally split into train/val/test), a dataset name (sample,
    oxford-pets, cats-vs-dogs), a split manifest (split.json) or a run folder. Finds zero-byte, truncated,
    non-image and oversized files (skipped by training), renamed formats, CMYK/grayscale/alpha/palette/16-bit
    images and EXIF rotations (converted), exact duplicates, and images in two splits (leakage).

    Exit status: 0 clean (duplicates and conversions are only reported), 1 problems found (bad files,
    leakage, an image filed under two classes, changed files, a class too small to split), 2 unusable input.
    """
    from rich.console import Console

    from edge_tl.cli.progress import ConsoleReporter
    from edge_tl.data.check import check_path, has_problems

    report = check_path(path, data_root, threads=threads, reporter=ConsoleReporter())
    console = Console(stderr=json_path == "-", width=max(Console().width, 100))
    render(report, console, show)
    emit_json(report.to_json(), json_path)
    if has_problems(report):
        sys.exit(1)


def _rel(path: Path, root: str) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def render(report: ScanReport, console: Console, show: int = 20) -> None:
    """Print the summary table, then the bad files and duplicate groups (at most ``show`` each)."""
    from rich.table import Table

    from edge_tl.data.hygiene import BAD_KINDS, NOTE_KINDS

    ex = report.extra
    root = ex.get("root", "")
    counts = report.class_counts()
    t = Table(title=f"data check: {ex.get('dataset', '')} ({root})", title_justify="left")
    t.add_column("check")
    t.add_column("files", justify="right")
    t.add_column("what happens")
    t.add_row("scanned", str(report.total), f"{report.seconds:.1f} s")
    t.add_row("usable", str(len(report.records)),
              f"{len(counts)} classes, {min(counts.values(), default=0)}-{max(counts.values(), default=0)} "
              "usable images per class")
    for kind, n in report.bad_counts().items():
        t.add_row(kind, _num(n, "red"), BAD_KINDS[kind] + ("; skipped" if n else ""))
    for kind, n in report.note_counts().items():
        t.add_row(kind, _num(n, "yellow"), NOTE_KINDS[kind])
    n_dup = sum(len(g.paths) - 1 for g in report.duplicates)
    conflicts = sum(g.label_conflict for g in report.duplicates)
    t.add_row("duplicates", _num(n_dup, "red" if conflicts else "yellow"),
              f"exact copies in {len(report.duplicates)} group(s)"
              + (f", {conflicts} filed under two classes" if conflicts else "") + "; kept once when splitting")
    t.add_row("leakage", _num(len(report.leakage), "red"), "the same image in two splits")
    if ex.get("changed"):
        t.add_row("changed", _num(len(ex["changed"]), "red"), "content differs from the split manifest")
    for small in ex.get("too_small", []):
        t.add_row("too small", _num(small["images"], "red"),
                  f"class '{small['class']}': {small['needed']} usable images needed to split")
    console.print(t)
    if report.bad and show:
        b = Table(title=f"bad files ({len(report.bad)}, skipped)", title_justify="left")
        for col in ("file", "kind", "reason"):
            b.add_column(col, overflow="fold")
        for bad in report.bad[:show]:
            b.add_row(_rel(bad.path, root), bad.kind, bad.reason)
        if len(report.bad) > show:
            b.add_row(f"... {len(report.bad) - show} more (see --json)", "", "")
        console.print(b)
    groups = list(report.leakage) + [g for g in report.duplicates if g not in report.leakage]
    if groups and show:
        with_splits = any(g.splits for g in groups)
        d = Table(title="identical files", title_justify="left")
        d.add_column("files", overflow="fold")
        if with_splits:
            d.add_column("splits")
        for g in groups[:show]:
            cells = [" = ".join(_rel(p, root) for p in g.paths)] + ([", ".join(g.splits)] if with_splits else [])
            d.add_row(*cells)
        console.print(d)


def _num(n: int, colour: str) -> str:
    return f"[{colour}]{n}[/]" if n else "0"

"""Bench results as plain table data (:data:`COLUMNS`, :func:`caption`), CSV and Markdown. JSON is
``BenchResult.to_json()``; the terminal table is drawn from the same columns by ``edge_tl.cli.tables``."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_tl.bench.results import BenchResult, BenchRow


def _f(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _status(r: BenchRow) -> str:
    if not r.ok:
        return "error"
    if r.parity_failed:
        return "parity FAIL"
    return "ok (noisy)" if r.noise else "ok"


@dataclass(frozen=True)
class Column:
    """One table column: header, cell text, right-justified or not."""

    header: str
    cell: Callable[[BenchRow], str]
    right: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("artefact", lambda r: r.name, right=False),
    Column("format", lambda r: r.format, right=False),
    Column("quant", lambda r: r.quantization, right=False),
    Column("runtime", lambda r: r.runtime, right=False),
    Column("prec", lambda r: r.precision or "-", right=False),
    Column("thr", lambda r: str(r.threads)),
    Column("status", _status, right=False),
    Column("size MB", lambda r: _f(r.size_mb, 2)),
    Column("top-1 %", lambda r: _f(r.top1, 2)),
    Column("agree %", lambda r: _f(r.agreement, 2)),
    Column("p50 ms", lambda r: _ms(r.p50)),
    Column("95% CI", lambda r: f"{_ms(r.latency.p50.low)}-{_ms(r.latency.p50.high)}" if r.latency else "-"),
    Column("p90 ms", lambda r: _ms(r.p90)),
    Column("FPS", lambda r: _f(r.throughput, 1)),
    Column("peak MB", lambda r: _f(r.peak_rss_mb, 0)),
    Column("GFLOP/s", lambda r: "-" if r.gflops is None else f"{r.gflops:.1f} ({r.peak_pct:.0f}%)"),
)


def caption(result: BenchResult) -> str:
    """Lines under the table: recommendation, errors, noise, data, environment, notes."""
    lines = []
    best = result.recommendation
    if best is not None:
        drop = (result.reference_top1 - best.top1) if result.reference_top1 is not None and best.top1 is not None \
            else None
        lines.append(f"* recommended: {best.name} on {best.runtime} ({best.precision or '-'}), {best.threads} "
                     f"thread(s): {_ms(best.p50)} ms "
                     f"p50, {_f(best.top1, 2)} % top-1 (drop {_f(drop, 2)} pt <= {result.settings.max_drop:g})")
    else:
        lines.append("no recommendation: no row was measured with an accuracy")
    lines += [f"error {r.key}: {r.error}" for r in result.rows if not r.ok]
    failed = sorted({r.name for r in result.rows if r.parity_failed})
    if failed:
        lines.append(f"parity FAIL (never recommended; its card records a failed export check): {', '.join(failed)}")
    lines += [f"noisy {r.key}: {'; '.join(r.noise)}" for r in result.rows if r.noise]
    lines.append(f"eval data: {result.data}; GFLOP/s % of {result.settings.peak_gflops_per_core:g} GFLOP/s per "
                 f"core x threads")
    lines.append(f"host: {result.env.summary()}")
    lines += list(result.notes)
    return "\n".join(lines)


CSV_FIELDS: tuple[str, ...] = (
    "name", "path", "format", "quantization", "runtime", "precision", "parity_failed", "threads", "batch", "status",
    "error", "size_mb", "params",
    "macs", "load_ms", "first_ms", "p50_ms", "p50_low_ms", "p50_high_ms", "p90_ms", "p90_low_ms", "p90_high_ms",
    "p99_ms", "p99_low_ms", "p99_high_ms", "mean_ms", "std_ms", "runs", "throughput", "gflops", "peak_pct",
    "peak_rss_mb", "top1", "top5", "agreement", "n_eval", "noisy", "noise", "loop", "recommended",
)


def flat_row(r: BenchRow, recommended: str | None) -> dict[str, Any]:
    """One row as a flat dict with :data:`CSV_FIELDS` keys (None for what was not measured)."""
    d: dict[str, Any] = {k: getattr(r, k) for k in ("name", "path", "format", "quantization", "runtime",
                                                    "precision", "parity_failed", "threads",
                                                    "batch", "status", "error", "size_mb", "params", "macs",
                                                    "load_ms", "first_ms", "throughput", "gflops", "peak_pct",
                                                    "peak_rss_mb", "top1", "top5", "agreement", "n_eval", "loop")}
    lat = r.latency
    for q in ("p50", "p90", "p99"):
        iv = getattr(lat, q) if lat else None
        d[f"{q}_ms"], d[f"{q}_low_ms"], d[f"{q}_high_ms"] = (iv.value, iv.low, iv.high) if iv else (None,) * 3
    d["mean_ms"], d["std_ms"], d["runs"] = (lat.mean, lat.std, lat.n) if lat else (None, None, None)
    d["noisy"], d["noise"], d["recommended"] = bool(r.noise), "; ".join(r.noise), r.key == recommended
    return {k: d[k] for k in CSV_FIELDS}


def to_csv(result: BenchResult) -> str:
    """All rows, every field, one line each."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in result.rows:
        w.writerow({k: "" if v is None else v for k, v in flat_row(r, result.recommended).items()})
    return buf.getvalue()


def to_markdown(result: BenchResult) -> str:
    """The terminal table as GitHub Markdown, with the caption lines below it."""
    head = ["", *(c.header for c in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + [("---:" if c.right else "---") for c in COLUMNS]) + "|"]
    for r in result.rows:
        mark = "**\\***" if r.key == result.recommended else ""
        cells = [c.cell(r).replace("|", "\\|") for c in COLUMNS]
        if mark:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join([mark, *cells]) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in caption(result).splitlines()) + "\n"

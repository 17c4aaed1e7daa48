"""``edge-tl report``: one self-contained HTML page gathering everything the other commands wrote about a run.

Python API::

    from edge_tl.report import build_report
    result = build_report("runs/latest")          # -> ReportResult(path=runs/NAME/report.html, ...)
    build_report("runs/latest", md="summary.md")  # also the summary as Markdown, for CI logs and pull requests

The page opens with the verdict (which file to ship, on which runtime and thread count, and why; every artefact
in one decision table with its parity badge), then one section per stage with its plots and folded raw tables.

Imports only the standard library and edge-tl's light modules (no torch, no runtimes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_tl.report.collect import Report, ReportInputs, check_out, collect
from edge_tl.report.html import render_html
from edge_tl.report.verdict import FAIL


def _opt_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


@dataclass(frozen=True)
class ReportResult:
    """Where the page went and which sections had their inputs (``sections``: key, title, present)."""

    path: Path
    bytes: int
    sections: tuple[tuple[str, str, bool], ...]
    recommended: str | None = None
    threads: int | None = None
    failed: tuple[str, ...] = ()  # artefacts that failed their parity gate (never recommended)
    markdown: Path | None = None
    not_run: tuple[str, ...] = ()  # "FILE on RUNTIME: why" for benchmark rows that could not run (file may be fine)

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict."""
        return {"path": str(self.path), "bytes": self.bytes,
                "sections": [{"key": k, "title": t, "present": p} for k, t, p in self.sections],
                "recommended": self.recommended, "threads": self.threads, "failed": list(self.failed),
                "not_run": list(self.not_run), "markdown": None if self.markdown is None else str(self.markdown)}


def build_report(run: str | Path = "runs/latest", *, exported: str | Path | None = None,
                 bench: str | Path | None = None, attack: str | Path | None = None,
                 out: str | Path | None = None, md: str | Path | None = None) -> ReportResult:
    """Collect a run's outputs and write the HTML report atomically (default ``RUN/report.html``).

    ``exported``, ``bench`` and ``attack`` default to ``exported/``, ``RUN/bench.json`` and ``RUN/attack.json``;
    a default that is absent gives a "not run yet" section, an explicit path that is absent is an error.
    ``md`` also writes the summary (verdict, decision table, one paragraph per stage) as Markdown.
    """
    from edge_tl._io import atomic_write_text

    run = Path(run)
    out_path = check_out(Path(out) if out is not None else run / "report.html")
    md_path = None if md is None else check_out(Path(md), "--md")
    inputs = ReportInputs.resolve(run, exported=_opt_path(exported), bench=_opt_path(bench), attack=_opt_path(attack))
    report = collect(inputs)
    text = render_html(report)
    atomic_write_text(out_path, text)
    if md_path is not None:
        from edge_tl.report.markdown import render_markdown

        atomic_write_text(md_path, render_markdown(report))
    v = report.verdict
    return ReportResult(path=out_path, bytes=len(text.encode("utf-8")),
                        sections=tuple((s.key, s.title, s.present) for s in report.sections),
                        recommended=v.chosen.name if v.chosen else None, threads=v.chosen_threads,
                        failed=tuple(dict.fromkeys(c.name for c in v.failures if c.parity == FAIL)),
                        markdown=md_path, not_run=tuple(
                            f"{c.name} on {c.runtime or '?'}: {c.problems[0]}" for c in v.failures
                            if c.parity != FAIL and c.problems))


__all__ = ["Report", "ReportInputs", "ReportResult", "build_report", "collect", "render_html"]

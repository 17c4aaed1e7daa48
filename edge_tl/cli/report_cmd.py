"""``edge-tl report``: a thin Click wrapper around :func:`edge_tl.report.build_report`."""

from __future__ import annotations

from pathlib import Path

import click

from edge_tl.cli.options import emit_json, json_option

_PATH = click.Path(path_type=Path)


@click.command(help="""One self-contained HTML report of a run (RUN, default runs/latest).

\b
It opens with the verdict: the file to ship (format, runtime, threads) with its size,
latency, accuracy and drop, and every artefact in one decision table with its parity
PASS/FAIL badge. Then one section per stage: data, training, export and parity,
benchmark, robustness, ideal images, each with its plots and its raw tables folded away.
Plots are inlined; the file needs no network and no JavaScript. Inputs not produced yet
are reported as "not run yet" with the command that makes them. --md FILE also writes
the summary as Markdown for CI logs and pull requests.""")
@click.argument("run", type=_PATH, default=Path("runs/latest"), required=False)
@click.option("--exported", type=_PATH, default=None,
              help="Folder of exported artefacts and their .card.json sidecars.  [default: exported/]")
@click.option("--bench", type=_PATH, default=None, help="Bench results JSON.  [default: RUN/bench.json]")
@click.option("--attack", type=_PATH, default=None,
              help="Attack results JSON (PNG plots read from the folder of the same name).  "
                   "[default: RUN/attack.json]")
@click.option("--out", type=_PATH, default=None, help="HTML file to write.  [default: RUN/report.html]")
@click.option("--md", "md_path", type=_PATH, default=None,
              help="Also write the summary (verdict, decision table, one line per stage) as Markdown here.")
@json_option
def report(run: Path, exported: Path | None, bench: Path | None, attack: Path | None, out: Path | None,
           md_path: Path | None, json_path: str | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edge_tl.report import build_report

    result = build_report(run, exported=exported, bench=bench, attack=attack, out=out, md=md_path)
    table = Table(title=f"report: {result.path}")
    table.add_column("section")
    table.add_column("status")
    for _, title, present in result.sections:
        table.add_row(title, "[green]included[/]" if present else "[yellow]not run yet[/]")
    console = Console(stderr=json_path == "-")
    console.print(table)
    if result.recommended:
        where = f" at {result.threads} thread(s)" if result.threads else ""
        console.print(f"recommended: [bold]{escape(result.recommended)}[/]{where}")
    else:
        console.print("[yellow]no file recommended yet[/] (see the verdict in the report)")
    for name in result.failed:
        console.print(f"[red]FAIL[/] {escape(name)} (parity gate)")
    for line in result.not_run:
        console.print(f"[yellow]not run[/] {escape(line)}")
    console.print(f"wrote {result.path} ({result.bytes / 1024:.0f} KiB)")
    if result.markdown:
        console.print(f"wrote {result.markdown}")
    emit_json(result.to_json(), json_path)

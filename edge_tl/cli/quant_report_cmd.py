"""``edge-tl quant-report``: which layers int8 hurts, and the fewest to keep in float for an accuracy budget."""

from __future__ import annotations

from pathlib import Path

import click

from edge_tl.cli.options import emit_json, json_option
from edge_tl.export.sensitivity import BACKENDS


@click.command("quant-report")
@click.option("--model", "run", default="runs/latest", show_default=True, help="Run folder (runs/NAME).")
@click.option("--format", "fmt", type=click.Choice(BACKENDS.names()), default="onnx", show_default=True)
@click.option("--calib-size", type=click.IntRange(min=1), default=100, show_default=True,
              help="Calibration images from the run's train split.")
@click.option("--calib-method", default="minmax", show_default=True,
              help="onnx: minmax|entropy|percentile; tflite: minmax|percentile.")
@click.option("--compare-methods", is_flag=True, help="Also calibrate with the other methods and compare.")
@click.option("--n", "n_eval", type=click.IntRange(min=1), default=200, show_default=True,
              help="Validation images to measure on.")
@click.option("--max-drop", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Accuracy budget in points for the float-fallback search.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Rows of the table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Bar chart PNG (default: RUN/quant_report_FORMAT.png).")
@json_option
def quant_report(run: str, fmt: str, calib_size: int, calib_method: str, compare_methods: bool, n_eval: int,
                 max_drop: float, top: int, plot_path: str | None, json_path: str | None) -> None:
    """Per-layer int8 sensitivity table, known-bad patterns, and the accuracy-budgeted float fallback."""
    from rich.console import Console

    from edge_tl.cli.quant_report_view import render
    from edge_tl.export.quant_report import plot_sensitivity
    from edge_tl.export.quant_report import quant_report as build

    console = Console()
    if not console.is_terminal or console.width < 120:  # a wide table: do not squeeze it into 80 columns
        console = Console(width=140)
    with console.status("quantising layer by layer") as status:
        report = build(run, fmt, calib_size=calib_size, calib_method=calib_method, n_eval=n_eval,
                       max_drop=max_drop, compare_methods=compare_methods,
                       progress=lambda name: status.update(f"measuring {name[-60:]}"))
    render(report, console, top)
    png = plot_sensitivity(report, Path(plot_path) if plot_path else Path(report.run_dir) / f"quant_report_{fmt}.png")
    console.print(f"plot: {png}")
    emit_json(report.to_json(), json_path)

"""``edge-tl eval``: accuracy, per-class accuracy and confusion matrix of a trained run or an exported file."""

from __future__ import annotations

import click

from edge_tl.cli.options import emit_json, json_option


@click.command("eval")
@click.option("--model", "model", default="runs/latest", show_default=True,
              help="Run folder, its model.pt, or an exported .onnx / .tflite / .xml file (run by its runtime).")
@click.option("--data", default=None,
              help="Another dataset with the same classes (folder or name) [default: the run's own split].")
@click.option("--data-root", default=None, help="Where a named dataset lives.")
@click.option("--split", type=click.Choice(("test", "val", "train", "all")), default="test", show_default=True,
              help="Which split of the run's split.json (ignored with --data).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Confusion-matrix PNG [default: RUN/eval_confusion.png, or FILE.eval_confusion.png].")
@click.option("--engine", type=click.Choice(("onnx", "torch")), default="onnx", show_default=True,
              help="For a run: run the backbone with ONNX Runtime (fast, checked equal) or PyTorch.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@json_option
def eval_(model: str, data: str | None, data_root: str | None, split: str, plot: str | None, engine: str,
          quiet: bool, json_path: str | None) -> None:
    """Accuracy of a trained run or an exported file on its run's held-out test split or on another dataset.

    Prints overall and per-class accuracy and writes the confusion matrix as a PNG. Another dataset must
    have exactly the model's classes (in any order); unreadable images in it are skipped and counted.
    An exported file (e.g. exported/model_int8.tflite) is measured as it ships, through its own runtime.
    """
    from rich.console import Console

    from edge_tl.cli.progress import ConsoleReporter
    from edge_tl.cli.tables import class_table
    from edge_tl.train.evaluate import evaluate

    res = evaluate(model, data, data_root, split, engine, plot, progress=not quiet, reporter=ConsoleReporter())
    console = Console(stderr=json_path == "-")
    console.print(class_table(res.report, f"eval: {res.source}" + (f" ({res.runtime})" if res.runtime else "")))
    for bad in res.skipped[:10]:
        console.print(f"skipped {bad['path']}: {bad['reason']}", markup=False)
    if len(res.skipped) > 10:
        console.print(f"... and {len(res.skipped) - 10} more skipped (all in the JSON output)")
    extra = f", {res.bad_files} unreadable file(s) skipped" if res.bad_files else ""
    console.print(f"accuracy {100 * res.accuracy:.2f}% on {res.report.total} images{extra}; "
                  f"confusion matrix: {res.plot}")
    emit_json(res.to_json(), json_path)

"""``edge-tl predict``: top-k labels for image files. Thin: the work is in ``edge_tl.runtimes.predict``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_tl.cli.options import emit_json, json_option, threads_option

if TYPE_CHECKING:
    from edge_tl.runtimes import Runtime
    from edge_tl.runtimes.predict import PredictResult

DEFAULT_BACKBONE = "mobilenet_v2"


@click.command()
@click.argument("images", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--backbone", default=None, metavar="NAME",
              help=f"A registered backbone with its ImageNet head (default: {DEFAULT_BACKBONE}).")
@click.option("--model", "model_path", default=None, type=click.Path(path_type=Path),
              help="A run folder, model.pt, .onnx or .tflite file (uses the model card's class names).")
@click.option("--weights", default="default", show_default=True, metavar="default|none|PATH",
              help="Backbone weights: pretrained, random init, or a state dict file.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many classes per image (at most the model's number of classes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Images per batch.")
@json_option
@threads_option()
def predict(images: tuple[Path, ...], backbone: str | None, model_path: Path | None, weights: str, top: int,
            batch_size: int, json_path: str | None, threads: int | None) -> None:
    """Top-k labels with probabilities for IMAGE files.

    \b
    Examples:
      edge-tl predict cat.jpg                          # MobileNetV2, ImageNet classes
      edge-tl predict *.jpg --backbone efficientnet_lite0 --top 3
      edge-tl predict cat.jpg --model exported/model_int8.tflite --json -
    """
    from edge_tl.errors import ConfigError
    from edge_tl.runtimes.predict import parity_warnings

    if model_path is not None and backbone is not None:
        raise ConfigError("--model and --backbone exclude each other", "give one of them")
    if model_path is not None and weights != "default":
        raise ConfigError("--weights applies to --backbone only", "a --model file carries its own weights")
    warnings: list[str] = []
    runtime: Runtime
    if model_path is not None:
        import warnings as _warnings

        from edge_tl.runtimes import SaturationWarning, load

        with _warnings.catch_warnings():  # the saturation warning is reported by parity_warnings(), once
            _warnings.simplefilter("ignore", SaturationWarning)
            runtime = load(model_path, threads=threads)
        warnings.extend(parity_warnings(runtime.card.parity))
    else:
        from edge_tl.models import get_spec
        from edge_tl.runtimes.torch_rt import from_backbone

        name = backbone or DEFAULT_BACKBONE
        get_spec(name)  # unknown name -> error with the closest match, before any heavy import
        runtime = from_backbone(name, weights=weights, threads=threads)
    result = _run(list(images), runtime, top, batch_size, warnings, quiet=json_path == "-")
    if json_path != "-":
        _print(result)
    emit_json(result.to_json(), json_path)


def _run(images: list[Path], runtime: Runtime, top: int, batch_size: int, warnings: list[str],
         quiet: bool) -> PredictResult:
    from rich.console import Console

    from edge_tl.cli.progress import ConsoleReporter
    from edge_tl.runtimes.predict import predict_files

    err = Console(stderr=True)
    for w in warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    if quiet or len(images) <= batch_size:
        return predict_files(images, runtime, top, batch_size, warnings)
    with ConsoleReporter(err).task("predicting", len(images), "img") as advance:
        return predict_files(images, runtime, top, batch_size, warnings, on_batch=advance)


def _print(result: PredictResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for img in result.images:
        console.print(f"[bold]{img.path}[/]  ({result.model}, {result.runtime}, weights {result.weights})",
                      highlight=False, soft_wrap=True)
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("class")
        table.add_column("index", justify="right")
        table.add_column("probability", justify="right")
        for p in img.predictions:
            table.add_row(str(p.rank), p.label, str(p.index), f"{p.probability:.4f}")
        console.print(table)

"""``edge-tl visualize``: the ideal class image by gradient ascent. Thin: the work is
:func:`edge_tl.attacks.visualize_api.visualize`."""

from __future__ import annotations

from pathlib import Path

import click

from edge_tl.attacks.visualize import PRESETS
from edge_tl.cli.options import emit_json, json_option, seed_option, threads_option


@click.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="A run folder or model.pt: its trained classes.")
@click.option("--backbone", default=None, metavar="NAME",
              help="A bare backbone with its ImageNet head (e.g. mobilenet_v2): ImageNet classes.")
@click.option("--weights", default="default", show_default=True, metavar="default|PATH",
              help="Backbone weights (pretrained, or a state dict file); --backbone only.")
@click.option("--class", "class_names", required=True, metavar="NAME[,NAME...]",
              help="Class name(s), comma-separated (ImageNet classes may also be given by index).")
@click.option("--param", type=click.Choice(list(PRESETS)), default="fourier", show_default=True,
              help="Image parametrisation: 'fourier' (1/f spectrum, decorrelated colour, random shift/scale/rotate "
                   "each step: readable images) or 'pixel' (free pixels, the plain gradient-ascent lesson).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Gradient steps.  [default: 128 fourier, 200 pixel]")
@click.option("--tv-weight", type=click.FloatRange(min=0), default=None,
              help="Total-variation penalty relative to the class score: higher is smoother (0 = none).  "
                   "[default: 0.05 fourier, 0.3 pixel]")
@click.option("--l2-weight", type=click.FloatRange(min=0), default=None,
              help="Pull towards grey, relative to the class score.  [default: 0 fourier, 0.05 pixel]")
@click.option("--jitter", type=click.IntRange(min=0), default=None,
              help="Random shift per step, in pixels.  [default: 8 fourier, 4 pixel]")
@click.option("--scale", type=click.FloatRange(min=0, max=0.5, max_open=True), default=None,
              help="Random zoom per step, by a factor in 1 +- SCALE.  [default: 0.1 fourier, 0 pixel]")
@click.option("--rotate", type=click.FloatRange(min=0, max=90), default=None,
              help="Random rotation per step, up to DEGREES.  [default: 10 fourier, 0 pixel]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Adam learning rate.  [default: 0.05]")
@click.option("--judge", "judge_name", default=None, metavar="BACKBONE|RUN",
              help="A second model with the same classes that rates each image (probability and rank): a "
                   "backbone name for ImageNet classes (e.g. efficientnet_lite0), a run folder for a run's.")
@click.option("--size", type=click.IntRange(min=16, max=1024), default=None,
              help="Image size.  [default: the model's input size]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write.  [default: RUN/ideal.png for a run, ideal_<backbone>.png for a backbone]")
@seed_option
@json_option
@threads_option()
def visualize(model_path: Path | None, backbone: str | None, weights: str, class_names: str, param: str,
              steps: int | None, tv_weight: float | None, l2_weight: float | None, jitter: int | None,
              scale: float | None, rotate: float | None, lr: float | None, judge_name: str | None,
              size: int | None, out: Path | None, seed: int, json_path: str | None, threads: int | None) -> None:
    """Start from noise and ascend a class logit until the image shows the class: by default through a Fourier,
    colour-decorrelated parametrisation seen through random shifts, zooms and rotations, with a total-variation
    penalty (--param pixel: the plain pixel method). Print the probability reached, and with --judge what a
    second model makes of the image. Several classes make a grid.

    \b
    Examples:
      edge-tl visualize --backbone mobilenet_v2 --class zebra,tabby --judge efficientnet_lite0
      edge-tl visualize --model runs/latest --class cat,dog
      edge-tl visualize --backbone mobilenet_v2 --class zebra --param pixel --size 128
    """
    from rich.console import Console
    from rich.table import Table

    from edge_tl.attacks.visualize import VisualizeSettings
    from edge_tl.attacks.visualize_api import VisualizeRequest
    from edge_tl.attacks.visualize_api import visualize as run_visualize
    from edge_tl.cli.progress import ConsoleReporter

    settings = VisualizeSettings.preset(param, steps=steps, lr=lr, tv_weight=tv_weight, l2_weight=l2_weight,
                                        jitter=jitter, scale=scale, rotate=rotate, seed=seed)
    req = VisualizeRequest(classes=tuple(n.strip() for n in class_names.split(",") if n.strip()), model=model_path,
                           backbone=backbone, weights=weights, settings=settings, judge=judge_name, size=size,
                           out=out)
    if threads:
        import torch

        torch.set_num_threads(threads)
    res = run_visualize(req, reporter=ConsoleReporter(Console(stderr=True)))
    console = Console(stderr=json_path == "-")
    caption = f"judge: {res.judge}; rank 1 = its top class" if res.judge is not None else None
    table = Table(title=f"ideal class images of {res.model} at {res.size} px ({settings.param})", caption=caption)
    cols = ["class", "index", "p", "TV", "seconds"]
    if res.judge is not None:
        cols[3:3] = ["judge p", "rank", "judge's top class"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("class", "judge's top class") else "right")
    for im in res.images:
        row = [im.name, str(im.index), f"{im.probability:.4f}", f"{im.total_variation:.4f}", f"{im.seconds:.1f}"]
        if im.judged is not None:
            row[3:3] = [f"{im.judged.probability:.4f}", str(im.judged.rank), im.judged.top]
        table.add_row(*row)
    console.print(table)
    console.print(f"wrote {res.out}", highlight=False)
    emit_json(res.to_json(), json_path)

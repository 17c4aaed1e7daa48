"""``edge-tl visualize``: the ideal class image by gradient ascent. Thin: the work is in
``edge_tl.attacks.visualize``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

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
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True, help="Gradient steps.")
@click.option("--tv-weight", type=click.FloatRange(min=0), default=0.3, show_default=True,
              help="Total-variation penalty relative to the class score: higher is smoother (0 = none).")
@click.option("--l2-weight", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Pull towards grey, relative to the class score.")
@click.option("--jitter", type=click.IntRange(min=0), default=4, show_default=True,
              help="Random shift per step, in pixels.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Adam learning rate.")
@click.option("--size", type=click.IntRange(min=16, max=1024), default=None,
              help="Image size.  [default: the model's input size]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG to write.  [default: RUN/ideal.png for a run, ideal_<backbone>.png for a backbone]")
@seed_option
@json_option
@threads_option()
def visualize(model_path: Path | None, backbone: str | None, weights: str, class_names: str, steps: int,
              tv_weight: float, l2_weight: float, jitter: int, lr: float, size: int | None, out: Path | None,
              seed: int, json_path: str | None, threads: int | None) -> None:
    """Start from noise and ascend a class logit, with a total-variation penalty, jitter and a small L2 term
    so the image is smooth; print the probability reached. Several classes make a grid.

    \b
    Examples:
      edge-tl visualize --backbone mobilenet_v2 --class zebra,tabby --size 128
      edge-tl visualize --model runs/latest --class cat
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from edge_tl.attacks.visualize import VisualizeSettings, ideal_image, resolve_classes, save_grid
    from edge_tl.errors import ConfigError

    if (model_path is None) == (backbone is None):
        raise ConfigError("give exactly one of --model and --backbone",
                          "--model runs/NAME for trained classes, --backbone mobilenet_v2 for ImageNet classes")
    if model_path is not None and weights != "default":
        raise ConfigError("--weights applies to --backbone only", "a run's checkpoint carries its own weights")
    names = [n.strip() for n in class_names.split(",") if n.strip()]
    if not names:
        raise ConfigError("--class is empty", "give one or more class names, comma-separated")
    settings = VisualizeSettings(steps=steps, lr=lr, tv_weight=tv_weight, l2_weight=l2_weight, jitter=jitter,
                                 seed=seed)
    module, classes, default_size, label, default_out = _load(model_path, backbone, weights, threads)
    indices = resolve_classes(names, classes)
    size = size or default_size
    out = out or default_out
    err = Console(stderr=True)
    images = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("optimising", total=len(indices))
        for i in indices:
            progress.update(task, description=f"ideal '{classes[i]}'")
            images.append(ideal_image(module, i, size, settings, name=classes[i]))
            progress.advance(task)
    save_grid(images, out, title=f"{label}: ideal class images ({steps} steps, TV {tv_weight:g})")
    console = Console(stderr=json_path == "-")
    table = Table(title=f"ideal class images of {label} at {size} px")
    for col in ("class", "index", "probability", "logit", "total variation"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for im in images:
        table.add_row(im.name, str(im.index), f"{im.probability:.4f}", f"{im.logit:.2f}",
                      f"{im.total_variation:.4f}")
    console.print(table)
    console.print(f"wrote {out}", highlight=False)
    emit_json({"model": label, "size": size, "out": str(out), "settings": settings.__dict__,
               "images": [im.to_json() for im in images]}, json_path)


def _load(model_path: Path | None, backbone: str | None, weights: str,
          threads: int | None) -> tuple[Any, list[str], int, str, Path]:
    """(pixel-space module, class names, default size, label, default output path)."""
    import torch

    from edge_tl.attacks.pixels import pixel_model
    from edge_tl.errors import ConfigError

    if threads:
        torch.set_num_threads(threads)
    if model_path is not None:
        from edge_tl.models.checkpoint import load_checkpoint

        ckpt = model_path / "model.pt" if model_path.is_dir() else model_path
        model, card = load_checkpoint(ckpt)
        module = pixel_model(model, card.input.mean, card.input.std)
        out = ckpt.parent / "ideal.png"
        label, classes, size = ckpt.parent.name, list(card.classes), card.input.size
    else:
        from edge_tl.models import create_model, get_spec, imagenet_classes

        spec = get_spec(backbone)
        model = create_model(backbone, weights=weights)
        if model.num_classes != 1000:
            raise ConfigError(f"{backbone} has no ImageNet head", "use --model with a trained run")
        module = pixel_model(model, spec.mean, spec.std)
        out = Path(f"ideal_{backbone}.png")
        label, classes, size = backbone, imagenet_classes(), spec.input_size
    for p in module.parameters():
        p.requires_grad_(False)
    return module, classes, size, label, out

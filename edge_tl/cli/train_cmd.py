"""``edge-tl train``: transfer learning (frozen features or fine-tuning) into ``runs/NAME``."""

from __future__ import annotations

import click

from edge_tl.cli.options import emit_json, force_option, json_option, seed_option
from edge_tl.data.sources import SPLIT_POLICIES
from edge_tl.train.api import MODES
from edge_tl.train.device import DEVICES, PRECISIONS
from edge_tl.train.features import ENGINES


@click.command("train")
@click.option("--data", default="sample", show_default=True,
              help="Image folder (one subfolder per class) or a dataset name: sample, oxford-pets, cats-vs-dogs.")
@click.option("--data-root", default=None, help="Where a named dataset lives (or the folder for 'folder').")
@click.option("--backbone", default=None, help="Registered backbone [default: mobilenet_v2].")
@click.option("--weights", default="default", show_default=True,
              help="'default' (pretrained), 'none' (random init) or a state-dict file.")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="features: frozen backbone, cached features, head fitted to convergence (L-BFGS, L2 by "
                   "cross-validation) [default]; finetune: from that head, last --unfreeze blocks too; full: "
                   "everything.")
@click.option("--unfreeze", type=click.IntRange(min=0), default=None,
              help="Finetune mode: train the last N backbone blocks [default: 2]; an error with other modes.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="SGD loop of finetune/full [default: 6 finetune, 10 full].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="SGD loop of finetune/full [default: 32]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Head learning rate of finetune/full (the backbone gets 0.1x) [default: 1e-3 finetune, 5e-4 full]")
@click.option("--split", type=click.Choice(SPLIT_POLICIES), default="auto", show_default=True,
              help="auto: the dataset's own train/val/test folders, else a seeded stratified 70/15/15 split; "
                   "official: the publisher's split (Oxford-IIIT Pet trainval/test); stratified: always split.")
@click.option("--img-size", type=click.IntRange(min=16), default=None, help="Input size [default: the weights' own].")
@click.option("--aug-views", type=click.IntRange(min=0), default=0, show_default=True,
              help="Features mode: cached augmented views per training image (crop, flip, colour).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="auto = cuda > mps > cpu.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="auto = bf16 where supported, else fp16 with a grad scaler on GPUs; fp32 on CPU.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="DataLoader worker processes for image modes [default: min(4, cores)].")
@click.option("--engine", type=click.Choice(("auto", *ENGINES.names())), default="auto", show_default=True,
              help="Features mode: run the frozen backbone with ONNX Runtime (auto on CPU) or PyTorch (auto on "
                   "a GPU).")
@seed_option
@click.option("--out", default=None, help="Run folder [default: runs/<backbone>-<data>-<timestamp>].")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out (default: runs/latest).")
@force_option
@click.option("--quiet", is_flag=True, help="No progress bars.")
@json_option
def train(data: str, data_root: str | None, backbone: str | None, weights: str, mode: str | None,
          unfreeze: int | None, epochs: int | None, batch_size: int | None, lr: float | None, split: str,
          img_size: int | None, aug_views: int,
          device: str, precision: str, workers: int | None, engine: str, seed: int, out: str | None,
          resume: bool, force: bool, quiet: bool, json_path: str | None) -> None:
    """Train a classifier on top of a pretrained backbone.

    \b
    The default is fast on a CPU: the frozen backbone's features are computed once with ONNX Runtime and
    cached on disk ($EDGE_TL_CACHE, default ~/.cache/edge-tl), then a linear head is fitted to convergence
    (multinomial logistic regression, its L2 strength chosen by cross-validation on train + val) in seconds.
    Writes runs/NAME/{model.pt, card.json, split.json, history.json, curves.png, confusion.png} and points
    runs/latest at it. Ctrl-C leaves a resumable state: continue with --resume. Runs under
    `torchrun --nproc_per_node N` with DistributedDataParallel.
    """
    from rich.console import Console

    from edge_tl.cli.progress import ConsoleReporter
    from edge_tl.cli.tables import class_table
    from edge_tl.train.api import TrainConfig
    from edge_tl.train.api import train as run_train

    cfg = TrainConfig(data=data, data_root=data_root, backbone=backbone, weights=weights, mode=mode,
                      unfreeze=unfreeze, epochs=epochs, batch_size=batch_size, lr=lr, img_size=img_size,
                      device=device, precision=precision, workers=workers, seed=seed, out=out, resume=resume,
                      aug_views=aug_views, engine=engine, split=split, progress=not quiet, force=force)
    result = run_train(cfg, reporter=ConsoleReporter())  # rank 0 only: train() silences the other ranks
    from edge_tl.train.ddp import env_dist

    if not env_dist().is_main:
        return
    out_console = Console(stderr=json_path == "-")
    out_console.print(class_table(result.test, f"test split: {result.card.backbone} {result.config.mode}, "
                                              f"{result.run_dir.name}"))
    m = result.metrics
    out_console.print(f"val accuracy {100 * (m['val_accuracy'] or 0):.2f}% (best epoch {m['best_epoch']}), "
                      f"test accuracy {100 * result.test_accuracy:.2f}%, head/loop time {m['train_seconds']:.1f} s")
    out_console.print(f"run folder: {result.run_dir}")
    emit_json(result.to_json(), json_path)

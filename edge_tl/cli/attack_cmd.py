"""``edge-tl attack``: adversarial robustness of deployed artefacts. Thin: the work is in ``edge_tl.attacks``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_tl.cli.options import FloatListType, NameListType, emit_json, json_option, seed_option, threads_option

if TYPE_CHECKING:
    from edge_tl.attacks.results import AttackReport

DEFAULT_ATTACKS = "fgsm,pgd,square,hopskipjump"
DEFAULT_EPS = {"linf": "1/255,2/255,4/255,8/255", "l2": "0.25,0.5,1,2"}


def _attack_names() -> list[str]:
    from edge_tl.attacks.registry import list_attacks

    return list_attacks()


@click.command()
@click.option("--model", "models", multiple=True, required=True, type=click.Path(path_type=Path),
              help="An exported .onnx/.tflite file, a model.pt or a run folder; repeat to compare side by side.")
@click.option("--data", default=None, metavar="PATH",
              help="Images to attack: a class-folder dataset.  [default: the card's test split]")
@click.option("--n", "n_images", type=click.IntRange(min=1), default=100, show_default=True,
              help="How many images (a seeded random choice).")
@click.option("--attacks", type=NameListType("attack", _attack_names), default=DEFAULT_ATTACKS, show_default=True,
              help="White-box (fgsm, pgd: crafted on the surrogate, transferred) and black-box (square, "
                   "hopskipjump: queries to the artefact itself).")
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True,
              help="Threat model: L-inf (fgsm, pgd, square, hopskipjump) or L2 (pgd, square, hopskipjump).")
@click.option("--eps", type=FloatListType(low=0.0, low_open=True), default=None,
              help="Budgets in pixel units ([0, 1] scale); fractions such as 8/255 allowed.  "
                   f"[default: {DEFAULT_EPS['linf']} for linf, {DEFAULT_EPS['l2']} for l2]")
@click.option("--surrogate", type=click.Path(path_type=Path), default=None,
              help="Checkpoint for white-box attacks.  [default: the source run's model.pt named in the card]")
@click.option("--queries", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Query budget per image of the black-box attacks.")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="PGD steps.")
@click.option("--step-size", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="PGD step as a fraction of eps.  [default: 2.5/steps]")
@click.option("--target-class", default=None, metavar="NAME",
              help="Targeted mode: push images of the other classes to this class.")
@click.option("--source-class", default=None, metavar="NAME",
              help="Attack only images of this class (e.g. --source-class dog --target-class cat).")
@click.option("--resume", is_flag=True,
              help="Keep the finished (model, attack, eps) cells of an interrupted run in --out and do the rest.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per model call.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for attack.json, robustness.png, examples.png and the finished cells.  "
                   "[default: attacks/<model name>]")
@seed_option
@json_option
@threads_option()
def attack(models: tuple[Path, ...], data: str | None, n_images: int, attacks: list[str], norm: str,
           eps: list[float] | None, surrogate: Path | None, queries: int, steps: int, step_size: float | None,
           target_class: str | None, source_class: str | None, resume: bool, batch_size: int, out: Path | None,
           seed: int, json_path: str | None, threads: int | None) -> None:
    """Attack each --model and report robust accuracy per attack and eps, and the worst case over attacks.

    Only images a model classifies correctly are attacked; every adversarial is clipped to [0, 1] and
    rounded to 8 bits before it is judged, and its norm never exceeds eps. Each finished (model, attack, eps)
    cell is kept in --out at once: an interrupted run (Ctrl-C, SIGTERM) resumes with --resume.

    \b
    Examples:
      edge-tl attack --model exported/model.onnx
      edge-tl attack --model exported/model.onnx --model exported/model_int8.tflite --n 50
      edge-tl attack --model exported/model.onnx --attacks pgd --source-class dog --target-class cat --eps 4/255
      edge-tl attack --model exported/model.onnx --norm l2 --eps 0.5,1 --attacks pgd,square
    """
    from dataclasses import replace

    from rich.console import Console

    from edge_tl._io import atomic_write_json, ensure_writable_dir
    from edge_tl.attacks import inputs
    from edge_tl.attacks.cells import CellStore, fingerprint
    from edge_tl.attacks.plots import image_grid, robustness_curve
    from edge_tl.attacks.registry import AttackSettings, get_attack

    err = Console(stderr=True)
    eps = eps or FloatListType(low=0.0, low_open=True).convert(DEFAULT_EPS[norm], None, None)
    if norm == "linf" and max(eps) > 1.0:
        raise click.BadParameter(f"{max(eps):g} is out of range (0, 1] for L-inf budgets", param_hint="--eps")
    settings = AttackSettings(steps=steps, step_size=step_size, queries=queries, batch_size=batch_size, seed=seed,
                              norm=norm)
    rts = inputs.load_models(list(models), threads=threads)
    card = rts[0].card
    target_idx = inputs.resolve_target(target_class, card.classes)
    source_idx = inputs.resolve_target(source_class, card.classes)
    if source_idx is not None and source_idx == target_idx:
        raise click.BadParameter("the source and target class are the same", param_hint="--source-class")
    notes: list[str] = []
    sur = None
    if any(get_attack(a).kind == "whitebox" for a in attacks):
        sur_path = inputs.find_surrogate(surrogate, rts)
        if sur_path is None:
            notes.append("no surrogate checkpoint found (the card names no run folder with a model.pt): white-box "
                         "attacks skipped, black-box ones run; pass --surrogate runs/NAME/model.pt")
        else:
            sur = inputs.load_surrogate(sur_path, card)
    data_ = inputs.load_data(card, Path(rts[0].path), data, n_images, seed, only_class=source_idx)
    notes += data_.notes
    for note in notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    out_dir = ensure_writable_dir(out or Path("attacks") / Path(inputs.model_names(models)[0]).stem)
    names = inputs.model_names(models)
    store = CellStore(out_dir / "cells", fingerprint(
        data_.images, data_.labels, models=names, files=[inputs.file_identity(rt.path) for rt in rts],
        surrogate=str(sur.path) if sur else None, attacks=list(attacks), eps=list(eps), settings=repr(settings),
        target=target_class, source=source_class), resume)
    run = _interruptible(lambda: _run(rts, names, data_, attacks, eps, settings, sur, target_idx, source_idx,
                                      store, err), store, err)
    report = replace(run.report, notes=tuple(data_.notes) + run.report.notes,
                     config={**run.report.config, "data": data_.source, "models": [str(p) for p in models],
                             "surrogate": str(sur.path) if sur else None})
    atomic_write_json(out_dir / "attack.json", report.to_json())
    robustness_curve(report, out_dir / "robustness.png")
    image_grid(run.examples, card.classes, out_dir / "examples.png")
    console = Console(stderr=json_path == "-")
    _print(report, console)
    console.print(f"wrote {out_dir}/attack.json, robustness.png, examples.png", highlight=False)
    emit_json(report.to_json(), json_path)


def _interruptible(fn, store, err):
    """Run ``fn`` with SIGTERM turned into KeyboardInterrupt; on either, say what was kept and exit 130."""
    import signal
    import sys

    def _term(_sig, _frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    try:
        return fn()
    except KeyboardInterrupt:
        err.print(f"interrupted: {store.count()} finished cell(s) kept in {store.folder}; rerun the same command "
                  "with --resume to finish", highlight=False)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, old)


def _run(rts: list, names: list[str], data: object, attacks: list[str], eps: list[float], settings: object,
         sur: object, target_idx: int | None, source_idx: int | None, store: object, err: object):
    from edge_tl.attacks.engine import Target, plan_steps, run_attacks

    targets = [Target(name, rt) for name, rt in zip(names, rts)]
    own = sur is not None and any(Path(rt.path).resolve() == Path(sur.path).resolve() for rt in rts)
    total = plan_steps(len(targets), attacks, eps, sur is not None and not own, settings.norm)
    with progress_reporter(err, total) as tick:
        return run_attacks(targets, data.images, data.labels, rts[0].card.classes, attacks, eps, settings,
                           surrogate=sur.module if sur else None, surrogate_name=sur.name if sur else "surrogate",
                           target_class=target_idx, report_surrogate=not own, progress=tick, store=store,
                           source_class=source_idx)


@contextlib.contextmanager
def progress_reporter(err, total: int) -> Iterator[Callable]:
    """A progress callback for :func:`run_attacks`: a rich bar on a terminal; otherwise (a CI log, a pipe) one
    line per finished unit with the images done, the elapsed time and an ETA."""
    import time

    start = time.monotonic()
    done = [0]

    def eta() -> str:
        el = time.monotonic() - start
        rest = el / done[0] * (total - done[0]) if done[0] else float("nan")
        return f"elapsed {el:.0f} s, ETA {rest:.0f} s" if done[0] else f"elapsed {el:.0f} s"

    if not err.is_terminal:
        def line(t) -> None:
            if t.finished:
                done[0] += 1
                how = " (resumed)" if t.resumed else ""
                err.print(f"[{done[0]}/{total}] {t.unit}{how}: {t.images_done}/{t.n_images} images, {eta()}",
                          highlight=False, soft_wrap=True)

        yield line
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        overall = bar.add_task("attacking", total=total, info="")
        cell = bar.add_task("", total=1.0, info="")

        def update(t) -> None:
            bar.update(cell, completed=t.fraction, description=t.unit, info=f"{t.images_done}/{t.n_images} images")
            if t.finished:
                done[0] += 1
                bar.update(overall, advance=1, info=eta())

        yield update


def _print(report: AttackReport, console: object) -> None:
    from rich.table import Table

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    clean = Table(title=f"clean accuracy on {report.n_images} images")
    clean.add_column("model")
    clean.add_column("accuracy %", justify="right")
    for name, acc in report.clean_accuracy.items():
        clean.add_row(name, pct(acc))
    console.print(clean)
    target, source = report.config.get("target_class"), report.config.get("source_class")
    l2 = report.config.get("norm") == "l2"
    unit = "L2, [0, 1] pixel units" if l2 else "L-inf in grey levels /255"
    table = Table(title="robustness" + (f", targeted at '{target}'" if target else "")
                  + (f", only '{source}' images" if source else "")
                  + f" (eps, {unit}; n = images attacked; queries, L-inf, L2, conf: medians over successes; "
                  "worst-case: robust to every attack)")
    cols = ("model", "attack", "eps", "robust%", "success%", "n", "queries", "L-inf", "L2", "conf%")
    for col in cols:
        if col == "model":
            table.add_column(col, overflow="fold", min_width=8)
        else:  # numbers and attack names are never cut; long model names fold instead
            table.add_column(col, justify="left" if col == "attack" else "right", no_wrap=True, min_width=len(col))
    order = {m: i for i, m in enumerate(report.models())}
    for r in sorted(report.results, key=lambda r: (order.get(r.model, 0), r.attack == "worst-case", r.attack, r.eps)):
        table.add_row(r.model, r.attack, f"{r.eps:g}" if l2 else f"{r.eps * 255:g}", pct(r.robust_accuracy),
                      pct(r.success_rate), str(r.n_attacked),
                      "-" if r.median_queries is None else f"{r.median_queries:.0f}",
                      "-" if r.median_linf is None else f"{255 * r.median_linf:.1f}",
                      "-" if r.median_l2 is None else f"{r.median_l2:.2f}", pct(r.median_confidence))
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)

"""``edge-tl attack``: adversarial robustness of deployed artefacts. Thin: the work is in ``edge_tl.attacks``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_tl.attacks.registry import NORMS, AttackSettings
from edge_tl.cli.options import FloatListType, NameListType, emit_json, json_option, seed_option, threads_option

if TYPE_CHECKING:
    from edge_tl.attacks.results import AttackReport, AttackResult

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
@click.option("--norm", type=click.Choice(NORMS), default="linf", show_default=True,
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
@click.option("--early-stop/--no-early-stop", default=True, show_default=True,
              help="AutoAttack's standard evaluation: an attack runs only on the images every earlier attack left "
                   "robust at that eps, and an image fooled at an eps counts as fooled at larger ones (rows are "
                   "cumulative; the worst case is unchanged). --no-early-stop: every attack alone on every image "
                   "at every eps (much slower).")
@click.option("--batch-size", type=click.IntRange(min=1), default=AttackSettings.batch_size, show_default=True,
              help="Rows per black-box model call (the runtime's buffers grow with it).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for attack.json, robustness.png, examples.png and the finished cells.  "
                   "[default: attacks/<model name>]")
@seed_option
@json_option
@threads_option()
def attack(models: tuple[Path, ...], data: str | None, n_images: int, attacks: list[str], norm: str,
           eps: list[float] | None, surrogate: Path | None, queries: int, steps: int, step_size: float | None,
           target_class: str | None, source_class: str | None, resume: bool, early_stop: bool, batch_size: int,
           out: Path | None,
           seed: int, json_path: str | None, threads: int | None) -> None:
    """Attack each --model and report robust accuracy per attack and eps, and the worst case over attacks.

    Only images a model classifies correctly are attacked; every adversarial is clipped to [0, 1] and
    rounded to 8 bits before it is judged, and its norm never exceeds eps. Each finished (model, attack, eps)
    cell is kept in --out at once: an interrupted run (Ctrl-C, SIGTERM) resumes with --resume.

    By default (--early-stop, AutoAttack's standard evaluation) each attack only runs on the images the
    attacks before it (fgsm, pgd, square, hopskipjump) left robust at that eps, budgets run from small to
    large, and an image fooled at an eps counts as fooled at the larger ones: the worst case is the same as
    running everything, for a fraction of the work (about 3 minutes for the defaults on a 224-px MobileNetV2
    on 2 busy CPU cores), and the rows are cumulative along the attack order.

    \b
    Examples:
      edge-tl attack --model exported/model.onnx
      edge-tl attack --model exported/model.onnx --model exported/model_int8.tflite --n 50
      edge-tl attack --model exported/model.onnx --attacks pgd --source-class dog --target-class cat --eps 4/255
      edge-tl attack --model exported/model.onnx --norm l2 --eps 0.5,1 --attacks pgd,square
    """
    from rich.console import Console

    from edge_tl.attacks.api import AttackRequest, cells_kept, out_dir_for
    from edge_tl.attacks.api import attack as run_attack
    from edge_tl.cli.progress import ConsoleReporter

    err = Console(stderr=True)
    eps = eps or FloatListType(low=0.0, low_open=True).convert(DEFAULT_EPS[norm], None, None)
    if norm == "linf" and max(eps) > 1.0:
        raise click.BadParameter(f"{max(eps):g} is out of range (0, 1] for L-inf budgets", param_hint="--eps")
    if source_class is not None and source_class == target_class:
        raise click.BadParameter("the source and target class are the same", param_hint="--source-class")
    settings = AttackSettings(steps=steps, step_size=step_size, queries=queries, batch_size=batch_size, seed=seed,
                              norm=norm, early_stop=early_stop)
    req = AttackRequest(models=tuple(models), data=data, n_images=n_images, attacks=tuple(attacks), eps=tuple(eps),
                        settings=settings, surrogate=surrogate, target_class=target_class,
                        source_class=source_class, resume=resume, out=out, threads=threads)
    outcome = _interruptible(lambda: run_attack(req, reporter=ConsoleReporter(err)), out_dir_for(req), cells_kept,
                             err)
    console = Console(stderr=json_path == "-")
    _print(outcome.report, console)
    console.print(f"wrote {outcome.out_dir}/attack.json, robustness.png, examples.png", highlight=False)
    emit_json(outcome.report.to_json(), json_path)


def _interruptible(fn, out_dir, kept, err):
    """Run ``fn`` with SIGTERM turned into KeyboardInterrupt; on either, say what was kept and exit 130."""
    import signal
    import sys

    def _term(_sig, _frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    try:
        return fn()
    except KeyboardInterrupt:
        err.print(f"interrupted: {kept(out_dir)} finished cell(s) kept in {out_dir / 'cells'}; rerun the same "
                  "command with --resume to finish", highlight=False)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, old)


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
    chained = bool(report.config.get("early_stop"))
    unit = "L2, [0, 1] pixel units" if l2 else "L-inf in grey levels /255"
    table = Table(title="robustness" + (f", targeted at '{target}'" if target else "")
                  + (f", only '{source}' images" if source else "")
                  + f" (eps, {unit}; n = images attacked; queries, L-inf, L2, conf: medians over successes; "
                  + ("+attack: cumulative, on what the attacks above left robust; " if chained else "")
                  + "worst-case: robust to every attack)")
    cols = ("model", "attack", "eps", "robust%", "success%", "n", "queries", "L-inf", "L2", "conf%")
    for col in cols:
        if col == "model":
            table.add_column(col, overflow="fold", min_width=8)
        else:  # numbers and attack names are never cut; long model names fold instead
            table.add_column(col, justify="left" if col == "attack" else "right", no_wrap=True, min_width=len(col))
    order = {m: i for i, m in enumerate(report.models())}
    ran = [str(a) for a in report.config.get("attacks") or []]  # the order the attacks ran in
    rank = {a: i for i, a in enumerate(ran)}

    def label(attack: str) -> str:  # early stop: a row counts this attack and every one before it
        return f"+{attack}" if chained and rank.get(attack, 0) > 0 else attack

    def key(r: AttackResult) -> tuple:
        return (order.get(r.model, 0), r.attack == "worst-case", rank.get(r.attack, len(rank)), r.attack, r.eps)

    for r in sorted(report.results, key=key):
        table.add_row(r.model, label(r.attack), f"{r.eps:g}" if l2 else f"{r.eps * 255:g}", pct(r.robust_accuracy),
                      pct(r.success_rate), str(r.n_attacked),
                      "-" if r.median_queries is None else f"{r.median_queries:.0f}",
                      "-" if r.median_linf is None else f"{255 * r.median_linf:.1f}",
                      "-" if r.median_l2 is None else f"{r.median_l2:.2f}", pct(r.median_confidence))
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)

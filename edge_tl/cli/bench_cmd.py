"""``edge-tl bench``: latency, memory, size and accuracy of every artefact, one isolated process each."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_tl._cpu import usable_cores
from edge_tl.bench.profiles import PROFILES
from edge_tl.cli.options import IntListType, NameListType, emit_json, json_option

if TYPE_CHECKING:
    from rich.console import Console

    from edge_tl.bench.results import BenchResult, BenchSettings
    from edge_tl.bench.targets import EvalSet, Target


@click.command("bench")
@click.argument("models", nargs=-1, type=click.Path())
@click.option("--data", default=None, help="Eval images: a folder or dataset name (default: the run's test split "
              "named in the cards).")
@click.option("--threads", type=IntListType(), default="1,2", show_default=True, help="Thread counts to measure.")
@click.option("--runtimes", "runtimes", type=NameListType("runtime", lambda: sorted(_aliases())), default=None,
              help="Runtimes to run each file with, e.g. ort,litert,openvino (default: every installed runtime "
                   "that can run the file; OpenVINO also runs .onnx and .tflite). Checkpoints always run.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Images per inference.")
@click.option("--profile", type=click.Choice(list(PROFILES)), default="desktop", show_default=True,
              help="mobile: LiteRT only, batch 1, 1 and 2 pinned cores, int8 first (host CPU, not a phone).")
@click.option("--min-time", type=click.FloatRange(min=0.0, min_open=True), default=2.0, show_default=True,
              help="Seconds of timed runs per measurement.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True,
              help="Untimed warm-up runs (stopped after --min-time/2 s).")
@click.option("--max-drop", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="Accuracy budget (top-1 points below the reference) for the recommendation.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score on a seeded sample of N eval images.")
@click.option("--peak-gflops", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Peak GFLOP/s of one core (default 195, measured on the reference 2-vCPU Xeon).")
@click.option("--exported", type=click.Path(file_okay=False), default="exported", show_default=True,
              help="Where to look for artefacts when no MODELS are given.")
@json_option
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Write the rows as CSV.")
@click.option("--md", "md_path", type=click.Path(dir_okay=False), default=None, help="Write a Markdown table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of latency vs accuracy with the Pareto front.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Bootstrap/sample seed.")
def bench(models: tuple[str, ...], data: str | None, threads: list[int], runtimes: list[str] | None, batch: int,
          profile: str, min_time: float,
          warmup: int, max_drop: float, limit: int | None, peak_gflops: float | None, exported: str,
          json_path: str | None, csv_path: str | None, md_path: str | None, plot_path: str | None,
          seed: int) -> None:
    """Benchmark MODELS (default: everything in exported/ plus its source checkpoint).

    Each artefact x thread count runs in its own process: load time, first inference, warm-up, then timed runs
    for --min-time seconds (p50/p90/p99 with 95 % bootstrap CIs), peak memory, accuracy on the eval images and
    top-1 agreement with the PyTorch model. The fastest artefact within --max-drop is recommended.
    """
    from rich.console import Console

    from edge_tl._io import atomic_write_text
    from edge_tl.bench.format import to_csv, to_markdown
    from edge_tl.bench.profiles import get_profile
    from edge_tl.bench.results import PEAK_GFLOPS_PER_CORE, BenchSettings
    from edge_tl.bench.runner import plan_threads
    from edge_tl.bench.targets import (
        check_classes,
        discover,
        eval_set,
        for_profile,
        load_targets,
        parse_runtimes,
        with_runtimes,
    )
    from edge_tl.cli.tables import bench_table

    err = Console(stderr=True)
    prof = get_profile(profile)
    ctx = click.get_current_context()
    given = {f: ctx.params[f] for f in ("threads", "batch")
             if ctx.get_parameter_source(f) == click.core.ParameterSource.COMMANDLINE}
    prof.check_flags(given)
    cores = usable_cores()
    planned, notes = plan_threads(tuple(prof.threads or threads), cores)
    for n in notes:
        err.print(f"[yellow]warning:[/] {n}")
    targets = for_profile(load_targets(discover(list(models), Path(exported))), prof, explicit=bool(models))
    targets, rt_notes = with_runtimes(targets, parse_runtimes(runtimes) or prof.runtimes)
    for n in rt_notes:
        err.print(f"[yellow]warning:[/] {n}")
    notes += rt_notes
    es = eval_set(data, [t for t in targets if t.card], limit=limit, seed=seed)
    for t in targets:
        if t.card:
            check_classes(es, t)
    settings = BenchSettings(threads=planned, batch=prof.batch or batch, profile=profile, min_time=min_time,
                             warmup=warmup, max_drop=max_drop, peak_gflops_per_core=peak_gflops or PEAK_GFLOPS_PER_CORE,
                             pin=prof.pin, seed=seed)
    result = _run_with_progress(err, targets, es, settings, cores, tuple(notes))
    # With --json - the JSON owns stdout; the table goes to stderr. Off a terminal, do not squeeze it into 80.
    out = err if json_path == "-" else Console()
    if not out.is_terminal:
        out = Console(stderr=out.stderr, width=max(out.width, 190))
    out.print(bench_table(result))
    emit_json(result.to_json(), json_path)
    if csv_path:
        atomic_write_text(Path(csv_path), to_csv(result))
    if md_path:
        atomic_write_text(Path(md_path), to_markdown(result))
    if plot_path:
        from edge_tl.bench.plot import plot_latency_accuracy

        plot_latency_accuracy(result, Path(plot_path))
    if result.rows and all(r.status != "ok" for r in result.rows):
        from edge_tl.errors import ArtifactError

        first = result.rows[0]
        raise ArtifactError(f"no artefact could be measured; {Path(first.path).name}: {first.error}",
                            "check the files named above, or re-export them with edge-tl export")


def _aliases() -> list[str]:
    from edge_tl.bench.targets import RUNTIME_ALIASES

    return list(RUNTIME_ALIASES)


def _run_with_progress(err: Console, targets: list[Target], es: EvalSet, settings: BenchSettings, cores: int,
                       notes: tuple[str, ...]) -> BenchResult:
    """``run_bench`` under a rich progress bar (one step per measurement) on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edge_tl.bench.runner import run_bench

    total = len(targets) * len(settings.threads)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("bench", total=total)

        def step(msg: str, advance: int) -> None:
            bar.update(task, description=msg, advance=advance)

        return run_bench(targets, es, settings, cores, progress=step, notes=notes)

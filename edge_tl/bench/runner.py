"""The bench driver: targets x thread counts -> isolated measurements -> :class:`BenchResult`."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_tl.bench.env import fingerprint
from edge_tl.bench.flops import complexity
from edge_tl.bench.measure import DEFAULT_LOADER, MeasureJob, Measurement, run_job
from edge_tl.bench.profiles import get_profile
from edge_tl.bench.results import BenchResult, BenchRow, BenchSettings, recommend, sort_rows
from edge_tl.bench.stats import noise_reasons, summarize
from edge_tl.bench.targets import EvalSet, Target, check_classes
from edge_tl.errors import EdgeTLError

Progress = Callable[[str, int], None]  # (message, measurements finished since the last call)


def plan_threads(threads: tuple[int, ...], cores: int) -> tuple[tuple[int, ...], list[str]]:
    """Cap thread counts at ``cores`` (with a note), dropping duplicates, keeping order."""
    notes = [f"--threads {t} is more than the {cores} cores available; capped at {cores}"
             for t in threads if t > cores]
    return tuple(dict.fromkeys(min(t, cores) for t in threads)), notes


def _pixels_file(es: EvalSet, target: Target, folder: Path, cache: dict[tuple, Path]) -> Path:
    """Decode the eval images for ``target``'s input spec once; one ``.npz`` per spec and class order."""
    from edge_tl._io import atomic_path
    from edge_tl.data.preprocess import load_batch

    spec = target.card.input  # type: ignore[union-attr]
    labels = check_classes(es, target)
    key = (spec.size, spec.resize, spec.interpolation, labels)
    if key not in cache:
        path = folder / f"eval_{len(cache)}.npz"
        with atomic_path(path) as tmp:  # a full disk or a size limit then names the file
            np.savez(tmp, pixels=load_batch(list(es.files), spec), labels=np.asarray(labels, dtype=np.int64))
        cache[key] = path
    return cache[key]


def _size_mb(path: Path) -> float:
    total = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():  # an IR's weights live beside it
        total += path.with_suffix(".bin").stat().st_size
    if path.suffix == ".onnx":
        from edge_tl.runtimes.onnx_rt import read_model

        try:
            model = read_model(path)
        except EdgeTLError:  # a damaged file: its own size; the measurement reports the defect
            return total / 1e6
        locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
        total += sum((path.parent / loc).stat().st_size for loc in locations if (path.parent / loc).is_file())
    return total / 1e6


def _row(target: Target, threads: int, settings: BenchSettings, m: Measurement, cores: int,
         macs: int | None, params: int | None, size: float | None) -> BenchRow:
    failed = BenchRow(name=target.path.name, path=str(target.path), format=target.format,
                      quantization=target.quantization, runtime=m.runtime or target.runtime or "-", threads=threads,
                      batch=settings.batch, status="error", error=m.error or "no timings", size_mb=size,
                      params=params, macs=macs, source_sha256=target.card.source_sha256 if target.card else None,
                      precision=m.precision or _implied_precision(target), parity_failed=target.parity_failed)
    if m.error or m.samples is None:
        return failed
    lat = summarize(m.samples, seed=settings.seed)
    p50_s = lat.p50.value / 1e3
    gflops = 2.0 * macs * settings.batch / p50_s / 1e9 if macs else None
    peak = settings.peak_gflops_per_core * threads
    n = m.n_eval or None
    return replace(
        failed, status="ok", error=None, load_ms=m.load_s * 1e3 if m.load_s is not None else None,
        first_ms=m.first_s * 1e3 if m.first_s is not None else None, latency=lat,
        throughput=settings.batch / p50_s, gflops=gflops, peak_pct=100.0 * gflops / peak if gflops else None,
        peak_rss_mb=m.peak_rss_mb, top1=100.0 * m.labels_ok / n if n and m.labels_ok is not None else None,
        top5=100.0 * m.top5_hits / n if n and m.top5_hits is not None else None, n_eval=m.n_eval,
        noise=tuple(noise_reasons(lat, m.other_load, threads, cores)), affinity=m.affinity, loop=m.loop)


_IMPLIED = {"fp32": "f32", "none": "f32", "fp16": "f16", "int8": "int8", "dynamic": "int8"}


def _implied_precision(target: Target) -> str | None:
    """The precision a runtime that does not report one computes in, from the artefact's quantisation.

    An fp16 ONNX graph declares fp16 arithmetic; an fp16 TFLite file stores fp16 weights that LiteRT/XNNPACK
    upcasts on x86, computing in f32."""
    if target.card is None:
        return None
    if target.format == "tflite" and target.quantization == "fp16":
        return "f32"
    return target.card.precision or _IMPLIED.get(target.quantization)


def _with_agreement(rows: list[BenchRow], preds: dict[str, np.ndarray], targets: list[Target]) -> list[BenchRow]:
    """Top-1 agreement of each row with the PyTorch checkpoint it was exported from (when that was measured)."""
    from edge_tl._io import sha256_file

    ref = {str(t.path): preds[k] for t in targets if t.format == "pytorch"
           and (k := _pred_key(str(t.path), "pytorch")) in preds}
    ref_by_sha = {sha256_file(Path(p)): v for p, v in ref.items()}
    ref_by_run = {str(Path(p).resolve().parent): v for p, v in ref.items()}
    out = []
    for r in rows:
        t = next(t for t in targets if str(t.path) == r.path)
        mine = preds.get(_pred_key(r.path, r.runtime))
        ref = None
        if t.format == "pytorch":
            ref = mine
        elif t.card is not None:
            ref = ref_by_sha.get(t.card.source_sha256 or "") if t.card.source_sha256 else None
            if ref is None and t.card.run_dir:
                ref = ref_by_run.get(str(Path(t.card.run_dir).resolve()))
        agree = float(100.0 * np.mean(mine == ref)) if ref is not None and mine is not None and r.ok else None
        out.append(replace(r, agreement=agree))
    return out


def run_bench(targets: list[Target], es: EvalSet, settings: BenchSettings, cores: int,
              progress: Progress | None = None, loader: str = DEFAULT_LOADER, notes: tuple[str, ...] = ()
              ) -> BenchResult:
    """Measure every target at every thread count, each in its own process, and assemble the result."""
    t_start = time.perf_counter()
    profile = get_profile(settings.profile)
    env = fingerprint()
    say = progress or (lambda _msg, _n: None)
    if profile.int8_first:
        targets = sorted(targets, key=lambda t: t.quantization != "int8")
    allowed = env.affinity
    rows: list[BenchRow] = []
    preds: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="edge-tl-bench-") as tmp:
        cache: dict[tuple, Path] = {}
        for target in targets:
            if target.card is None:
                say(f"{target.path.name}: unreadable", len(settings.threads))
                rows += [BenchRow(name=target.path.name, path=str(target.path), format=target.format,
                                  quantization="-", runtime="-", threads=th, batch=settings.batch, status="error",
                                  error=target.error) for th in settings.threads]
                continue
            say(f"decoding {len(es.files)} eval images for {target.path.name}", 0)
            data = _pixels_file(es, target, Path(tmp), cache)
            cx = _complexity(target)
            size = _size_mb(target.path)
            for i, th in enumerate(settings.threads):
                say(f"{target.path.name}: {th} thread{'s' if th > 1 else ''}", 0)
                job = MeasureJob(path=str(target.path), threads=th, data=str(data), batch=settings.batch,
                                 min_time=settings.min_time, warmup=settings.warmup, accuracy=i == 0,
                                 affinity=tuple(allowed[:th]) if settings.pin else None, loader=loader,
                                 runtime=target.runtime)
                m = run_job(job)
                say(f"{target.path.name}: {th} thread{'s' if th > 1 else ''}", 1)
                if m.top1 is not None:
                    preds[_pred_key(str(target.path), m.runtime or target.runtime or "-")] = m.top1
                row = _row(target, th, settings, m, cores, cx[1], cx[0], size)
                if i > 0 and rows and rows[-1].path == row.path and rows[-1].runtime == row.runtime \
                        and rows[-1].top1 is not None and row.ok:
                    # accuracy does not depend on the thread count: measured once, shown on every row
                    row = replace(row, top1=rows[-1].top1, top5=rows[-1].top5, n_eval=rows[-1].n_eval)
                rows.append(row)
    rows = _with_agreement(rows, preds, targets)
    ordered = sort_rows(rows)
    key, ref = recommend(ordered, settings.max_drop)
    all_notes = tuple(notes) + ((profile.note,) if profile.note else ()) + _data_notes(es)
    return BenchResult(rows=ordered, settings=settings, env=env, recommended=key, reference_top1=ref,
                       data=f"{es.source} ({len(es.files)} images)", notes=all_notes,
                       wall_s=time.perf_counter() - t_start)


def _complexity(target: Target) -> tuple[int | None, int | None]:
    """(params, MACs per image) of ``target``; a file whose graph cannot be counted gets (None, None)."""
    try:
        cx = complexity(target.path, target.format)
    except EdgeTLError:
        return None, None
    return (cx.params, cx.macs) if cx else (None, None)


def _pred_key(path: str, runtime: str) -> str:
    return f"{path}|{runtime}"


def _data_notes(es: EvalSet, shown: int = 5) -> tuple[str, ...]:
    """One note naming the eval files the hygiene scan skipped (the first few, and how many in all)."""
    if not es.skipped:
        return ()
    more = f"; and {len(es.skipped) - shown} more" if len(es.skipped) > shown else ""
    return (f"skipped {len(es.skipped)} unusable eval file(s): {'; '.join(es.skipped[:shown])}{more}",)

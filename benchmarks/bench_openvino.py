"""OpenVINO next to ONNX Runtime and LiteRT: one run exported to every format, benched on every runtime.

Exports RUN to ONNX, TFLite and OpenVINO IR (float and int8, each verified by the parity gate on the run's
held-out test images), then benches every (file, runtime) pair at the given thread counts, each in its own
process, and prints the table, the recommendation, and the two goals it checks:

* the recommended artefact at 1 thread against the fastest pair measured (<= 0.5 pt drop, >= 99 % agreement);
* OpenVINO int8 (NNCF) against OpenVINO f32 at 1 thread (target >= 1.5x).

Then one line per (file, runtime): median ms at each thread count, the precision the runtime computed in, top-1
accuracy and agreement with the PyTorch model, and the OpenVINO int8-vs-f32 speed ratio at every thread count.
On a CPU with bf16 the float IR is also written pinned to bf16 (model_bf16.xml), so f32 and bf16 are both rows.

    nice .venv/bin/python benchmarks/bench_openvino.py --run runs/mnv2 --out /tmp/ov_bench [--threads 1,2]

Uses the run's own data (its split manifest); for the published numbers that is ../shared/data/catsdogs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a trained run folder")
    ap.add_argument("--out", required=True, help="folder for the artefacts and bench.json/bench.md")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--max-drop", type=float, default=0.5)
    ap.add_argument("--skip-export", action="store_true", help="bench what is already in --out")
    ap.add_argument("--formats", default="onnx,tflite,openvino", help="formats to export (bench takes all in --out)")
    ap.add_argument("--openvino-precision", default=None,
                    help="float IRs to write (default: f32,bf16 where the CPU has bf16, else f32)")
    ap.add_argument("--no-verify", action="store_true",
                    help="skip the export parity gate (bench still measures top-1 and agreement on the test split)")
    args = ap.parse_args()

    from rich.console import Console

    from edge_tl.bench.format import to_markdown
    from edge_tl.bench.results import BenchSettings
    from edge_tl.bench.runner import run_bench
    from edge_tl.bench.targets import discover, eval_set, load_targets, with_runtimes
    from edge_tl.cli.progress import ConsoleReporter
    from edge_tl.errors import ParityError
    from edge_tl.export.api import export
    from edge_tl.export.registry import ExportOptions

    con = Console(stderr=True)
    out = Path(args.out)
    if not args.skip_export:
        precisions = tuple((args.openvino_precision or _default_precisions()).split(","))
        try:
            res = export(args.run, args.formats.split(","), ["none", "int8"], out,
                         ExportOptions(force=True, max_drop=args.max_drop, min_agreement=0.99,
                                       verify=not args.no_verify, openvino_precision=precisions),
                         reporter=ConsoleReporter(con))
            parity = res.parity
        except ParityError as exc:
            parity = exc.result.parity  # type: ignore[attr-defined]
        for r in parity:
            con.print(f"parity {r.variant}: agreement {100 * r.agreement:.2f} %, drop {r.drop:+.2f} pt, "
                      f"{'pass' if r.passed else 'FAIL ' + '; '.join(r.failures)}")
    targets, notes = with_runtimes(load_targets(discover([str(out)])), None)
    es = eval_set(None, [t for t in targets if t.card])
    settings = BenchSettings(threads=tuple(int(t) for t in args.threads.split(",")), min_time=args.min_time,
                             max_drop=args.max_drop)
    result = run_bench(targets, es, settings, cores=len(__import__("os").sched_getaffinity(0)),
                       progress=lambda m, n: con.print(f"[dim]{m}") if n else None, notes=tuple(notes))
    (out / "bench.json").write_text(json.dumps(result.to_json(), indent=1))
    md = to_markdown(result)
    (out / "bench.md").write_text(md)
    print(md)
    one = [r for r in result.rows if r.ok and r.threads == 1]
    by = {(r.name, r.runtime): r for r in one}
    fp32, int8 = by.get(("model.xml", "openvino")), by.get(("model_int8.xml", "openvino"))
    if fp32 and int8:
        print(f"OpenVINO int8 vs f32 at 1 thread: {fp32.p50:.2f} / {int8.p50:.2f} ms = {fp32.p50 / int8.p50:.2f}x "
              f"(agreement {int8.agreement} %, top-1 {int8.top1:.2f} vs {fp32.top1:.2f} %)")
    print_pairs(result.rows, settings.threads)
    best = result.recommendation
    if best is not None:
        fastest = min(one, key=lambda r: r.p50)
        print(f"recommended: {best.key} {best.p50:.2f} ms, agreement {best.agreement} %, top-1 {best.top1:.2f} % "
              f"(reference {result.reference_top1:.2f} %); fastest 1-thread row: {fastest.key} {fastest.p50:.2f} ms")
    return 0


def _default_precisions() -> str:
    try:
        import openvino as ov
    except ImportError:
        return "f32"
    return "f32,bf16" if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"


def print_pairs(rows: list, threads: tuple[int, ...]) -> None:
    """One line per (file, runtime): ms at each thread count, precision, top-1 and agreement; then int8/f32."""
    cells: dict[tuple[str, str], dict[int, object]] = {}
    for r in rows:
        if r.ok:
            cells.setdefault((r.name, r.runtime), {})[r.threads] = r
    head = " | ".join(f"ms @{t}t" for t in threads)
    print(f"\n| file | runtime | precision | {head} | top-1 % | agreement % |")
    print("|---|---|---|" + "---|" * len(threads) + "---|---|")
    for (name, runtime), by_t in sorted(cells.items()):
        any_row = next(iter(by_t.values()))
        ms = " | ".join(f"{by_t[t].p50:.2f}" if t in by_t else "-" for t in threads)
        top1 = "-" if any_row.top1 is None else f"{any_row.top1:.2f}"
        agree = "-" if any_row.agreement is None else f"{any_row.agreement:.2f}"
        print(f"| {name} | {runtime} | {any_row.precision or '-'} | {ms} | {top1} | {agree} |")
    f32, int8 = cells.get(("model.xml", "openvino"), {}), cells.get(("model_int8.xml", "openvino"), {})
    for t in threads:
        if t in f32 and t in int8:
            print(f"OpenVINO int8 vs f32 at {t} thread(s): {f32[t].p50:.2f} / {int8[t].p50:.2f} ms = "
                  f"{f32[t].p50 / int8[t].p50:.2f}x")


if __name__ == "__main__":
    sys.exit(main())

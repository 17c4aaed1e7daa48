"""OpenVINO next to ONNX Runtime and LiteRT: one run exported to every format, benched on every runtime.

Exports RUN to ONNX, TFLite and OpenVINO IR (float and int8, each verified by the parity gate on the run's
held-out test images), then benches every (file, runtime) pair at the given thread counts, each in its own
process, and prints the table, the recommendation, and the two goals it checks:

* the recommended artefact at 1 thread against the fastest pair measured (<= 0.5 pt drop, >= 99 % agreement);
* OpenVINO int8 (NNCF) against OpenVINO f32 at 1 thread (target >= 1.5x).

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
    ap.add_argument("--no-verify", action="store_true",
                    help="skip the export parity gate (bench still measures top-1 and agreement on the test split)")
    args = ap.parse_args()

    from rich.console import Console

    from edge_tl.bench.format import to_markdown
    from edge_tl.bench.results import BenchSettings
    from edge_tl.bench.runner import run_bench
    from edge_tl.bench.targets import discover, eval_set, load_targets, with_runtimes
    from edge_tl.errors import ParityError
    from edge_tl.export.api import export
    from edge_tl.export.registry import ExportOptions

    con = Console(stderr=True)
    out = Path(args.out)
    if not args.skip_export:
        try:
            res = export(args.run, args.formats.split(","), ["none", "int8"], out,
                         ExportOptions(force=True, max_drop=args.max_drop, min_agreement=0.99,
                                       verify=not args.no_verify),
                         progress=lambda m: con.print(f"[dim]{m}"))
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
    best = result.recommendation
    if best is not None:
        fastest = min(one, key=lambda r: r.p50)
        print(f"recommended: {best.key} {best.p50:.2f} ms, agreement {best.agreement} %, top-1 {best.top1:.2f} % "
              f"(reference {result.reference_top1:.2f} %); fastest 1-thread row: {fastest.key} {fastest.p50:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``edge-tl export``: a run -> ONNX / TFLite / OpenVINO artefacts (float, fp16, dynamic or static int8), each verified.

Thin: options map onto :class:`edge_tl.export.registry.ExportOptions`; the work is
:func:`edge_tl.export.api.export`. Heavy libraries load inside the command only.
"""

from __future__ import annotations

from typing import Any

import click

from edge_tl.cli.options import NameListType, emit_json, force_option, json_option, threads_option
from edge_tl.export.registry import (
    CALIB_METHODS,
    INT8_PREPS,
    ONNX_WEIGHT_RANGES,
    OPENVINO_PRECISIONS,
    OUTPUT_RECIPES,
    QUANTIZE_MODES,
    formats,
)

QUANT_CHOICES = list(QUANTIZE_MODES)


@click.command("export")
@click.option("--model", "model", default="runs/latest", show_default=True,
              help="Run folder (or its model.pt) to export.")
@click.option("--format", "fmt", type=NameListType("format", lambda: [*formats(), "all"]),
              default="onnx", show_default=True,
              help="onnx, tflite, openvino (IR .xml/.bin) or all (comma-separated list allowed).")
@click.option("--quantize", type=NameListType("quantisation mode", lambda: QUANT_CHOICES), default="none",
              is_flag=False, flag_value="int8", show_default=True,
              help="none, fp16, dynamic or int8 (bare --quantize = int8; comma list allowed). "
                   "Quantised variants also write the float one.")
@click.option("--calib-size", type=click.IntRange(min=1), default=200, show_default=True,
              help="Calibration images from the run's train split (static int8).")
@click.option("--calib-method", type=click.Choice(CALIB_METHODS), default="minmax",
              show_default=True, help="How static int8 picks activation ranges.")
@click.option("--int8-output", type=click.Choice(OUTPUT_RECIPES), default="float", show_default=True,
              help="Static int8: keep the logits layer in float (no saturated outputs) or quantise it too.")
@click.option("--onnx-int8-weights", "onnx_weights", type=click.Choice(ONNX_WEIGHT_RANGES), default="auto",
              show_default=True,
              help="ONNX static int8 weights: full = int8, reduced = int8 in 7 bits (ONNX Runtime's reduce_range), "
                   "which cannot saturate in the u8 x s8 kernels of x86 CPUs without VNNI, u8 = uint8 with zero point 128 "
                   "(u8 x u8 kernels: all 8 bits, no saturation); auto = reduced on such a CPU, full elsewhere.")
@click.option("--int8-prep", type=click.Choice(INT8_PREPS), default="auto", show_default=True,
              help="Weight preparation before full int8 (ONNX, TFLite): bias = BN folding + bias correction, "
                   "cle = cross-layer equalisation, cle+bias = both, none = as trained, auto = what measured best "
                   "for the backbone, qat = quantisation-aware fine-tuning (as --qat).")
@click.option("--qat", is_flag=True,
              help="Full int8 (ONNX, TFLite): fine-tune the last blocks and the head through simulated int8, "
                   "distilled from the float model on the calibration images, before quantising "
                   "(= --int8-prep qat). For when post-training int8 misses the budget.")
@click.option("--openvino-precision", type=NameListType("OpenVINO precision", lambda: list(OPENVINO_PRECISIONS)),
              default="f32", show_default=True,
              help="Float OpenVINO IRs to write, each pinned to its compute precision: f32 = model.xml, "
                   "bf16 = model_bf16.xml (needs a CPU with bf16); comma list allowed.")
@click.option("--opset", type=click.IntRange(17, 23), default=18, show_default=True, help="ONNX opset.")
@click.option("--max-drop", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Accuracy budget (points) for quantised variants: int8 over it on validation images keeps its "
                   "most sensitive layers in float until it fits; the parity gate checks it on test images.")
@click.option("--no-fallback", is_flag=True, help="Do not search for float layers when int8 exceeds --max-drop.")
@click.option("--min-agreement", type=click.FloatRange(0, 100), default=98.0, show_default=True,
              help="Smallest top-1 agreement (%) with the PyTorch model for quantised variants.")
@click.option("--max-saturated", type=click.FloatRange(min=0, max=100), default=0.1, show_default=True,
              help="Largest share (%) of int8 outputs allowed at the int8 limits.")
@click.option("--max-ece-delta", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Largest ECE difference (points) from the PyTorch model; fails only when its 95 % "
                   "bootstrap interval excludes zero.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check against the PyTorch model.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="exported", show_default=True,
              help="Output folder.")
@threads_option()
@force_option
@json_option
def export(model: str, fmt: list[str], quantize: list[str], calib_size: int, calib_method: str, int8_output: str,
           onnx_weights: str, int8_prep: str, qat: bool, openvino_precision: list[str], opset: int, max_drop: float,
           no_fallback: bool,
           min_agreement: float, max_saturated: float, max_ece_delta: float, no_verify: bool, out_dir: str,
           threads: int | None, force: bool, json_path: str | None) -> None:
    """Export a trained run to edge artefacts and check each one against the PyTorch model.

    \b
    Examples:
      edge-tl export                                  # exported/model.onnx
      edge-tl export --format all --quantize int8     # float + int8, ONNX and TFLite
      edge-tl export --quantize fp16,dynamic --force
      edge-tl export --format onnx,tflite --quantize int8 --qat
      edge-tl export --format openvino --openvino-precision f32,bf16
    """
    from rich.console import Console

    from edge_tl.cli.progress import ConsoleReporter
    from edge_tl.errors import ConfigError, ParityError
    from edge_tl.export.api import export as run_export
    from edge_tl.export.registry import ExportOptions

    err = Console(stderr=True)
    if qat:
        source = click.get_current_context().get_parameter_source("int8_prep")
        if source is not None and source.name != "DEFAULT" and int8_prep != "qat":
            raise ConfigError(f"--qat conflicts with --int8-prep {int8_prep}", "give one of them")
        int8_prep = "qat"
    opts = ExportOptions(calib_size=calib_size, calib_method=calib_method, output=int8_output, opset=opset,
                         max_drop=max_drop, min_agreement=min_agreement / 100.0,
                         max_saturated=max_saturated / 100.0, max_ece_delta=max_ece_delta,
                         verify=not no_verify, fallback=not no_fallback, force=force, threads=threads,
                         onnx_weights=onnx_weights, int8_prep=int8_prep, openvino_precision=tuple(openvino_precision))
    try:  # progress (steps, calibration bars) on stderr, results on stdout
        result = run_export(model, fmt, quantize, out_dir, opts, reporter=ConsoleReporter(err))
    except ParityError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            _report(partial, err, json_path == "-")
            emit_json(partial.to_json(), json_path)
        raise
    _report(result, err, json_path == "-")
    emit_json(result.to_json(), json_path)


def _fmt(v: Any, spec: str, scale: float = 1.0) -> str:
    return "-" if v is None else format(v * scale, spec)


def _report(result: Any, err: Any, json_on_stdout: bool = False) -> None:
    """Print the parity table (stdout, or stderr when JSON goes to stdout) and warnings (stderr)."""
    from rich.console import Console
    from rich.table import Table

    out = Console(stderr=json_on_stdout)
    if out.width < 150:  # a wide table: let it overflow a narrow terminal rather than truncate every cell
        out = Console(width=150, stderr=json_on_stdout)
    parity = {r.variant: r for r in result.parity}
    table = Table(title=f"edge-tl export -> {result.out_dir}")
    for col in ("variant", "format", "quant", "size MB", "agree %", "acc %", "drop pt", "max|Δlogit|",
                "saturated %", "KL", "ECE %", "ECE fp32 %", "status"):
        table.add_column(col, justify="left" if col in ("variant", "format", "quant", "status") else "right")
    for a in result.artifacts:
        r = parity.get(a.path.name)
        if r is None:
            table.add_row(a.path.name, a.format, a.quantize, f"{a.size_mb:.2f}", *["-"] * 8, "not verified")
            continue
        status = "[green]pass" if r.passed else "[red]FAIL"
        table.add_row(a.path.name, a.format, a.quantize, f"{a.size_mb:.2f}", _fmt(r.agreement, ".2f", 100),
                      _fmt(r.accuracy, ".2f", 100), _fmt(r.drop, "+.2f"), f"{r.max_dlogit:.2g}",
                      _fmt(r.saturated, ".2f", 100), f"{r.kl:.2g}", _fmt(r.ece, ".2f", 100),
                      _fmt(r.ece_reference, ".2f", 100), status)
    out.print(table)
    for r in result.parity:
        for failure in r.failures:
            err.print(f"[red]FAIL[/red] {r.variant}: {failure}")
    for p in result.reused:
        err.print(f"note: reused {p} (made from the same checkpoint)")
    for a in result.artifacts:
        for note in a.notes:
            err.print(f"warning: {a.path.name}: {note}")
        _report_budget(a, err)


def _report_budget(art: Any, err: Any) -> None:
    """One line per accuracy-budget repair that was measured (OpenVINO runs two and keeps the better)."""
    q = art.card.quantization
    budget = None if q is None else q.budget
    for name, c in ({} if budget is None else budget.candidates).items():
        kept = ", kept" if name == budget.method else ""
        ms = "-" if c.latency_ms is None else f"{c.latency_ms:.2f}"
        err.print(f"budget {art.path.name}: {name}: drop {c.drop:.2f} pt, agreement {100 * c.agreement:.1f} %, "
                  f"{ms} ms (1 thread), {len(c.fallback_layers)} layer(s) float, "
                  f"{'fits' if c.fits else 'over budget'}{kept}")

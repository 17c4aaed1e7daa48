"""The report's decision (which file to ship and why) and its human units, on old and new result layouts."""

from __future__ import annotations

import pytest

from edge_tl.report import human
from edge_tl.report.verdict import FAIL, PASS, UNCHECKED, decide


def _parity_row(name: str, fmt: str, quant: str = "float", **parity) -> dict:
    """An exported artefact as the report collects it from its card (not a card itself)."""
    base = {"agreement": 0.99, "accuracy": 0.9, "drop": 0.1, "passed": True, "failures": []}
    return {"artefact": name, "format": fmt, "quantization": quant, "size_mb": 2.5, "parity": {**base, **parity}}


def _row(name: str, threads: int, p50, top1: float = 90.0, **extra) -> dict:
    return {"name": name, "threads": threads, "latency": {"p50": p50}, "top1": top1, "status": "ok", **extra}


ARTEFACTS = [_parity_row("model.onnx", "onnx"), _parity_row("model_int8.onnx", "onnx", "int8", agreement=0.99),
             _parity_row("model_int8.tflite", "tflite", "int8", agreement=0.82, passed=False,
                         failures=["agreement 82.00 % < 98.00 %"])]


def test_old_bench_layout_picks_fastest_passing_file():
    """Rows without `runtime`, latency as a bare number: the failing int8 TFLite is faster but is not picked."""
    bench = {"rows": [_row("run", 1, 15.0, format="pytorch"), _row("model.onnx", 1, 5.0), _row("model.onnx", 2, 2.8),
                      _row("model_int8.onnx", 1, 2.9, 89.5), _row("model_int8.onnx", 2, 1.8, 89.5),
                      _row("model_int8.tflite", 1, 1.2, 80.0), _row("model_int8.tflite", 2, 0.9, 80.0)],
             "settings": {"max_drop": 1.0}, "reference_top1": 90.0, "recommended": "model_int8.tflite@2t"}
    v = decide(ARTEFACTS, bench)
    assert (v.chosen.name, v.chosen_threads, v.chosen.quantization) == ("model_int8.onnx", 2, "int8")
    assert v.threads == (1, 2) and v.chosen.p50 == {1: 2.9, 2: 1.8} and v.chosen.parity == PASS
    assert v.candidates[0].name == "run" and v.candidates[0].reference
    failing = [c for c in v.candidates if c.parity == FAIL]
    assert [c.name for c in failing] == ["model_int8.tflite"]
    assert failing[0].problems == ("agreement 82.00 % < 98.00 %",)
    assert "1 artefact failed the parity gate" in v.why and "within 1.00 pt of the reference top-1 (90.0 %)" in v.why
    assert any("benchmark alone picked model_int8.tflite@2t" in n for n in v.notes)


def test_new_bench_layout_with_runtimes_and_parity_marks():
    """Rows with `runtime` (one ONNX file on two runtimes), interval latencies and a parity mark on the row."""
    rows = [_row("model.onnx", 1, {"value": 5.0, "lo": 4.9, "hi": 5.1}, runtime="onnxruntime"),
            _row("model.onnx", 1, {"value": 4.0}, runtime="openvino"),
            _row("model_int8.onnx", 1, {"value": 2.0}, runtime="openvino", parity="FAIL"),
            _row("model_int8.onnx", 1, {"value": 3.0}, runtime="onnxruntime", parity={"passed": True}),
            _row("model_fp16.onnx", 1, {"value": 1.0}, runtime="onnxruntime", parity_failed=True),
            _row("model.tflite", 1, {"value": 3.5}, runtime="litert", parity_failed=False)]
    v = decide([_parity_row("model.onnx", "onnx"), _parity_row("model_int8.onnx", "onnx", "int8")],
               {"rows": rows, "recommended": "model_int8.onnx/onnxruntime@1t"})
    keys = {(c.name, c.runtime): c.parity for c in v.candidates}
    assert keys == {("model.onnx", "onnxruntime"): PASS, ("model.onnx", "openvino"): PASS,
                    ("model_int8.onnx", "openvino"): FAIL, ("model_int8.onnx", "onnxruntime"): PASS,
                    ("model_fp16.onnx", "onnxruntime"): FAIL, ("model.tflite", "litert"): UNCHECKED}
    assert (v.chosen.name, v.chosen.runtime) == ("model_int8.onnx", "onnxruntime")
    assert not any("benchmark alone picked" in n for n in v.notes)  # same file as the bench's own pick


def test_failed_benchmark_rows_and_no_qualifying_file():
    rows = [_row("model.onnx", 1, None, status="error", error="session failed to load"),
            _row("model_int8.tflite", 1, 1.0)]
    v = decide(ARTEFACTS, {"rows": rows})
    assert v.chosen is None and "No artefact qualifies" in v.why
    onnx = next(c for c in v.candidates if c.name == "model.onnx")
    assert onnx.failed and onnx.problems == ("benchmark at 1 thread(s) failed: session failed to load",)


@pytest.mark.parametrize("bench, words", [
    (None, "No latency measured yet"),
    ({"rows": "garbage"}, "No latency measured yet"),
    ([{"name": "model.onnx", "threads": 1, "p50": 3.0}], "Fastest median latency (3.00 ms)"),
])
def test_absent_or_odd_bench_inputs(bench, words):
    v = decide(ARTEFACTS[:1], bench)
    assert words in v.why


def test_nothing_exported_nothing_benched():
    v = decide([], None)
    assert v.chosen is None and v.candidates == () and "Nothing to decide yet" in v.why


def test_unchecked_artefact_is_named():
    v = decide([{"artefact": "m.tflite", "format": "tflite", "quantization": "int8", "size_mb": 1.0, "parity": None}],
               {"rows": [_row("m.tflite", 1, 2.0)]})
    assert v.chosen.parity == UNCHECKED and any("no parity result" in n for n in v.notes)


@pytest.mark.parametrize("key, value, text", [
    ("top1", 92.2222, "92.2 %"), ("agreement", 0.9222, "92.2 %"), ("test_accuracy", 0.8777, "87.8 %"),
    ("per_class_test_accuracy.circle", 1.0, "100 %"), ("latency.p50.value", 2.8765, "2.88 ms"),
    ("load_ms", 1234.6, "1,235 ms"), ("size_mb", 8.876, "8.88 MB"), ("macs", 299501952, "300 M"),
    ("params", 3504872, "3.50 M"), ("max_dlogit", 2.67e-05, "2.67e-05"), ("drop", 0.6667, "0.667 pt"),
    ("eps", 4 / 255, "4/255"), ("eps", 0.0123, "0.0123"), ("eps", 1.0, "1.00"), ("eps", 0.0, "0"),
    ("epoch", 3, "3"), ("stopped_early", True, "yes"),
    ("failures", [], "-"), ("failures", ["a", "b"], "a; b"), ("train_seconds", 0.976, "0.976 s"),
])
def test_human_units(key, value, text):
    assert human.value(key, value) == text


def test_labels_are_words():
    assert human.label("per_class_test_accuracy.circle") == "Per class test accuracy: circle"
    assert human.label("reference_accuracy") == "Reference accuracy"
    assert human.label("latency.p50") == "Latency p50" == human.label("latency.p50.value")
    assert human.label("latency.p50.lo") == "Latency p50 (low)"
    assert human.label("some_new_field") == "Some new field"
    assert human.sig(0.0) == "0" and human.sig(123456.0) == "123,456" and human.sig(0.000123) == "0.000123"

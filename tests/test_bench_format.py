"""Bench outputs: recommendation, Pareto front, rich table, JSON/CSV/Markdown schema, plot file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from edge_tl.bench.env import Fingerprint, fingerprint
from edge_tl.bench.format import CSV_FIELDS, to_csv, to_markdown
from edge_tl.bench.plot import plot_latency_accuracy
from edge_tl.bench.results import BenchResult, BenchRow, BenchSettings, pareto_front, recommend, sort_rows
from edge_tl.bench.stats import summarize
from edge_tl.cli.tables import bench_table
from edge_tl.errors import DataError


def row(name: str, fmt: str, ms: float, top1: float | None, threads: int = 1, **kw: object) -> BenchRow:
    lat = summarize(np.random.default_rng(0).normal(ms, ms * 0.01, 50) / 1e3)
    return BenchRow(name=name, path=f"exported/{name}", format=fmt, quantization=kw.pop("q", "fp32"),
                    runtime=kw.pop("rt", {"pytorch": "pytorch", "onnx": "onnxruntime", "tflite": "litert",
                                          "openvino": "openvino"}[fmt]),
                    threads=threads, batch=1, status="ok", size_mb=1.0, latency=lat, throughput=1e3 / ms,
                    top1=top1, peak_rss_mb=80.0, gflops=10.0, peak_pct=5.0, **kw)


def table_text(res: BenchResult, width: int) -> str:
    con = Console(record=True, width=width)
    con.print(bench_table(res))
    return con.export_text()


def error_row() -> BenchRow:
    return BenchRow(name="broken.onnx", path="exported/broken.onnx", format="onnx", quantization="-",
                    runtime="-", threads=1, batch=1, status="error", error="exported/broken.onnx is not a valid "
                    "ONNX model -- re-export it")


@pytest.fixture
def result() -> BenchResult:
    rows = sort_rows([row("model.pt", "pytorch", 17.0, 98.0), error_row(), row("model.onnx", "onnx", 5.0, 98.0),
                      row("model_int8.onnx", "onnx", 2.9, 97.5, q="int8", noise=("p90/p50 = 1.7 > 1.5",)),
                      row("model_int8.tflite", "tflite", 2.0, 90.0, q="int8")])
    key, ref = recommend(rows, max_drop=1.0)
    return BenchResult(rows=rows, settings=BenchSettings(), env=fingerprint(), recommended=key, reference_top1=ref,
                       data="test split (100 images)", notes=("a note",))


def test_sorted_by_latency_failures_last(result: BenchResult) -> None:
    assert [r.name for r in result.rows] == ["model_int8.tflite", "model_int8.onnx", "model.onnx", "model.pt",
                                             "broken.onnx"]


def test_recommendation_is_fastest_within_budget(result: BenchResult) -> None:
    # int8 tflite is fastest but 8 points below the PyTorch reference; int8 onnx is 0.5 below: recommended
    assert result.reference_top1 == 98.0
    assert result.recommended == "model_int8.onnx/onnxruntime@1t"
    rows = result.rows
    assert recommend(rows, max_drop=10.0)[0] == "model_int8.tflite/litert@1t"
    assert recommend(rows, max_drop=0.0)[0] == "model.onnx/onnxruntime@1t"
    assert recommend((error_row(),), 1.0) == (None, None)


def test_pareto_front() -> None:
    pts = [(17.0, 98.0), (5.0, 98.0), (2.9, 97.5), (2.0, 90.0), (6.0, 97.0), (3.0, 91.0)]
    assert pareto_front(pts) == [3, 2, 1]


def test_bench_table(result: BenchResult) -> None:
    text = table_text(result, 220)
    for name in ("model_int8.tflite", "model.pt", "broken.onnx", "ok (noisy)", "error"):
        assert name in text
    assert "* recommended: model_int8.onnx on onnxruntime" in text
    assert "is not a valid ONNX model" in text
    assert "a note" in text and result.env.cpu_model in text


def test_json_schema_and_round_trip(result: BenchResult) -> None:
    d = json.loads(json.dumps(result.to_json()))
    assert set(d) >= {"schema", "settings", "env", "data", "reference_top1", "recommended", "notes", "rows"}
    assert d["settings"]["threads"] == [1, 2] and d["settings"]["min_time"] == 2.0
    assert {"cpu_model", "isa", "affinity", "versions", "loadavg"} <= set(d["env"])
    first = d["rows"][0]
    assert {"p50", "p90", "p99", "mean", "std", "n"} <= set(first["latency"])
    assert set(first["latency"]["p50"]) == {"value", "low", "high"}
    assert d["rows"][-1]["status"] == "error" and d["rows"][-1]["latency"] is None
    assert [BenchRow.from_json(r) for r in d["rows"]] == list(result.rows)
    assert Fingerprint(**{**d["env"], "isa": tuple(d["env"]["isa"]), "affinity": tuple(d["env"]["affinity"]),
                          "loadavg": tuple(d["env"]["loadavg"]) if d["env"]["loadavg"] else None}) == result.env


def test_csv(result: BenchResult) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(result))))
    assert len(rows) == 5
    assert tuple(rows[0]) == CSV_FIELDS
    assert rows[0]["name"] == "model_int8.tflite" and float(rows[0]["p50_ms"]) == pytest.approx(2.0, rel=0.05)
    assert [r["recommended"] for r in rows].count("True") == 1
    assert rows[1]["noisy"] == "True" and "p90/p50" in rows[1]["noise"]
    assert rows[-1]["status"] == "error" and rows[-1]["p50_ms"] == "" and "not a valid" in rows[-1]["error"]


def test_markdown(result: BenchResult) -> None:
    md = to_markdown(result)
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == 2 + 5
    assert all(ln.count("|") == table[0].count("|") for ln in table)
    assert "**model_int8.onnx**" in md and "- * recommended:" in md


def test_plot_written(result: BenchResult, tmp_path: Path) -> None:
    out = plot_latency_accuracy(result, tmp_path / "plot.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]  # no temp file left behind


def test_plot_without_accuracy_is_an_error(tmp_path: Path) -> None:
    res = BenchResult(rows=(error_row(),), settings=BenchSettings(), env=fingerprint())
    with pytest.raises(DataError):
        plot_latency_accuracy(res, tmp_path / "plot.png")
    assert not list(tmp_path.iterdir())


def test_one_file_on_two_runtimes_and_parity_failures_are_never_recommended(tmp_path: Path) -> None:
    rows = sort_rows([row("model.pt", "pytorch", 17.0, 98.0), row("model.onnx", "onnx", 5.0, 98.0),
                      row("model.onnx", "onnx", 3.0, 98.0, rt="openvino", precision="f32"),
                      row("model_int8.xml", "openvino", 1.0, 98.0, q="int8", precision="int8", parity_failed=True)])
    assert len({r.key for r in rows}) == 4  # the same file on two runtimes: two rows, two keys
    key, ref = recommend(rows, max_drop=1.0)
    assert key == "model.onnx/openvino@1t" and ref == 98.0  # the faster int8 row failed its parity check
    res = BenchResult(rows=rows, settings=BenchSettings(), env=fingerprint(), recommended=key, reference_top1=ref)
    text = table_text(res, 240)
    assert "parity FAIL" in text and "never recommended" in text and "model_int8.xml" in text
    assert "* recommended: model.onnx on openvino (f32)" in text
    d = res.to_json()
    assert [r["parity_failed"] for r in d["rows"] if r["name"] == "model_int8.xml"] == [True]
    assert {r["precision"] for r in d["rows"] if r["runtime"] == "openvino"} == {"f32", "int8"}
    flat = list(csv.DictReader(io.StringIO(to_csv(res))))
    assert [r["parity_failed"] for r in flat].count("True") == 1
    assert "parity FAIL" in to_markdown(res)
    assert plot_latency_accuracy(res, tmp_path / "p.png").stat().st_size > 10_000

"""Export of one small model: the run's float ONNX file (conversion and card; no parity gate)."""

from __future__ import annotations


def test_export_onnx(benchmark, run_dir, work):
    from _workloads import export_variants

    res = benchmark.pedantic(export_variants, args=(run_dir, work / "export_bench", ["none"]),
                             kwargs={"verify": False}, rounds=3, warmup_rounds=1)
    assert [a.path.name for a in res.artifacts] == ["model.onnx"]

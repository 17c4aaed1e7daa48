"""Helpers for the TFLite tests: skip marks for missing converters, and every variant of one model exported."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def needs(*modules: str) -> list[pytest.MarkDecorator]:
    """Skip marks for each of ``modules`` that is not installed."""
    return [pytest.mark.skipif(importlib.util.find_spec(m) is None, reason=f"{m} not installed") for m in modules]


def export_variants(model: Any, card: Any, out: Path, calib: np.ndarray, **kw: Any) -> dict[str, Path]:
    """Every quantisation of ``model`` into ``out`` as the exporter does it: the float file first, each variant
    from its bytes; each file has its sidecar card and no temp file is left."""
    from edge_tl.card import sidecar_path
    from edge_tl.export.tflite_export import FILENAMES, export_tflite

    paths: dict[str, Path] = {}
    for q, name in FILENAMES.items():
        float_content = paths["none"].read_bytes() if paths else None
        res = export_tflite(model, card, out / name, q, calib, float_content=float_content, **kw)
        assert res.path == out / name and res.path.exists() and sidecar_path(res.path).exists()
        paths[q] = res.path
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temp files left behind"
    return paths

"""The accuracy budget of ``edge-tl export --quantize int8 --max-drop X``: automatic float fallback.

After the exporter wrote the full-int8 artefact, its top-1 drop is measured on the run's *validation* images
(the parity gate judges the *test* images afterwards). Within budget, the card records the measurement. Over
budget, :func:`edge_tl.export.sensitivity.budget_search` keeps the most sensitive layers in float one at a time
until the drop fits (or says by how much it cannot), the artefact is rewritten with that fallback, and the card
records which layers stayed float and why, with the accuracy, size and latency of every step.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.export.registry import Artifact
from edge_tl.export.sensitivity import accuracy, budget_search, get_backend

BUDGET_IMAGES = 200


def _backend(art: Artifact, card: ModelCard, float_path: Path, calibration: Callable[[int], Iterator[np.ndarray]],
             method: str, threads: int, output: str) -> Any:
    factory = get_backend(art.format)
    if art.format == "onnx":
        return factory(float_path, card.input, calibration, method=method, threads=threads, output=output)
    return factory(Path(float_path).read_bytes(), card.input, calibration, method=method, threads=threads,
                   classes=card.classes, output=output)


def _rewrite(art: Artifact, content: bytes, card: ModelCard) -> None:
    if art.format == "onnx":
        import onnx

        from edge_tl.export.onnx_export import save_onnx

        save_onnx(onnx.load_from_string(content), art.path, card)
    else:
        from edge_tl.export.tflite_export import write_tflite

        write_tflite(content, card, art.path)


def enforce_budget(art: Artifact, run_card: ModelCard, manifest: Any, float_path: Path | None,
                   calibration: Callable[[int], Iterator[np.ndarray]] | None, max_drop: float, method: str,
                   threads: int = 2, output: str = "float", say: Callable[[str], None] = lambda _m: None) -> Artifact:
    """Measure ``art``'s drop on validation images; over ``max_drop`` points, search and apply a float fallback."""
    from edge_tl.export.quant_report import eval_images
    from edge_tl.runtimes import load

    if art.quantize != "int8" or float_path is None or calibration is None:
        return art
    pixels, labels, split = eval_images(manifest, run_card.input, BUDGET_IMAGES, "val")
    ref = load(float_path, threads=threads)(pixels)
    int8 = load(art.path, threads=threads)(pixels)
    float_acc, int8_acc = accuracy(ref, labels), accuracy(int8, labels)
    drop = 100.0 * (float_acc - int8_acc)
    quant = dict(art.card.quantization or {})
    record: dict[str, Any] = {"max_drop": max_drop, "split": split, "images": len(labels),
                              "float_accuracy": float_acc, "int8_accuracy": int8_acc, "drop": drop,
                              "fallback_layers": [], "fits": drop <= max_drop}
    if drop > max_drop:
        say(f"{art.path.name}: drop {drop:.2f} pt on {len(labels)} {split} images exceeds --max-drop {max_drop}; "
            "searching for layers to keep in float")
        with tempfile.TemporaryDirectory(prefix="edge_tl_budget_"):
            backend = _backend(art, run_card, float_path, calibration, method, threads, output)
            result = budget_search(backend, pixels, labels, max_drop, progress=lambda n: say(f"  trying {n[-60:]}"))
            chosen = result.chosen
            record.update(fits=result.fits, drop=chosen.drop, int8_accuracy=chosen.accuracy,
                          drop_before=drop, fallback_layers=list(chosen.float_layers), reasons=result.reasons,
                          steps=[{"float_layers": len(s.float_layers), "drop": s.drop, "agreement": s.agreement,
                                  "size_bytes": s.size_bytes, "latency_ms": s.latency_ms} for s in result.steps])
            if chosen.float_layers:
                content = backend.build(chosen.float_layers)
                quant["float_layers"] = sorted({*quant.get("float_layers", []), *chosen.float_layers})
                quant["budget"] = record
                card = art.card.with_(quantization=quant)
                _rewrite(art, content, card)
                say(f"{art.path.name}: kept {len(chosen.float_layers)} layer(s) in float; drop "
                    f"{drop:.2f} -> {chosen.drop:.2f} pt ({'fits' if result.fits else 'still over budget'})")
                return Artifact(art.path, card, art.format, art.quantize, art.seconds,
                                (*art.notes, _note(record)))
    quant["budget"] = record
    card = art.card.with_(quantization=quant)
    from edge_tl.export.registry import get_card_writer

    get_card_writer(art.format)(art.path, card)
    notes = art.notes if record["fits"] else (*art.notes, _note(record))
    return Artifact(art.path, card, art.format, art.quantize, art.seconds, notes)


def _note(record: dict[str, Any]) -> str:
    n = len(record["fallback_layers"])
    if record["fits"]:
        return (f"accuracy budget: kept {n} layer(s) in float, validation drop {record.get('drop_before', 0):.2f} -> "
                f"{record['drop']:.2f} pt (<= {record['max_drop']})")
    return (f"accuracy budget NOT met: best validation drop {record['drop']:.2f} pt > {record['max_drop']} pt "
            f"(over by {record['drop'] - record['max_drop']:.2f}) even with {n} layer(s) in float")

"""The accuracy budget of ``edge-tl export --quantize int8 --max-drop X``: automatic float fallback.

After the exporter wrote the full-int8 artefact, its top-1 drop is measured on the run's *validation* images
(the parity gate judges the *test* images afterwards). Within budget, the card records the measurement. Over
budget, :func:`edge_tl.export.sensitivity.budget_search` keeps the most sensitive layers in float one at a time
until the drop fits (or says by how much it cannot), the artefact is rewritten with that fallback, and the card
records which layers stayed float and why, with the accuracy, size and latency of every step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.export.registry import Artifact
from edge_tl.export.sensitivity import accuracy, budget_search, get_backend, layer_sensitivity

BUDGET_IMAGES = 256
RANK_IMAGES = 48  # the ranking compares a continuous error, so few images suffice; steps use all of them
MAX_TRIES = 16  # layers tried (in sensitivity order) before the search gives up and reports the excess


def budget_images(manifest: Any, spec: Any, n: int = BUDGET_IMAGES,
                  exclude: Any = ()) -> tuple[np.ndarray, np.ndarray, str]:
    """Validation images, topped up with train images when the validation split is small.

    The drop is a difference between float and int8 on the *same* images, so train images the model learned
    from still measure it fairly; the calibration images (``exclude``) are left out, since the int8 ranges were
    fitted to them. The test split is never used here (the parity gate judges it afterwards).
    """
    from edge_tl.data.preprocess import load_batch

    files, labels, used = list(manifest.files("val")), list(manifest.labels("val")), "val"
    if len(files) < n:
        skip = {str(p) for p in exclude}
        pairs = [(f, y) for f, y in zip(manifest.files("train"), manifest.labels("train")) if str(f) not in skip]
        train_f, train_l = [f for f, _ in pairs], [y for _, y in pairs]
        idx = np.random.default_rng(0).permutation(len(train_f))[: n - len(files)]
        files += [train_f[i] for i in idx]
        labels += [train_l[i] for i in idx]
        used = "val+train" if len(idx) else used
    if not files:
        from edge_tl.errors import DataError

        raise DataError("the run has no validation or train images to measure the int8 drop on",
                        "retrain with a dataset large enough for a validation split")
    return load_batch(files[:n], spec), np.asarray(labels[:n]), used


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
                   threads: int = 2, output: str = "float", say: Callable[[str], None] = lambda _m: None,
                   min_agreement: float = 0.0) -> Artifact:
    """Measure ``art``'s drop on validation images; over ``max_drop`` points, search and apply a float fallback."""
    from edge_tl.runtimes import load

    if art.quantize != "int8" or float_path is None or calibration is None:
        return art
    pixels, labels, split = budget_images(manifest, run_card.input, exclude=getattr(calibration, "files", ()))
    ref = load(float_path, threads=threads)(pixels)
    int8 = load(art.path, threads=threads)(pixels)
    float_acc, int8_acc = accuracy(ref, labels), accuracy(int8, labels)
    drop = 100.0 * (float_acc - int8_acc)
    agree = float((ref.argmax(1) == int8.argmax(1)).mean())
    quant = dict(art.card.quantization or {})
    fits = drop <= max_drop and agree >= min_agreement
    record: dict[str, Any] = {"max_drop": max_drop, "min_agreement": min_agreement, "split": split,
                              "images": len(labels), "float_accuracy": float_acc, "int8_accuracy": int8_acc,
                              "drop": drop, "agreement": agree, "fallback_layers": [], "fits": fits}
    if not fits:
        say(f"{art.path.name}: drop {drop:.2f} pt / agreement {100 * agree:.1f} % on {len(labels)} {split} images "
            f"misses --max-drop {max_drop} / --min-agreement {100 * min_agreement:.0f}; "
            "searching for layers to keep in float")
        backend = _backend(art, run_card, float_path, calibration, method, threads, output)
        try:
            say(f"  ranking {len(backend.layers())} layers by the error each adds alone ({RANK_IMAGES} images)")
            ranking = layer_sensitivity(backend, pixels[:RANK_IMAGES], labels[:RANK_IMAGES]).layers
            result = budget_search(backend, pixels, labels, max_drop, ranking=ranking, max_float=MAX_TRIES,
                                   min_agreement=min_agreement, progress=lambda n: say(f"  trying {n[-60:]}"))
            chosen = result.chosen
            record.update(fits=result.fits, drop=chosen.drop, int8_accuracy=chosen.accuracy,
                          agreement=chosen.agreement, drop_before=drop, agreement_before=agree,
                          fallback_layers=list(chosen.float_layers), reasons=result.reasons,
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
        finally:
            getattr(backend, "close", lambda: None)()
    quant["budget"] = record
    card = art.card.with_(quantization=quant)
    from edge_tl.export.registry import get_card_writer

    get_card_writer(art.format)(art.path, card)
    notes = art.notes if record["fits"] else (*art.notes, _note(record))
    return Artifact(art.path, card, art.format, art.quantize, art.seconds, notes)


def _note(record: dict[str, Any]) -> str:
    n = len(record["fallback_layers"])
    where = f"{record['images']} {record['split']} images"
    if record["fits"]:
        return (f"accuracy budget: kept {n} layer(s) in float; drop {record.get('drop_before', 0):.2f} -> "
                f"{record['drop']:.2f} pt, agreement {100 * record.get('agreement_before', 0):.1f} -> "
                f"{100 * record['agreement']:.1f} % on {where}")
    over = max(0.0, record["drop"] - record["max_drop"])
    short = max(0.0, record.get("min_agreement", 0.0) - record["agreement"])
    return (f"accuracy budget NOT met even with {n} layer(s) in float: drop {record['drop']:.2f} pt "
            f"(over by {over:.2f}), agreement {100 * record['agreement']:.1f} % (short by {100 * short:.1f}) "
            f"on {where}")

"""The accuracy budget of ``edge-tl export --quantize int8 --max-drop X``: automatic float fallback.

After the exporter wrote the full-int8 artefact, its top-1 drop and agreement are measured on the same images
and with the same rule as the parity gate (:func:`edge_tl.parity.fidelity_set`: every image the quantiser did not
calibrate on; :func:`edge_tl.parity.drop_limit`), against the same reference logits when the driver passes them,
so a budget that "fits" is one the gate then passes. Within budget, the card records the measurement. Over
budget, :func:`edge_tl.export.sensitivity.budget_search` keeps the most sensitive layers in float one at a time
until the drop fits (or says by how much it cannot), the artefact is rewritten with that fallback, and the card
records which layers stayed float and why, with the accuracy, size and latency of every step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.export.registry import Artifact
from edge_tl.export.sensitivity import accuracy, budget_search, get_backend, layer_sensitivity
from edge_tl.parity import FidelitySet, drop_limit, fidelity_set, wilson_interval
from edge_tl.records import BudgetRecord, BudgetStep

RANK_IMAGES = 48  # the ranking compares a continuous error, so few images suffice; steps use all of them
MAX_TRIES = 16  # layers tried (in sensitivity order) before the search gives up and reports the excess


def _backend(art: Artifact, card: ModelCard, float_path: Path, calibration: Callable[[int], Iterator[np.ndarray]],
             method: str, threads: int, output: str) -> Any:
    factory = get_backend(art.format)
    if art.format == "onnx":
        from edge_tl.export.onnx_quant import scheme_of

        return factory(float_path, card, calibration, method=method, threads=threads, output=output,
                       weights=scheme_of(art.card.quantization))
    from edge_tl.export.tflite_export import folded_input, is_folded

    # Candidates are built the way the exporter builds the shipped file: from the float flatbuffer with the
    # normalisation folded in (pixels in [0, 1] go in, the input range fixed to one pixel level), uint8 input.
    content = Path(float_path).read_bytes()
    fold = is_folded(content)
    return factory(content, card.with_(input=folded_input(card.input)) if fold else card, calibration, method=method,
                   threads=threads, output=output, input_range=(0.0, 1.0) if fold else None,
                   io_type=art.card.input.dtype)


class _Referenced:
    """A backend whose reference logits are the gate's (the source model's) instead of its own float file.

    The int8 file may be quantised from a prepared copy of the model (bias-corrected weights), whose float
    logits are not the reference the drop must be measured against.
    """

    def __init__(self, backend: Any, pixels: np.ndarray, reference: np.ndarray, fallback: Callable) -> None:
        self._backend, self._pixels, self._reference, self._fallback = backend, pixels, reference, fallback

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def float_logits(self, pixels: np.ndarray) -> np.ndarray:
        same_start = pixels.__array_interface__["data"][0] == self._pixels.__array_interface__["data"][0]
        if same_start and pixels.shape[1:] == self._pixels.shape[1:] and len(pixels) <= len(self._pixels) \
                and pixels.strides == self._pixels.strides:
            return self._reference[: len(pixels)]
        return self._fallback(pixels)


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
                   min_agreement: float = 0.0, *, fidelity: FidelitySet | None = None,
                   reference: np.ndarray | None = None, source_path: Path | None = None) -> Artifact:
    """Measure ``art``'s drop and agreement on the gate's images; over budget, search and apply a float fallback.

    ``fidelity`` / ``reference``: the gate's images and reference logits (computed here when not given, with
    the float artefact as reference). ``source_path``: the float file the int8 one was quantised from, when it is
    not ``float_path`` (a prepared copy of the model); the fallback search rebuilds from it.
    """
    from edge_tl.runtimes import load

    if art.quantize != "int8" or float_path is None or calibration is None:
        return art
    if fidelity is None:
        fidelity = fidelity_set(manifest, run_card.input, exclude=getattr(calibration, "files", ()))
    pixels, labels, split = fidelity.pixels, fidelity.labels, fidelity.description
    ref_rt = load(float_path, threads=threads)
    ref = ref_rt(pixels) if reference is None else reference
    int8 = load(art.path, threads=threads)(pixels)
    float_acc, int8_acc = accuracy(ref, labels), accuracy(int8, labels)
    drop = 100.0 * (float_acc - int8_acc)
    agree = float((ref.argmax(1) == int8.argmax(1)).mean())
    quant = art.card.quantization
    if quant is None:  # every int8 exporter records its recipe
        from edge_tl.errors import ExportError

        raise ExportError(f"{art.path.name}: its card records no quantisation recipe", "re-export it")
    limit = drop_limit(max_drop, len(labels))
    fits = drop <= limit + 1e-9 and agree >= min_agreement
    record = BudgetRecord(max_drop=max_drop, max_drop_resolved=limit, min_agreement=min_agreement, split=split,
                          images=len(labels), unique_images=fidelity.unique, resolution=100.0 / len(labels),
                          agreement_ci=wilson_interval(int((ref.argmax(1) == int8.argmax(1)).sum()), len(labels)),
                          float_accuracy=float_acc, int8_accuracy=int8_acc, drop=drop, agreement=agree, fits=fits)
    if not fits:
        say(f"{art.path.name}: drop {drop:.2f} pt / agreement {100 * agree:.1f} % on {len(labels)} images "
            f"({split}; 1 image = {100 / len(labels):.2f} pt) misses --max-drop {max_drop} / --min-agreement "
            f"{100 * min_agreement:.0f}; searching for layers to keep in float")
        raw_backend = _backend(art, run_card, source_path or float_path, calibration, method, threads, output)
        backend = _Referenced(raw_backend, pixels, ref, ref_rt)
        try:
            say(f"  ranking {len(backend.layers())} layers by the error each adds alone ({RANK_IMAGES} images)")
            ranking = layer_sensitivity(backend, pixels[:RANK_IMAGES], labels[:RANK_IMAGES]).layers
            result = budget_search(backend, pixels, labels, limit, ranking=ranking, max_float=MAX_TRIES,
                                   min_agreement=min_agreement, progress=lambda n: say(f"  trying {n[-60:]}"))
            chosen = result.chosen
            record = replace(record, fits=result.fits, drop=chosen.drop, int8_accuracy=chosen.accuracy,
                             agreement=chosen.agreement, drop_before=drop, agreement_before=agree,
                             fallback_layers=tuple(chosen.float_layers), reasons=dict(result.reasons),
                             steps=tuple(BudgetStep(len(s.float_layers), s.drop, s.agreement, s.size_bytes,
                                                    s.latency_ms) for s in result.steps))
            if chosen.float_layers:
                content = backend.build(chosen.float_layers)
                layers = tuple(sorted({*quant.float_layers, *chosen.float_layers}))
                card = art.card.with_(quantization=quant.with_(float_layers=layers, budget=record))
                _rewrite(art, content, card)
                say(f"{art.path.name}: kept {len(chosen.float_layers)} layer(s) in float; drop "
                    f"{drop:.2f} -> {chosen.drop:.2f} pt ({'fits' if result.fits else 'still over budget'})")
                return Artifact(art.path, card, art.format, art.quantize, art.seconds,
                                (*art.notes, _note(record)))
        finally:
            getattr(raw_backend, "close", lambda: None)()
    card = art.card.with_(quantization=quant.with_(budget=record))
    from edge_tl.export.registry import get_card_writer

    get_card_writer(art.format)(art.path, card)
    notes = art.notes if record.fits else (*art.notes, _note(record))
    return Artifact(art.path, card, art.format, art.quantize, art.seconds, notes)


def _note(record: BudgetRecord) -> str:
    n = len(record.fallback_layers)
    where = f"{record.images} images ({record.split})"
    if record.fits:
        return (f"accuracy budget: kept {n} layer(s) in float; drop {record.drop_before or 0:.2f} -> "
                f"{record.drop:.2f} pt, agreement {100 * (record.agreement_before or 0):.1f} -> "
                f"{100 * record.agreement:.1f} % on {where}")
    limit = record.max_drop if record.max_drop_resolved is None else record.max_drop_resolved
    over = max(0.0, record.drop - limit)
    short = max(0.0, record.min_agreement - record.agreement)
    return (f"accuracy budget NOT met even with {n} layer(s) in float: drop {record.drop:.2f} pt "
            f"(over by {over:.2f}), agreement {100 * record.agreement:.1f} % (short by {100 * short:.1f}) "
            f"on {where}")

"""Bad input across every command: a table of cases run through the real CLI entry point.

Every case must end with exit status 2, a one-line ``error: <problem> -- <fix>`` on stderr (or Click's usage
error), no traceback, and no file added, removed or changed in the case's folder (not even a hidden temp file,
nor an input overwritten).
Each case runs ``edge_tl.cli.main.main(argv)`` in-process (same error wrapper as the console script; torch is
imported once for the whole table) in a fresh folder built from named assets.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_tl.cli.main import main

# ---------------------------------------------------------------- assets: each builds files in the case folder

CARD = {"classes": ["cat", "dog"], "backbone": "tiny_cnn", "weights": "none", "format": "pytorch",
        "input": {"size": 32, "resize": 36, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "metrics": {"test_accuracy": 0.5}, "manifest": "split.json"}


def _image(d: Path, name: str = "cat.png") -> None:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(d / name)


def _dataset(d: Path) -> None:
    """``ds/``: a two-class ImageFolder of 4 distinct tiny images per class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (d / "ds" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(d / "ds" / cls / f"{i}.png")


def _onnx(d: Path, name: str, graph_size: int, card_size: int | None, batch: int | str = "N") -> None:
    """A valid ONNX classifier (mean-pool + linear) whose graph takes ``graph_size`` px; card says ``card_size``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    nodes = [helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["pooled", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           [batch, 3, graph_size, graph_size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 2])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if card_size is not None:
        card = {**CARD, "format": "onnx", "input": {**CARD["input"], "size": card_size, "resize": card_size}}
        helper.set_model_props(model, {"edge_tl.card": json.dumps(card)})
    onnx.save(model, str(d / name))


def _tflite_bytes() -> bytes:
    """A TFLite flatbuffer (ai-edge-litert's schema) with 4 KiB of weights and an edge-tl card in its metadata.

    Built directly with the schema rather than converted, so the table needs no converter (litert-torch).
    """
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT()
    model.version = 3
    sub = fb.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = [], [], [], []
    model.subgraphs = [sub]
    empty, weights, card = fb.BufferT(), fb.BufferT(), fb.BufferT()
    weights.data = np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8)
    card.data = np.frombuffer(json.dumps({**CARD, "format": "tflite"}).encode(), np.uint8)
    model.buffers = [empty, weights, card]
    meta = fb.MetadataT()
    meta.name, meta.buffer = "edge_tl.card", 2
    model.metadata = [meta]
    builder = flatbuffers.Builder(8192)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _evil_pt(d: Path) -> None:
    """A checkpoint whose pickle would create ``pwned`` if it were ever unpickled unsafely."""
    import torch

    class Evil:
        def __reduce__(self):
            return (Path.touch, (d / "pwned",))

    torch.save({"format": "edge-tl-checkpoint", "version": 1, "state_dict": {}, "card": CARD, "x": Evil()},
               d / "evil.pt")


def _run(d: Path, name: str = "r1", card: dict | None = None) -> None:
    run = d / "runs" / name
    run.mkdir(parents=True)
    (run / "card.json").write_text(json.dumps({**CARD, "run_dir": str(run.resolve())} if card is None else card))
    if not (d / "runs" / "latest").exists():
        (d / "runs" / "latest").symlink_to(name)


ASSETS: dict[str, Callable[[Path], None]] = {
    "image": _image,
    "text.jpg": lambda d: (d / "cat.jpg").write_text("this is not a JPEG"),
    "zero.png": lambda d: (d / "zero.png").write_bytes(b""),
    "text.onnx": lambda d: (d / "model.onnx").write_text("definitely not a protobuf\n"),
    "empty.onnx": lambda d: (d / "empty.onnx").write_bytes(b""),
    "onnx64": lambda d: _onnx(d, "model64.onnx", 64, 32),
    "good.onnx": lambda d: _onnx(d, "good.onnx", 32, 32),
    "fixed.onnx": lambda d: _onnx(d, "fixed.onnx", 32, 32, batch=1),
    "dataset": _dataset,
    "onnx_nocard": lambda d: _onnx(d, "nocard.onnx", 32, None),
    "trunc.tflite": lambda d: (d / "model.tflite").write_bytes(_tflite_bytes()[:2100]),
    "text.tflite": lambda d: (d / "text.tflite").write_text("not a flatbuffer"),
    "garbage.pt": lambda d: (d / "model.pt").write_bytes(b"PK\x03\x04 garbage, not a zip"),
    "evil.pt": _evil_pt,
    "model.h5": lambda d: (d / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n"),
    "empty_dir": lambda d: (d / "empty").mkdir(),
    "blocker": lambda d: (d / "blocker").write_text("a file where a folder is expected"),
    "run": _run,
    "run_badjson": lambda d: (_run(d), (d / "runs/r1/card.json").write_text("{\"classes\": [")),
    "run_binary": lambda d: (_run(d), (d / "runs/r1/card.json").write_bytes(b"\x00\xff\xfe\x80" * 64)),
    "run_noclasses": lambda d: _run(d, card={**CARD, "classes": []}),
    "run_nocard": lambda d: (d / "runs" / "r1").mkdir(parents=True),
    "bench_trunc": lambda d: (d / "bench.json").write_text('{"rows": [{"name": "model.onnx", "p50": 1.'),
    "one_class": lambda d: (_dataset(d), (d / "ds" / "dog").rename(d / "dog_elsewhere")),
    "not_images": lambda d: [(d / "txt" / c).mkdir(parents=True) or (d / "txt" / c / "a.jpg").write_text(c)
                             for c in ("cat", "dog")],
    "run_trained": lambda d: (_run(d), (d / "runs/r1/model.pt").write_bytes(b"PK\x03\x04")),
    "history_bad": lambda d: (d / "runs/r1/history.json").write_text("[1, 2,"),
    "image2": lambda d: _image(d, "dog.png"),
    "notes": lambda d: (d / "notes").write_text("my own notes, not JSON\n"),
    "bench_ok": lambda d: (d / "b.json").write_text('{"rows": []}\n'),
    "escape_split": lambda d: _edit_split(d, lambda it: {**it, "path": "../" * 6 + "etc/passwd"}),
    "split_missing": lambda d: (d / "data").rename(d / "data_moved"),
    "split_changed": lambda d: _edit_split(d, lambda it: _append(d / "data" / it["path"], b"changed") or it),
}


def _append(path: Path, data: bytes) -> None:
    path.write_bytes(path.read_bytes() + data)


def _edit_split(d: Path, change: Callable[[dict], dict]) -> None:
    """Apply ``change`` to the first test item of ``runs/own/split.json``."""
    path = d / "runs" / "own" / "split.json"
    doc = json.loads(path.read_text())
    k = next(i for i, it in enumerate(doc["items"]) if it["split"] == "test")
    doc["items"][k] = change(doc["items"][k])
    path.write_text(json.dumps(doc))


@dataclass(frozen=True)
class Case:
    """One bad invocation: ``argv`` after ``edge-tl``; ``words`` (regex) must appear in the message."""

    id: str
    argv: tuple[str, ...]
    words: str
    assets: tuple[str, ...] = ()


def case(id: str, argv: str, words: str, *assets: str) -> Case:
    return Case(id, tuple(argv.split()), words, assets)


CASES: list[Case] = [
    # ------------------------------------------------------------------------------------------ report
    case("report-missing-run", "report runs/nope", r"no run folder runs/nope"),
    case("report-default-run-absent", "report", r"no run folder runs/latest"),
    case("report-run-is-a-file", "report cat.png", r"not a run folder", "image"),
    case("report-empty-folder", "report empty", r"no card\.json", "empty_dir"),
    case("report-run-without-card", "report runs/r1", r"no card\.json", "run_nocard"),
    case("report-card-not-json", "report", r"not valid JSON", "run_badjson"),
    case("report-card-binary", "report", r"not UTF-8", "run_binary"),
    case("report-card-no-classes", "report", r"classes", "run_noclasses"),
    case("report-bench-missing", "report --bench nope.json", r"--bench nope\.json does not exist", "run"),
    case("report-bench-is-folder", "report --bench runs", r"--bench runs is not a file", "run"),
    case("report-bench-truncated", "report --bench bench.json", r"not valid JSON", "run", "bench_trunc"),
    case("report-attack-missing", "report --attack a.json", r"--attack a\.json does not exist", "run"),
    case("report-exported-missing", "report --exported nope", r"--exported nope does not exist", "run"),
    case("report-exported-is-file", "report --exported blocker", r"not a folder", "run", "blocker"),
    case("report-out-is-folder", "report --out runs", r"--out runs is a folder", "run"),
    case("report-out-unwritable", "report --out blocker/r.html", r"cannot create output folder", "run", "blocker"),
    case("report-history-corrupt", "report", r"training history .* not valid JSON", "run", "history_bad"),
    case("report-unknown-option", "report --bnech x", r"No such option", "run"),
    # ------------------------------------------------------------------------------------------ predict
    case("predict-missing-image", "predict nope.jpg", r"does not exist"),
    case("predict-no-images", "predict", r"Missing argument"),
    case("predict-text-as-jpeg", "predict cat.jpg --model good.onnx", r"cat\.jpg", "text.jpg", "good.onnx"),
    case("predict-zero-byte-image", "predict zero.png --model good.onnx", r"zero\.png", "zero.png", "good.onnx"),
    case("predict-text-named-onnx", "predict cat.png --model model.onnx", r"not a valid ONNX",
         "image", "text.onnx"),
    case("predict-empty-onnx", "predict cat.png --model empty.onnx", r"not a valid ONNX", "image", "empty.onnx"),
    case("predict-onnx-other-input-size", "predict cat.png --model model64.onnx", r"does not match",
         "image", "onnx64"),
    case("predict-onnx-without-card", "predict cat.png --model nocard.onnx", r"no edge-tl model card",
         "image", "onnx_nocard"),
    case("predict-truncated-tflite", "predict cat.png --model model.tflite", r"truncated|damaged",
         "image", "trunc.tflite"),
    case("predict-text-named-tflite", "predict cat.png --model text.tflite", r"not a TFLite model",
         "image", "text.tflite"),
    case("predict-garbage-checkpoint", "predict cat.png --model model.pt", r"model\.pt", "image", "garbage.pt"),
    case("predict-malicious-pickle", "predict cat.png --model evil.pt", r"evil\.pt", "image", "evil.pt"),
    case("predict-unknown-suffix", "predict cat.png --model model.h5", r"unknown model file type",
         "image", "model.h5"),
    case("predict-missing-model", "predict cat.png --model nope.onnx", r"no such model", "image"),
    case("predict-empty-run-folder", "predict cat.png --model empty", r"empty", "image", "empty_dir"),
    case("predict-model-and-backbone", "predict cat.png --model model64.onnx --backbone tiny_cnn",
         r"exclude each other", "image", "onnx64"),
    case("predict-weights-with-model", "predict cat.png --model model64.onnx --weights none",
         r"--weights applies to --backbone", "image", "onnx64"),
    case("predict-unknown-backbone", "predict cat.png --backbone mobilenet_v9", r"unknown backbone", "image"),
    case("predict-top-zero", "predict cat.png --top 0 --backbone tiny_cnn", r"--top", "image"),
    case("predict-batch-negative", "predict cat.png --batch-size -1", r"--batch-size", "image"),
    case("predict-threads-zero", "predict cat.png --threads 0", r"--threads", "image"),
    case("predict-json-unwritable", "predict cat.png --model good.onnx --json blocker/out.json",
         r"cannot create output folder blocker", "image", "good.onnx", "blocker"),
    # ------------------------------------------------------------------------------------------ data check
    case("data-missing-folder", "data check nope", r"'nope' is not an existing folder"),
    case("data-empty-folder", "data check empty", r"empty is empty", "empty_dir"),
    case("data-file-not-folder", "data check blocker", r"blocker is a file", "blocker"),
    case("data-pets-root-empty", "data check oxford-pets --data-root empty", r"not an extracted Oxford",
         "empty_dir"),
    case("data-catsdogs-root-empty", "data check cats-vs-dogs --data-root empty", r"PetImages", "empty_dir"),
    case("data-show-negative", "data check ds --show -1", r"--show", "dataset"),
    case("data-json-unwritable", "data check ds --json blocker/x.json", r"cannot create output folder",
         "dataset", "blocker"),
    # ------------------------------------------------------------------------------------------ train
    case("train-missing-data", "train --data nope", r"'nope' is not an existing folder"),
    case("train-empty-folder", "train --data empty --backbone tiny_cnn --weights none", r"is empty", "empty_dir"),
    case("train-single-class", "train --data ds --backbone tiny_cnn --weights none", r"single class",
         "one_class"),
    case("train-no-readable-images", "train --data txt --backbone tiny_cnn --weights none", r"0 usable image",
         "not_images"),
    case("train-unknown-backbone", "train --data ds --backbone resnet9000", r"unknown backbone 'resnet9000'",
         "dataset"),
    case("train-weights-file-missing", "train --data ds --backbone tiny_cnn --weights nope.pth",
         r"nope\.pth does not exist", "dataset"),
    case("train-weights-not-a-state-dict", "train --data ds --backbone tiny_cnn --weights cat.png",
         r"cat\.png is not a loadable state dict", "dataset", "image"),
    case("train-weights-malicious-pickle", "train --data ds --backbone tiny_cnn --weights evil.pt",
         r"evil\.pt", "dataset", "evil.pt"),
    case("train-img-size-too-small", "train --data ds --img-size 8", r"--img-size", "dataset"),
    case("train-lr-zero", "train --data ds --lr 0", r"--lr", "dataset"),
    case("train-unknown-mode", "train --data ds --mode linear", r"--mode", "dataset"),
    case("train-fp16-on-cpu", "train --data ds --backbone tiny_cnn --weights none --device cpu --precision fp16",
         r"fp16", "dataset"),
    case("train-out-unwritable", "train --data ds --backbone tiny_cnn --weights none --out blocker/x",
         r"cannot create output folder blocker/x", "dataset", "blocker"),
    case("train-out-is-trained-run", "train --data ds --backbone tiny_cnn --weights none --out runs/r1",
         r"already holds a trained run", "dataset", "run_trained"),
    case("train-resume-nothing", "train --data ds --backbone tiny_cnn --weights none --resume --out empty",
         r"nothing to resume", "dataset", "empty_dir"),
    # ------------------------------------------------------------------------------------------ eval
    case("eval-no-run", "eval", r"runs/latest.* does not exist"),
    case("eval-empty-folder", "eval --model empty", r"empty.* does not exist", "empty_dir"),
    case("eval-malicious-pickle", "eval --model evil.pt", r"evil\.pt", "evil.pt"),
    case("eval-unknown-split", "eval --split holdout", r"--split"),
    case("eval-unknown-engine", "eval --engine tf", r"--engine"),
    case("eval-other-classes", "eval --model runs/tiny --data ds", r"class", "tiny_run", "dataset"),
    case("eval-plot-unwritable", "eval --model runs/tiny --plot blocker/x.png", r"cannot create output folder",
         "tiny_run", "blocker"),
    # ------------------------------------------------------------------------------------------ quant-report
    case("quant-report-no-run", "quant-report", r"no checkpoint at runs/latest"),
    case("quant-report-malicious-pickle", "quant-report --model evil.pt", r"evil\.pt", "evil.pt"),
    case("quant-report-unknown-format", "quant-report --format keras", r"--format"),
    case("quant-report-n-zero", "quant-report --n 0", r"--n"),
    case("quant-report-unknown-calib-method", "quant-report --model runs/tiny --calib-method median",
         r"median", "tiny_run"),
    case("quant-report-tflite-entropy", "quant-report --model runs/tiny --format tflite --calib-method entropy",
         r"entropy", "tiny_run"),
    # ------------------------------------------------------------------------------------------ visualize
    case("visualize-no-class", "visualize --model empty", r"Missing option '--class'", "empty_dir"),
    case("visualize-no-model-nor-backbone", "visualize --class cat", r"exactly one of --model and --backbone"),
    case("visualize-model-and-backbone", "visualize --model empty --backbone tiny_cnn --class cat",
         r"exactly one of --model and --backbone", "empty_dir"),
    case("visualize-weights-with-model", "visualize --model empty --weights none --class cat",
         r"--weights applies to --backbone", "empty_dir"),
    case("visualize-empty-folder", "visualize --model empty --class cat", r"empty.* does not exist", "empty_dir"),
    case("visualize-malicious-pickle", "visualize --model evil.pt --class cat", r"evil\.pt", "evil.pt"),
    case("visualize-onnx-instead-of-run", "visualize --model good.onnx --class cat", r"good\.onnx", "good.onnx"),
    case("visualize-unknown-backbone", "visualize --backbone nope --class 1", r"unknown backbone 'nope'"),
    case("visualize-size-too-small", "visualize --backbone tiny_cnn --class 1 --size 8", r"--size"),
    case("visualize-class-index-out-of-range", "visualize --backbone tiny_cnn --weights none --class 5000 --steps 1",
         r"unknown class '5000'"),
    case("visualize-unknown-class", "visualize --model runs/tiny --class zebra --steps 1", r"unknown class 'zebra'",
         "tiny_run"),
    case("visualize-out-unwritable", "visualize --model runs/tiny --class star --steps 1 --out blocker/x.png",
         r"cannot create output folder blocker", "tiny_run", "blocker"),
    # ------------------------------------------------------------------------------------------ export
    case("export-out-unwritable", "export --model runs/tiny --out blocker/x", r"cannot create output folder",
         "tiny_run", "blocker"),
    case("export-no-run", "export", r"no checkpoint at runs/latest"),
    case("export-empty-folder", "export --model empty", r"no checkpoint at empty", "empty_dir"),
    case("export-run-without-checkpoint", "export --model runs/r1", r"no checkpoint at runs/r1", "run"),
    case("export-not-a-checkpoint", "export --model blocker", r"not a run checkpoint", "blocker"),
    case("export-garbage-checkpoint", "export --model model.pt", r"not a readable edge-tl checkpoint",
         "garbage.pt"),
    case("export-malicious-pickle", "export --model evil.pt", r"evil\.pt", "evil.pt"),
    case("export-unknown-format", "export --format onnx,keras", r"unknown format 'keras'"),
    case("export-unknown-quantization", "export --quantize int4", r"int4"),
    case("export-opset-out-of-range", "export --opset 12", r"--opset"),
    case("export-saturation-over-100", "export --max-saturated 150", r"--max-saturated"),
    case("export-negative-drop", "export --max-drop -1", r"--max-drop"),
    case("export-unknown-calib-method", "export --calib-method median", r"--calib-method"),
    case("export-calib-size-zero", "export --calib-size 0", r"--calib-size"),
    # ------------------------------------------------------------------------------------------ bench
    case("bench-nothing-exported", "bench", r"no artefacts found"),
    case("bench-empty-exported", "bench --exported empty", r"no artefacts found", "empty_dir"),
    case("bench-missing-model", "bench nope.onnx", r"no such model"),
    case("bench-text-named-onnx", "bench model.onnx --data ds", r"not a valid ONNX", "text.onnx", "dataset"),
    case("bench-truncated-tflite", "bench model.tflite --data ds", r"truncated|damaged", "trunc.tflite",
         "dataset"),
    case("bench-onnx-other-input-size", "bench model64.onnx --data ds", r"does not match", "onnx64", "dataset"),
    case("bench-empty-data", "bench good.onnx --data empty", r"empty is empty", "good.onnx", "empty_dir"),
    case("bench-mobile-with-onnx", "bench good.onnx --profile mobile --data ds", r"tflite only",
         "good.onnx", "dataset"),
    case("bench-threads-zero", "bench --threads 0", r"--threads"),
    case("bench-unknown-profile", "bench --profile phone", r"--profile"),
    case("bench-min-time-zero", "bench --min-time 0", r"--min-time"),
    case("bench-json-unwritable", "bench good.onnx --data ds --json blocker/x.json --min-time 0.05 --threads 1 "
         "--warmup 1", r"cannot create output folder", "good.onnx", "dataset", "blocker"),
    # ------------------------------------------------------------------------------------------ attack
    case("attack-no-model", "attack", r"Missing option '--model'"),
    case("attack-missing-model", "attack --model nope.onnx", r"no such model"),
    case("attack-text-named-onnx", "attack --model model.onnx", r"not a valid ONNX", "text.onnx"),
    case("attack-truncated-tflite", "attack --model model.tflite --data ds", r"truncated|damaged",
         "trunc.tflite", "dataset"),
    case("attack-malicious-pickle", "attack --model evil.pt --data ds", r"evil\.pt", "evil.pt", "dataset"),
    case("attack-eps-over-one", "attack --model good.onnx --eps 2", r"--eps", "good.onnx"),
    case("attack-eps-zero", "attack --model good.onnx --eps 0", r"--eps", "good.onnx"),
    case("attack-unknown-attack", "attack --model good.onnx --attacks cw", r"unknown attack 'cw'", "good.onnx"),
    case("attack-n-zero", "attack --model good.onnx --n 0", r"--n", "good.onnx"),
    case("attack-unknown-target-class", "attack --model good.onnx --data ds --target-class zebra",
         r"unknown class 'zebra'", "good.onnx", "dataset"),
    case("attack-empty-data", "attack --model good.onnx --data empty", r"empty is empty", "good.onnx",
         "empty_dir"),
    case("attack-out-unwritable", "attack --model good.onnx --data ds --out blocker/x",
         r"cannot create output folder blocker/x", "good.onnx", "dataset", "blocker"),
    # ------------------------------------------------------------------------------------------ outputs vs inputs
    case("predict-json-swallows-image", "predict --json cat.png dog.png --model good.onnx", r"not a JSON file name",
         "image", "image2", "good.onnx"),
    case("predict-json-existing-not-json", "predict cat.png --model good.onnx --json notes",
         r"notes exists and is not JSON", "image", "good.onnx", "notes"),
    case("predict-json-is-folder", "predict cat.png --model good.onnx --json ds", r"ds is a folder",
         "image", "good.onnx", "dataset"),
    case("data-json-swallows-folder", "data check --json ds", r"ds is a folder", "dataset"),
    case("report-json-over-input", "report --bench b.json --json b.json", r"b\.json is also an input",
         "run", "bench_ok"),
    case("report-out-over-input", "report --bench b.json --out b.json", r"b\.json is also an input",
         "run", "bench_ok"),
    case("eval-plot-over-photo", "eval --model runs/tiny --plot cat.png", r"cat\.png exists and is not a png",
         "tiny_run", "image"),
    case("eval-plot-over-checkpoint", "eval --model runs/tiny/model.pt --plot runs/tiny/model.pt",
         r"also an input", "tiny_run"),
    case("bench-csv-over-model", "bench good.onnx --csv good.onnx", r"good\.onnx is also an input", "good.onnx"),
    case("bench-md-over-image", "bench good.onnx --md cat.png", r"not a text file", "good.onnx", "image"),
    case("bench-json-swallows-model", "bench --json good.onnx", r"not a JSON file name", "good.onnx"),
    case("visualize-out-over-photo", "visualize --model runs/tiny --class star --steps 1 --out cat.png",
         r"cat\.png exists and is not a png", "tiny_run", "image"),
    case("quant-report-plot-over-photo", "quant-report --model runs/tiny --plot cat.png",
         r"cat\.png exists and is not a png", "tiny_run", "image"),
    case("export-json-over-checkpoint", "export --model runs/tiny --json runs/tiny/model.pt",
         r"not a JSON file name", "tiny_run"),
    case("train-json-over-image", "train --data ds --json ds/cat/0.png", r"not a JSON file name", "dataset"),
    case("attack-json-swallows-model", "attack --json good.onnx --model good.onnx", r"not a JSON file name",
         "good.onnx"),
    # ------------------------------------------------------------------------------------------ split manifests
    case("eval-split-outside-root", "eval --model runs/own", r"outside its root", "own_run", "escape_split"),
    case("export-split-outside-root", "export --model runs/own --out exp", r"outside its root",
         "own_run", "escape_split"),
    case("eval-split-files-missing", "eval --model runs/own", r"\d+ missing since the split",
         "own_run", "split_missing"),
    case("eval-split-file-changed", "eval --model runs/own", r"1 changed since the split",
         "own_run", "split_changed"),
]


def _copy_tiny_run(request: pytest.FixtureRequest, d: Path) -> None:
    """The lead's session ``tiny_run`` (a really trained tiny_cnn), copied so a case can never alter it."""
    import shutil

    shutil.copytree(request.getfixturevalue("tiny_run"), d / "runs" / "tiny")


def _own_run(request: pytest.FixtureRequest, d: Path) -> None:
    """A run built in the case folder on a copy of the sample data (``data/``), so its split can be altered."""
    import shutil

    from helpers.export_fixtures import build_run

    shutil.copytree(request.getfixturevalue("sample_dir"), d / "data")
    build_run(d / "runs" / "own", d / "data", steps=5)


SPECIAL = {"tiny_run": _copy_tiny_run, "own_run": _own_run}


def _files(root: Path) -> dict[str, str]:
    """Every file (and link) under ``root`` with its content hash: nothing may appear, vanish or change."""
    import hashlib

    return {str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture,
                   request: pytest.FixtureRequest) -> None:
    for name in c.assets:
        if name in SPECIAL:
            SPECIAL[name](request, tmp_path)
        else:
            ASSETS[name](tmp_path)
    before = _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGE_TL_DEBUG", raising=False)
    capfd.readouterr()
    try:
        main(list(c.argv))
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is exactly what this test hunts
        pytest.fail(f"traceback: edge-tl {' '.join(c.argv)} raised {type(exc).__name__}: {exc}")
    out, err = capfd.readouterr()
    cmd = f"edge-tl {' '.join(c.argv)}"
    assert code == 2, f"{cmd}: exit {code}, stderr: {err!r}"
    assert "Traceback" not in out + err, f"{cmd}: traceback in output"
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if errors:  # notes/warnings may come first; the error itself is the last line, once
        assert len(errors) == 1 and lines[-1] == errors[0], f"{cmd}: message is not one line: {err!r}"
        assert " -- " in errors[0], f"{cmd}: no hint naming the fix: {err!r}"
    else:  # Click's usage error: "Usage: ...", "Try ...", "Error: ..."
        assert lines and lines[-1].startswith("Error:"), f"{cmd}: neither 'error:' nor a usage error: {err!r}"
    assert re.search(c.words, err, flags=re.IGNORECASE), f"{cmd}: message does not name the problem: {err!r}"
    after = _files(tmp_path)
    assert after == before, f"{cmd}: files added/changed: {sorted(set(after.items()) ^ set(before.items()))}"

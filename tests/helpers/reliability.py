"""Builders for the reliability tests: named file assets for a case folder, tiny ONNX/TFLite files, and checks
that every file in a folder is whole (loads with edge-tl's own reader) and that a folder did not change."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

CARD = {"classes": ["cat", "dog"], "backbone": "tiny_cnn", "weights": "none", "format": "pytorch",
        "input": {"size": 32, "resize": 36, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "metrics": {"test_accuracy": 0.5}, "manifest": "split.json"}


def image(path: Path, side: int = 40, value: int = 128) -> Path:
    """A flat grey RGB image at ``path`` (format from its suffix)."""
    from PIL import Image

    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(path)
    return path


def dataset(d: Path, name: str = "ds", classes: tuple[str, ...] = ("cat", "dog")) -> None:
    """``name/`` (``ds/`` by default): an ImageFolder of ``classes``, 4 distinct tiny images per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in classes:
        (d / name / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(d / name / cls / f"{i}.png")


def onnx_bytes(size: int, card_text: str | None, batch: int | str = "N") -> bytes:
    """A valid ONNX classifier (mean-pool + linear, 2 classes) taking ``size`` px, ``card_text`` in its metadata."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    nodes = [helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["pooled", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           [batch, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 2])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if card_text is not None:
        helper.set_model_props(model, {"edge_tl.card": card_text})
    return model.SerializeToString()


def write_onnx(d: Path, name: str, graph_size: int, card_size: int | None, batch: int | str = "N") -> None:
    """``d/name``: the ONNX classifier of :func:`onnx_bytes` at ``graph_size`` px; its card says ``card_size``."""
    card = None if card_size is None else json.dumps(
        {**CARD, "format": "onnx", "input": {**CARD["input"], "size": card_size, "resize": card_size}})
    (d / name).write_bytes(onnx_bytes(graph_size, card, batch))


def tflite_bytes(card: dict | None = None, weights: int = 4096) -> bytes:
    """A TFLite flatbuffer (ai-edge-litert's schema, one empty subgraph) with ``weights`` bytes of weights (none
    when 0) and ``card`` (default: :data:`CARD` as a tflite card) in its metadata.

    Built directly with the schema rather than converted, so no converter (litert-torch) is needed.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT()
    model.version = 3
    sub = fb.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = [], [], [], []
    model.subgraphs = [sub]
    model.buffers = [fb.BufferT()]
    if weights:
        model.buffers.append(fb.BufferT())
        model.buffers[-1].data = np.random.default_rng(0).integers(0, 255, weights, dtype=np.uint8)
    model.buffers.append(fb.BufferT())
    model.buffers[-1].data = np.frombuffer(json.dumps(card or {**CARD, "format": "tflite"}).encode(), np.uint8)
    meta = fb.MetadataT()
    meta.name, meta.buffer = "edge_tl.card", len(model.buffers) - 1
    model.metadata = [meta]
    builder = flatbuffers.Builder(8192)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def evil_pt(d: Path) -> None:
    """``evil.pt``: a checkpoint whose pickle would create ``pwned`` if it were ever unpickled unsafely."""
    import torch

    class Evil:
        def __reduce__(self):
            return (Path.touch, (d / "pwned",))

    torch.save({"format": "edge-tl-checkpoint", "version": 1, "state_dict": {}, "card": CARD, "x": Evil()},
               d / "evil.pt")


def run(d: Path, name: str = "r1", card: dict | None = None) -> None:
    """``runs/NAME`` holding only a card, and ``runs/latest`` pointing at the first run made."""
    folder = d / "runs" / name
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({**CARD, "run_dir": str(folder.resolve())} if card is None else card))
    if not (d / "runs" / "latest").exists():
        (d / "runs" / "latest").symlink_to(name)


def _append(path: Path, data: bytes) -> None:
    path.write_bytes(path.read_bytes() + data)


def _edit_split(d: Path, change: Callable[[dict], dict]) -> None:
    """Apply ``change`` to the first test item of ``runs/own/split.json``."""
    path = d / "runs" / "own" / "split.json"
    doc = json.loads(path.read_text())
    k = next(i for i, it in enumerate(doc["items"]) if it["split"] == "test")
    doc["items"][k] = change(doc["items"][k])
    path.write_text(json.dumps(doc))


ASSETS: dict[str, Callable[[Path], object]] = {
    "image": lambda d: image(d / "cat.png"),
    "text.jpg": lambda d: (d / "cat.jpg").write_text("this is not a JPEG"),
    "zero.png": lambda d: (d / "zero.png").write_bytes(b""),
    "text.onnx": lambda d: (d / "model.onnx").write_text("definitely not a protobuf\n"),
    "empty.onnx": lambda d: (d / "empty.onnx").write_bytes(b""),
    "onnx64": lambda d: write_onnx(d, "model64.onnx", 64, 32),
    "good.onnx": lambda d: write_onnx(d, "good.onnx", 32, 32),
    "dataset": dataset,
    "fruit": lambda d: dataset(d, "fruit", ("apple", "pear")),  # classes no model here knows
    "onnx_nocard": lambda d: write_onnx(d, "nocard.onnx", 32, None),
    "trunc.tflite": lambda d: (d / "model.tflite").write_bytes(tflite_bytes()[:2100]),
    "text.tflite": lambda d: (d / "text.tflite").write_text("not a flatbuffer"),
    "garbage.pt": lambda d: (d / "model.pt").write_bytes(b"PK\x03\x04 garbage, not a zip"),
    "evil.pt": evil_pt,
    "evil_run": lambda d: (run(d), evil_pt(d / "runs/r1"), (d / "runs/r1/evil.pt").rename(d / "runs/r1/model.pt")),
    "model.h5": lambda d: (d / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n"),
    "empty_dir": lambda d: (d / "empty").mkdir(),
    "blocker": lambda d: (d / "blocker").write_text("a file where a folder is expected"),
    "run": run,
    "run_badjson": lambda d: (run(d), (d / "runs/r1/card.json").write_text("{\"classes\": [")),
    "run_binary": lambda d: (run(d), (d / "runs/r1/card.json").write_bytes(b"\x00\xff\xfe\x80" * 64)),
    "run_noclasses": lambda d: run(d, card={**CARD, "classes": []}),
    "run_nocard": lambda d: (d / "runs" / "r1").mkdir(parents=True),
    "bench_trunc": lambda d: (d / "bench.json").write_text('{"rows": [{"name": "model.onnx", "p50": 1.'),
    "one_class": lambda d: (dataset(d), (d / "ds" / "dog").rename(d / "dog_elsewhere")),
    "not_images": lambda d: [(d / "txt" / c).mkdir(parents=True) or (d / "txt" / c / "a.jpg").write_text(c)
                             for c in ("cat", "dog")],
    "run_trained": lambda d: (run(d), (d / "runs/r1/model.pt").write_bytes(b"PK\x03\x04")),
    "history_bad": lambda d: (d / "runs/r1/history.json").write_text("[1, 2,"),
    "image2": lambda d: image(d / "dog.png"),
    "notes": lambda d: (d / "notes").write_text("my own notes, not JSON\n"),
    "bench_ok": lambda d: (d / "b.json").write_text('{"rows": []}\n'),
    "escape_split": lambda d: _edit_split(d, lambda it: {**it, "path": "../" * 6 + "etc/passwd"}),
    "split_missing": lambda d: (d / "data").rename(d / "data_moved"),
    "split_changed": lambda d: _edit_split(d, lambda it: _append(d / "data" / it["path"], b"changed") or it),
}


def files(root: Path) -> dict[str, str]:
    """Every file (and link) under ``root`` with its content hash: nothing may appear, vanish or change."""
    return {str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def listing(root: Path) -> set[str]:
    """Every path under ``root`` (folders too), relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def loads(p: Path) -> bool:
    """``p`` reads whole with its format's own reader (JSON, PNG, torch, ONNX; text otherwise)."""
    from PIL import Image

    if p.suffix == ".json":
        json.loads(p.read_text())
    elif p.suffix == ".png":
        with Image.open(p) as im:
            im.load()
    elif p.suffix == ".pt":
        import torch

        torch.load(p, weights_only=True)
    elif p.suffix == ".onnx":
        import onnx

        onnx.checker.check_model(onnx.load(str(p)))
    else:
        p.read_text(encoding="utf-8")
    return True


def check_final_files(folder: Path) -> list[str]:
    """Load every final file under ``folder`` with edge-tl's own reader; return the hidden temp files."""
    from edge_tl import runtimes
    from edge_tl.card import ModelCard
    from edge_tl.data.manifest import Manifest
    from edge_tl.models.checkpoint import load_checkpoint
    from edge_tl.train.state import load_state

    hidden: list[str] = []
    if not folder.exists():
        return hidden
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            hidden.append(p.name)
        elif p.name == "model.pt":
            load_checkpoint(p)
        elif p.name == "train_state.pt":
            load_state(folder)
        elif p.name.endswith(".card.json") or p.name == "card.json":
            ModelCard.load(p)
        elif p.name == "split.json":
            Manifest.load(p)
        elif p.suffix in (".json", ".png"):
            loads(p)
        elif p.suffix in (".onnx", ".tflite"):
            rt = runtimes.load(p, threads=1)
            s = rt.card.input.size
            assert rt(np.zeros((1, s, s, 3), np.uint8)).shape == (1, rt.card.num_classes)
        else:
            raise AssertionError(f"unexpected final file {p}")
    return hidden

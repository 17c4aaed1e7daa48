"""Standard TFLite Model Metadata (``metadata_schema.fbs``) for every ``.tflite`` edge-tl writes.

MediaPipe Tasks, the TFLite Task Library and Android Studio's ML Model Binding read a flatbuffer (file
identifier ``M001``) stored in the model's metadata buffer named :data:`TFLITE_METADATA`, and the files packed
after the model as a zip archive. This module writes, from the artefact's card: the model's name, description,
version, author and licence; the input as an RGB image (``ImageProperties``) with ``NormalizationOptions`` and its
value range (``Stats``); the output with the class names as the associated file ``labels.txt`` of type
``TENSOR_AXIS_LABELS``, packed into the model the way the spec says (a zip appended to the flatbuffer).

The metadata flatbuffer is built here with ``flatbuffers``' Builder and the schema's field slots (schema
version 1.5.0; only tables of 1.0.0 are used). Neither ``tflite-support`` (it pins protobuf 3) nor mediapipe
1.2.3's ``MetadataPopulator`` (its ``_pywrap_metadata_version`` extension is missing from the wheel) is usable;
the tests read the result back with mediapipe's generated schema code and run it in MediaPipe.
edge-tl's own card travels in its own buffer beside it (see :mod:`edge_tl.export.tflite_export`).
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np

from edge_tl.card import ModelCard

TFLITE_METADATA = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
AUTHOR = "edge-tl"
# Union and enum values of metadata_schema.fbs used here.
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions
_RGB = 1  # ColorSpaceType
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


def normalization(card: ModelCard) -> tuple[list[float], list[float]]:
    """``NormalizationOptions`` mean/std in pixel units (0..255): the input tensor is ``(pixel - mean) / std``.

    One value per channel, or a single value when all channels share it (MediaPipe reads only one)."""
    mean = [255.0 * m for m in card.input.mean]
    std = [255.0 * s for s in card.input.std]
    if len(set(mean)) == 1 and len(set(std)) == 1:
        return mean[:1], std[:1]
    return mean, std


def value_range(card: ModelCard) -> tuple[float, float]:
    """The range of the input tensor's values: the integer range for (u)int8 input, else the range of
    ``(pixel - mean) / std`` over pixels 0..255."""
    if card.input.dtype == "uint8":
        return 0.0, 255.0
    if card.input.dtype == "int8":
        return -128.0, 127.0
    mean, std = normalization(card)
    return min((0.0 - m) / s for m, s in zip(mean, std)), max((255.0 - m) / s for m, s in zip(mean, std))


def _licence(card: ModelCard) -> str:
    from edge_tl.errors import EdgeTLError
    from edge_tl.models.registry import get_spec

    try:
        spec = get_spec(card.backbone)
    except EdgeTLError:
        return "unknown (backbone not in this edge-tl's registry)"
    parts = [f"architecture: {spec.licence}"]
    if spec.weights is not None and card.weights not in ("none", "random"):
        parts.append(f"pretrained weights: {spec.weights.licence}")
    return "; ".join(parts)


class _Tables:
    """A small writer of flatbuffer tables by field slot (a union takes two slots: its type, then its value)."""

    def __init__(self) -> None:
        import flatbuffers

        self.b = flatbuffers.Builder(1024)

    def string(self, text: str) -> int:
        return self.b.CreateString(text)

    def floats(self, values: list[float]) -> int:
        self.b.StartVector(4, len(values), 4)
        for v in reversed(values):
            self.b.PrependFloat32(float(v))
        return self.b.EndVector()

    def offsets(self, items: list[int]) -> int:
        self.b.StartVector(4, len(items), 4)
        for off in reversed(items):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()

    def table(self, offsets: dict[int, int], bytes_: dict[int, int] | None = None) -> int:
        """A table with offset fields ``offsets`` and byte fields ``bytes_`` (enums, union types), by slot."""
        slots = [*offsets, *(bytes_ or {})]
        self.b.StartObject(max(slots) + 1 if slots else 0)
        for slot, off in offsets.items():
            self.b.PrependUOffsetTRelativeSlot(slot, off, 0)
        for slot, value in (bytes_ or {}).items():
            self.b.PrependUint8Slot(slot, value, 0)
        return self.b.EndObject()


def build_metadata(card: ModelCard) -> bytes:
    """The ``ModelMetadata`` flatbuffer (file identifier ``M001``) describing ``card``'s artefact."""
    t = _Tables()
    s = t.string
    quant = "none" if card.quantization is None else card.quantization.mode
    image_props = t.table({}, {0: _RGB})  # ImageProperties {color_space 0}
    image_content = t.table({1: image_props}, {0: _IMAGE_PROPERTIES})  # Content {properties_type 0, properties 1}
    mean, std = normalization(card)
    norm = t.table({0: t.floats(mean), 1: t.floats(std)})  # NormalizationOptions {mean 0, std 1}
    unit = t.table({1: norm}, {0: _NORMALIZATION_OPTIONS})  # ProcessUnit {options_type 0, options 1}
    lo, hi = value_range(card)
    image_stats = t.table({0: t.floats([hi]), 1: t.floats([lo])})  # Stats {max 0, min 1}
    # TensorMetadata {name 0, description 1, dimension_names 2, content 3, process_units 4, stats 5, files 6}
    image = t.table({0: s("image"), 1: s(f"RGB image, {card.input.size}x{card.input.size}, {card.input.dtype} "
                                         f"{card.input.layout}"), 3: image_content, 4: t.offsets([unit]),
                     5: image_stats})
    labels = t.table({0: s(LABELS_FILE), 1: s("Class names, one per line, in output order")},
                     {2: _TENSOR_AXIS_LABELS})  # AssociatedFile {name 0, description 1, type 2}
    logits_content = t.table({1: t.table({})}, {0: _FEATURE_PROPERTIES})
    logits = t.table({0: s("logits"), 1: s("Unnormalised class scores (logits), one per class in labels.txt"),
                      3: logits_content, 6: t.offsets([labels])})
    # SubGraphMetadata {name 0, description 1, input_tensor_metadata 2, output_tensor_metadata 3}
    sub = t.table({0: s("classifier"), 2: t.offsets([image]), 3: t.offsets([logits])})
    version = card.source_sha256[:12] if card.source_sha256 else (card.created or "unversioned")
    description = (f"Classifies an RGB image ({card.input.size}x{card.input.size}) into {card.num_classes} "
                   f"classes; backbone {card.backbone}, weights {card.weights}, quantisation {quant}. "
                   "Outputs are logits (apply softmax for probabilities).")
    # ModelMetadata {name 0, description 1, version 2, subgraph_metadata 3, author 4, license 5,
    #                associated_files 6, min_parser_version 7}
    root = t.table({0: s(f"edge-tl {card.backbone} image classifier"), 1: s(description), 2: s(version),
                    3: t.offsets([sub]), 4: s(AUTHOR), 5: s(_licence(card)), 7: s(MIN_PARSER_VERSION)})
    t.b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(t.b.Output())


def append_files(model: bytes, files: dict[str, bytes]) -> bytes:
    """``model`` followed by a zip archive of ``files`` whose offsets count from the start of the model."""
    out = io.BytesIO(model)
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def strip_associated_files(content: bytes) -> bytes:
    """``content`` without the zip archive packed after the flatbuffer (a no-op when there is none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            start = min((i.header_offset for i in zf.infolist()), default=len(content))
    except zipfile.BadZipFile:
        return content
    return content[:start]


def packed_files(content: bytes) -> dict[str, bytes]:
    """The associated files packed into ``content`` (empty when none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist()}
    except zipfile.BadZipFile:
        return {}


def embed_metadata(content: bytes, name: str, payload: bytes) -> bytes:
    """``content`` with a metadata buffer ``name`` holding ``payload`` (an existing one of that name replaced);
    the associated files packed after the flatbuffer (``labels.txt``) are kept."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    files = packed_files(content)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(strip_associated_files(content)))
    model.metadata = [m for m in (model.metadata or []) if _md_name(m) != name]
    buf = fb.BufferT()
    buf.data = np.frombuffer(payload, dtype=np.uint8).copy()
    model.buffers.append(buf)
    md = fb.MetadataT()
    md.name = name
    md.buffer = len(model.buffers) - 1
    model.metadata.append(md)
    out = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return append_files(out, files) if files else out


def _md_name(md: Any) -> str:
    n = md.name
    return n.decode() if isinstance(n, bytes) else str(n)


def add_standard_metadata(content: bytes, card: ModelCard) -> bytes:
    """``content`` with the standard metadata of ``card`` and ``labels.txt`` packed in (any previous replaced)."""
    bare = embed_metadata(strip_associated_files(content), TFLITE_METADATA, build_metadata(card))
    return append_files(bare, {LABELS_FILE: ("\n".join(card.classes) + "\n").encode("utf-8")})


__all__ = ["LABELS_FILE", "TFLITE_METADATA", "add_standard_metadata", "append_files", "build_metadata", "embed_metadata",
           "normalization", "packed_files", "strip_associated_files", "value_range"]

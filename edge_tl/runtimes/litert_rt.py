"""LiteRT (TFLite) runtime: an exported ``.tflite`` artefact behind the :class:`~edge_tl.runtimes.base.Runtime`
protocol.

The card is read from the file's metadata buffer named :data:`~edge_tl.card.CARD_KEY` (written by
``edge_tl.export.tflite_export``), or from the ``.card.json`` sidecar when the file has none. The interpreter is
``ai_edge_litert``'s with the default (XNNPACK) delegate and ``num_threads = threads``. The input tensor is NHWC:
normalised float, or int8 for full-int8 files, quantised here with the interpreter's own input scale/zero point;
an int8 output is dequantised here, and only here. ``raw()`` returns the output tensor as the file produced it.
Batches larger than the file's batch are run by resizing the input tensor.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.card import CARD_KEY, ModelCard, TensorQuant
from edge_tl.data.preprocess import normalize
from edge_tl.errors import ArtifactError, BackendMissingError
from edge_tl.runtimes import check_pixels, default_threads, run_batched, softmax, warn_if_saturated
from edge_tl.runtimes.base import embedded_or_sidecar, register_card_reader, register_runtime

TFLITE_IDENTIFIER = b"TFL3"
STANDARD_METADATA = "TFLITE_METADATA"  # the metadata buffer MediaPipe and the TFLite Task Library read
_HINT = "re-export it with edge-tl export --format tflite"


def _quant_of(detail: dict[str, Any]) -> TensorQuant | None:
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return None
    scale, zp = detail["quantization"]
    if not scale:
        raise ArtifactError(f"integer tensor '{detail['name']}' has no quantisation parameters", _HINT)
    return TensorQuant(float(scale), int(zp), dtype.type)


class LiteRtRuntime:
    """A ``.tflite`` file in the LiteRT interpreter: pixels ``(N, H, W, 3)`` -> float32 logits ``(N, C)``."""

    name = "litert"

    def __init__(self, interpreter: Any, card: ModelCard, path: Path, threads: int) -> None:
        self.interpreter = interpreter
        self.card = card
        self.path = Path(path)
        self.threads = threads
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        self._in_index, self._out_index = int(inp["index"]), int(out["index"])
        self._in_dtype = np.dtype(inp["dtype"]).type
        self.input_quant = _quant_of(inp)
        self.output_quant = _quant_of(out)
        self._batch = int(inp["shape"][0])
        self.layout = "NHWC"

    @classmethod
    def from_bytes(cls, data: bytes, card: ModelCard, threads: int | None = None,
                   path: Path | str = "<memory>") -> LiteRtRuntime:
        """A runtime over a flatbuffer in memory (a candidate built during export) described by ``card``; the
        file's input and output must match the card."""
        n = default_threads(threads)
        interpreter = make_interpreter(data, n, path)
        _check_input(interpreter, card, Path(path))
        return cls(interpreter, card, Path(path), n)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self._dequantize(self.raw(images))

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        return raw.astype(np.float32, copy=False) if self.output_quant is None else self.output_quant.dequantize(raw)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return softmax(self(images))

    def raw(self, images: np.ndarray) -> np.ndarray:
        """The output tensor exactly as produced: int8 for a full-int8 file, float32 otherwise."""
        x = check_pixels(images, self.card.input)
        return run_batched(self._invoke, x)

    def outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = self.raw(images)
        return raw, self._dequantize(raw)

    def input_tensor(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels -> the tensor the file takes (normalised NHWC float, or int8 with the input's scale)."""
        return self._cast(normalize(pixels, self.card.input, "NHWC"))

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """Invocations on a normalised float32 NHWC tensor (quantised here for an int8 input) -> float32
        logits (dequantised)."""
        return self._dequantize(run_batched(lambda t: self._engine(self._cast(t)), x))

    def _cast(self, x: np.ndarray) -> np.ndarray:
        if self.input_quant is not None:
            return self.input_quant.quantize(x)
        return x.astype(self._in_dtype, copy=False)

    def _invoke(self, pixels: np.ndarray) -> np.ndarray:
        return self._engine(self.input_tensor(pixels))

    def _engine(self, x: np.ndarray) -> np.ndarray:
        if len(x) != self._batch:
            self._resize(len(x))
        self.interpreter.set_tensor(self._in_index, x)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self._out_index))  # copy: the buffer is reused

    def _resize(self, n: int) -> None:
        s = self.card.input.size
        try:
            self.interpreter.resize_tensor_input(self._in_index, [n, s, s, 3], strict=False)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{self.path}: cannot run a batch of {n} ({_first_line(exc)})",
                                "pass one image at a time") from None
        self._batch = n

    def __repr__(self) -> str:
        return f"LiteRtRuntime({self.path}, threads={self.threads})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def check_tflite_bytes(data: bytes | bytearray | memoryview, path: Path | str) -> None:
    """Raise :class:`ArtifactError` unless ``data`` looks like a complete TFLite flatbuffer."""
    if len(data) < 16 or bytes(data[4:8]) != TFLITE_IDENTIFIER:
        raise ArtifactError(f"{path} is not a TFLite model (no '{TFLITE_IDENTIFIER.decode()}' flatbuffer identifier)",
                            _HINT)
    from ai_edge_litert import schema_py_generated as fb

    try:
        model = fb.Model.GetRootAs(data, 0)
        n_sub, n_buf = model.SubgraphsLength(), model.BuffersLength()
        ends = [_buffer_end(model.Buffers(i)) for i in range(n_buf)]
    except (IndexError, ValueError, TypeError, AttributeError, struct.error):  # reads past the end
        raise ArtifactError(f"{path} is a truncated or damaged TFLite model ({len(data)} bytes)", _HINT) from None
    if n_sub < 1:
        raise ArtifactError(f"{path} is a damaged TFLite model (no subgraph)", _HINT)
    if ends and max(ends) > len(data):
        raise ArtifactError(f"{path} is truncated ({len(data)} bytes, its weights reach byte {max(ends)})", _HINT)
    _check_packed_files(data, path)


def _check_packed_files(data: bytes | bytearray | memoryview, path: Path | str) -> None:
    """A file whose standard metadata names ``labels.txt`` must end with the zip archive that packs it."""
    import io
    import zipfile

    try:
        standard = read_tflite_metadata(data, STANDARD_METADATA)
    except (IndexError, ValueError, TypeError, AttributeError, struct.error):
        raise ArtifactError(f"{path}: damaged metadata table", _HINT) from None
    if not standard or b"labels.txt" not in standard:
        return
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
            ok = "labels.txt" in zf.namelist()
    except zipfile.BadZipFile:
        ok = False
    if not ok:
        raise ArtifactError(f"{path} is truncated or damaged ({len(data)} bytes): the labels.txt its metadata "
                            "names is not packed at its end", _HINT)


def _buffer_end(buf: Any) -> int:
    off, size = int(buf.Offset()), int(buf.Size())
    return off + size if off > 1 else 0


def read_tflite_metadata(data: bytes | bytearray | memoryview, name: str = CARD_KEY) -> bytes | None:
    """The bytes of the metadata buffer called ``name`` in a TFLite flatbuffer, or None when it has none."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if (md.Name() or b"").decode("utf-8", "replace") != name:
            continue
        buf = model.Buffers(md.Buffer())
        off, size = int(buf.Offset()), int(buf.Size())
        if off > 1:
            return bytes(data[off:off + size])
        arr = buf.DataAsNumpy()
        return bytes(arr.tobytes()) if isinstance(arr, np.ndarray) else b""
    return None


def read_card(data: bytes | bytearray | memoryview, path: Path) -> ModelCard:
    """The card embedded in ``data`` (preferred), else the one in the sidecar, else :class:`CardError`."""
    try:
        embedded = read_tflite_metadata(data, CARD_KEY)
    except (struct.error, IndexError, ValueError, TypeError, AttributeError) as exc:  # damaged offsets
        raise ArtifactError(f"{path}: damaged metadata table ({type(exc).__name__})", _HINT) from None
    return embedded_or_sidecar(embedded, path, f"metadata '{CARD_KEY}'", "export it with edge-tl export --format tflite")


@register_card_reader(".tflite")
def read_file_card(path: Path) -> ModelCard:
    """The card of the ``.tflite`` file at ``path`` (see :func:`read_card`)."""
    return read_card(Path(path).read_bytes(), Path(path))


def _check_input(interpreter: Any, card: ModelCard, path: Path) -> None:
    try:
        _check_io(interpreter, card, path)
    except (UnicodeDecodeError, ValueError, IndexError, KeyError) as exc:  # damaged tensor names/shapes
        raise ArtifactError(f"{path}: damaged tensor table ({type(exc).__name__})", _HINT) from None


def _check_io(interpreter: Any, card: ModelCard, path: Path) -> None:
    d = interpreter.get_input_details()
    shape = [int(v) for v in d[0]["shape"]] if d else []
    if len(d) != 1 or len(shape) != 4 or shape[1:] != [card.input.size, card.input.size, 3]:
        raise ArtifactError(f"{path}: input shape {shape} does not match the card's {card.input.size}x"
                            f"{card.input.size} NHWC", _HINT)
    out = interpreter.get_output_details()
    if len(out) < 1 or int(out[0]["shape"][-1]) != card.num_classes:
        raise ArtifactError(f"{path}: output does not have the card's {card.num_classes} classes", _HINT)


def make_interpreter(data: bytes, threads: int, path: Path | str = "<memory>") -> Any:
    """A LiteRT interpreter over ``data`` with XNNPACK (the default delegate) and ``threads`` threads."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise BackendMissingError("ai-edge-litert", "run .tflite models") from None
    try:
        it = Interpreter(model_content=bytes(data), num_threads=threads,
                         experimental_op_resolver_type=OpResolverType.AUTO)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"LiteRT cannot load {path}: {_first_line(exc)}", _HINT) from None
    return it


@register_runtime(".tflite", "litert")
def load_litert(path: Path, threads: int | None = None, **_: object) -> LiteRtRuntime:
    """Open ``path`` with the LiteRT interpreter (XNNPACK, ``threads`` threads); the card comes from the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}", _HINT) from None
    check_tflite_bytes(data, path)
    card = read_card(data, path)
    runtime = LiteRtRuntime.from_bytes(data, card, threads, path)
    warn_if_saturated(card, path)
    return runtime

"""ONNX Runtime: an exported ``.onnx`` artefact behind the :class:`~edge_tl.runtimes.base.Runtime` protocol.

The card is read from the file's ``metadata_props`` (key :data:`~edge_tl.card.CARD_KEY`), or from the
``.card.json`` sidecar when the file has none. Sessions use ``ORT_ENABLE_ALL``, sequential execution and
``intra_op_num_threads = threads``. For a QDQ model whose logits pass through a final ``DequantizeLinear``,
``raw()`` returns the integer output tensor (so saturation at the int8/uint8 limits can be counted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.card import CARD_KEY, ModelCard, TensorQuant
from edge_tl.data.preprocess import normalize
from edge_tl.errors import ArtifactError, BackendMissingError
from edge_tl.runtimes import check_pixels, default_threads, run_batched, softmax, warn_if_saturated
from edge_tl.runtimes.base import embedded_or_sidecar, register_card_reader, register_runtime

_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxRuntime:
    """An ``onnxruntime.InferenceSession`` on CPU: pixels ``(N, H, W, 3)`` -> float32 logits ``(N, C)``."""

    name = "onnxruntime"

    def __init__(self, session: Any, card: ModelCard, path: Path, threads: int,
                 output_quant: TensorQuant | None) -> None:
        self.session = session
        self.card = card
        self.path = Path(path)
        self.threads = threads
        self.output_quant = output_quant
        inp = session.get_inputs()[0]
        self._input_name = inp.name
        self._input_dtype = _NP_TYPES.get(inp.type)
        if self._input_dtype is None:
            raise ArtifactError(f"{path}: input '{inp.name}' has type {inp.type}; edge-tl artefacts take floats",
                                "re-export the model with edge-tl export")
        self._output_name = session.get_outputs()[0].name
        self.layout = card.input.layout  # of the tensor the file takes
        self._fixed = _fixed_batch(session)

    @classmethod
    def from_bytes(cls, data: bytes, card: ModelCard, threads: int | None = None,
                   path: Path | str = "<memory>") -> OnnxRuntime:
        """A runtime over an ONNX model in memory (a candidate built during export) described by ``card``, in a
        session made as :func:`load_onnx` makes one; the model's input and output must match the card."""
        import onnx
        from google.protobuf.message import DecodeError

        try:
            model = onnx.load_from_string(bytes(data))
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{path} is not a valid ONNX model ({type(exc).__name__})",
                                "re-export it with edge-tl export") from None
        _check_input_shape(model, card, Path(path))
        _check_output_width(model, card, Path(path))
        n = default_threads(threads)
        return cls(make_session(bytes(data), n, path=path), card, Path(path), n, output_quantization(model))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = check_pixels(images, self.card.input)
        return run_batched(lambda p: self.run_tensor(self.input_tensor(p)), x)

    def input_tensor(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels -> the normalised tensor the model takes (float32, or float16 for an fp16 input), in
        :attr:`layout`."""
        return normalize(pixels, self.card.input, self.layout).astype(self._input_dtype, copy=False)

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """One engine call on a normalised float32 tensor in :attr:`layout` -> float32 logits (a file with a
        fixed batch size gets padded chunks of that size)."""
        if self._fixed is not None and len(x) != self._fixed:
            return _run_fixed(self._engine, x, self._fixed)
        return self._engine(x)

    def _engine(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self._output_name], {self._input_name: x.astype(self._input_dtype, copy=False)})[0]
        return np.asarray(out, dtype=np.float32)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return softmax(self(images))

    def raw(self, images: np.ndarray) -> np.ndarray:
        """The logits as stored: integers for a quantised output, float32 otherwise."""
        return self.outputs(images)[0]

    def outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = self(images)
        return (logits if self.output_quant is None else self.output_quant.quantize(logits)), logits

    def __repr__(self) -> str:
        return f"OnnxRuntime({self.path}, threads={self.threads})"


def _fixed_batch(session: Any) -> int | None:
    """The input's batch size when the file fixes it (third-party exports often do), else None."""
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) and dim > 0 else None


def _run_fixed(fn: Any, x: np.ndarray, batch: int) -> np.ndarray:
    """Run ``fn`` on chunks of exactly ``batch`` images, padding the last one."""
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
        outs.append(fn(chunk)[:n])
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def read_model(path: Path) -> Any:
    """The ONNX model at ``path`` (protobuf parsed, external data not loaded); a bad file is an ArtifactError."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise ArtifactError(f"{path} is not a valid ONNX model ({type(exc).__name__})",
                            "re-export it with edge-tl export") from None
    if not model.graph.node or not model.graph.input or not model.graph.output:
        raise ArtifactError(f"{path} is not a valid ONNX model (empty graph)", "re-export it with edge-tl export")
    return model


def _card_of(model: Any, path: Path) -> ModelCard:
    props = {p.key: p.value for p in model.metadata_props}
    return embedded_or_sidecar(props.get(CARD_KEY), path, f"metadata '{CARD_KEY}'", "export it with edge-tl export")


@register_card_reader(".onnx")
def read_card(path: Path) -> ModelCard:
    """The card embedded in an ONNX file's metadata (or, for a file without one, its sidecar)."""
    return _card_of(read_model(path), path)


def output_quantization(model: Any) -> TensorQuant | None:
    """Scale/zero point of the ``DequantizeLinear`` that produces the first graph output, if any."""
    from onnx import numpy_helper

    out_name = model.graph.output[0].name
    producer = next((n for n in model.graph.node if out_name in n.output), None)
    if producer is None or producer.op_type != "DequantizeLinear" or len(producer.input) < 3:
        return None
    inits = {t.name: t for t in model.graph.initializer}
    if producer.input[1] not in inits or producer.input[2] not in inits:
        return None
    scale = numpy_helper.to_array(inits[producer.input[1]])
    zp = numpy_helper.to_array(inits[producer.input[2]])
    if scale.size != 1 or zp.size != 1 or not np.issubdtype(zp.dtype, np.integer):
        return None
    return TensorQuant(float(scale.reshape(())), int(zp.reshape(())), zp.dtype)


def _check_input_shape(model: Any, card: ModelCard, path: Path) -> None:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    hw = shape[2:4] if card.input.layout == "NCHW" else shape[1:3]
    if len(shape) != 4 or any(v is not None and v != card.input.size for v in hw):
        raise ArtifactError(f"{path}: input shape {shape} does not match the card's {card.input.size}x"
                            f"{card.input.size} {card.input.layout}", "re-export the model with edge-tl export")


def _check_output_width(model: Any, card: ModelCard, path: Path) -> None:
    dims = model.graph.output[0].type.tensor_type.shape.dim
    width = dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None
    if width is not None and width != card.num_classes:
        raise ArtifactError(f"{path}: the model outputs {width} logits but its card names {card.num_classes} classes",
                            "re-export the model with edge-tl export")


def make_session(model: str | Path | bytes, threads: int, *, path: Path | str | None = None) -> Any:
    """The one way edge-tl opens an ONNX Runtime session: CPU, ``ORT_ENABLE_ALL``, sequential, ``threads``
    intra-op threads. ``model`` is a file or the bytes of one (``path`` names it in errors); a file ORT rejects
    is an :class:`ArtifactError`."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendMissingError("onnxruntime", "run .onnx models") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    name = path or (model if isinstance(model, (str, Path)) else "<memory>")
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises bare pybind errors for any defect in the file
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"ONNX Runtime cannot load {name}: {first}", "re-export it with edge-tl export") from None


@register_runtime(".onnx", "onnxruntime")
def load_onnx(path: Path, threads: int | None = None, **_: object) -> OnnxRuntime:
    """Open ``path`` with ONNX Runtime (see :func:`make_session`)."""
    path = Path(path)
    model = read_model(path)
    card = _card_of(model, path)
    _check_input_shape(model, card, path)
    _check_output_width(model, card, path)
    n = default_threads(threads)
    session = make_session(path, n)
    warn_if_saturated(card, path)
    return OnnxRuntime(session, card, path, n, output_quantization(model))

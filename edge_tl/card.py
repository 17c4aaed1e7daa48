"""The model card: the one description of a model that every consumer reads.

A card travels with every run (``runs/NAME/card.json`` and inside ``model.pt``) and every exported artefact
(inside the file, in ONNX ``metadata_props`` / a TFLite metadata buffer under the key :data:`CARD_KEY`, and
beside it as ``<file name>.card.json``). Loading never needs the run folder.

Pixel convention used everywhere in edge-tl: images are RGB, ``NHWC``, either ``uint8`` 0..255 or float in
[0, 1]; the model sees ``(pixel/255 - mean) / std`` in the artefact's own ``layout``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_tl.errors import CardError
from edge_tl.records import ParityResult, QuantRecipe

SCHEMA_VERSION = 1
CARD_KEY = "edge_tl.card"
FORMATS = ("pytorch", "onnx", "tflite", "openvino")
PRECISIONS = ("f32", "bf16", "f16", "int8")  # the arithmetic a runtime executes the model in
LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "float16", "int8", "uint8")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class InputSpec:
    """How a pixel becomes the model's input tensor.

    ``resize`` is the shorter side after resizing, ``size`` the centre crop (square). ``mean``/``std`` apply to
    pixels scaled to [0, 1]. ``layout``/``dtype`` describe the artefact's input tensor; ``scale``/``zero_point``
    are set when that tensor is quantised (real = scale * (q - zero_point)).
    """

    size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    layout: str = "NCHW"
    dtype: str = "float32"
    scale: float | None = None
    zero_point: int | None = None
    # Normalisation folded into the artefact's graph (the file then takes pixels in [0, 1]: mean 0, std 1 above).
    graph_mean: tuple[float, float, float] | None = None
    graph_std: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class OutputSpec:
    """The artefact's output tensor: logits, possibly quantised (real = scale * (q - zero_point))."""

    dtype: str = "float32"
    scale: float | None = None
    zero_point: int | None = None


@dataclass(frozen=True)
class TensorQuant:
    """Affine quantisation of one tensor of an artefact, as the file stores it: real = scale * (q - zero_point).

    The one description both runtimes use for an int8 input or output (``dtype`` is a numpy integer type)."""

    scale: float
    zero_point: int
    dtype: Any

    @property
    def limits(self) -> tuple[int, int]:
        import numpy as np

        info = np.iinfo(self.dtype)
        return int(info.min), int(info.max)

    def quantize(self, real: Any) -> Any:
        """Real values -> the integer tensor (round half to even, clipped to the dtype's range); exact for values
        that were dequantised from it."""
        import numpy as np

        lo, hi = self.limits
        q = np.rint(real.astype(np.float32) / np.float32(self.scale)) + self.zero_point
        return np.clip(q, lo, hi).astype(self.dtype)

    def dequantize(self, q: Any) -> Any:
        """The integer tensor -> float32 real values."""
        import numpy as np

        return (np.float32(self.scale) * (q.astype(np.float32) - np.float32(self.zero_point))).astype(np.float32)


@dataclass(frozen=True)
class ModelCard:
    """Labels, preprocessing, layout, quantisation, provenance and parity of one model or artefact."""

    classes: tuple[str, ...]
    input: InputSpec
    backbone: str
    weights: str
    format: str = "pytorch"
    output: OutputSpec = field(default_factory=OutputSpec)
    quantization: QuantRecipe | None = None  # how the file was quantised (None: float)
    source_sha256: str | None = None
    manifest: str | None = None
    run_dir: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    parity: ParityResult | None = None  # the parity gate's verdict on the file (None: not checked)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    precision: str | None = None  # inference precision the artefact was verified at (None: implied by its dtype)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.quantization is not None and not isinstance(self.quantization, QuantRecipe):
            raise TypeError("ModelCard.quantization must be a QuantRecipe (QuantRecipe.from_json reads a dict)")
        if self.parity is not None and not isinstance(self.parity, ParityResult):
            raise TypeError("ModelCard.parity must be a ParityResult (ParityResult.from_json reads a dict)")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_(self, **changes: Any) -> ModelCard:
        """A copy with ``changes`` applied (cards are immutable)."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict."""
        d = asdict(replace(self, quantization=None, parity=None))
        d["quantization"] = None if self.quantization is None else self.quantization.to_json()
        d["parity"] = None if self.parity is None else self.parity.to_json()
        d["classes"] = list(self.classes)
        d["input"]["mean"] = list(self.input.mean)
        d["input"]["std"] = list(self.input.std)
        for key in ("graph_mean", "graph_std"):
            if d["input"][key] is not None:
                d["input"][key] = list(d["input"][key])
        return d

    def dumps(self) -> str:
        """The card as a compact JSON string (what goes inside an artefact)."""
        return json.dumps(self.to_json(), separators=(",", ":"), default=_default)

    @classmethod
    def loads(cls, text: str | bytes) -> ModelCard:
        """Parse and validate a card from JSON text; any defect raises :class:`CardError`."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CardError(f"model card is not valid JSON: {exc}", "re-export the model") from None
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: Any) -> ModelCard:
        """Validate ``data`` (a dict from JSON) and build a card; raise :class:`CardError` on any defect."""
        try:
            return _parse_card(data)
        except CardError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise CardError(f"malformed model card: {exc}", "re-export the model") from None

    def save(self, path: Path) -> Path:
        """Write the card as indented JSON, atomically."""
        from edge_tl._io import atomic_write_json

        return atomic_write_json(Path(path), self.to_json())

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        """Read a card from a JSON file."""
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise CardError(f"cannot read model card {path}: {exc.strerror}", "re-export the model") from None
        return cls.loads(text)


def sidecar_path(artifact: Path) -> Path:
    """``exported/model_int8.onnx`` -> ``exported/model_int8.onnx.card.json``.

    The full file name is kept so ``model.onnx`` and ``model.tflite`` never share (and overwrite) one sidecar.
    """
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".card.json")


def now_iso() -> str:
    """UTC timestamp for ``created`` fields."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` (without importing them)."""
    from importlib import metadata

    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _default(obj: Any) -> Any:
    try:
        return obj.tolist()
    except AttributeError as exc:
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}") from exc


def _req(d: dict, key: str, types: type | tuple[type, ...]) -> Any:
    if key not in d:
        raise CardError(f"model card lacks '{key}'", "re-export the model")
    v = d[key]
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise CardError(f"model card field '{key}' has the wrong type", "re-export the model")
    if not isinstance(v, types):
        raise CardError(f"model card field '{key}' has the wrong type", "re-export the model")
    return v


def _opt(d: dict, key: str, types: type | tuple[type, ...], default: Any = None) -> Any:
    if d.get(key) is None:
        return default
    return _req(d, key, types)


def _triple(d: dict, key: str) -> tuple[float, float, float]:
    v = _req(d, key, list)
    if len(v) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise CardError(f"model card field 'input.{key}' must be three numbers", "re-export the model")
    t = tuple(float(x) for x in v)
    if not all(math.isfinite(x) for x in t) or (key in ("std", "graph_std") and min(t) <= 0):
        raise CardError(f"model card field 'input.{key}' is out of range", "re-export the model")
    return t  # type: ignore[return-value]


def _choice(value: str, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise CardError(f"model card field '{key}' is '{value}', expected one of {', '.join(choices)}")
    return value


def _parse_card(data: Any) -> ModelCard:
    if not isinstance(data, dict):
        raise CardError("model card is not a JSON object", "re-export the model")
    schema = _opt(data, "schema", int, SCHEMA_VERSION)
    if schema > SCHEMA_VERSION:
        raise CardError(f"model card schema {schema} is newer than this edge-tl ({SCHEMA_VERSION})",
                        "upgrade edge-tl")
    classes = _req(data, "classes", list)
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise CardError("model card 'classes' must be a non-empty list of names", "re-export the model")
    if len(set(classes)) != len(classes):
        raise CardError("model card 'classes' has duplicate names", "re-export the model")
    i = _req(data, "input", dict)
    size, resize = _req(i, "size", int), _req(i, "resize", int)
    if not (1 <= size <= 4096 and size <= resize <= 8192):
        raise CardError(f"model card input size {size} / resize {resize} out of range", "re-export the model")
    inp = InputSpec(
        size=size, resize=resize, mean=_triple(i, "mean"), std=_triple(i, "std"),
        interpolation=_choice(_opt(i, "interpolation", str, "bilinear"), INTERPOLATIONS, "input.interpolation"),
        layout=_choice(_opt(i, "layout", str, "NCHW"), LAYOUTS, "input.layout"),
        dtype=_choice(_opt(i, "dtype", str, "float32"), DTYPES, "input.dtype"),
        scale=_opt(i, "scale", (int, float)), zero_point=_opt(i, "zero_point", int),
        graph_mean=_triple(i, "graph_mean") if i.get("graph_mean") is not None else None,
        graph_std=_triple(i, "graph_std") if i.get("graph_std") is not None else None,
    )
    o = _opt(data, "output", dict, {})
    out = OutputSpec(dtype=_choice(_opt(o, "dtype", str, "float32"), DTYPES, "output.dtype"),
                     scale=_opt(o, "scale", (int, float)), zero_point=_opt(o, "zero_point", int))
    versions = _opt(data, "versions", dict, {})
    return ModelCard(
        classes=tuple(classes), input=inp, backbone=_req(data, "backbone", str), weights=_req(data, "weights", str),
        format=_choice(_opt(data, "format", str, "pytorch"), FORMATS, "format"), output=out,
        quantization=None if (q := _opt(data, "quantization", dict)) is None else QuantRecipe.from_json(q),
        source_sha256=_opt(data, "source_sha256", str),
        manifest=_opt(data, "manifest", str), run_dir=_opt(data, "run_dir", str),
        metrics=_opt(data, "metrics", dict, {}),
        parity=None if (par := _opt(data, "parity", dict)) is None else ParityResult.from_json(par),
        versions={str(k): str(v) for k, v in versions.items()}, created=_opt(data, "created", str, ""),
        schema=schema, precision=None if (prec := _opt(data, "precision", str)) is None
        else _choice(prec, PRECISIONS, "precision"),
    )

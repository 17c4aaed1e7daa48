"""The one ``Runtime`` protocol for PyTorch checkpoints, ONNX Runtime, LiteRT and OpenVINO artefacts.

Every runtime takes pixels (``uint8`` ``(N, H, W, 3)`` RGB, or float32 in [0, 1] of the same shape) and returns
float32 logits ``(N, num_classes)``. Normalisation, layout (NCHW/NHWC) and int8 (de)quantisation happen inside
the runtime, once, from its :class:`~edge_tl.card.ModelCard`. Runtimes never import ``export`` or ``train``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edge_tl.card import ModelCard, sidecar_path
from edge_tl.errors import ArtifactError, CardError, UnknownNameError
from edge_tl.registry import Registry


@runtime_checkable
class Runtime(Protocol):
    """A loaded model that maps pixels to logits."""

    name: str  # "pytorch" | "onnxruntime" | "litert" | "openvino"
    path: Path
    card: ModelCard
    threads: int

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Pixels ``(N, H, W, 3)`` uint8 or float [0, 1] -> float32 logits ``(N, C)`` (dequantised)."""
        ...

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Softmax probabilities from the dequantised logits."""
        ...

    def raw(self, images: np.ndarray) -> np.ndarray:
        """The output tensor exactly as the artefact produced it (int8 for int8 outputs), for saturation checks."""
        ...

    def outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One inference, both views of it: ``(raw, logits)``, what :meth:`raw` and ``__call__`` return."""
        ...

    layout: str  # "NCHW" | "NHWC": of the tensor the engine takes

    def input_tensor(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels -> the tensor the file takes (normalised, in :attr:`layout`; int8 for an int8 input)."""
        ...

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """The engine alone on a normalised float32 tensor in :attr:`layout` (what
        :func:`~edge_tl.data.preprocess.normalize` gives): float32 logits. For callers that prepare inputs
        themselves, e.g. an attack that builds its queries in the model's own layout."""
        ...


RuntimeLoader = Callable[..., Runtime]


@dataclass
class RuntimeEntry:
    """One runtime for one suffix: its loader and the module it needs (checked, never imported)."""

    name: str
    loader: RuntimeLoader
    requires: str | None = None


_BACKENDS = ("edge_tl.runtimes.torch_rt", "edge_tl.runtimes.onnx_rt", "edge_tl.runtimes.litert_rt",
             "edge_tl.runtimes.openvino_rt")


def _ensure_loaded() -> None:
    # Each backend module registers itself on import; one that is not written (yet) is skipped.
    import importlib
    import importlib.util

    for mod in _BACKENDS:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)


# suffix -> (runtime name -> entry); DEFAULT_RUNTIMES: suffix -> the runtime ``load(path)`` picks.
RUNTIMES: Registry[Registry[RuntimeEntry]] = Registry("model file type", load=_ensure_loaded)
DEFAULT_RUNTIMES: Registry[str] = Registry("default runtime", load=_ensure_loaded)


def register_runtime(suffix: str, name: str, *, default: bool | None = None,
                     requires: str | None = None) -> Callable[[RuntimeLoader], RuntimeLoader]:
    """Register ``loader(path, threads=..., **kw)`` as runtime ``name`` for files ending in ``suffix``.

    The first runtime registered for a suffix is its default unless a later one passes ``default=True``;
    ``requires`` names the importable module without which the runtime cannot run (checked, never imported).
    """

    def deco(fn: RuntimeLoader) -> RuntimeLoader:
        # peek, not find: registering must not import the other backends (that would reorder the defaults)
        by_name = RUNTIMES.peek(suffix) or RUNTIMES.add(suffix, Registry(f"runtime for {suffix} files"))
        by_name.add(name, RuntimeEntry(name, fn, requires))
        if default or (default is None and DEFAULT_RUNTIMES.peek(suffix) is None):
            DEFAULT_RUNTIMES.add(suffix, name, replace=True)
        return fn

    return deco


def runtime_entry(suffix: str, name: str) -> RuntimeEntry:
    """The entry of runtime ``name`` for ``suffix`` files; unknown suffixes and names raise with a suggestion."""
    return RUNTIMES.get(suffix.lower()).get(name)


def runtime_names() -> dict[str, str]:
    """Suffix -> the default runtime's name for every registered suffix."""
    return dict(DEFAULT_RUNTIMES.items())


def runtimes_for(suffix: str, installed_only: bool = False) -> list[str]:
    """Names of the runtimes that can run ``suffix`` files, the default first (``installed_only``: only those
    whose backend library is importable here)."""
    import importlib.util

    by_name = RUNTIMES.find(suffix.lower())
    if by_name is None:
        return []
    default = DEFAULT_RUNTIMES.find(suffix.lower())
    entries = sorted(by_name.values(), key=lambda e: e.name != default)
    if installed_only:
        entries = [e for e in entries if not e.requires or importlib.util.find_spec(e.requires) is not None]
    return [e.name for e in entries]


def all_runtimes() -> list[str]:
    """Every registered runtime name."""
    return sorted({n for by_name in RUNTIMES.values() for n in by_name})


def load(path: str | Path, threads: int | None = None, runtime: str | None = None, **kwargs: object) -> Runtime:
    """Load ``path`` with ``runtime`` (default: the suffix's default runtime; ``.pt``, ``.onnx``, ``.tflite``,
    ``.xml`` or a run dir). A runtime that cannot run the suffix raises listing the ones that can."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.exists():
        raise ArtifactError(f"no such model: {path}",
                            "give a run folder (runs/NAME) or an exported .onnx/.tflite/.xml file")
    suffix = p.suffix.lower()
    if suffix not in RUNTIMES:
        raise UnknownNameError("model file type", suffix or p.name, RUNTIMES.names())
    entry = runtime_entry(suffix, runtime or DEFAULT_RUNTIMES.get(suffix))
    return entry.loader(p, threads=threads, **kwargs)

CardReader = Callable[[Path], ModelCard]
# suffix -> the function that reads the card a file carries (registered by the format's runtime module)
CARD_READERS: Registry[CardReader] = Registry("model card reader", load=_ensure_loaded)


def register_card_reader(suffix: str) -> Callable[[CardReader], CardReader]:
    """Register ``reader(path) -> ModelCard`` as *the* way to read the card of ``suffix`` files."""
    return CARD_READERS.register(suffix)


def read_card(path: str | Path) -> ModelCard:
    """The card of ``path`` as its format's module reads it (the card inside the file wins over a sidecar);
    a suffix with no reader falls back to the sidecar ``<file>.card.json``."""
    p = Path(path)
    reader = CARD_READERS.find(p.suffix.lower())
    if reader is not None:
        return reader(p)
    side = sidecar_path(p)
    if side.is_file():
        return ModelCard.load(side)
    raise CardError(f"{p}: cannot read a model card from a '{p.suffix}' file",
                    f"give a file ending in {', '.join(CARD_READERS.names())} or put its card in {side.name}")


def embedded_or_sidecar(embedded: str | None, path: Path, where: str, hint: str) -> ModelCard:
    """The card a file carries (``embedded``, its JSON text, or None), else its sidecar ``<file>.card.json``; a
    :class:`CardError` naming both places (``where``: the file's metadata field) when neither has one."""
    if embedded:
        return ModelCard.loads(embedded)
    side = sidecar_path(path)
    if side.exists():
        return ModelCard.load(side)
    raise CardError(f"{path} carries no edge-tl model card ({where}) and has no {side.name}", hint)


class FloatOutputs:
    """The methods of a runtime whose engine returns float logits: ``raw`` is ``__call__``."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return softmax(self(images))

    def raw(self, images: np.ndarray) -> np.ndarray:
        """The logits: a float output is stored as it is returned."""
        return self(images)

    def outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self(images)
        return out, out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis (float64 internally)."""
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)

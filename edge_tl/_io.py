"""Small file helpers: atomic writes (temp file + rename), write faults, input protection, content hashes.

Every artefact edge-tl writes goes through :func:`atomic_path` or :func:`atomic_write_*`, so a crash or
kill -9 never leaves a half-written file at a final path, a full disk or a file-size limit ends in one
:class:`~edge_tl.errors.WriteError` naming the file and the cause (the temp file removed), and no write
replaces a file registered with :func:`protected_inputs`.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from edge_tl.errors import ConfigError, OutputConflictError, WriteError

_SPACE_HINT = "free disk space, or write to another disk"
# errno -> (cause in words, hint naming the fix); only these become a WriteError, anything else is a bug.
WRITE_FAULTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", _SPACE_HINT),
    errno.EFBIG: ("file too large", "raise the file-size limit (ulimit -f), or write to another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space in your quota, or write to another disk"),
    errno.EROFS: ("read-only file system", "write to a writable folder"),
    errno.EACCES: ("permission denied", "write to a folder you may write to"),
    errno.EPERM: ("operation not permitted", "write to a folder you may write to"),
}
# errors only a write can cause: named by the OSError's own filename even when it is not the file being written
WRITE_ONLY_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}
# torch's C++ checkpoint writer reports a failed write as a RuntimeError with one of these phrases
_TORCH_WRITER = re.compile(r"PytorchStreamWriter|inline_container|basic_ios|iostream error|file write failed")
_PROTECTED: contextvars.ContextVar[frozenset[tuple[int, int]]] = contextvars.ContextVar("edge_tl_protected",
                                                                                         default=frozenset())


def _fsize_limit() -> int | None:
    """The soft file-size limit in bytes (``ulimit -f``), or None when there is none."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _efbig_cause() -> str:
    limit = _fsize_limit()
    return "file too large" if limit is None else f"file too large (the file-size limit is {limit:,} bytes)"


def _diagnose(tmp: Path | None, target: Path) -> tuple[str, str]:
    """Cause and hint of a write that failed without an errno (torch's C++ writer): limit, full disk, or unknown."""
    limit = _fsize_limit()
    size = tmp.stat().st_size if tmp is not None and tmp.exists() else 0
    if limit is not None and size >= limit:
        return _efbig_cause(), WRITE_FAULTS[errno.EFBIG][1]
    try:
        st = os.statvfs(target.parent if target.parent.exists() else ".")
        if st.f_bavail * st.f_frsize < (1 << 20):
            return WRITE_FAULTS[errno.ENOSPC]
    except OSError:
        pass
    return "the write failed (disk full or a file-size limit?)", _SPACE_HINT


def write_error(path: Path | str, exc: BaseException, tmp: Path | None = None) -> WriteError | None:
    """The :class:`WriteError` for ``exc`` raised while writing ``path`` (through temp file ``tmp``), else None.

    An ``OSError`` with an errno of :data:`WRITE_FAULTS` and torch's checkpoint-writer ``RuntimeError`` are write
    faults; a permission error on some other file (a read) is not, and neither is anything else.
    """
    path = Path(path)
    if isinstance(exc, OSError):
        if exc.errno not in WRITE_FAULTS:
            return None
        named = Path(exc.filename) if isinstance(exc.filename, (str, os.PathLike)) else None
        if named is not None and named not in (path, tmp):
            if exc.errno not in WRITE_ONLY_ERRNOS:
                return None
            path = named
        cause, hint = WRITE_FAULTS[exc.errno]
        return WriteError(str(path), _efbig_cause() if exc.errno == errno.EFBIG else cause, hint)
    if isinstance(exc, RuntimeError) and _TORCH_WRITER.search(str(exc)):
        cause, hint = _diagnose(tmp, path)
        return WriteError(str(path), cause, hint)
    return None


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


@contextlib.contextmanager
def protected_inputs(paths: Iterable[Path | str]) -> Iterator[None]:
    """While inside, :func:`atomic_path` refuses to replace any of ``paths`` (the files a command reads)."""
    ids = {fid for p in paths if Path(p).is_file() and (fid := _file_id(Path(p))) is not None}
    token = _PROTECTED.set(_PROTECTED.get() | ids)
    try:
        yield
    finally:
        _PROTECTED.reset(token)


def check_not_input(path: Path | str, what: str | None = None) -> None:
    """Raise :class:`OutputConflictError` when ``path`` is one of the files registered by :func:`protected_inputs`."""
    fid = _file_id(Path(path))
    if fid is not None and fid in _PROTECTED.get():
        raise OutputConflictError(f"{what or 'output'} {path} is also an input of this command; "
                                  "edge-tl never writes over its inputs", "choose another output path")


def _head(path: Path, n: int = 8192) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _is_json(path: Path) -> bool:
    if path.stat().st_size > 64 << 20:
        return False
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


# kind of output -> test that an existing file is one edge-tl itself writes of that kind (so replacing it is safe)
OUTPUT_KINDS: dict[str, Callable[[Path], bool]] = {
    "json": _is_json,
    "png": lambda p: _head(p).startswith(b"\x89PNG") and b"matplotlib" in _head(p).lower(),
    "html": lambda p: b'name="generator" content="edge-tl' in _head(p, 4096),
    "text": lambda p: _is_utf8(_head(p)),
}


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut by the 8 KiB read is still text
        if exc.start < len(data) - 3:
            return False
    return b"\x00" not in data


def check_output_file(path: Path | str, kind: str, *, force: bool = False, what: str | None = None) -> None:
    """Refuse an output file that is an input, a folder, or (without ``force``) an existing file of another kind.

    ``kind`` is a key of :data:`OUTPUT_KINDS`: an existing JSON file may be replaced by JSON, a PNG drawn by
    matplotlib by a plot, an edge-tl report by a report; a photo, a model or a dataset file is left alone.
    """
    path = Path(path)
    what = what or "output"
    check_not_input(path, what)
    if path.is_dir():
        raise OutputConflictError(f"{what} {path} is a folder", "give a file name")
    if path.exists() and not force and not OUTPUT_KINDS[kind](path):
        raise OutputConflictError(f"{what} {path} exists and is not a {kind} file edge-tl wrote",
                                  "choose another path, or pass --force to replace it")


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
    check_not_input(final)
    ensure_writable_dir(final.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix or final.suffix, dir=final.parent)
    except OSError as exc:
        raise (write_error(final, exc) or exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files; give the final file the usual permissions
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, final)
    except BaseException as exc:
        fault = write_error(final, exc, tmp_path)  # before the unlink: the temp file's size tells a size limit
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if fault is not None:
            raise fault from exc
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

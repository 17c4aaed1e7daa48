"""The edge-tl cache folder and the one downloader used by the named datasets.

``$EDGE_TL_CACHE`` overrides the cache root (default ``~/.cache/edge-tl``). Downloads go to a temp file beside
their destination and are renamed only once complete and (when a hash is known) verified; archives are
extracted into a temp folder renamed into place, so an interrupted download never looks finished.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from edge_tl._io import atomic_path, ensure_writable_dir
from edge_tl.errors import DataError
from edge_tl.progress import Reporter, of


def cache_dir() -> Path:
    """The cache root: ``$EDGE_TL_CACHE`` or ``~/.cache/edge-tl``."""
    env = os.environ.get("EDGE_TL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edge-tl"


def download_file(url: str, dest: Path, *, md5: str | None = None, what: str = "file",
                  timeout: float = 30.0, reporter: Reporter | None = None) -> Path:
    """Download ``url`` to ``dest`` (atomic; skipped when ``dest`` exists), a task in bytes on ``reporter``.

    Any network failure raises :class:`DataError` naming the URL and how to provide the file by hand.
    """
    import urllib.error
    import urllib.request

    dest = Path(dest)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    hint = f"download {url} by hand and pass its extracted folder as --data-root"
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, atomic_path(dest) as tmp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as f, of(reporter).task(f"downloading {what}", total, "B") as advance:
                while block := resp.read(1 << 20):
                    f.write(block)
                    digest.update(block)
                    advance(len(block))
            if md5 and digest.hexdigest() != md5:
                raise DataError(f"{what} from {url} has md5 {digest.hexdigest()}, expected {md5}", hint)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"cannot download {what} from {url}: {reason}", hint) from None
    return dest


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract a .zip or .tar(.gz) ``archive`` into ``dest`` atomically (temp folder, then rename)."""
    archive, dest = Path(archive), Path(dest)
    if dest.is_dir():
        return dest
    ensure_writable_dir(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        os.replace(tmp, dest)
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot extract {archive}: {exc}", f"delete {archive} and try again") from None
    return dest

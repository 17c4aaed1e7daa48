"""Hygiene scan: find every file that would break or bias training before it does.

Per file (in a thread pool; Pillow releases the GIL while decoding): zero-byte files, files that are not images,
truncated or corrupt images, images over Pillow's decompression-bomb limit (refused without decoding), images
whose content does not match their extension (a PNG named ``.jpg``), and images that training converts
(CMYK, grayscale, alpha, palette, 16-bit) or rotates (EXIF orientation). Across files: exact duplicates by
sha256 (and duplicates filed under two classes), and the same image in two splits (leakage).

Each file is read once for its hash, its header parsed from those bytes, and decoded once with
:func:`edge_tl.data.preprocess.open_image` (the decoder training uses) in JPEG draft mode: libjpeg still walks
the whole entropy-coded stream, so truncation is caught, at a fraction of the cost of a full-size decode.
Bad files are listed and skipped; they never stop a command.
"""

from __future__ import annotations

import io
import struct
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_tl._cpu import usable_cores
from edge_tl.progress import Reporter

SCAN_SIDE = 64  # draft-mode target: decode at >= 2 * SCAN_SIDE px on the short side
BAD_KINDS: dict[str, str] = {
    "unreadable": "cannot be read",
    "empty": "zero-byte file",
    "not-image": "not an image",
    "truncated": "truncated image",
    "corrupt": "corrupt image data",
    "too-large": "over Pillow's decompression-bomb limit (refused)",
}
NOTE_KINDS: dict[str, str] = {
    "wrong-extension": "content does not match the extension (kept)",
    "cmyk": "CMYK, converted to RGB",
    "grayscale": "grayscale, converted to RGB",
    "alpha": "transparency, composited on white",
    "palette": "palette, converted to RGB",
    "16-bit": "16-bit or wider, scaled to 8-bit RGB",
    "exif-rotated": "EXIF orientation, applied",
}
_EXT_FORMATS: dict[str, tuple[str, ...]] = {
    ".jpg": ("JPEG", "MPO"), ".jpeg": ("JPEG", "MPO"), ".png": ("PNG",), ".gif": ("GIF",), ".webp": ("WEBP",),
    ".bmp": ("BMP",), ".tif": ("TIFF",), ".tiff": ("TIFF",), ".ppm": ("PPM",), ".pgm": ("PPM",),
}
_MODE_NOTES: dict[str, tuple[str, ...]] = {
    "CMYK": ("cmyk",), "L": ("grayscale",), "1": ("grayscale",), "LA": ("grayscale", "alpha"),
    "RGBA": ("alpha",), "RGBa": ("alpha",), "P": ("palette",), "PA": ("palette", "alpha"),
    "I;16": ("grayscale", "16-bit"), "I;16B": ("grayscale", "16-bit"), "I;16L": ("grayscale", "16-bit"),
    "I": ("grayscale", "16-bit"), "F": ("grayscale", "16-bit"),
}
# What a malformed file can make Pillow's parsers raise (beyond OSError): caught per file, never a crash.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
                  ZeroDivisionError)


@dataclass(frozen=True)
class Record:
    """One good image: its path, content hash and label index (what the hygiene scan yields)."""

    path: Path
    sha256: str
    label: int


@dataclass(frozen=True)
class BadFile:
    """A file the scan refused: ``kind`` is one of :data:`BAD_KINDS`."""

    path: Path
    label: int
    kind: str
    reason: str


@dataclass(frozen=True)
class FileResult:
    """What the scan learnt about one file (``bad`` is None for a usable image)."""

    path: Path
    label: int
    sha256: str | None = None
    format: str | None = None
    mode: str | None = None
    size: tuple[int, int] | None = None
    notes: tuple[str, ...] = ()
    bad: BadFile | None = None


@dataclass(frozen=True)
class Group:
    """Files sharing one sha256: duplicates (``labels`` differ = filed under two classes) or leakage."""

    sha256: str
    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    splits: tuple[str, ...] = ()

    @property
    def label_conflict(self) -> bool:
        return len(set(self.labels)) > 1


@dataclass(frozen=True)
class ScanReport:
    """Result of :func:`scan`: usable ``records`` (input order), ``bad`` files, notes, duplicates, leakage."""

    total: int
    records: tuple[Record, ...]
    bad: tuple[BadFile, ...]
    notes: dict[str, tuple[Path, ...]]
    duplicates: tuple[Group, ...]
    leakage: tuple[Group, ...]
    seconds: float
    classes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No bad file and no leakage."""
        return not self.bad and not self.leakage

    def bad_counts(self) -> dict[str, int]:
        out = dict.fromkeys(BAD_KINDS, 0)
        for b in self.bad:
            out[b.kind] += 1
        return out

    def note_counts(self) -> dict[str, int]:
        return {k: len(self.notes.get(k, ())) for k in NOTE_KINDS}

    def class_counts(self) -> dict[str, int]:
        """Usable images per class (after dropping bad files)."""
        counts = [0] * max(len(self.classes), 1 + max((r.label for r in self.records), default=-1))
        for r in self.records:
            counts[r.label] += 1
        names = list(self.classes) or [str(i) for i in range(len(counts))]
        return dict(zip(names, counts))

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total, "good": len(self.records), "bad": len(self.bad), "ok": self.ok,
            "seconds": round(self.seconds, 3), "bad_counts": self.bad_counts(), "note_counts": self.note_counts(),
            "class_counts": self.class_counts(),
            "bad_files": [{"path": str(b.path), "kind": b.kind, "reason": b.reason} for b in self.bad],
            "notes": {k: [str(p) for p in v] for k, v in self.notes.items() if v},
            "duplicates": [_group_json(g) for g in self.duplicates],
            "leakage": [_group_json(g) for g in self.leakage],
            **self.extra,
        }


def _group_json(g: Group) -> dict[str, Any]:
    d: dict[str, Any] = {"sha256": g.sha256, "paths": [str(p) for p in g.paths], "labels": list(g.labels)}
    if g.splits:
        d["splits"] = list(g.splits)
    return d


def check_file(path: Path, label: int = 0, draft_side: int | None = SCAN_SIDE) -> FileResult:
    """Inspect one file: hash, header, full decode (in draft mode). Never raises for a bad file."""
    from PIL import Image

    from edge_tl._io import sha256_bytes
    from edge_tl.data.preprocess import BadImageError, open_image

    path = Path(path)

    def bad(kind: str, reason: str, **kw: Any) -> FileResult:
        return FileResult(path, label, bad=BadFile(path, label, kind, reason), **kw)

    try:
        data = path.read_bytes()
    except OSError as exc:
        return bad("unreadable", exc.strerror or str(exc))
    if not data:
        return bad("empty", "zero-byte file")
    sha = sha256_bytes(data)
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, mode, size = im.format, im.mode, im.size
            rawmode = str(im.tile[0][3]) if im.tile and isinstance(im.tile[0][3], str) else ""
            orientation = _orientation(im)
            transparent = "transparency" in im.info
    except Image.DecompressionBombError as exc:
        return bad("too-large", f"refused: {exc}", sha256=sha)
    except Image.UnidentifiedImageError:
        return bad("not-image", f"not an image ({_sniff(data)})", sha256=sha)
    except _DECODE_ERRORS as exc:
        return bad("corrupt", f"unreadable header ({exc})", sha256=sha)
    limit = Image.MAX_IMAGE_PIXELS
    if limit and size[0] * size[1] > limit:
        return bad("too-large", f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels, over the decompression-bomb "
                   f"limit of {limit}", sha256=sha, format=fmt, mode=mode, size=size)
    try:
        open_image(path, draft_side)
    except BadImageError as exc:
        kind = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        return bad(kind, _short(str(exc)), sha256=sha, format=fmt, mode=mode, size=size)
    except _DECODE_ERRORS as exc:
        return bad("corrupt", f"decoder error ({type(exc).__name__}: {exc})", sha256=sha, format=fmt, mode=mode,
                   size=size)
    notes = list(_MODE_NOTES.get(mode, ()))
    if ";16" in rawmode and "16-bit" not in notes:
        notes.append("16-bit")
    if mode == "P" and transparent:
        notes.append("alpha")
    if orientation not in (None, 1):
        notes.append("exif-rotated")
    expected = _EXT_FORMATS.get(path.suffix.lower())
    if expected and fmt not in expected:
        notes.append("wrong-extension")
    return FileResult(path, label, sha, fmt, mode, size, tuple(notes))


def _short(message: str) -> str:
    """``"<path>: not a readable image (<why>)"`` -> ``"<why>"``."""
    why = message.split(": ", 1)[-1]
    prefix = "not a readable image ("
    return why[len(prefix):-1] if why.startswith(prefix) and why.endswith(")") else why


def _orientation(im: Any) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except _DECODE_ERRORS:
        return None


def _sniff(data: bytes) -> str:
    head = data[:512]
    if head.lstrip().startswith((b"<!DOCTYPE", b"<html", b"<HTML")):
        return "HTML page"
    if head.startswith(b"%PDF"):
        return "PDF"
    if head.startswith(b"PK\x03\x04"):
        return "zip archive"
    if head.startswith(b"\xff\xd8"):
        return "JPEG header, unreadable body"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown binary data"


def scan(files: Sequence[Path], labels: Sequence[int], splits: Sequence[str] | None = None, *,
         classes: Sequence[str] = (), threads: int | None = None, progress: bool = True,
         draft_side: int | None = SCAN_SIDE, reporter: Reporter | None = None) -> ScanReport:
    """Scan ``files`` (with their ``labels`` and optional ``splits``) and report what is usable.

    ``threads`` defaults to the cores available; the scan is a task ("scanning images", one step per file) on
    ``reporter`` unless ``progress`` is off.
    """
    from edge_tl import progress as _progress
    from edge_tl.errors import DataError

    if len(files) != len(labels) or (splits is not None and len(splits) != len(files)):
        raise DataError("scan needs as many labels (and splits) as files")
    from PIL import Image

    t0 = time.perf_counter()
    workers = max(1, min(threads or usable_cores(), len(files) or 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # e.g. "Corrupt EXIF data", "Truncated File Read"
        results = _run_pool(list(files), list(labels), workers, _progress.of(reporter, tasks=progress), draft_side)
    return build_report(results, splits, classes, time.perf_counter() - t0)


def _run_pool(files: list[Path], labels: list[int], workers: int, reporter: Reporter,
              draft_side: int | None) -> list[FileResult]:
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            reporter.task("scanning images", len(files), "img") as advance:
        results: list[FileResult] = []
        for res in pool.map(lambda fl: check_file(fl[0], fl[1], draft_side), zip(files, labels), chunksize=8):
            results.append(res)
            advance(1)
    return results


def build_report(results: Sequence[FileResult], splits: Sequence[str] | None = None,
                 classes: Sequence[str] = (), seconds: float = 0.0) -> ScanReport:
    """Aggregate per-file results into a :class:`ScanReport` (duplicates and leakage across files)."""
    records: list[Record] = []
    bad: list[BadFile] = []
    notes: dict[str, list[Path]] = defaultdict(list)
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(results):
        if r.bad is not None:
            bad.append(r.bad)
            continue
        assert r.sha256 is not None
        records.append(Record(r.path, r.sha256, r.label))
        by_hash[r.sha256].append(i)
        for n in r.notes:
            notes[n].append(r.path)
    dups: list[Group] = []
    leaks: list[Group] = []
    for sha, idx in by_hash.items():
        if len(idx) < 2:
            continue
        g_splits = tuple(splits[i] for i in idx) if splits is not None else ()
        g = Group(sha, tuple(results[i].path for i in idx), tuple(results[i].label for i in idx), g_splits)
        dups.append(g)
        if len(set(g_splits)) > 1:
            leaks.append(g)
    return ScanReport(total=len(results), records=tuple(records), bad=tuple(bad),
                      notes={k: tuple(v) for k, v in notes.items()}, duplicates=tuple(dups),
                      leakage=tuple(leaks), seconds=seconds, classes=tuple(classes))

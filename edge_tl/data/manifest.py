"""The split manifest: which file (by path *and* content hash) is in train, val or test, with its label.

Written once beside a run (``runs/NAME/split.json``) so every later command (export calibration, bench accuracy,
attacks) uses the same held-out images. The split is stratified per class, seeded, and independent of file
names and listing order (files are ordered by content hash before shuffling), and identical files (same
sha256) are kept once, so the same image can never land in two splits.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl.data.hygiene import Record, scan
from edge_tl.errors import DataError

if TYPE_CHECKING:
    from edge_tl.card import ModelCard
    from edge_tl.data.hygiene import ScanReport
    from edge_tl.data.sources import Dataset
    from edge_tl.progress import Reporter

SPLITS: tuple[str, ...] = ("train", "val", "test")
FORMAT = "edge-tl-manifest"
VERSION = 1


@dataclass(frozen=True)
class ManifestItem:
    """One manifest row. ``path`` is relative to the manifest's ``root`` when the file lies under it."""

    path: str
    sha256: str
    label: int
    split: str


@dataclass(frozen=True)
class Manifest:
    """Classes, items and provenance of one split. Build with :func:`make_split`, persist with
    :meth:`save` / :meth:`load`."""

    classes: tuple[str, ...]
    items: tuple[ManifestItem, ...]
    dataset: str = ""
    seed: int = 0
    root: str = ""
    val_frac: float = 0.15
    test_frac: float = 0.15
    dropped_duplicates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def path_of(self, item: ManifestItem) -> Path:
        """Absolute path of ``item``."""
        p = Path(item.path)
        return p if p.is_absolute() or not self.root else Path(self.root) / p

    def select(self, split: str | None = None) -> list[ManifestItem]:
        """Items of ``split`` (all items when None), in manifest order."""
        if split is not None and split not in SPLITS:
            raise DataError(f"unknown split '{split}'", f"use one of {', '.join(SPLITS)}")
        return [it for it in self.items if split is None or it.split == split]

    def files(self, split: str | None = None) -> list[Path]:
        """Absolute paths of ``split`` (all when None)."""
        return [self.path_of(it) for it in self.select(split)]

    def labels(self, split: str | None = None) -> list[int]:
        """Label indices of ``split`` (all when None), aligned with :meth:`files`."""
        return [it.label for it in self.select(split)]

    def counts(self) -> dict[str, list[int]]:
        """Per split, the number of items of each class."""
        out = {s: [0] * len(self.classes) for s in SPLITS}
        for it in self.items:
            out[it.split][it.label] += 1
        return out

    def verify(self, split: str | None = None, hashes: bool = False) -> None:
        """Raise :class:`DataError` if a file of ``split`` is gone (or, with ``hashes``, has changed)."""
        from edge_tl._io import sha256_file

        for it in self.select(split):
            p = self.path_of(it)
            if not p.is_file():
                raise DataError(f"{p} from the split manifest is gone",
                                "restore the dataset at its original path or train again")
            if hashes and sha256_file(p) != it.sha256:
                raise DataError(f"{p} changed since the split was made (sha256 differs)",
                                "restore the original file or train again")

    def audit(self, items: Sequence[ManifestItem]) -> tuple[list[Path], list[Path]]:
        """The files of ``items`` that are gone, and those whose content is no longer the recorded sha256."""
        from edge_tl._io import sha256_file

        missing, changed = [], []
        for it in items:
            p = self.path_of(it)
            if not p.is_file():
                missing.append(p)
            elif sha256_file(p) != it.sha256:
                changed.append(p)
        return missing, changed

    def require_intact(self, items: Sequence[ManifestItem], what: str = "split") -> None:
        """Raise one :class:`DataError` counting the files of ``items`` that are missing or changed.

        Cached features are keyed by content hash, so without this check a result could be answered for images
        that no longer exist or no longer look like that.
        """
        missing, changed = self.audit(items)
        if not missing and not changed:
            return
        parts = [f"{len(missing)} missing" if missing else "", f"{len(changed)} changed" if changed else ""]
        example = (missing or changed)[0]
        raise DataError(f"of the {len(items)} images of the {what}, {' and '.join(p for p in parts if p)} since "
                        f"the split was made (e.g. {example})",
                        "restore the dataset at its original path, or evaluate on another folder with --data")

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict (the file format)."""
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["items"] = [asdict(it) for it in self.items]
        return {"format": FORMAT, "version": VERSION, **d}

    @classmethod
    def from_json(cls, data: Any, source: str = "manifest") -> Manifest:
        """Validate and build a manifest from a dict; any defect raises :class:`DataError`."""
        hint = "delete it and train again"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"{source} is not an edge-tl split manifest", hint)
        try:
            version = int(data.get("version", 0))
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{source} has an invalid manifest version", hint) from None
        if version > VERSION:
            raise DataError(f"{source} has manifest version {data['version']}, newer than this edge-tl",
                            "upgrade edge-tl")
        try:
            classes = tuple(str(c) for c in data["classes"])
            items = tuple(ManifestItem(str(i["path"]), str(i["sha256"]), int(i["label"]), str(i["split"]))
                          for i in data["items"])
            m = cls(classes=classes, items=items, dataset=str(data.get("dataset", "")),
                    seed=int(data.get("seed", 0)), root=str(data.get("root", "")),
                    val_frac=float(data.get("val_frac", 0.0)), test_frac=float(data.get("test_frac", 0.0)),
                    dropped_duplicates=int(data.get("dropped_duplicates", 0)), extra=dict(data.get("extra", {})))
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise DataError(f"{source} is malformed ({type(exc).__name__})", hint) from None
        bad = [it for it in items if it.split not in SPLITS or not 0 <= it.label < len(classes)]
        if bad or not classes:
            raise DataError(f"{source} is malformed (bad split or label in {bad[0] if bad else 'classes'})", hint)
        outside = [it.path for it in items if not _inside(it.path, m.root)]
        if outside:
            where = f"its root {m.root}" if m.root else "the folder it was made in (it has no root)"
            raise DataError(f"{source} lists {len(outside)} file(s) outside {where}, e.g. '{outside[0]}'",
                            "a split manifest only names files under its dataset root; train again")
        return m

    def save(self, path: Path) -> Path:
        """Write the manifest as JSON, atomically."""
        from edge_tl._io import atomic_write_json

        return atomic_write_json(Path(path), self.to_json())

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest; a missing or malformed file raises :class:`DataError`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"split manifest {path} not found", "train again to recreate it") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read split manifest {path}: {exc}", "delete it and train again") from None
        return cls.from_json(data, source=str(path))


def split_sizes(n: int, val_frac: float, test_frac: float) -> tuple[int, int, int]:
    """(train, val, test) counts for a class of ``n`` images: at least one in every split asked for."""
    n_val = max(1, round(n * val_frac)) if val_frac > 0 else 0
    n_test = max(1, round(n * test_frac)) if test_frac > 0 else 0
    while n - n_val - n_test < 1 and max(n_val, n_test) > 1:  # large fractions on a small class
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def min_class_size(val_frac: float, test_frac: float) -> int:
    """Smallest class that still gets one image in train and in each non-empty held-out split."""
    return 1 + (val_frac > 0) + (test_frac > 0)


def make_split(records: Iterable[Record], classes: Sequence[str], seed: int = 0, val_frac: float = 0.15,
               test_frac: float = 0.15, dataset: str = "", root: Path | str | None = None) -> Manifest:
    """Stratified, seeded train/val/test split of ``records`` (duplicates by sha256 kept once).

    Every class gets at least one image in train and in each split whose fraction is > 0; a class too small
    for that raises :class:`DataError` naming it and its size. The result depends only on the set of
    (sha256, label) pairs and the seed, not on paths or listing order.
    """
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise DataError(f"split fractions val={val_frac} test={test_frac} must be >= 0 and sum to < 1")
    classes = tuple(classes)
    if len(classes) < 2:
        raise DataError(f"a classifier needs at least 2 classes, got {len(classes)}",
                        "add a subfolder per class")
    unique, dropped = _dedup(records)
    per_class: list[list[Record]] = [[] for _ in classes]
    for r in unique:
        if not 0 <= r.label < len(classes):
            raise DataError(f"{r.path} has label {r.label}, outside the {len(classes)} classes")
        per_class[r.label].append(r)
    need = min_class_size(val_frac, test_frac)
    small = [(classes[c], len(rs)) for c, rs in enumerate(per_class) if len(rs) < need]
    if small:
        listing = ", ".join(f"'{n}' has {k}" for n, k in small)
        raise DataError(f"class too small to split: {listing} usable image(s), at least {need} needed",
                        "add images to that class or remove its folder")
    root_path = Path(root).resolve() if root else None
    items: list[ManifestItem] = []
    for c, rs in enumerate(per_class):
        rs.sort(key=lambda r: r.sha256)
        random.Random(f"edge-tl:{seed}:{classes[c]}").shuffle(rs)
        n_train, n_val, _ = split_sizes(len(rs), val_frac, test_frac)
        for k, r in enumerate(rs):
            split = "train" if k < n_train else "val" if k < n_train + n_val else "test"
            items.append(ManifestItem(_rel(r.path, root_path), r.sha256, r.label, split))
    items.sort(key=lambda it: (SPLITS.index(it.split), it.label, it.path))
    return Manifest(classes=classes, items=tuple(items), dataset=dataset, seed=seed,
                    root=str(root_path) if root_path else "", val_frac=val_frac, test_frac=test_frac,
                    dropped_duplicates=dropped)


def fixed_split(records: Iterable[Record], splits: dict[Path, str], classes: Sequence[str], dataset: str = "",
                root: Path | str | None = None) -> Manifest:
    """A manifest that keeps a dataset's own split (``splits`` maps each path to train/val/test)."""
    root_path = Path(root).resolve() if root else None
    items = [ManifestItem(_rel(r.path, root_path), r.sha256, r.label, splits[Path(r.path)]) for r in records]
    missing = [s for s in ("train", "test") if not any(it.split == s for it in items)]
    if missing:
        raise DataError(f"the dataset's own split has no {' and no '.join(missing)} images",
                        "add them, or merge the split folders so edge-tl can split the data itself")
    items.sort(key=lambda it: (SPLITS.index(it.split), it.label, it.path))
    return Manifest(classes=tuple(classes), items=tuple(items), dataset=dataset, seed=0,
                    root=str(root_path) if root_path else "", val_frac=0.0, test_frac=0.0,
                    extra={"predefined_split": True})


def split_dataset(dataset: Dataset, seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15, *,
                  threads: int | None = None, progress: bool = True,
                  reporter: Reporter | None = None) -> tuple[Manifest, ScanReport]:
    """Hygiene-scan ``dataset`` and split its usable images: what ``edge-tl train`` writes as ``split.json``.

    Bad files are skipped (listed in the report). A dataset that came already split (``train/``, ``val/``,
    ``test/`` folders) keeps its split; otherwise :func:`make_split`. Leakage in a predefined split raises
    :class:`DataError`. The scan is a task on ``reporter`` (unless ``progress`` is off).
    """
    report = scan(dataset.files, dataset.labels, dataset.splits, classes=dataset.classes, threads=threads,
                  progress=progress, reporter=reporter)
    if dataset.splits is None:
        manifest = make_split(report.records, dataset.classes, seed, val_frac, test_frac, dataset=dataset.name,
                              root=dataset.root)
        return manifest, report
    if report.leakage:
        g = report.leakage[0]
        raise DataError(f"{len(report.leakage)} image(s) appear in two splits, e.g. {g.paths[0]} and {g.paths[1]}",
                        "remove the copies, or run edge-tl data check for the full list")
    split_of = {Path(f): s for f, s in zip(dataset.files, dataset.splits)}
    return fixed_split(report.records, split_of, dataset.classes, dataset.name, dataset.root), report


def _dedup(records: Iterable[Record]) -> tuple[list[Record], int]:
    """Keep the first record (by path) of each sha256; return them and how many were dropped."""
    seen: dict[str, Record] = {}
    total = 0
    for r in sorted(records, key=lambda r: str(r.path)):
        total += 1
        seen.setdefault(r.sha256, r)
    return list(seen.values()), total - len(seen)


def _rel(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` (as written, then with links resolved), else absolute."""
    p = Path(path).resolve()
    if root is not None:
        for q in (Path(os.path.abspath(path)), p):  # a link under the root stays under it
            try:
                return q.relative_to(root).as_posix()
            except ValueError:
                pass
    return str(p)


def _inside(item: str, root: str) -> bool:
    """Is a manifest path inside ``root``: relative without climbing out, or absolute under the root.

    A manifest without a root may only hold absolute paths (relative ones would depend on the current folder).
    """
    if not item or "\x00" in item:
        return False
    p = Path(item)
    if not root:
        return p.is_absolute() and ".." not in p.parts
    if p.is_absolute():
        p = Path(os.path.normpath(p))
        return p.is_relative_to(Path(os.path.normpath(root)))
    parts = Path(os.path.normpath(item)).parts  # "a/../b" -> ("b",); "../b" -> ("..", "b"); "..b" stays a name
    return not parts or parts[0] != ".."


def manifest_for_card(card: ModelCard, card_path: Path | None = None) -> Manifest:
    """The split manifest a model was trained with (``card.manifest`` relative to ``card.run_dir``).

    Falls back to the folder of ``card_path`` when the card has no ``run_dir``. A card without a manifest or a
    manifest that is gone raises :class:`DataError` saying what to do.
    """
    if not card.manifest:
        raise DataError("this model's card names no split manifest",
                        "pass --data explicitly, or use a model trained by edge-tl train")
    m = Path(card.manifest)
    if not m.is_absolute():
        base = Path(card.run_dir) if card.run_dir else (Path(card_path).parent if card_path else None)
        if base is None:
            raise DataError(f"cannot locate split manifest '{card.manifest}': the card has no run_dir",
                            "pass --data explicitly")
        m = base / m
    if not m.is_file():
        raise DataError(f"split manifest {m} not found (run folder moved or deleted?)",
                        "keep the run folder next to the model, or pass --data explicitly")
    return Manifest.load(m)

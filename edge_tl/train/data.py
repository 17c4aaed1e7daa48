"""From ``--data`` to a split: resolve the dataset, run the hygiene scan, make (or reuse) ``split.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl.errors import CheckpointError, DataError

if TYPE_CHECKING:
    from edge_tl.data.manifest import Manifest
    from edge_tl.progress import Reporter

SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class SplitData:
    """The files, labels and content hashes of one split."""

    files: list[Path]
    labels: list[int]
    shas: list[str]

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class Prepared:
    """A run's data: the manifest and its three splits, plus what the hygiene scan rejected."""

    manifest: Manifest
    dataset: str
    train: SplitData
    val: SplitData
    test: SplitData
    bad_files: tuple[dict[str, str], ...] = ()

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.manifest.classes)

    def split(self, name: str) -> SplitData:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def _split_data(m: Manifest, name: str) -> SplitData:
    items = m.select(name)
    return SplitData([m.path_of(it) for it in items], [it.label for it in items], [it.sha256 for it in items])


def from_manifest(m: Manifest, bad: tuple[dict[str, str], ...] = ()) -> Prepared:
    """Wrap a manifest (every split must be non-empty)."""
    prep = Prepared(m, m.dataset, _split_data(m, "train"), _split_data(m, "val"), _split_data(m, "test"), bad)
    for name in ("train", "val", "test"):
        if len(prep.split(name)) == 0:
            raise DataError(f"the '{name}' split of {m.dataset or 'the dataset'} is empty",
                            "add images (every class needs at least 3)")
    return prep


def dataset_name(data: str, data_root: str | None) -> str:
    """A short name for run folders: the source name or the folder's name."""
    from edge_tl.data.sources import list_sources

    if data in list_sources() and data != "folder":
        return data
    return Path(data_root if data == "folder" and data_root else data).expanduser().resolve().name or "data"


def scan_and_split(data: str, data_root: str | None, seed: int, val_frac: float, test_frac: float,
                   reporter: Reporter | None = None, progress: bool = True, split: str = "auto") -> Prepared:
    """Resolve ``data``, scan every file (bad ones reported and skipped) and split it: stratified by class, or
    the dataset's own train/val/test folders, or its official split (``split``, see
    :func:`edge_tl.data.sources.with_split`); a val split is carved from train when there is none.

    Bad files are noted on ``reporter``; the scan (and a dataset download) is a task there unless ``progress``
    is off."""
    from edge_tl import progress as _progress
    from edge_tl.data.manifest import split_dataset
    from edge_tl.data.sources import resolve_dataset, with_split

    rep = _progress.of(reporter)
    tasks = _progress.of(reporter, tasks=progress)
    ds = with_split(resolve_dataset(data, Path(data_root) if data_root else None, reporter=tasks), split)
    if not ds.files:
        raise DataError(f"dataset {ds.name or data} has no images", "point --data at a folder with one subfolder "
                        "of images per class")
    if len(ds.classes) < 2:
        raise DataError(f"dataset {ds.name or data} has a single class ({', '.join(ds.classes) or 'none'})",
                        "a classifier needs at least 2 classes: add a subfolder per class")
    m, report = split_dataset(ds, seed, val_frac, test_frac, reporter=tasks)
    bad = tuple({"path": str(b.path), "kind": b.kind, "reason": b.reason} for b in report.bad)
    if bad:
        rep.note(f"hygiene scan: skipping {len(bad)} bad file(s)", level="warning")
        for b in bad[:10]:
            rep.note(f"  {b['path']}: {b['reason']}")
        if len(bad) > 10:
            rep.note(f"  ... and {len(bad) - 10} more (edge-tl data check {data})")
    if split != "auto":
        from dataclasses import replace

        m = replace(m, extra={**m.extra, "split_policy": split})
    if not m.select("val") and m.select("train"):
        m = carve_val(m, seed, val_frac)
    return from_manifest(m, bad)


def carve_val(m: Manifest, seed: int, val_frac: float) -> Manifest:
    """A predefined split without a val part: move a stratified ``val_frac`` of train into val."""
    from dataclasses import replace

    from edge_tl.data.manifest import Record, make_split

    train = m.select("train")
    recs = [Record(m.path_of(it), it.sha256, it.label) for it in train]
    sub = make_split(recs, m.classes, seed=seed, val_frac=max(val_frac, 0.05), test_frac=0.0, root=m.root or None)
    split_of = {it.sha256: it.split for it in sub.items}
    items = tuple(replace(it, split=split_of.get(it.sha256, "train")) if it.split == "train" else it
                  for it in m.items)
    return replace(m, items=items, extra={**m.extra, "val_carved_from_train": True})


def check_resume_classes(manifest: Manifest, data: str, data_root: str | None) -> None:
    """``--resume`` with data whose classes differ from the run's -> CheckpointError."""
    from edge_tl.data.sources import resolve_dataset

    ds = resolve_dataset(data, Path(data_root) if data_root else None)
    if tuple(ds.classes) != tuple(manifest.classes):
        raise CheckpointError(
            f"cannot resume: the run was trained on classes {list(manifest.classes)}, --data has {list(ds.classes)}",
            "resume with the run's own --data, or train a new run with another --out")


def load_split(run_dir: Path) -> Prepared:
    """The run's saved split (for --resume)."""
    from edge_tl.data.manifest import Manifest

    return from_manifest(Manifest.load(Path(run_dir) / SPLIT_FILE))


def split_summary(prep: Prepared) -> dict[str, Any]:
    """Counts per split, for the result JSON."""
    return {"train": len(prep.train), "val": len(prep.val), "test": len(prep.test),
            "classes": len(prep.classes), "bad_files": len(prep.bad_files)}

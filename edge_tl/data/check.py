"""What ``edge-tl data check PATH`` scans: a dataset (folder or name), a split manifest, or a run folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from edge_tl.data.hygiene import ScanReport, scan
from edge_tl.data.manifest import Manifest, min_class_size
from edge_tl.data.sources import resolve_dataset
from edge_tl.progress import Reporter


def load_target(spec: str, root: Path | None = None, reporter: Reporter | None = None
                ) -> tuple[str, Path, list[str], list[Path], list[int], list[str] | None, Manifest | None]:
    """(name, root, classes, files, labels, splits, manifest) of what ``spec`` names.

    ``spec`` is a split manifest (``split.json``), a run folder holding one, or anything ``--data`` accepts.
    """
    p = Path(spec).expanduser()
    manifest_file = p if p.is_file() and p.suffix == ".json" else \
        p / "split.json" if (p / "split.json").is_file() and (p / "card.json").is_file() else None
    if manifest_file is not None:
        m = Manifest.load(manifest_file)
        items = m.select()
        return (m.dataset or manifest_file.stem, Path(m.root) if m.root else manifest_file.parent.resolve(),
                list(m.classes), m.files(),
                [it.label for it in items], [it.split for it in items], m)
    ds = resolve_dataset(spec, root, reporter=reporter)
    return ds.name, ds.root, ds.classes, ds.files, ds.labels, ds.splits, None


def check_path(spec: str, root: Path | None = None, *, threads: int | None = None, progress: bool = True,
               val_frac: float = 0.15, test_frac: float = 0.15, reporter: Reporter | None = None) -> ScanReport:
    """Scan ``spec`` and return the report; ``report.extra`` adds the target, classes too small to split
    (unsplit datasets only) and, for a manifest, files whose content changed since the split was made. The scan
    (and a dataset download) is a task on ``reporter`` unless ``progress`` is off."""
    from edge_tl import progress as _progress

    tasks = _progress.of(reporter, tasks=progress)
    name, where, classes, files, labels, splits, manifest = load_target(spec, root, tasks)
    report = scan(files, labels, splits, classes=classes, threads=threads, reporter=tasks)
    extra: dict[str, Any] = {"dataset": name, "root": str(where), "classes": list(classes), "too_small": [],
                             "changed": []}
    if manifest is not None:
        expected = {manifest.path_of(it): it.sha256 for it in manifest.items}
        extra["changed"] = [str(r.path) for r in report.records if expected.get(Path(r.path)) != r.sha256]
    elif splits is None:
        need = min_class_size(val_frac, test_frac)
        unique = {(r.sha256, r.label) for r in report.records}
        per_class = [0] * len(classes)
        for _, lab in unique:
            per_class[lab] += 1
        extra["too_small"] = [{"class": c, "images": n, "needed": need}
                              for c, n in zip(classes, per_class) if n < need]
    return replace(report, extra=extra)


def has_problems(report: ScanReport) -> bool:
    """Bad files, leakage, an image filed under two classes, changed files or a class too small to split:
    ``data check`` exits 1."""
    return (not report.ok or bool(report.extra.get("too_small")) or bool(report.extra.get("changed"))
            or any(g.label_conflict for g in report.duplicates))

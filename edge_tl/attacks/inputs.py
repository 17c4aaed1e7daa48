"""Everything ``edge-tl attack`` needs before attacking: the models (any Runtime), the surrogate checkpoint,
the images and labels (default: the card's test split), and the target class. Each failure is a one-line
:class:`~edge_tl.errors.EdgeTLError`; choices that change what runs are returned as notes for the user."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.errors import ConfigError, DataError, UnknownNameError


@dataclass(frozen=True)
class Surrogate:
    """A pixel-space torch module (NCHW [0, 1] in, logits out) and where it came from."""

    module: Any
    name: str
    path: Path


@dataclass(frozen=True)
class AttackData:
    """uint8 NHWC images, labels in the model's class order, and what was chosen."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    notes: tuple[str, ...] = ()


def load_models(paths: Sequence[Path], threads: int | None = None) -> list[Any]:
    """Load each model with :func:`edge_tl.runtimes.load`; all must share classes and input size."""
    from edge_tl.runtimes import load

    if not paths:
        raise ConfigError("no model given", "pass --model exported/model.onnx (repeat --model to compare)")
    rts = [load(p, threads=threads) for p in paths]
    first = rts[0].card
    for rt in rts[1:]:
        if tuple(rt.card.classes) != tuple(first.classes) or rt.card.input.size != first.input.size:
            raise ConfigError(f"{rt.path} has other classes or input size than {rts[0].path}",
                              "compare artefacts exported from the same run")
    return rts


def model_names(paths: Sequence[Path]) -> list[str]:
    """Short display names: the file name, or ``parent/name`` where file names collide."""
    files = [(Path(p) / "model.pt" if Path(p).is_dir() else Path(p)) for p in paths]
    names = [f.name for f in files]
    out = [f"{f.parent.name}/{f.name}" if names.count(f.name) > 1 else f.name for f in files]
    if len(set(out)) != len(out):
        out = [str(f) for f in files]
    return out


def find_surrogate(explicit: Path | None, models: Sequence[Any]) -> Path | None:
    """The checkpoint to craft white-box attacks on: ``--surrogate``, else a ``.pt`` among the models, else the
    source run's ``model.pt`` named by the first card's ``run_dir``; None when none exists."""
    if explicit is not None:
        p = Path(explicit)
        p = p / "model.pt" if p.is_dir() else p
        if not p.is_file():
            raise ConfigError(f"surrogate checkpoint {explicit} not found", "pass --surrogate runs/NAME/model.pt")
        return p
    for rt in models:
        if Path(rt.path).suffix == ".pt":
            return Path(rt.path)
    run_dir = models[0].card.run_dir if models else None
    if run_dir and (Path(run_dir) / "model.pt").is_file():
        return Path(run_dir) / "model.pt"
    return None


def load_surrogate(path: Path, card: ModelCard) -> Surrogate:
    """Load the checkpoint (weights_only) and wrap it with its own normalisation; its classes and input size
    must match the attacked model's card."""
    from edge_tl.attacks.pixels import pixel_model
    from edge_tl.models.checkpoint import load_checkpoint

    model, scard = load_checkpoint(path)
    if tuple(scard.classes) != tuple(card.classes) or scard.input.size != card.input.size:
        raise ConfigError(f"surrogate {path} has other classes or input size than the attacked model",
                          "pass --surrogate with the run the artefact was exported from")
    module = pixel_model(model.eval(), scard.input.mean, scard.input.std)
    for p in module.parameters():
        p.requires_grad_(False)
    return Surrogate(module, f"{path.name} (surrogate)", path)


def resolve_target(name: str | None, classes: Sequence[str]) -> int | None:
    """Index of class ``name`` (None stays None); unknown names list the classes."""
    if name is None:
        return None
    if name not in classes:
        raise UnknownNameError("class", name, list(classes))
    return list(classes).index(name)


def file_identity(path: Path) -> str:
    """A cheap identity of a model file for resume checks: resolved path, size and modification time."""
    p = Path(path)
    st = p.stat()
    return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def load_data(card: ModelCard, model_path: Path, data: str | None, n: int, seed: int,
              only_class: int | None = None) -> AttackData:
    """``n`` images (seeded random choice) of the card's test split, or of ``data`` (a class-folder dataset
    whose class names are the model's); all of them, with a note, if fewer exist. ``only_class`` keeps the
    images of that class only. Files the hygiene scan refuses (empty, not an image, truncated, corrupt) are
    skipped and listed in a note, and others are drawn in their place."""
    from edge_tl.data.hygiene import check_file
    from edge_tl.data.preprocess import load_batch

    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    files, labels, source = _files(card, model_path, data)
    if only_class is not None:
        keep = [i for i, lab in enumerate(labels) if lab == only_class]
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
        source = f"{source}, class '{card.classes[only_class]}'"
    notes: list[str] = []
    if not files:
        raise DataError(f"no images in {source}", "pass --data with a folder of class subfolders")
    chosen: list[int] = []
    bad: list[str] = []
    for i in np.random.default_rng(seed).permutation(len(files)):
        if len(chosen) == n:
            break
        res = check_file(files[i], labels[i])
        if res.bad is None:
            chosen.append(int(i))
        else:
            bad.append(f"{files[i]} ({res.bad.reason})")
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        notes.append(f"skipped {len(bad)} bad file(s): {'; '.join(bad[:5])}{more}")
    if not chosen:
        raise DataError(f"no readable images in {source}", "run edge-tl data check on the folder")
    if n > len(chosen):
        notes.append(f"--n {n} is more than the {len(chosen)} usable images of {source}: using all {len(chosen)}")
    pick = sorted(chosen)
    images = load_batch([files[i] for i in pick], card.input)
    return AttackData(images, np.asarray([labels[i] for i in pick], np.int64), source, tuple(notes))


def _files(card: ModelCard, model_path: Path, data: str | None) -> tuple[list[Path], list[int], str]:
    if data is None:
        from edge_tl.data.manifest import manifest_for_card

        m = manifest_for_card(card, model_path)
        if tuple(m.classes) != tuple(card.classes):
            raise DataError("the split manifest's classes differ from the model's", "pass --data explicitly")
        return m.files("test"), m.labels("test"), "the test split"
    from edge_tl.data.sources import resolve_dataset

    ds = resolve_dataset(data)
    unknown = [c for c in ds.classes if c not in card.classes]
    if unknown:
        raise DataError(f"{data} has classes the model does not know: {', '.join(unknown[:5])}",
                        f"the model's classes are: {', '.join(card.classes)}")
    files, labels = list(ds.files), [card.classes.index(ds.classes[lab]) for lab in ds.labels]
    if ds.splits is not None and "test" in ds.splits:
        keep = [i for i, s in enumerate(ds.splits) if s == "test"]
        return [files[i] for i in keep], [labels[i] for i in keep], f"{data} (test split)"
    return files, labels, str(data)

"""What to bench: finding artefacts, reading their cards, and the evaluation images they are scored on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_tl.bench.profiles import Profile
from edge_tl.card import ModelCard
from edge_tl.errors import ArtifactError, ConfigError, DataError, EdgeTLError

ARTIFACT_SUFFIXES = (".pt", ".onnx", ".tflite", ".xml")
# --runtimes spellings -> runtime names (as in edge_tl.runtimes.base.register_runtime)
RUNTIME_ALIASES = {"ort": "onnxruntime", "onnxruntime": "onnxruntime", "litert": "litert", "tflite": "litert",
                   "openvino": "openvino", "ov": "openvino", "pytorch": "pytorch", "torch": "pytorch"}
EXPORT_HINT = "make some with `edge-tl export` (after `edge-tl train`), or name files: edge-tl bench FILE..."


@dataclass(frozen=True)
class Target:
    """One model file run by one runtime (``None``: the file's default); ``card`` is None and ``error`` set when
    its card cannot be read."""

    path: Path
    card: ModelCard | None
    error: str | None = None
    runtime: str | None = None

    @property
    def parity_failed(self) -> bool:
        """The artefact's card records a failed parity check (export wrote it but it missed its limits)."""
        return self.card is not None and self.card.parity is not None and not self.card.parity.passed

    @property
    def format(self) -> str:
        return self.card.format if self.card else {".pt": "pytorch", ".onnx": "onnx", ".xml": "openvino"}.get(
            self.path.suffix, self.path.suffix.lstrip("."))

    @property
    def quantization(self) -> str:
        if self.card is not None and self.card.quantization is not None:
            return self.card.quantization.mode
        return "fp16" if self.card and self.card.input.dtype == "float16" else "fp32"


@dataclass(frozen=True)
class EvalSet:
    """Evaluation images (paths + labels in ``classes`` order) and where they came from."""

    source: str
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    skipped: tuple[str, ...] = ()  # "path: reason" of each eval file the hygiene scan refused


def _artifacts_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".onnx", ".tflite", ".xml") and p.is_file())


def discover(models: list[str], exported: Path = Path("exported")) -> list[Path]:
    """The files to bench: ``models`` (files, run folders, export folders) or, when empty, everything in
    ``exported``. A folder of artefacts brings the source checkpoints their cards name (``run_dir/model.pt``)
    first. Missing paths raise :class:`ArtifactError`."""
    if not models:
        found = _artifacts_in(exported) if exported.is_dir() else []
        if not found:
            raise ArtifactError(f"no artefacts found in {exported.resolve()} (looked for *.onnx, *.tflite, *.xml)",
                                EXPORT_HINT)
        return _unique(_sources_of(found) + found)
    found = []
    for m in models:
        p = Path(m)
        if p.is_dir():
            run = p / "model.pt"
            arts = _artifacts_in(p)
            found += [run] if run.is_file() else _sources_of(arts) + arts
        elif p.exists() or p.is_symlink():
            found.append(p)
        else:
            raise ArtifactError(f"no such model: {m}", "give an exported .onnx/.tflite file, a run folder or "
                                "an export folder")
    if not found:
        raise ArtifactError(f"no artefacts in {', '.join(models)} (looked for *.onnx, *.tflite, *.xml, model.pt)",
                            EXPORT_HINT)
    return _unique(found)


def _sources_of(artifacts: list[Path]) -> list[Path]:
    """The checkpoints named by the artefacts' cards that still exist."""
    sources = []
    for p in artifacts:
        card = _quiet_card(p)
        if card and card.run_dir and (Path(card.run_dir) / "model.pt").is_file():
            sources.append(Path(card.run_dir) / "model.pt")
    return sources


def _unique(paths: list[Path]) -> list[Path]:
    seen, out = set(), []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _quiet_card(path: Path) -> ModelCard | None:
    try:
        return read_card(path)
    except EdgeTLError:
        return None


def read_card(path: Path) -> ModelCard:
    """The card of ``path`` without starting a runtime: the one inside the file (a run's ``card.json`` for a
    checkpoint), else its sidecar; an unreadable file raises :class:`ArtifactError`."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} is not a file", EXPORT_HINT)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None
    # one reader per format, registered by its runtime module; the card inside the file wins over a sidecar
    from edge_tl.runtimes.base import read_card

    return read_card(path)


def load_targets(paths: list[Path]) -> list[Target]:
    """A :class:`Target` per path; an unreadable file or card becomes a target with its error."""
    out = []
    for p in paths:
        try:
            out.append(Target(p, read_card(p)))
        except EdgeTLError as exc:
            hint = f" -- {exc.hint}" if exc.hint else ""
            out.append(Target(p, None, f"{exc.message}{hint}"))
    return out


def parse_runtimes(names: list[str] | None) -> tuple[str, ...] | None:
    """``--runtimes ort,litert,openvino`` -> runtime names (None: every runtime that can run each file)."""
    if not names:
        return None
    from edge_tl.errors import check_choice

    return tuple(dict.fromkeys(RUNTIME_ALIASES[check_choice("runtime", n, RUNTIME_ALIASES)] for n in names))


def with_runtimes(targets: list[Target], wanted: tuple[str, ...] | None) -> tuple[list[Target], list[str]]:
    """One target per (file, runtime): every installed runtime that can run the file, or those in ``wanted``.

    Checkpoints always run (they are the reference for agreement). A wanted runtime that is not installed
    gives a note with the install command, and the others carry on. Returns (targets, notes).
    """
    from edge_tl.runtimes.base import runtimes_for

    suffixes = {t.path.suffix for t in targets if t.card}
    known = {n for x in suffixes for n in runtimes_for(x)}
    installed = {n for x in suffixes for n in runtimes_for(x, installed_only=True)}
    missing = sorted((known - installed) & (set(wanted) if wanted is not None else known))
    notes = [f"{n} is not installed, so its rows are skipped (pip install {n})" for n in missing]
    out: list[Target] = []
    for t in targets:
        if t.card is None:
            out.append(t)
            continue
        names = runtimes_for(t.path.suffix, installed_only=True)
        if wanted is not None and t.format != "pytorch":
            names = [n for n in names if n in wanted]
        out += [Target(t.path, t.card, t.error, n) for n in names]
    return out, notes


def for_profile(targets: list[Target], profile: Profile, explicit: bool) -> list[Target]:
    """The targets ``profile`` runs. Named files of another format are an error; discovered ones are skipped."""
    if profile.formats is None:
        return targets
    wanted = "/".join(profile.formats)
    wrong = [t.path.name for t in targets if t.card and t.format not in profile.formats]
    if explicit and wrong:
        raise ConfigError(f"--profile {profile.name} runs {wanted} only, not {', '.join(wrong)}",
                          "drop those files or use --profile desktop")
    kept = [t for t in targets if t.card is None or t.format in profile.formats]
    if not kept:
        raise ArtifactError(f"--profile {profile.name} found no {wanted} artefacts",
                            f"export some with edge-tl export --format {profile.formats[0]}")
    return kept


def eval_set(data: str | None, targets: list[Target], limit: int | None = None, seed: int = 0) -> EvalSet:
    """The images every model is scored on: ``--data`` (a folder or dataset name; its ``test`` split when it
    comes split) or the test split of the first card that names a manifest. ``limit`` keeps a seeded sample."""
    if data:
        from edge_tl.data.sources import resolve_dataset

        ds = resolve_dataset(data)
        pairs = list(zip(ds.files, ds.labels))
        if ds.splits and "test" in ds.splits:
            pairs = [fl for fl, s in zip(pairs, ds.splits) if s == "test"]
        es = EvalSet(str(data), tuple(ds.classes), tuple(p for p, _ in pairs), tuple(lab for _, lab in pairs))
    else:
        from edge_tl.data.manifest import manifest_for_card

        cards = [t.card for t in targets if t.card and t.card.manifest]
        if not cards:
            raise DataError("no evaluation data: no model card names a split manifest", "pass --data PATH")
        m = manifest_for_card(cards[0])
        es = EvalSet(f"test split of {cards[0].run_dir or 'the run'}", tuple(m.classes), tuple(m.files("test")),
                     tuple(m.labels("test")))
    es = _clean(es)
    if not es.files:
        raise DataError(f"no usable evaluation images in {es.source}",
                        "pass --data with a folder of labelled images")
    if limit and limit < len(es.files):
        import numpy as np

        keep = sorted(np.random.default_rng(seed).choice(len(es.files), size=limit, replace=False).tolist())
        es = EvalSet(es.source, es.classes, tuple(es.files[i] for i in keep), tuple(es.labels[i] for i in keep),
                     es.skipped)
    return es


def _clean(es: EvalSet) -> EvalSet:
    """``es`` without the files the hygiene scan refuses (empty, not images, truncated...), listed in ``skipped``."""
    from edge_tl.data.hygiene import scan

    if not es.files:
        return es
    report = scan(list(es.files), list(es.labels), classes=es.classes, progress=False)
    if not report.bad:
        return es
    bad = {str(b.path) for b in report.bad}
    keep = [i for i, f in enumerate(es.files) if str(f) not in bad]
    return EvalSet(es.source, es.classes, tuple(es.files[i] for i in keep), tuple(es.labels[i] for i in keep),
                   tuple(f"{b.path}: {b.reason}" for b in report.bad))


def check_classes(es: EvalSet, target: Target) -> tuple[int, ...]:
    """``es`` labels in ``target``'s class order; different class names raise :class:`DataError`."""
    assert target.card is not None
    model = target.card.classes
    if set(model) != set(es.classes):
        missing, extra = sorted(set(model) - set(es.classes)), sorted(set(es.classes) - set(model))
        detail = "; ".join(s for s in (f"model only: {', '.join(missing[:5])}" if missing else "",
                                       f"data only: {', '.join(extra[:5])}" if extra else "") if s)
        raise DataError(f"the eval data's classes differ from {target.path.name}'s ({detail})",
                        "pass --data with the classes the model was trained on")
    remap = [model.index(c) for c in es.classes]
    return tuple(remap[i] for i in es.labels)

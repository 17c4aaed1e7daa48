"""Gather what the other commands wrote about one run into report sections.

Inputs (all read from disk, all untrusted): the run folder of ``edge-tl train`` (``card.json``,
``history.json``, ``curves.png``, ``confusion.png``), the cards embedded in the artefacts of ``edge-tl export``
(their ``parity`` dicts), ``bench.json`` + ``bench.png``, ``attack.json`` + the PNGs in ``attack/``, and
``ideal.png`` of ``edge-tl visualize``. An input that is absent gives a section that says which command makes
it; an input named explicitly on the command line that is absent is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_tl.card import ModelCard
from edge_tl.errors import CardError, ConfigError, DataError
from edge_tl.report.tables import (
    Block,
    Note,
    Table,
    figure,
    read_json,
    table_from_mapping,
    table_from_rows,
    tables_from_json,
)

MAX_FIGURES = 24


@dataclass(frozen=True)
class ReportInputs:
    """Resolved input locations; ``None`` means "not produced yet"."""

    run: Path
    exported: Path | None
    bench: Path | None
    attack: Path | None

    @classmethod
    def resolve(cls, run: Path, exported: Path | None = None, bench: Path | None = None,
                attack: Path | None = None) -> ReportInputs:
        """Check the run folder and any explicitly named input; fill in the defaults that exist."""
        run = Path(run)
        if not run.exists():
            raise DataError(f"no run folder {run}",
                            "train one first (`edge-tl train --data PATH`) or name an existing runs/NAME")
        if not run.is_dir():
            raise DataError(f"{run} is not a run folder", "give the folder written by `edge-tl train` (runs/NAME)")
        if not (run / "card.json").is_file():
            raise CardError(f"{run} has no card.json, so it is not an edge-tl run",
                            "give the folder written by `edge-tl train` (runs/NAME)")
        return cls(run=run,
                   exported=_named_or_default(exported, Path("exported"), "--exported", want_dir=True),
                   bench=_named_or_default(bench, run / "bench.json", "--bench", want_dir=False),
                   attack=_named_or_default(attack, run / "attack.json", "--attack", want_dir=False))


def _named_or_default(given: Path | None, default: Path, flag: str, want_dir: bool) -> Path | None:
    kind = "folder" if want_dir else "file"
    if given is None:
        ok = default.is_dir() if want_dir else default.is_file()
        return default if ok else None
    given = Path(given)
    if not given.exists():
        raise DataError(f"{flag} {given} does not exist", f"give an existing {kind} or leave {flag} out")
    if want_dir != given.is_dir():
        raise DataError(f"{flag} {given} is not a {kind}", f"give a {kind} to {flag}")
    return given


@dataclass(frozen=True)
class Section:
    """One part of the report; ``present`` says whether its inputs were found."""

    key: str
    title: str
    blocks: tuple[Block, ...]
    present: bool


@dataclass(frozen=True)
class Report:
    """Everything the HTML page shows."""

    title: str
    run: Path
    card: ModelCard
    sections: tuple[Section, ...]


def load_run_card(run: Path) -> tuple[ModelCard, dict[str, Any]]:
    """The validated card of a run and its raw JSON dict."""
    raw = read_json(run / "card.json", "model card", "edge-tl train")
    return ModelCard.from_json(raw), raw


def _card_section(inp: ReportInputs, card: ModelCard) -> tuple[list[Block], bool]:
    d = card.to_json()
    overview = {"backbone": d["backbone"], "weights": d["weights"], "format": d["format"],
                "classes": f"{card.num_classes}: " + ", ".join(card.classes), "created": d["created"],
                "source_sha256": d["source_sha256"], "manifest": d["manifest"], "run_dir": d["run_dir"]}
    blocks: list[Block] = [table_from_mapping(overview, "overview"), table_from_mapping(d["input"], "input spec")]
    if d["quantization"]:
        blocks.append(table_from_mapping(d["quantization"], "quantization"))
    blocks.append(table_from_mapping(d["metrics"], "metrics") if d["metrics"] else Note("no metrics recorded."))
    if d["versions"]:
        blocks.append(table_from_mapping(d["versions"], "versions"))
    return blocks, True


def _training_section(inp: ReportInputs, card: ModelCard) -> tuple[list[Block], bool]:
    blocks: list[Block] = []
    for name, caption in (("curves.png", "training curves"), ("confusion.png", "confusion matrix")):
        if (inp.run / name).is_file():
            blocks.append(figure(inp.run / name, caption))
    history = inp.run / "history.json"
    if history.is_file():
        blocks.extend(tables_from_json(read_json(history, "training history", "edge-tl train"), "history"))
    if not blocks:
        return [Note("not run yet (no curves.png, confusion.png or history.json): run", "edge-tl train")], False
    return blocks, True


def _same_run(meta: dict[str, Any], run: Path, run_sha: str | None) -> bool:
    run_dir = meta.get("run_dir")
    if isinstance(run_dir, str) and run_dir:
        try:
            if Path(run_dir).resolve() == run.resolve():
                return True
        except (OSError, RuntimeError, ValueError):
            pass
    return run_sha is not None and meta.get("source_sha256") == run_sha


def _parity_row(artefact: Path, meta: dict[str, Any]) -> dict[str, Any]:
    quant = meta.get("quantization")
    row: dict[str, Any] = {
        "artefact": artefact.name,
        "format": meta.get("format"),
        "quantization": quant.get("mode", "?") if isinstance(quant, dict) else "float",
        "MiB": round(artefact.stat().st_size / 2**20, 3),
    }
    parity = meta.get("parity")
    row.update(parity if isinstance(parity, dict) else {"parity": "not checked"})
    return row


def _parity_section(inp: ReportInputs, card: ModelCard) -> tuple[list[Block], bool]:
    if inp.exported is None:
        return [Note("not run yet (no exported/ folder): run", "edge-tl export --format all --quantize int8")], False
    from edge_tl._io import sha256_file
    from edge_tl.report.artefacts import UnreadableArtefact, artefact_card, artefacts

    model_pt = inp.run / "model.pt"
    run_sha = sha256_file(model_pt) if model_pt.is_file() else None
    rows, notes = [], []
    for path in artefacts(inp.exported):
        try:
            meta = artefact_card(path)
        except UnreadableArtefact as exc:
            notes.append(Note(f"skipped {path.name}: {exc}."))
            continue
        if _same_run(meta, inp.run, run_sha):
            rows.append(_parity_row(path, meta))
    if not rows:
        return [Note(f"no artefacts of this run in {inp.exported}: run", "edge-tl export"), *notes], False
    first = ("artefact", "format", "quantization", "MiB")
    return [table_from_rows(rows, f"artefacts in {inp.exported}", first=first), *notes], True


def _figures(paths: list[Path], caption: str) -> list[Block]:
    blocks: list[Block] = [figure(p, f"{caption}: {p.name}") for p in paths[:MAX_FIGURES]]
    if len(paths) > MAX_FIGURES:
        blocks.append(Note(f"{len(paths) - MAX_FIGURES} more images not shown."))
    return blocks


def _result_images(path: Path, run: Path, image_dir: bool) -> list[Path]:
    """``X.png`` beside ``X.json``; for attacks also the PNGs in ``X/`` and, when the JSON lives in its own
    output folder (``attacks/NAME/attack.json``), the PNGs beside it."""
    images = [path.with_suffix(".png")] if path.with_suffix(".png").is_file() else []
    if image_dir:
        folders = [path.with_suffix("")]
        if path.parent.resolve() != run.resolve():
            folders.append(path.parent)
        for folder in folders:
            if folder.is_dir():
                images += sorted(p for p in folder.glob("*.png") if p.is_file() and p not in images)
    return images


def _result_section(path: Path | None, run: Path, what: str, producer: str,
                    image_dir: bool) -> tuple[list[Block], bool]:
    if path is None:
        return [Note(f"not run yet (no {what} results): run", producer)], False
    blocks: list[Block] = list(tables_from_json(read_json(path, f"{what} results", producer), what))
    if not blocks:
        blocks.append(Note(f"{path} holds no results."))
    return blocks + _figures(_result_images(path, run, image_dir), what), True


def _bench_section(inp: ReportInputs, card: ModelCard) -> tuple[list[Block], bool]:
    producer = "edge-tl bench --json RUN/bench.json --plot RUN/bench.png"
    return _result_section(inp.bench, inp.run, "bench", producer, False)


def _attack_section(inp: ReportInputs, card: ModelCard) -> tuple[list[Block], bool]:
    producer = "edge-tl attack --model exported/model.onnx --json RUN/attack.json --out RUN/attack/"
    return _result_section(inp.attack, inp.run, "attack", producer, True)


def _ideal_section(inp: ReportInputs, card: ModelCard) -> tuple[list[Block], bool]:
    images = sorted(p for p in inp.run.glob("ideal*.png") if p.is_file())
    if not images:
        return [Note("not run yet (no ideal.png): run", "edge-tl visualize")], False
    return _figures(images, "ideal class image"), True


SectionBuilder = Callable[[ReportInputs, ModelCard], "tuple[list[Block], bool]"]

# key, heading, builder: the order of the page.
SECTIONS: tuple[tuple[str, str, SectionBuilder], ...] = (
    ("card", "Model card", _card_section),
    ("training", "Training", _training_section),
    ("parity", "Exported artefacts and parity", _parity_section),
    ("bench", "Latency benchmark", _bench_section),
    ("robustness", "Adversarial robustness", _attack_section),
    ("ideal", "Ideal class image", _ideal_section),
)


def collect(inputs: ReportInputs) -> Report:
    """Build every section of the report for ``inputs``."""
    card, _ = load_run_card(inputs.run)
    sections = []
    for key, title, build in SECTIONS:
        blocks, present = build(inputs, card)
        sections.append(Section(key=key, title=title, blocks=tuple(blocks), present=present))
    name = inputs.run.resolve().name
    return Report(title=f"edge-tl report: {name}", run=inputs.run, card=card, sections=tuple(sections))


def check_out(out: Path) -> Path:
    """Refuse an output path that is a folder before any work is done."""
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder", "give a file name such as report.html")
    return out


__all__ = ["SECTIONS", "Report", "ReportInputs", "Section", "Table", "check_out", "collect", "load_run_card"]

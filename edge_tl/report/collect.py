"""Gather what the other commands wrote about one run into the verdict and one section per stage.

Inputs (all read from disk, all untrusted): the run folder of ``edge-tl train`` (``card.json``, ``split.json``,
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
from edge_tl.report import stages
from edge_tl.report.tables import Block, Note, Table, read_json
from edge_tl.report.verdict import Verdict, decide


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
    """One part of the report: what it shows in a sentence or two, its blocks, and whether its inputs were found."""

    key: str
    title: str
    blocks: tuple[Block, ...]
    present: bool
    intro: str = ""


@dataclass(frozen=True)
class Report:
    """Everything the HTML page and the Markdown summary show."""

    title: str
    run: Path
    card: ModelCard
    verdict: Verdict
    sections: tuple[Section, ...]


def load_run_card(run: Path) -> tuple[ModelCard, dict[str, Any]]:
    """The validated card of a run and its raw JSON dict."""
    raw = read_json(run / "card.json", "model card", "edge-tl train")
    return ModelCard.from_json(raw), raw


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
    return {"artefact": artefact.name, "format": meta.get("format"),
            "quantization": quant.get("mode", "?") if isinstance(quant, dict) else "float",
            "size_mb": artefact.stat().st_size / 1e6,
            "parity": meta.get("parity") if isinstance(meta.get("parity"), dict) else None}


def exported_rows(inp: ReportInputs) -> tuple[list[dict[str, Any]], list[Note]]:
    """One row per artefact of this run in the exported folder (matched by run folder or checkpoint hash),
    and a note per file whose card could not be read."""
    if inp.exported is None:
        return [], []
    from edge_tl._io import sha256_file
    from edge_tl.report.artefacts import UnreadableArtefact, artefact_card, artefacts

    model_pt = inp.run / "model.pt"
    run_sha = sha256_file(model_pt) if model_pt.is_file() else None
    rows, notes = [], []
    for path in artefacts(inp.exported):
        try:
            meta = artefact_card(path)
        except UnreadableArtefact as exc:
            notes.append(Note(f"Skipped {path.name}: {exc}."))
            continue
        if _same_run(meta, inp.run, run_sha):
            rows.append(_parity_row(path, meta))
    return rows, notes


SectionBuilder = Callable[[ReportInputs, ModelCard], "stages.Built"]

# key, heading, builder: the order of the page after the verdict.
SECTIONS: tuple[tuple[str, str, SectionBuilder], ...] = (
    ("data", "Data", stages.data_section),
    ("training", "Training", stages.training_section),
    ("parity", "Export and parity", lambda inp, card: stages.parity_section(inp, card, *exported_rows(inp))),
    ("bench", "Benchmark", stages.bench_section),
    ("robustness", "Robustness", stages.attack_section),
    ("ideal", "Ideal class images", stages.ideal_section),
)


def collect(inputs: ReportInputs) -> Report:
    """Build the verdict and every section of the report for ``inputs``."""
    card, _ = load_run_card(inputs.run)
    sections = []
    for key, title, build in SECTIONS:
        intro, blocks, present = build(inputs, card)
        sections.append(Section(key=key, title=title, blocks=tuple(blocks), present=present, intro=intro))
    rows, _ = exported_rows(inputs)
    bench = read_json(inputs.bench, "bench results", "edge-tl bench") if inputs.bench else None
    name = inputs.run.resolve().name
    return Report(title=f"edge-tl report: {name}", run=inputs.run, card=card, verdict=decide(rows, bench),
                  sections=tuple(sections))


def check_out(out: Path, flag: str = "--out") -> Path:
    """Refuse an output path that is a folder before any work is done."""
    if out.is_dir():
        example = "summary.md" if flag == "--md" else "report.html"
        raise ConfigError(f"{flag} {out} is a folder", f"give a file name such as {example}")
    return out


__all__ = ["SECTIONS", "Report", "ReportInputs", "Section", "Table", "check_out", "collect", "exported_rows",
           "load_run_card"]

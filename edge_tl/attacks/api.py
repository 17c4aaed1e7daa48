"""The attack entry point behind ``edge-tl attack``: models, surrogate and images in; ``attack.json``,
``robustness.png``, ``examples.png`` and the finished cells in ``out_dir``; the :class:`AttackOutcome` back.

Progress goes to an :class:`edge_tl.progress.Reporter` (one task per unit of work: a clean pass, or an attack at
an eps); choices that change what runs (no surrogate, skipped files, fewer images than asked) are notes on the
reporter and in the report. Nothing here prints or installs signal handlers: the CLI does.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_tl.attacks.registry import AttackSettings
from edge_tl.attacks.results import AttackReport
from edge_tl.errors import ConfigError
from edge_tl.progress import Reporter, of

DEFAULT_ATTACKS = ("fgsm", "pgd", "square", "hopskipjump")
DEFAULT_EPS = {"linf": (1 / 255, 2 / 255, 4 / 255, 8 / 255), "l2": (0.25, 0.5, 1.0, 2.0)}
DEFAULT_N = 100


@dataclass(frozen=True)
class AttackRequest:
    """What to attack and how; ``eps=None`` takes :data:`DEFAULT_EPS` of the settings' norm, ``out=None``
    ``attacks/<first model's stem>``."""

    models: tuple[Path, ...]
    data: str | None = None
    n_images: int = DEFAULT_N
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    eps: tuple[float, ...] | None = None
    settings: AttackSettings = field(default_factory=AttackSettings)
    surrogate: Path | None = None
    target_class: str | None = None
    source_class: str | None = None
    resume: bool = False
    out: Path | None = None
    threads: int | None = None


@dataclass(frozen=True)
class AttackOutcome:
    """The report and where its files went."""

    report: AttackReport
    out_dir: Path
    files: tuple[Path, ...]

    def to_json(self) -> dict[str, Any]:
        return self.report.to_json()


def out_dir_for(req: AttackRequest) -> Path:
    """The output folder of ``req`` (``--out``, else ``attacks/<model name>``)."""
    from edge_tl.attacks.inputs import model_names

    return Path(req.out) if req.out is not None else Path("attacks") / Path(model_names(list(req.models))[0]).stem


def cells_kept(out_dir: Path) -> int:
    """Finished cells in ``out_dir`` (what an interrupted run keeps for ``--resume``)."""
    return len(list((Path(out_dir) / "cells").glob("*.npz")))


def attack(req: AttackRequest, reporter: Reporter | None = None) -> AttackOutcome:
    """Attack every model of ``req`` (see :func:`edge_tl.attacks.engine.run_attacks`) and write the outputs."""
    from edge_tl._io import atomic_write_json, ensure_writable_dir
    from edge_tl.attacks import inputs
    from edge_tl.attacks.cells import CellStore, fingerprint
    from edge_tl.attacks.engine import plan_steps, run_attacks
    from edge_tl.attacks.pixels import torch_threads
    from edge_tl.attacks.plots import image_grid, robustness_curve
    from edge_tl.attacks.registry import get_attack

    rep = of(reporter)
    settings = req.settings
    eps = list(req.eps or DEFAULT_EPS[settings.norm])
    attacks = list(req.attacks)
    rts = inputs.load_models(list(req.models), threads=req.threads)
    card = rts[0].card
    target_idx = inputs.resolve_target(req.target_class, card.classes)
    source_idx = inputs.resolve_target(req.source_class, card.classes)
    if source_idx is not None and source_idx == target_idx:
        raise ConfigError("the source and target class are the same", "pick another --source-class")
    notes: list[str] = []
    sur = None
    if any(get_attack(a).kind == "whitebox" for a in attacks):
        sur_path = inputs.find_surrogate(req.surrogate, rts)
        if sur_path is None:
            notes.append("no surrogate checkpoint found (the card names no run folder with a model.pt): white-box "
                         "attacks skipped, black-box ones run; pass --surrogate runs/NAME/model.pt")
        else:
            sur = inputs.load_surrogate(sur_path, card)
    data = inputs.load_data(card, Path(rts[0].path), req.data, req.n_images, settings.seed, only_class=source_idx)
    for note in notes + list(data.notes):
        rep.note(note, level="warning")
    out_dir = ensure_writable_dir(out_dir_for(req))
    names = inputs.model_names(list(req.models))
    store = CellStore(out_dir / "cells", fingerprint(
        data.images, data.labels, models=names, files=[inputs.file_identity(rt.path) for rt in rts],
        surrogate=str(sur.path) if sur else None, attacks=attacks, eps=eps, settings=repr(settings),
        target=req.target_class, source=req.source_class), req.resume)
    models = dict(zip(names, rts))
    own = sur is not None and any(Path(rt.path).resolve() == Path(sur.path).resolve() for rt in rts)
    total = plan_steps(len(models), attacks, eps, sur is not None and not own, settings.norm)
    with _TickReporter(rep, total) as tick, torch_threads(rts[0].threads if sur is not None else None):
        run = run_attacks(models, data.images, data.labels, card.classes, attacks, eps, settings,
                          surrogate=sur.module if sur else None, surrogate_name=sur.name if sur else "surrogate",
                          target_class=target_idx, report_surrogate=not own, progress=tick, store=store,
                          source_class=source_idx)
    report = replace(run.report, notes=tuple(notes) + tuple(data.notes) + run.report.notes,
                     config={**run.report.config, "data": data.source, "models": [str(p) for p in req.models],
                             "surrogate": str(sur.path) if sur else None})
    atomic_write_json(out_dir / "attack.json", report.to_json())
    files = (out_dir / "attack.json", robustness_curve(report, out_dir / "robustness.png"),
             image_grid(run.examples, card.classes, out_dir / "examples.png"))
    return AttackOutcome(report, out_dir, files)


class _TickReporter(contextlib.AbstractContextManager):
    """Turns the engine's :class:`~edge_tl.attacks.engine.Tick` stream into reporter tasks: one task per unit
    (``[k/total] unit``, counted in images), a note for each unit read back from the cells."""

    def __init__(self, rep: Reporter, total: int) -> None:
        self.rep, self.total, self.done = rep, total, 0
        self._stack = contextlib.ExitStack()
        self._unit: str | None = None
        self._advance: Any = None
        self._seen = 0

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _close(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self._unit, self._advance, self._seen = None, None, 0

    def __call__(self, t: Any) -> None:
        if t.resumed:
            self._close()
            self.done += 1
            self.rep.note(f"[{self.done}/{self.total}] {t.unit} (resumed)")
            return
        if t.unit != self._unit:
            self._close()
            self._unit = t.unit
            label = f"[{self.done + 1}/{self.total}] {t.unit}"
            self._advance = self._stack.enter_context(self.rep.task(label, total=t.n_images, unit="img"))
        if t.images_done > self._seen:
            self._advance(t.images_done - self._seen)
            self._seen = t.images_done
        if t.finished:
            self.done += 1
            self._close()


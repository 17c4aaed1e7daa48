"""Run registered attacks against several models and judge every adversarial honestly.

Honest numbers: only images a model classified correctly are attacked (and, in targeted mode, only those whose
class is not the target); every adversarial is projected into its eps ball (L-inf or L2), rounded to 8 bits and
clipped before the model judges it, so the measured norm never exceeds eps; norms are measured on that 8-bit
image. White-box attacks are crafted once per eps on the surrogate and transferred to every model (and judged on
the surrogate itself); black-box attacks query each model directly. Each finished (model, attack, eps) cell goes
to an optional :class:`~edge_tl.attacks.cells.CellStore` at once (and is read back from it instead of being
recomputed); the worst case over attacks per model and eps is added at the end.

With ``settings.early_stop`` (the default) the attacks run as AutoAttack's standard evaluation: in order, each
one at an eps only on the images no earlier attack fooled there, budgets from small to large with an image
fooled at an eps counted as fooled at the larger ones; the worst case is the same as without, for much less
work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_tl.attacks.cells import Cell, CellKey, CellStore
from edge_tl.attacks.pixels import (
    CHUNK,
    check_eps,
    perturbation_norms,
    pixel_runtime,
    quantize_adversarial,
)
from edge_tl.attacks.registry import AttackSettings, AttackSpec, get_attack
from edge_tl.attacks.results import WORST_CASE, AttackReport, AttackResult
from edge_tl.attacks.tally import fmt_eps, ids_kwarg, queries_sent, rate, trim_heap
from edge_tl.errors import ConfigError
from edge_tl.runtimes import run_batched
from edge_tl.runtimes.base import Runtime, softmax

JUDGE_BATCH = 8
"""Rows per model call of the clean and judging passes (a small share of the work): a runtime's buffers grow
with its largest batch (ONNX Runtime holds about 0.45 GB after batches of 32 of a 224-px MobileNetV2, 0.1 GB
after batches of 8), and these passes run while the surrogate's gradients are in memory. Black-box queries go
``settings.batch_size`` rows per call."""


@dataclass(frozen=True)
class Tick:
    """Progress of one unit of work (a clean pass, or the cells of one attack at one eps on one model):
    ``finished`` once per unit, after its cells are stored; ``resumed`` when they were read back instead."""

    unit: str
    images_done: int
    n_images: int
    fraction: float
    finished: bool = False
    resumed: bool = False


Progress = Callable[[Tick], None]


@dataclass(frozen=True)
class Example:
    """One image for the grid: original and 8-bit adversarial with predicted class index and confidence."""

    model: str
    attack: str
    eps: float
    original: np.ndarray
    adversarial: np.ndarray
    label: int
    clean_pred: int
    clean_conf: float
    adv_pred: int
    adv_conf: float
    norm: str = "linf"


@dataclass(frozen=True)
class AttackRun:
    """The report plus example images for the grid plot."""

    report: AttackReport
    examples: tuple[Example, ...] = field(default_factory=tuple)


def _runnable(specs: Sequence[AttackSpec], norm: str) -> list[AttackSpec]:
    return [s for s in specs if norm in s.norms]


def plan_steps(n_models: int, attacks: Sequence[str], eps: Sequence[float], surrogate: bool,
               norm: str = "linf") -> int:
    """Finished units :func:`run_attacks` reports through its progress callback (``n_models`` models, plus the
    surrogate when given and a white-box attack is asked for)."""
    specs = _runnable([get_attack(a) for a in attacks], norm)
    steps = n_models + int(bool(surrogate) and any(s.kind == "whitebox" for s in specs))  # clean accuracy
    for spec in specs:
        if spec.kind == "whitebox":
            steps += len(eps) if surrogate else 0
        else:
            steps += n_models * (len(eps) if spec.eps_bounded else 1)
    return steps


def run_attacks(models: Mapping[str, Runtime], images: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                attacks: Sequence[str], eps: Sequence[float], settings: AttackSettings | None = None, *,
                surrogate: Any = None, surrogate_name: str = "surrogate", target_class: int | None = None,
                progress: Progress | None = None, n_examples: int = 2, report_surrogate: bool = True,
                store: CellStore | None = None, source_class: int | None = None) -> AttackRun:
    """Attack every model (display name -> :class:`~edge_tl.runtimes.base.Runtime`) with every attack at every
    eps; ``surrogate`` is a pixel-space torch module (NCHW [0, 1] in) used to craft white-box attacks, or None
    (white-box attacks are then skipped, with a note). Every model, the surrogate's judged row included, is run
    through its Runtime. ``n_examples`` images per attack on the first model, at the largest eps, are kept for
    the image grid.
    White-box attacks are also judged on the surrogate itself unless ``report_surrogate`` is False (when the
    surrogate is one of the targets already). ``source_class`` only labels the results (the caller chose the
    images); ``store`` keeps finished cells and supplies them on a resumed run."""
    settings = settings or AttackSettings()
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ConfigError("attack images must be uint8 (N, H, W, 3)")
    eps = sorted(check_eps(e, settings.norm) for e in eps)
    asked = [get_attack(a) for a in attacks]
    specs = _runnable(asked, settings.norm)
    if target_class is not None and not (0 <= target_class < len(classes)):
        raise ConfigError(f"target class index {target_class} out of range")
    labels = np.asarray(labels, np.int64)
    notes: list[str] = [f"{s.name} has no {settings.norm} variant: skipped" for s in asked if s not in specs]
    if surrogate is None and any(s.kind == "whitebox" for s in specs):
        notes.append("no surrogate checkpoint: white-box attacks (" + ", ".join(
            s.name for s in specs if s.kind == "whitebox") + ") skipped")
    judged = dict(models)
    if report_surrogate and surrogate is not None and any(s.kind == "whitebox" for s in specs):
        judged[surrogate_name] = pixel_runtime(surrogate, images.shape[1], classes, surrogate_name)
    state = _State(images, labels, classes, target_class, settings, eps, n_examples,
                   next(iter(judged), ""), progress, store, source_class)
    for name, rt in judged.items():
        state.clean(name, rt)
    for spec in specs:
        if spec.kind == "whitebox":
            if surrogate is not None:
                for e in eps:
                    state.whitebox(spec, surrogate, judged, e, surrogate_name)
            continue
        trim_heap()  # the surrogate's freed activations, before the black-box attacks fill the runtime's buffers
        for name, rt in models.items():
            state.blackbox(spec, name, rt)
    results = state.results + state.worst_cases(list(judged))
    if settings.early_stop and len(specs) > 1:
        notes.append("early stop (AutoAttack's standard evaluation): each attack ran only on the images the "
                     f"attacks before it ({' > '.join(s.name for s in specs)}) left robust at that eps, and an "
                     "image fooled at an eps counts as fooled at the larger ones; each row is cumulative (the last "
                     "one equals the worst case); --no-early-stop runs every attack alone on every image")
    sent = queries_sent(state.results, specs)
    rates = {m: q / sec for m, (q, sec) in sent.items() if q and sec > 0}
    notes += [f"black-box queries/s on {m}: {r:.1f} ({sent[m][0]} queries)" for m, r in rates.items()]
    report = AttackReport(
        results=tuple(results), clean_accuracy={m: state.clean_acc[m] for m in judged},
        n_images=len(images), classes=tuple(classes), notes=tuple(notes),
        config={"attacks": [s.name for s in specs], "eps": eps, "norm": settings.norm, "steps": settings.steps,
                "step_size": settings.step_size, "queries": settings.queries, "seed": settings.seed,
                "early_stop": settings.early_stop, "queries_per_s": rates,
                "target_class": classes[target_class] if target_class is not None else None,
                "source_class": classes[source_class] if source_class is not None else None})
    return AttackRun(report, tuple(state.grid_examples()))


class _State:
    """Book-keeping shared by the loops of :func:`run_attacks`.

    With ``settings.early_stop`` it also keeps, per model and eps, the images already fooled (``won``) and
    those still robust (``robust``) after the attacks run so far; an attack at eps e only runs on the eligible
    images not yet fooled at e, and what it fools at e is fooled at every larger eps too. Its cell's flags are
    then cumulative (robust to this attack and every earlier one)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, classes: Sequence[str], target_class: int | None,
                 settings: AttackSettings, eps: list[float], n_examples: int, example_model: str,
                 progress: Progress | None, store: CellStore | None, source_class: int | None) -> None:
        self.x, self.y, self.classes, self.settings, self.eps = x, y, list(classes), settings, eps
        self.target_class, self.n_examples, self.example_model = target_class, n_examples, example_model
        self.tick, self.store, self.source_class = progress or (lambda _t: None), store, source_class
        self.tl = None if target_class is None else np.full(len(y), target_class, np.int64)
        self.clean_acc: dict[str, float] = {}
        self.clean_pred: dict[str, np.ndarray] = {}
        self.clean_conf: dict[str, np.ndarray] = {}
        self.correct: dict[str, np.ndarray] = {}
        self.eligible: dict[str, np.ndarray] = {}
        self.won: dict[str, dict[float, np.ndarray]] = {}
        self.robust: dict[str, dict[float, np.ndarray]] = {}
        self.results: list[AttackResult] = []
        self.cells: dict[CellKey, Cell] = {}
        self.examples: dict[str, tuple[float, tuple[Example, ...]]] = {}
        self.judge_batch = min(settings.batch_size, JUDGE_BATCH)

    def clean(self, name: str, rt: Runtime) -> None:
        self.tick(Tick(f"clean accuracy of {name}", 0, len(self.x), 0.0))
        logits = run_batched(rt, self.x, self.judge_batch) if len(self.x) else np.zeros((0, 0), np.float32)
        probs = softmax(logits) if len(logits) else np.zeros((0, 1), np.float32)
        pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
        correct = pred == self.y
        self.clean_acc[name] = float(correct.mean()) if len(correct) else 0.0
        self.clean_pred[name], self.clean_conf[name] = pred, probs.max(axis=1) if len(probs) else probs[:, 0]
        self.correct[name] = correct
        ok = correct if self.tl is None else correct & (self.y != self.tl)
        self.eligible[name] = np.flatnonzero(ok)
        self.won[name] = {e: np.zeros(len(self.x), bool) for e in self.eps}
        self.robust[name] = {e: correct.copy() for e in self.eps}
        self.tick(Tick(f"clean accuracy of {name}", len(self.x), len(self.x), 1.0, finished=True))

    def todo(self, name: str, eps: float) -> np.ndarray:
        """The images to attack on model ``name`` at ``eps``: eligible, and (early stop) not fooled yet."""
        idx = self.eligible[name]
        return idx[~self.won[name][eps][idx]] if self.settings.early_stop else idx

    def _resume(self, keys: list[CellKey], unit: str) -> bool:
        """Adopt stored cells for every key, if all are there."""
        if self.store is None:
            return False
        cells = [self.store.get(k) for k in keys]
        if any(c is None for c in cells):
            return False
        for k, c in zip(keys, cells):
            self._add(k, c, store=False)
        self.tick(Tick(unit, len(self.x), len(self.x), 1.0, finished=True, resumed=True))
        return True

    def _add(self, key: CellKey, cell: Cell, store: bool = True) -> None:
        if store and self.store is not None:
            self.store.put(key, cell)
        self.cells[key] = cell
        self.results.append(cell.result)
        model, attack, eps = key
        if self.settings.early_stop:  # an adversarial within eps lies within every larger eps too
            for e in self.eps:
                if e >= eps:
                    self.won[model][e] |= cell.success
                    self.robust[model][e] &= cell.robust
        ok = [ex for ex in cell.examples if ex.adv_pred != ex.label]
        have = self.examples.get(attack)
        if cell.examples and (have is None or ok or not any(ex.adv_pred != ex.label for ex in have[1])):
            self.examples[attack] = (eps, cell.examples)

    def _progress(self, unit: str, n: int, offset: int = 0) -> Callable[[int, float], None]:
        """Progress of one attack call; ``offset`` images of the unit were done by earlier calls."""
        if offset:
            return lambda done, _f: self.tick(Tick(unit, offset + int(done), n, (offset + int(done)) / n))
        return lambda done, frac: self.tick(Tick(unit, int(done), n, float(frac)))

    def whitebox(self, spec: AttackSpec, surrogate: Any, models: Mapping[str, Runtime], eps: float,
                 sur_name: str) -> None:
        unit = f"{spec.name} eps={fmt_eps(eps, self.settings.norm)}"
        keys = [(m, spec.name, eps) for m in models]
        if self._resume(keys, unit):
            return
        todo = {m: self.todo(m, eps) for m in models}
        union = np.unique(np.concatenate(list(todo.values()))) if todo else np.zeros(0, np.int64)
        self.tick(Tick(unit, 0, union.size, 0.0))
        adv = np.empty((len(union), *self.x.shape[1:]), np.uint8)
        for start in range(0, union.size, CHUNK):  # float adversarials of at most CHUNK images at a time
            part = union[start:start + CHUNK]
            tl = None if self.tl is None else self.tl[part]
            crafted = spec.run(surrogate, self.x[part], self.y[part], eps, self.settings, tl,
                               progress=self._progress(unit, union.size, offset=start))
            adv[start:start + part.size] = quantize_adversarial(self.x[part], crafted.adv, eps, self.settings.norm)
            del crafted
        for key, (m, rt) in zip(keys, models.items()):
            idx = todo[m]
            self._add(key, self.judge(m, rt, spec, eps, idx, adv[np.searchsorted(union, idx)], None,
                                      crafted_on=sur_name))
        self.tick(Tick(unit, union.size, union.size, 1.0, finished=True))

    def blackbox(self, spec: AttackSpec, name: str, rt: Runtime) -> None:
        norm = self.settings.norm
        if spec.eps_bounded:
            for e in self.eps:
                unit = f"{spec.name} on {name} eps={fmt_eps(e, norm)}"
                key = (name, spec.name, e)
                if self._resume([key], unit):
                    continue
                idx = self.todo(name, e)
                self.tick(Tick(unit, 0, idx.size, 0.0))
                tl = None if self.tl is None else self.tl[idx]
                t0 = time.perf_counter()
                crafted = spec.run(rt, self.x[idx], self.y[idx], e, self.settings, tl,
                                   progress=self._progress(unit, idx.size), **ids_kwarg(spec, idx))
                qps = rate(crafted.queries, time.perf_counter() - t0)
                adv = quantize_adversarial(self.x[idx], crafted.adv, e, norm)
                self._add(key, self.judge(name, rt, spec, e, idx, adv, crafted.queries, qps=qps,
                                          sent=int(crafted.queries.sum())))
                self.tick(Tick(unit, idx.size, idx.size, 1.0, finished=True))
            return
        unit = f"{spec.name} on {name}"
        keys = [(name, spec.name, e) for e in self.eps]
        if self._resume(keys, unit):
            return
        idx = self.todo(name, self.eps[0])  # fooled at the smallest eps: fooled at all of them
        self.tick(Tick(unit, 0, idx.size, 0.0))
        tl = None if self.tl is None else self.tl[idx]
        seeds = self._seeds(name, idx)
        t0 = time.perf_counter()
        crafted = spec.run(rt, self.x[idx], self.y[idx], None, self.settings, tl, init_images=seeds,
                           stop_at=self.eps[0], progress=self._progress(unit, idx.size), **ids_kwarg(spec, idx))
        qps = rate(crafted.queries, time.perf_counter() - t0)
        for key, e in zip(keys, self.eps):
            keep = ~self.won[name][e][idx] if self.settings.early_stop else np.ones(idx.size, bool)
            adv = quantize_adversarial(self.x[idx[keep]], crafted.adv[keep], e, norm)
            self._add(key, self.judge(name, rt, spec, e, idx[keep], adv, crafted.queries[keep], qps=qps,
                                      sent=int(crafted.queries.sum())))
        self.tick(Tick(unit, idx.size, idx.size, 1.0, finished=True))

    def _seeds(self, name: str, idx: np.ndarray) -> np.ndarray | None:
        """Starting points for a decision-based search: for each attacked image, another image the model
        already puts in the target class (targeted) or in a class other than the image's own (untargeted), the
        closest in L2. None when no such image exists (the attack then starts from random noise)."""
        pred = self.clean_pred[name]
        seeds = np.empty((len(idx), *self.x.shape[1:]), np.uint8)
        for j, i in enumerate(idx):
            pool = np.flatnonzero(pred == self.target_class if self.tl is not None else pred != self.y[i])
            if pool.size == 0:
                return None
            d = perturbation_norms(self.x[pool], np.broadcast_to(self.x[i], self.x[pool].shape))[1]
            seeds[j] = self.x[pool[int(np.argmin(d))]]
        return seeds

    def judge(self, name: str, rt: Runtime, spec: AttackSpec, eps: float, idx: np.ndarray, adv: np.ndarray,
              queries: np.ndarray | None, crafted_on: str | None = None, qps: float | None = None,
              sent: int | None = None) -> Cell:
        """Judge the 8-bit adversarials ``adv`` of images ``idx`` on model ``name``; with early stop the cell's
        flags also hold what earlier attacks (and smaller eps) achieved."""
        n = len(self.x)
        probs = softmax(run_batched(rt, adv, self.judge_batch)) if len(idx) else np.zeros((0, 1))
        pred = probs.argmax(axis=1)
        y = self.y[idx]
        s = pred == self.tl[idx] if self.tl is not None else pred != y
        early = self.settings.early_stop
        robust = self.robust[name][eps].copy() if early else self.correct[name].copy()
        robust[idx[pred != y]] = False
        success = self.won[name][eps].copy() if early else np.zeros(n, bool)
        success[idx[s]] = True
        elig = self.eligible[name]
        linf, l2 = perturbation_norms(self.x[idx], adv)
        conf = probs[np.arange(len(pred)), pred]
        result = AttackResult(
            model=name, attack=spec.name, eps=eps, kind=spec.kind, n_images=n, n_attacked=len(idx),
            clean_accuracy=self.clean_acc[name], robust_accuracy=float(robust.mean()) if n else 0.0,
            success_rate=float(success[elig].mean()) if len(elig) else 0.0,
            median_queries=float(np.median(queries[s])) if queries is not None and s.any() else None,
            mean_linf=float(linf[s].mean()) if s.any() else None,
            mean_l2=float(l2[s].mean()) if s.any() else None,
            max_linf=float(linf.max()) if len(idx) else None,
            target_class=self.classes[self.target_class] if self.target_class is not None else None,
            crafted_on=crafted_on, norm=self.settings.norm,
            median_linf=float(np.median(linf[s])) if s.any() else None,
            median_l2=float(np.median(l2[s])) if s.any() else None,
            median_confidence=float(np.median(conf[s])) if s.any() else None,
            source_class=self.classes[self.source_class] if self.source_class is not None else None,
            queries_per_s=qps, n_fooled=int(s.sum()), queries_sent=sent)
        examples: list[Example] = []
        if name == self.example_model:
            order = np.concatenate([np.flatnonzero(s), np.flatnonzero(~s)])[: self.n_examples]
            for j in order:
                i = idx[j]
                examples.append(Example(
                    name, spec.name, eps, self.x[i], adv[j].copy(), int(self.y[i]), int(self.clean_pred[name][i]),
                    float(self.clean_conf[name][i]), int(pred[j]), float(probs[j].max()), self.settings.norm))
        return Cell(result, robust, success, tuple(examples))

    def grid_examples(self) -> list[Example]:
        """Per attack, the examples of its largest eps where it fooled an image (else its largest eps)."""
        return [ex for _eps, exs in self.examples.values() for ex in exs]

    def worst_cases(self, models: list[str]) -> list[AttackResult]:
        """Per model and eps, an image is robust only if it survived every attack run there."""
        rows = []
        for m in models:
            for e in self.eps:
                cells = [c for (cm, _a, ce), c in self.cells.items() if cm == m and ce == e]
                if not cells:
                    continue
                robust = np.logical_and.reduce([c.robust for c in cells])
                success = np.logical_or.reduce([c.success for c in cells])
                idx = self.eligible[m]
                rows.append(AttackResult(
                    model=m, attack=WORST_CASE, eps=e, kind=WORST_CASE, n_images=len(self.x), n_attacked=len(idx),
                    clean_accuracy=self.clean_acc[m], robust_accuracy=float(robust.mean()) if len(robust) else 0.0,
                    success_rate=float(success[idx].mean()) if len(idx) else 0.0, median_queries=None,
                    mean_linf=None, mean_l2=None, max_linf=max((c.result.max_linf or 0.0) for c in cells),
                    target_class=cells[0].result.target_class, norm=self.settings.norm,
                    source_class=cells[0].result.source_class))
        return rows

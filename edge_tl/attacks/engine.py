"""Run registered attacks against several models and judge every adversarial honestly.

Honest numbers: only images a model classified correctly are attacked (and, in targeted mode, only those whose
class is not the target); every adversarial is projected into its eps ball, rounded to 8 bits and clipped before
the model judges it, so the measured L-inf never exceeds eps; norms are measured on that 8-bit image.
White-box attacks are crafted once per eps on the surrogate and transferred to every model (and judged on the
surrogate itself); black-box attacks query each model directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_tl.attacks.pixels import Predict, batched, check_eps, perturbation_norms, quantize_adversarial, torch_predict
from edge_tl.attacks.registry import AttackSettings, AttackSpec, get_attack
from edge_tl.attacks.results import AttackReport, AttackResult
from edge_tl.errors import ConfigError

Progress = Callable[[str], None]
"""Called once per finished unit of work with a short description."""


@dataclass(frozen=True)
class Target:
    """A model under attack: a display name and a predict function (pixels NHWC -> logits)."""

    name: str
    predict: Predict


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


@dataclass(frozen=True)
class AttackRun:
    """The report plus example images for the grid plot."""

    report: AttackReport
    examples: tuple[Example, ...] = field(default_factory=tuple)


def plan_steps(n_targets: int, attacks: Sequence[str], eps: Sequence[float], surrogate: bool) -> int:
    """Units of work :func:`run_attacks` reports through its progress callback (``n_targets`` models, plus the
    surrogate when given and a white-box attack is asked for)."""
    specs = [get_attack(a) for a in attacks]
    steps = n_targets + int(bool(surrogate) and any(s.kind == "whitebox" for s in specs))  # clean accuracy
    for spec in specs:
        if spec.kind == "whitebox":
            steps += len(eps) if surrogate else 0
        else:
            steps += n_targets * (len(eps) if spec.eps_bounded else 1)
    return steps


def run_attacks(targets: Sequence[Target], images: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                attacks: Sequence[str], eps: Sequence[float], settings: AttackSettings | None = None, *,
                surrogate: Any = None, surrogate_name: str = "surrogate", target_class: int | None = None,
                progress: Progress | None = None, n_examples: int = 2, report_surrogate: bool = True) -> AttackRun:
    """Attack every target with every attack at every eps; ``surrogate`` is a pixel-space torch module
    (NCHW [0, 1] in) used to craft white-box attacks, or None (white-box attacks are then skipped, with a note).
    ``n_examples`` images per attack on the first target, at the largest eps, are kept for the image grid.
    White-box attacks are also judged on the surrogate itself unless ``report_surrogate`` is False (when the
    surrogate is one of the targets already)."""
    settings = settings or AttackSettings()
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ConfigError("attack images must be uint8 (N, H, W, 3)")
    eps = sorted(check_eps(e) for e in eps)
    specs = [get_attack(a) for a in attacks]
    if target_class is not None and not (0 <= target_class < len(classes)):
        raise ConfigError(f"target class index {target_class} out of range")
    labels = np.asarray(labels, np.int64)
    tick = progress or (lambda _d: None)
    notes: list[str] = []
    if surrogate is None and any(s.kind == "whitebox" for s in specs):
        notes.append("no surrogate checkpoint: white-box attacks (" + ", ".join(
            s.name for s in specs if s.kind == "whitebox") + ") skipped")
    all_targets = list(targets)
    if report_surrogate and surrogate is not None and any(s.kind == "whitebox" for s in specs):
        all_targets.append(Target(surrogate_name, torch_predict(surrogate, settings.batch_size)))
    state = _State(images, labels, classes, target_class, settings, eps, n_examples,
                   all_targets[0].name if all_targets else "")
    for t in all_targets:
        state.clean(t)
        tick(f"clean accuracy of {t.name}")
    for spec in specs:
        if spec.kind == "whitebox":
            if surrogate is not None:
                for e in eps:
                    state.whitebox(spec, surrogate, all_targets, e, surrogate_name)
                    tick(f"{spec.name} eps={e * 255:g}/255")
            continue
        for t in targets:
            state.blackbox(spec, t, tick)
    report = AttackReport(
        results=tuple(state.results), clean_accuracy={t.name: state.clean_acc[t.name] for t in all_targets},
        n_images=len(images), classes=tuple(classes), notes=tuple(notes),
        config={"attacks": [s.name for s in specs], "eps": eps, "steps": settings.steps,
                "step_size": settings.step_size, "queries": settings.queries, "seed": settings.seed,
                "target_class": classes[target_class] if target_class is not None else None})
    return AttackRun(report, tuple(state.examples))


class _State:
    """Book-keeping shared by the loops of :func:`run_attacks`."""

    def __init__(self, x: np.ndarray, y: np.ndarray, classes: Sequence[str], target_class: int | None,
                 settings: AttackSettings, eps: list[float], n_examples: int, example_model: str) -> None:
        self.x, self.y, self.classes, self.settings, self.eps = x, y, list(classes), settings, eps
        self.target_class, self.n_examples, self.example_model = target_class, n_examples, example_model
        self.tl = None if target_class is None else np.full(len(y), target_class, np.int64)
        self.clean_acc: dict[str, float] = {}
        self.clean_probs: dict[str, np.ndarray] = {}
        self.eligible: dict[str, np.ndarray] = {}
        self.n_correct: dict[str, int] = {}
        self.results: list[AttackResult] = []
        self.examples: list[Example] = []

    def clean(self, t: Target) -> None:
        logits = batched(t.predict, self.x, self.settings.batch_size)
        pred = logits.argmax(axis=1)
        correct = pred == self.y
        self.clean_acc[t.name] = float(correct.mean()) if len(correct) else 0.0
        self.clean_probs[t.name] = _softmax(logits)
        self.n_correct[t.name] = int(correct.sum())
        ok = correct if self.tl is None else correct & (self.y != self.tl)
        self.eligible[t.name] = np.flatnonzero(ok)

    def whitebox(self, spec: AttackSpec, surrogate: Any, targets: list[Target], eps: float, sur_name: str) -> None:
        union = np.flatnonzero(np.isin(np.arange(len(self.x)), np.concatenate(
            [self.eligible[t.name] for t in targets])))
        adv = np.empty_like(self.x)
        if union.size:
            tl = None if self.tl is None else self.tl[union]
            crafted = spec.run(surrogate, self.x[union], self.y[union], eps, self.settings, tl)
            adv[union] = quantize_adversarial(self.x[union], crafted.adv, eps)
        for t in targets:
            idx = self.eligible[t.name]
            self.judge(t, spec, eps, idx, adv[idx], None, crafted_on=sur_name)

    def blackbox(self, spec: AttackSpec, t: Target, tick: Progress) -> None:
        idx = self.eligible[t.name]
        tl = None if self.tl is None else self.tl[idx]
        if spec.eps_bounded:
            for e in self.eps:
                crafted = spec.run(t.predict, self.x[idx], self.y[idx], e, self.settings, tl)
                self.judge(t, spec, e, idx, quantize_adversarial(self.x[idx], crafted.adv, e), crafted.queries)
                tick(f"{spec.name} on {t.name} eps={e * 255:g}/255")
            return
        crafted = spec.run(t.predict, self.x[idx], self.y[idx], None, self.settings, tl,
                           init_images=self._seeds(t, idx))
        for e in self.eps:
            self.judge(t, spec, e, idx, quantize_adversarial(self.x[idx], crafted.adv, e), crafted.queries)
        tick(f"{spec.name} on {t.name}")

    def _seeds(self, t: Target, idx: np.ndarray) -> np.ndarray | None:
        """Starting points for a decision-based search: for each attacked image, another image the model
        already puts in the target class (targeted) or in a class other than the image's own (untargeted), the
        closest in L2. None when no such image exists (the attack then starts from random noise)."""
        pred = self.clean_probs[t.name].argmax(axis=1)
        flat = self.x.reshape(len(self.x), -1).astype(np.float32)
        seeds = np.empty((len(idx), *self.x.shape[1:]), np.uint8)
        for j, i in enumerate(idx):
            pool = np.flatnonzero(pred == self.target_class if self.tl is not None else pred != self.y[i])
            if pool.size == 0:
                return None
            seeds[j] = self.x[pool[((flat[pool] - flat[i]) ** 2).sum(axis=1).argmin()]]
        return seeds

    def judge(self, t: Target, spec: AttackSpec, eps: float, idx: np.ndarray, adv: np.ndarray,
              queries: np.ndarray | None, crafted_on: str | None = None) -> None:
        n = len(self.x)
        probs = _softmax(batched(t.predict, adv, self.settings.batch_size)) if len(idx) else np.zeros((0, 1))
        pred = probs.argmax(axis=1)
        y = self.y[idx]
        success = pred == self.tl[idx] if self.tl is not None else pred != y
        broken = int((pred != y).sum())
        linf, l2 = perturbation_norms(self.x[idx], adv)
        s = success
        self.results.append(AttackResult(
            model=t.name, attack=spec.name, eps=eps, kind=spec.kind, n_images=n, n_attacked=len(idx),
            clean_accuracy=self.clean_acc[t.name],
            robust_accuracy=(self.n_correct[t.name] - broken) / n if n else 0.0,
            success_rate=float(s.mean()) if len(idx) else 0.0,
            median_queries=float(np.median(queries[s])) if queries is not None and s.any() else None,
            mean_linf=float(linf[s].mean()) if s.any() else None,
            mean_l2=float(l2[s].mean()) if s.any() else None,
            max_linf=float(linf.max()) if len(idx) else None,
            target_class=self.classes[self.target_class] if self.target_class is not None else None,
            crafted_on=crafted_on))
        if eps == self.eps[-1] and t.name == self.example_model:
            order = np.concatenate([np.flatnonzero(s), np.flatnonzero(~s)])[: self.n_examples]
            cp = self.clean_probs[t.name]
            for j in order:
                i = idx[j]
                self.examples.append(Example(
                    t.name, spec.name, eps, self.x[i], adv[j], int(self.y[i]), int(cp[i].argmax()),
                    float(cp[i].max()), int(pred[j]), float(probs[j].max())))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)

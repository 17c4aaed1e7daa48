"""The attack registry: every attack is a function registered with :func:`register_attack`.

An attack declares what it needs from the model (ART's lesson): ``whitebox`` attacks need gradients, so they
are crafted on a PyTorch surrogate in [0, 1] pixel space and transferred to the artefact; ``blackbox`` attacks
only query the artefact's predictions through its :class:`~edge_tl.runtimes.base.Runtime`. Nothing here imports
torch, so listing names for the CLI stays instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_tl.errors import ConfigError
from edge_tl.registry import Registry

KINDS = ("whitebox", "blackbox")
NORMS = ("linf", "l2")


@dataclass(frozen=True)
class AttackSettings:
    """Knobs shared by the attacks. ``step_size`` is a fraction of eps per PGD step (None: 2.5 / steps);
    ``queries`` is the per-image query budget of black-box attacks; ``batch_size`` images go per model call;
    ``norm`` is the threat model (``linf`` or ``l2``), and eps budgets are in its units (pixels in [0, 1]).
    ``early_stop`` (AutoAttack's standard evaluation): an attack at an eps only runs on the images that no
    earlier attack fooled there, and an image fooled at an eps counts as fooled at every larger one (its
    adversarial lies in those balls too); False runs every attack on every image at every eps."""

    steps: int = 10
    step_size: float | None = None
    random_start: bool = True
    queries: int = 1000
    batch_size: int = 16  # rows per black-box call: per-image speed is flat from 8 to 32, memory is not
    seed: int = 0
    norm: str = "linf"
    early_stop: bool = True

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ConfigError(f"norm '{self.norm}' is not one of {', '.join(NORMS)}")
        if self.steps < 1 or self.queries < 1 or self.batch_size < 1:
            raise ConfigError("steps, queries and batch size must be >= 1")
        if self.step_size is not None and not (0 < self.step_size <= 1):
            raise ConfigError(f"step size {self.step_size} must be a fraction of eps in (0, 1]")


@dataclass(frozen=True)
class Crafted:
    """What an attack returns: adversarial images (NHWC, uint8 or float [0, 1]) and, for query attacks, the
    number of model queries spent on each image."""

    adv: np.ndarray
    queries: np.ndarray | None = None


AttackFn = Callable[..., Crafted]


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack.

    ``run`` is called as ``run(model, x, y, eps, settings, target)`` where ``model`` is a pixel-space torch
    module (whitebox) or a predict function ``pixels -> logits`` (blackbox), ``x`` uint8 NHWC, ``y`` labels,
    ``target`` the target labels in targeted mode or None. ``eps_bounded=False`` marks minimum-perturbation
    attacks (HopSkipJump) that run once, ``eps=None``, and are projected onto each eps ball afterwards. A
    black-box attack that takes an ``ids`` keyword gets the images' indices in the full set, to key per-image
    random streams (so attacking a subset leaves each image's search unchanged).
    """

    name: str
    kind: str
    run: AttackFn
    eps_bounded: bool = True
    description: str = ""
    norms: tuple[str, ...] = ("linf",)


def _import_builtin_attacks() -> None:
    from edge_tl.attacks import blackbox, hsj, whitebox  # noqa: F401


ATTACKS: Registry[AttackSpec] = Registry("attack", load=_import_builtin_attacks)


def register_attack(name: str, kind: str, *, eps_bounded: bool = True, description: str = "",
                    norms: tuple[str, ...] = ("linf",)) -> Callable[[AttackFn], AttackFn]:
    """Decorator registering ``fn`` as attack ``name`` for the threat models ``norms``; duplicates and unknown
    kinds raise."""
    if kind not in KINDS:
        raise ConfigError(f"attack kind '{kind}' is not one of {', '.join(KINDS)}")

    def deco(fn: AttackFn) -> AttackFn:
        ATTACKS.add(name, AttackSpec(name, kind, fn, eps_bounded, description or (fn.__doc__ or "").split("\n")[0],
                                     tuple(norms)))
        return fn

    return deco


def list_attacks(kind: str | None = None) -> list[str]:
    """Registered attack names, in registration order (optionally only one kind)."""
    return [n for n, s in ATTACKS.items() if kind is None or s.kind == kind]


def get_attack(name: str) -> AttackSpec:
    """The spec of attack ``name``; unknown names raise with a suggestion and the valid names."""
    return ATTACKS.get(name)


def describe() -> list[dict[str, Any]]:
    """Name, kind and one-line description of every attack (for help text and docs)."""
    return [{"name": s.name, "kind": s.kind, "norms": list(s.norms), "description": s.description}
            for s in ATTACKS.values()]

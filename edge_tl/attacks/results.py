"""Attack results as frozen dataclasses: one :class:`AttackResult` per (model, attack, eps), gathered in an
:class:`AttackReport`. The CLI prints them, the report renders them, ``to_json()`` gives plain dicts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

WORST_CASE = "worst-case"
"""The attack name of the rows that take, per image, the worst over every attack at an eps."""


@dataclass(frozen=True)
class AttackResult:
    """Robustness of one model against one attack at one budget ``eps`` (``norm``: L-inf or L2, pixels in [0, 1]).

    ``robust_accuracy`` is over all ``n_images`` (images misclassified before the attack count as wrong);
    ``success_rate`` is over the ``n_attacked`` images the model got right to begin with (and, in targeted
    mode, whose class is not the target). Perturbation norms and queries are over successful adversarials,
    measured on the 8-bit image that was judged. ``queries`` is ``None`` for transfer (white-box) attacks.
    ``median_confidence`` is the model's median probability of the class it was pushed to (the target class in
    targeted mode), over successes. The ``worst-case`` attack (kind ``worst-case``) counts an image as robust only
    if it survived every attack run at that eps (AutoAttack's rule); ``source_class`` names the only class
    attacked, when one was chosen. ``queries_per_s`` is a black-box attack's rows sent to the model per second
    of its wall time and ``queries_sent`` the rows it sent (for a minimum-distance attack, its one run serves
    every eps, and both figures are that run's).

    With early stop (the default, AutoAttack's standard evaluation) an attack at an eps runs only on the images
    no earlier attack fooled there (nor any attack at a smaller eps): ``n_attacked`` is the images it ran on,
    ``n_fooled`` those it fooled itself (queries, norms and confidence are over these), and ``robust_accuracy``
    / ``success_rate`` are cumulative, after this attack and every one before it, so the last attack's row
    equals the worst case. Without early stop every row is its attack alone on every eligible image.
    """

    model: str
    attack: str
    eps: float
    kind: str
    n_images: int
    n_attacked: int
    clean_accuracy: float
    robust_accuracy: float
    success_rate: float
    median_queries: float | None
    mean_linf: float | None
    mean_l2: float | None
    max_linf: float | None
    target_class: str | None = None
    crafted_on: str | None = None
    norm: str = "linf"
    median_linf: float | None = None
    median_l2: float | None = None
    median_confidence: float | None = None
    source_class: str | None = None
    queries_per_s: float | None = None
    n_fooled: int | None = None
    queries_sent: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class AttackReport:
    """Every result of one ``edge-tl attack`` invocation, plus the clean accuracy per model and notes."""

    results: tuple[AttackResult, ...]
    clean_accuracy: dict[str, float]
    n_images: int
    classes: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def models(self) -> list[str]:
        """Model names in the order they were attacked."""
        return list(self.clean_accuracy)

    def select(self, model: str | None = None, attack: str | None = None) -> list[AttackResult]:
        """Results filtered by model and/or attack, ordered by eps."""
        rows = [r for r in self.results
                if (model is None or r.model == model) and (attack is None or r.attack == attack)]
        return sorted(rows, key=lambda r: r.eps)

    def worst_case(self, model: str) -> list[AttackResult]:
        """The worst-case rows of ``model``, ordered by eps."""
        return [r for r in self.select(model, WORST_CASE)]

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict."""
        return {
            "n_images": self.n_images,
            "classes": list(self.classes),
            "clean_accuracy": dict(self.clean_accuracy),
            "config": dict(self.config),
            "notes": list(self.notes),
            "results": [r.to_json() for r in self.results],
        }

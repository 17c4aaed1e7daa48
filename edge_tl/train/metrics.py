"""Classification metrics shared by ``train`` and ``eval``: accuracy, per-class accuracy, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts, true class per row."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


@dataclass(frozen=True)
class ClassReport:
    """Accuracy overall and per class, with the confusion matrix it came from."""

    classes: tuple[str, ...]
    matrix: np.ndarray

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.matrix) / self.total) if self.total else float("nan")

    def per_class(self) -> list[dict[str, Any]]:
        """One row per class: name, images, correct, accuracy (None for a class without images)."""
        rows = []
        for i, name in enumerate(self.classes):
            n = int(self.matrix[i].sum())
            ok = int(self.matrix[i, i])
            rows.append({"class": name, "images": n, "correct": ok, "accuracy": ok / n if n else None})
        return rows

    def to_json(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy if self.total else None, "images": self.total, "per_class": self.per_class(),
                "classes": list(self.classes), "confusion": self.matrix.tolist()}


def class_report(classes: Sequence[str], y_true: Sequence[int], y_pred: Sequence[int]) -> ClassReport:
    """Build a :class:`ClassReport` from labels and predictions."""
    return ClassReport(tuple(classes), confusion_matrix(y_true, y_pred, len(classes)))


"""What a training run takes and gives: :class:`TrainConfig` (with each mode's defaults) and :class:`TrainResult`.
Imported by every training module; imports none of them (the entry point is :func:`edge_tl.train.api.train`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl.data.sources import SPLIT_POLICIES
from edge_tl.errors import ConfigError, check_choice

if TYPE_CHECKING:
    from edge_tl.card import ModelCard
    from edge_tl.train.metrics import ClassReport

MODES = ("features", "finetune", "full")
DEFAULT_BACKBONE = "mobilenet_v2"
DEFAULT_UNFREEZE = 2


@dataclass(frozen=True)
class ModeDefaults:
    """Hyper-parameters a mode uses unless the config sets them."""

    epochs: int
    lr: float
    batch_size: int
    patience: int
    weight_decay: float
    backbone_lr_scale: float
    warmup_epochs: float


MODE_DEFAULTS: dict[str, ModeDefaults] = {
    "features": ModeDefaults(epochs=30, lr=3e-3, batch_size=64, patience=8, weight_decay=1e-4,
                             backbone_lr_scale=0.0, warmup_epochs=1.0),
    "finetune": ModeDefaults(epochs=6, lr=1e-3, batch_size=32, patience=3, weight_decay=1e-4,
                             backbone_lr_scale=0.1, warmup_epochs=0.5),
    "full": ModeDefaults(epochs=10, lr=5e-4, batch_size=32, patience=4, weight_decay=5e-5,
                         backbone_lr_scale=0.1, warmup_epochs=0.5),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``edge-tl train`` takes; ``None`` means "the mode's default" (or the resumed run's value)."""

    data: str = "sample"
    data_root: str | None = None
    backbone: str | None = None
    weights: str = "default"
    mode: str | None = None
    unfreeze: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    img_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None
    seed: int = 0
    out: str | None = None
    resume: bool = False
    aug_views: int = 0
    val_frac: float = 0.15
    test_frac: float = 0.15
    label_smoothing: float = 0.1
    patience: int | None = None
    weight_decay: float | None = None
    engine: str = "auto"
    split: str = "auto"
    progress: bool = True
    force: bool = False

    def resolved(self) -> TrainConfig:
        """A copy with every ``None`` replaced by the mode's default."""
        mode = self.mode or "features"
        check_choice("mode", mode, MODES)
        d = MODE_DEFAULTS[mode]
        from edge_tl.runtimes import default_threads

        return replace(
            self, mode=mode, backbone=self.backbone or DEFAULT_BACKBONE,
            unfreeze=(self.unfreeze if self.unfreeze is not None else DEFAULT_UNFREEZE) if mode == "finetune" else None,
            epochs=self.epochs if self.epochs is not None else d.epochs,
            batch_size=self.batch_size or d.batch_size, lr=self.lr if self.lr is not None else d.lr,
            patience=self.patience if self.patience is not None else d.patience,
            weight_decay=self.weight_decay if self.weight_decay is not None else d.weight_decay,
            workers=self.workers if self.workers is not None else (
                0 if mode == "features" else min(4, default_threads(None))),
        )

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values no run can use."""
        from edge_tl.train.features import ENGINES

        check_choice("engine", self.engine, ["auto", *ENGINES.names()])
        check_choice("split", self.split, SPLIT_POLICIES)
        if self.unfreeze is not None and (self.mode or "features") != "finetune":
            raise ConfigError(f"--unfreeze applies to --mode finetune only, not --mode {self.mode or 'features'}",
                              "drop --unfreeze, or add --mode finetune")
        checks = [(self.epochs is not None and self.epochs < 1, "--epochs must be >= 1"),
                  (self.batch_size is not None and self.batch_size < 1, "--batch-size must be >= 1"),
                  (self.lr is not None and not self.lr > 0, "--lr must be > 0"),
                  (self.unfreeze is not None and self.unfreeze < 0, "--unfreeze must be >= 0"),
                  (self.aug_views < 0, "--aug-views must be >= 0"),
                  (self.workers is not None and self.workers < 0, "--workers must be >= 0"),
                  (not 0 <= self.label_smoothing < 1, "label smoothing must be in [0, 1)")]
        for bad, msg in checks:
            if bad:
                raise ConfigError(msg)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced (the files are in ``run_dir``)."""

    run_dir: Path
    card: ModelCard
    config: TrainConfig
    history: list[dict[str, float]]
    test: ClassReport
    metrics: dict[str, Any]
    split: dict[str, Any]
    bad_files: tuple[dict[str, str], ...] = ()
    files: dict[str, str] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return self.test.accuracy

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "backbone": self.card.backbone, "mode": self.config.mode,
                "classes": list(self.card.classes), "metrics": self.metrics, "split": self.split,
                "test": self.test.to_json(), "history": self.history, "bad_files": list(self.bad_files),
                "files": self.files, "config": self.config.to_json()}

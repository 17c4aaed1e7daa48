"""The entry point behind ``edge-tl visualize``: a run or a bare backbone, class names and settings in; the ideal
class images (optionally rated by a second model), their grid written to a PNG, and a :class:`VisualizeResult`
back. Progress goes to an :class:`edge_tl.progress.Reporter`, one task per class; nothing here prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from edge_tl.attacks.visualize import ClassImage, VisualizeSettings, ideal_image, judge, resolve_classes, save_grid
from edge_tl.errors import ConfigError
from edge_tl.progress import Reporter, of


@dataclass(frozen=True)
class VisualizeRequest:
    """What to visualise: exactly one of ``model`` (a run folder or model.pt: its trained classes) and
    ``backbone`` (a bare backbone with its ImageNet head, ``weights`` pretrained or a state dict file).
    ``judge`` is a backbone name or a run with the same classes; ``size``/``out`` default to the model's input
    size and ``RUN/ideal.png`` (``ideal_<backbone>.png``)."""

    classes: tuple[str, ...]
    model: Path | None = None
    backbone: str | None = None
    weights: str = "default"
    settings: VisualizeSettings = field(default_factory=VisualizeSettings.preset)
    judge: str | None = None
    size: int | None = None
    out: Path | None = None

    def __post_init__(self) -> None:
        if (self.model is None) == (self.backbone is None):
            raise ConfigError("give exactly one of --model and --backbone",
                              "--model runs/NAME for trained classes, --backbone mobilenet_v2 for ImageNet classes")
        if self.model is not None and self.weights != "default":
            raise ConfigError("--weights applies to --backbone only", "a run's checkpoint carries its own weights")
        if not self.classes:
            raise ConfigError("--class is empty", "give one or more class names, comma-separated")


@dataclass(frozen=True)
class VisualizeResult:
    """The images (in the order asked), the model's label, the size they were made at and the PNG written."""

    model: str
    size: int
    out: Path
    settings: VisualizeSettings
    judge: str | None
    images: tuple[ClassImage, ...]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "size": self.size, "out": str(self.out), "settings": self.settings.__dict__,
                "judge": self.judge, "images": [im.to_json() for im in self.images]}


def visualize(req: VisualizeRequest, reporter: Reporter | None = None) -> VisualizeResult:
    """Optimise one ideal image per class of ``req``, rate each with the judge if one is given, write the grid."""
    rep = of(reporter)
    loaded = load_model(req.model, req.backbone, req.weights)
    indices = resolve_classes(req.classes, loaded.classes)
    judged_by = load_judge(req.judge, loaded.classes) if req.judge else None
    size, out, s = req.size or loaded.size, req.out or loaded.out, req.settings
    images = []
    for i in indices:
        with rep.task(f"ideal '{loaded.classes[i]}'", s.steps, "step") as advance:
            im = ideal_image(loaded.module, i, size, s, name=loaded.classes[i],
                             progress=lambda step, total: advance(1))
        if judged_by is not None:
            im = judge(im, judged_by.module, judged_by.classes, judged_by.label, judged_by.size)
        images.append(im)
    save_grid(images, out, title=f"{loaded.label}: ideal class images ({s.param}, {s.steps} steps)")
    return VisualizeResult(loaded.label, size, out, s, judged_by.label if judged_by else None, tuple(images))


class Loaded(NamedTuple):
    """A pixel-space module with its class names, input size, label and default output path."""

    module: Any
    classes: list[str]
    size: int
    label: str
    out: Path


def load_model(model_path: Path | None, backbone: str | None, weights: str = "default") -> Loaded:
    """The model to visualise: a run's checkpoint, or a bare backbone with its ImageNet head."""
    from edge_tl.attacks.pixels import pixel_model

    if model_path is not None:
        from edge_tl.models.checkpoint import load_checkpoint

        ckpt = model_path / "model.pt" if model_path.is_dir() else model_path
        model, card = load_checkpoint(ckpt)
        loaded = Loaded(pixel_model(model, card.input.mean, card.input.std), list(card.classes), card.input.size,
                        ckpt.parent.name, ckpt.parent / "ideal.png")
    else:
        from edge_tl.models import create_model, get_spec, imagenet_classes

        spec = get_spec(backbone)
        model = create_model(backbone, weights=weights)
        if model.num_classes != 1000:
            raise ConfigError(f"{backbone} has no ImageNet head", "use --model with a trained run")
        loaded = Loaded(pixel_model(model, spec.mean, spec.std), imagenet_classes(), spec.input_size, backbone,
                        Path(f"ideal_{backbone}.png"))
    for p in loaded.module.parameters():
        p.requires_grad_(False)
    return loaded


def load_judge(name: str, classes: list[str]) -> Loaded:
    """The second model: a run folder / checkpoint if ``name`` is a path, else a pretrained backbone; its classes
    must be the visualised model's, in the same order."""
    path = Path(name)
    judged = load_model(path, None) if path.exists() else load_model(None, name)
    if judged.classes != classes:
        raise ConfigError(f"--judge {name} has other classes than the visualised model",
                          "judge ImageNet classes with a backbone (e.g. efficientnet_lite0), a run's with a run "
                          "trained on the same classes")
    return judged

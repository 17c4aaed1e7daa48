"""Helpers for the export/runtime/parity tests: a tiny run folder built in seconds without `edge-tl train`.

The run has the layout `edge-tl train` writes (model.pt checkpoint with its card, card.json, split.json), a
`tiny_*` backbone at 32 px and a head fitted for a few steps on the generated sample images, so logits are
meaningful (not ties) and accuracy is above chance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_tl._io import sha256_file


def build_run(root: Path, sample_dir: Path, backbone: str = "tiny_cnn", size: int = 32, steps: int = 60,
              seed: int = 0, tweak: Callable | None = None) -> Path:
    """Write ``root`` as a run folder for ``backbone`` trained briefly on ``sample_dir``; return ``root``."""
    import torch

    from edge_tl.card import ModelCard, library_versions, now_iso
    from edge_tl.data.manifest import Record, make_split
    from edge_tl.data.preprocess import load_batch, normalize
    from edge_tl.models import create_model, get_spec
    from edge_tl.models.checkpoint import save_checkpoint

    classes = sorted(p.name for p in sample_dir.iterdir() if p.is_dir())
    records = [Record(f, sha256_file(f), c) for c, name in enumerate(classes)
               for f in sorted((sample_dir / name).iterdir()) if f.suffix == ".jpg"]
    manifest = make_split(records, classes, seed=seed, val_frac=0.15, test_frac=0.3, dataset="sample",
                          root=sample_dir)
    root.mkdir(parents=True, exist_ok=True)
    manifest.save(root / "split.json")
    spec = get_spec(backbone).input_spec(size)
    torch.manual_seed(seed)
    model = create_model(backbone, num_classes=len(classes), weights="none", img_size=size)
    x = torch.from_numpy(normalize(load_batch(manifest.files("train"), spec), spec, "NCHW"))
    y = torch.tensor(manifest.labels("train"))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    if tweak is not None:
        tweak(model)
    card = ModelCard(classes=tuple(classes), input=spec, backbone=backbone, weights="none",
                     manifest="split.json", run_dir=str(root.resolve()), versions=library_versions("torch"),
                     created=now_iso())
    save_checkpoint(root / "model.pt", model, card)
    card.save(root / "card.json")
    return root


def heldout_pixels(run: Path, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Held-out uint8 pixels and labels of ``run``."""
    from edge_tl.card import ModelCard
    from edge_tl.data.manifest import manifest_for_card
    from edge_tl.data.preprocess import load_batch

    card = ModelCard.load(run / "card.json")
    m = manifest_for_card(card)
    files, labels = m.files("test")[:n], m.labels("test")[:n]
    return load_batch(files, card.input), np.asarray(labels)


def has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin can run bf16 here (tests of bf16 variants skip without it)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")

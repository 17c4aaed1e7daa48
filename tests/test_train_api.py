"""``train()`` end to end on tiny backbones and generated data: outputs, card, modes, resume, eval."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_tl.card import ModelCard
from edge_tl.data.manifest import Manifest
from edge_tl.data.preprocess import load_batch, normalize
from edge_tl.models import create_model
from edge_tl.models.checkpoint import load_checkpoint, read_checkpoint
from edge_tl.progress import Recorder
from edge_tl.train.api import TrainConfig, train
from edge_tl.train.evaluate import evaluate
from edge_tl.train.features import extract
from edge_tl.train.head import fit_logistic, standardiser
from helpers.models import train_config

PNG = b"\x89PNG\r\n\x1a\n"


def _cfg(sample_dir: Path, out: Path, **kw) -> TrainConfig:
    return train_config(sample_dir, out, **{"epochs": 3, "batch_size": 16, "engine": "torch", "progress": False, **kw})


def test_tiny_run_outputs(tiny_run: Path, sample_dir: Path) -> None:
    for name in ("model.pt", "card.json", "split.json", "history.json", "curves.png", "confusion.png",
                 "train_state.pt"):
        assert (tiny_run / name).is_file(), name
    assert all((tiny_run / name).read_bytes()[:8] == PNG for name in ("curves.png", "confusion.png"))
    latest = tiny_run.parent / "latest"
    assert latest.is_symlink() and latest.resolve() == tiny_run.resolve()
    card = ModelCard.load(tiny_run / "card.json")
    assert card.format == "pytorch" and card.manifest == "split.json" and card.run_dir == str(tiny_run.resolve())
    assert card.backbone == "tiny_cnn" and card.weights == "random" and card.input.size == 32
    assert card.classes == tuple(sorted(p.name for p in sample_dir.iterdir() if p.is_dir()))
    assert "torch" in card.versions and 0.0 <= card.metrics["test_accuracy"] <= 1.0
    model, card2 = load_checkpoint(tiny_run / "model.pt")  # weights_only=True inside
    assert card2 == card
    # the checkpoint, run in plain PyTorch on the test images, reproduces the recorded test accuracy
    m = Manifest.load(tiny_run / "split.json")
    x = torch.from_numpy(normalize(load_batch(m.files("test"), card.input), card.input))
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    acc = float((pred == np.asarray(m.labels("test"))).mean())
    assert acc == pytest.approx(card.metrics["test_accuracy"])
    hist = json.loads((tiny_run / "history.json").read_text())
    assert [r["epoch"] for r in hist["history"]] == [1]  # one converged fit, not epochs
    assert [r["l2"] for r in hist["l2_path"]] == sorted(r["l2"] for r in hist["l2_path"])
    assert card.metrics["head_solver"] == "lbfgs" and card.metrics["head_l2"] in [r["l2"] for r in hist["l2_path"]]
    assert card.metrics["val_accuracy"] == pytest.approx(card.metrics["head_cv_accuracy"])
    assert sum(m.counts()["test"]) == card.metrics["test_images"]


def test_features_mode_fits_the_probe_on_train_and_val(sample_dir: Path, tmp_path: Path) -> None:
    """The run's head is the probe refitted on train + val features (same l2), converged and reproducible; with
    progress off the reporter gets the notes but no tasks."""
    rec = Recorder()
    a = train(_cfg(sample_dir, tmp_path / "a", epochs=None, batch_size=None), reporter=rec)
    assert rec.tasks == [] and any("test accuracy" in m for _, m in rec.notes)
    b = train(_cfg(sample_dir, tmp_path / "b", epochs=None, batch_size=None))
    sa, sb = read_checkpoint(a.run_dir)["state_dict"], read_checkpoint(b.run_dir)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.metrics["head_grad_norm"] < 1e-5 and a.metrics["head_cv_folds"] >= 2
    m = Manifest.load(a.run_dir / "split.json")
    model, card = load_checkpoint(a.run_dir / "model.pt")
    files = m.files("train") + m.files("val")
    feats, _ = extract(model, card.input, files, engine="torch")
    mu, sd = standardiser(feats[:, 0])
    ref = fit_logistic((feats[:, 0] - mu) / sd, np.asarray(m.labels("train") + m.labels("val")),
                       len(card.classes), a.metrics["head_l2"])
    got = model.head.weight.detach().double().numpy() * sd  # back on standardised features
    assert np.abs(got - ref.weight).max() < 1e-4 * max(1.0, np.abs(ref.weight).max())


@pytest.mark.parametrize("mode", ["finetune", "full"])
def test_image_modes_train_what_they_should(sample_dir: Path, tmp_path: Path, mode: str,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    """The modes train the right parameters, report each epoch (with its image count) and print nothing."""
    kw = {"unfreeze": 1} if mode == "finetune" else {}
    capfd.readouterr()
    rec = Recorder()
    res = train(_cfg(sample_dir, tmp_path / mode, mode=mode, epochs=2, batch_size=24, progress=True, **kw),
                reporter=rec)
    assert tuple(capfd.readouterr()) == ("", "")
    tasks = {t["description"]: t for t in rec.tasks}
    assert all(tasks[f"epoch {e}/2"]["total"] == tasks[f"epoch {e}/2"]["done"] == res.split["train"]
               and tasks[f"epoch {e}/2"]["unit"] == "img" for e in (1, 2))
    assert sum(m.startswith("epoch ") for _, m in rec.notes) == 2
    torch.manual_seed(0)
    model = create_model("tiny_cnn", num_classes=len(res.card.classes), weights="none", img_size=32)
    init, trained = model.state_dict(), read_checkpoint(res.run_dir)["state_dict"]
    paths = list(model.block_paths)
    changed = {p: any(not torch.equal(init[k], trained[k]) for k in init
                      if k.startswith(f"features.{p}.") and init[k].is_floating_point()) for p in paths}
    if mode == "finetune":
        assert changed[paths[-1]] and not any(changed[p] for p in paths[:-1])
    else:
        assert all(changed.values())
    assert not torch.equal(init["head.weight"], trained["head.weight"])
    assert res.metrics["mode"] == mode and res.metrics["epochs_run"] == 2
    assert res.metrics["probe_solver"] == "lbfgs" and res.metrics["probe_cv_folds"] >= 2  # started from the probe
    assert (res.run_dir / "curves.png").is_file()


class _Stop(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("mode,views,epochs,cut,extra", [
    ("features", 1, None, 1, {"batch_size": None}),
    ("finetune", 0, 3, 2, {"patience": 50, "unfreeze": 1, "batch_size": 24}),
], ids=["features", "finetune"])
def test_resume_reaches_the_uninterrupted_result(sample_dir: Path, tmp_path: Path, mode: str, views: int,
                                                 epochs: int | None, cut: int, extra: dict) -> None:
    kw = {"mode": mode, "epochs": epochs, "aug_views": views, **extra}
    full = train(_cfg(sample_dir, tmp_path / "full", **kw))

    def stop(epoch: int, row: dict) -> None:
        if epoch == cut:
            raise _Stop()

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(sample_dir, tmp_path / "cut", **kw), on_epoch=stop)
    assert (tmp_path / "cut" / "train_state.pt").is_file() and not (tmp_path / "cut" / "model.pt").exists()
    torch.manual_seed(12345)  # resume must restore the RNG state, not depend on the caller's
    resumed = train(TrainConfig(out=str(tmp_path / "cut"), resume=True, data=str(sample_dir), progress=False,
                                engine="torch"))
    assert [r["epoch"] for r in resumed.history] == list(range(1, (epochs or 1) + 1))
    for key in ("train_loss", "val_loss", "val_acc"):
        assert [r[key] for r in resumed.history] == pytest.approx([r[key] for r in full.history], rel=1e-6)
    sa, sb = read_checkpoint(full.run_dir)["state_dict"], read_checkpoint(resumed.run_dir)["state_dict"]
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6) for k in sa)
    assert resumed.metrics["test_accuracy"] == full.metrics["test_accuracy"]


def test_eval_matches_training_and_checks_classes(tiny_run: Path, sample_dir: Path, tmp_path: Path) -> None:
    card = ModelCard.load(tiny_run / "card.json")
    res = evaluate(tiny_run, plot=tmp_path / "cm.png", progress=False)
    assert res.accuracy == pytest.approx(card.metrics["test_accuracy"])
    assert res.report.total == card.metrics["test_images"]
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG
    other = evaluate(tiny_run, data=str(sample_dir), plot=tmp_path / "cm2.png", progress=False, engine="torch")
    non_images = sum(p.is_file() and p.suffix.lower() not in {".jpg", ".jpeg", ".png"} for p in sample_dir.rglob("*"))
    assert other.report.total == len(list(sample_dir.rglob("*.*"))) - other.bad_files - non_images
    assert other.report.matrix.shape == (len(card.classes),) * 2


def test_dataset_with_its_own_split_is_kept(sample_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "presplit"
    for cls in sorted(p for p in sample_dir.iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())
        for part, chunk in (("train", files[:-3]), ("test", files[-3:])):
            (root / part / cls.name).mkdir(parents=True, exist_ok=True)
            for f in chunk:
                shutil.copy(f, root / part / cls.name / f.name)
    res = train(_cfg(root, tmp_path / "run", epochs=1))
    m = Manifest.load(res.run_dir / "split.json")
    assert sorted(Path(p).name for p in m.files("test")) == sorted(p.name for p in (root / "test").rglob("*.*"))
    assert m.select("val") and all("/train/" in str(p) for p in m.files("val"))
    assert m.extra.get("val_carved_from_train")

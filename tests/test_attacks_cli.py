"""``edge-tl attack`` end to end on a tiny run and its ONNX artefact (its bad-input errors are rows of
``test_reliability_bad_input``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.cli import cli

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def run_and_onnx(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A private copy of the tiny run (so a test may hide its model.pt) and its float ONNX export."""
    from edge_tl.export.api import export

    root = tmp_path_factory.mktemp("attack_cli")
    run = root / "run"
    shutil.copytree(tiny_run, run)
    card = json.loads((run / "card.json").read_text())
    card["run_dir"] = str(run)
    (run / "card.json").write_text(json.dumps(card))
    _retarget_checkpoint(run)
    export(run, ["onnx"], ["none"], root / "exported")
    return run, root / "exported" / "model.onnx"


def _retarget_checkpoint(run: Path) -> None:
    """Point the copied checkpoint's card at the copy (the artefact's card takes run_dir from it)."""
    import torch

    from edge_tl.card import ModelCard
    from edge_tl.models.checkpoint import load_checkpoint, save_checkpoint

    model, card = load_checkpoint(run / "model.pt")
    save_checkpoint(run / "model.pt", model, card.with_(run_dir=str(run)))
    assert torch.load(run / "model.pt", weights_only=True)["card"]["run_dir"] == str(run)
    assert ModelCard.from_json(json.loads((run / "card.json").read_text())).run_dir == str(run)


def _attack_json(capsys, onnx: Path, out: Path, *args: str) -> tuple[dict, str]:
    """``edge-tl attack --model ONNX ARGS --out OUT --json -``, which must succeed: its JSON and its stderr."""
    code, stdout, err = cli(["attack", "--model", str(onnx), *args, "--out", str(out), "--json", "-"], capsys)
    assert code == 0, err
    return json.loads(stdout), err


def test_attack_onnx_end_to_end(run_and_onnx, tmp_path, capsys) -> None:
    _, onnx = run_and_onnx
    out_dir = tmp_path / "attacks"
    code, out, err = cli(["attack", "--model", str(onnx), "--attacks", "fgsm,pgd,square,hopskipjump",
                           "--eps", "4/255,16/255", "--n", "1000", "--queries", "30", "--steps", "3",
                           "--out", str(out_dir), "--json", str(tmp_path / "a.json")], capsys)
    assert code == 0, err
    assert "more than the" in err and "using all" in err  # --n larger than the test split
    assert "robustness" in out and "model.onnx" in out
    data = json.loads((tmp_path / "a.json").read_text())
    assert json.loads((out_dir / "attack.json").read_text()) == data
    for name in ("robustness.png", "examples.png"):
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    models = {r["model"] for r in data["results"]}
    assert models == {"model.onnx", "model.pt (surrogate)"}
    assert {r["attack"] for r in data["results"] if r["model"] == "model.onnx"} == {
        "fgsm", "pgd", "square", "hopskipjump", "worst-case"}
    assert {r["attack"] for r in data["results"] if "surrogate" in r["model"]} == {"fgsm", "pgd", "worst-case"}
    for r in data["results"]:
        assert r["max_linf"] is None or r["max_linf"] <= r["eps"] + 1e-9
        assert 0.0 <= r["robust_accuracy"] <= r["clean_accuracy"] <= 1.0
    for model, n_attacks in (("model.onnx", 4), ("model.pt (surrogate)", 2)):  # one worst-case row per eps
        worst = [r for r in data["results"] if r["attack"] == "worst-case" and r["model"] == model]
        assert len(worst) == 2
        for w in worst:  # never above any single attack at its eps
            same = [r for r in data["results"] if r["model"] == model and r["eps"] == w["eps"] and r is not w]
            assert len(same) == n_attacks and all(w["robust_accuracy"] <= r["robust_accuracy"] for r in same)
    assert data["config"]["surrogate"].endswith("model.pt")


def test_no_surrogate_runs_blackbox_only(run_and_onnx, tmp_path, capsys) -> None:
    run, onnx = run_and_onnx
    hidden = run / "model.pt.hidden"
    (run / "model.pt").rename(hidden)
    try:
        data, err = _attack_json(capsys, onnx, tmp_path / "o", "--attacks", "fgsm,square", "--eps", "8/255",
                                 "--n", "4", "--queries", "10")
    finally:
        hidden.rename(run / "model.pt")
    assert "no surrogate" in err and "--surrogate" in err
    assert {r["attack"] for r in data["results"]} == {"square", "worst-case"}
    assert any("white-box" in n and "fgsm" in n for n in data["notes"])


def test_data_folder_instead_of_the_test_split(run_and_onnx, sample_dir, tmp_path, capsys) -> None:
    _, onnx = run_and_onnx
    data, _ = _attack_json(capsys, onnx, tmp_path / "d", "--data", str(sample_dir), "--attacks", "square",
                           "--eps", "8/255", "--n", "5", "--queries", "5")
    assert data["n_images"] == 5 and data["config"]["data"] == str(sample_dir)


def test_source_class_attacks_only_that_class(run_and_onnx, tmp_path, capsys) -> None:
    run, onnx = run_and_onnx
    src, tgt = json.loads((run / "card.json").read_text())["classes"][:2]
    out_dir = tmp_path / "s"
    data, _ = _attack_json(capsys, onnx, out_dir, "--attacks", "pgd", "--eps", "16/255,32/255", "--n", "1000",
                           "--source-class", src, "--target-class", tgt)
    items = json.loads((run / "split.json").read_text())["items"]
    n_src = sum(1 for it in items if it["split"] == "test" and it["label"] == 0)
    assert data["config"]["source_class"] == src and f"class '{src}'" in data["config"]["data"]
    assert 0 < data["n_images"] == n_src  # every test image of the source class, and no other
    assert all(r["source_class"] == src and r["target_class"] == tgt for r in data["results"])  # surrogate too
    rows = [r for r in data["results"] if r["model"] == "model.onnx"]
    pgd = sorted((r for r in rows if r["attack"] == "pgd"), key=lambda r: r["eps"])
    correct = round(pgd[0]["clean_accuracy"] * data["n_images"])
    assert pgd[0]["n_attacked"] == correct  # every correct source image at the smallest eps
    # early stop: the larger eps attacks only what the smaller one did not push to the target (carried over)
    assert pgd[1]["n_attacked"] == correct - pgd[0]["n_fooled"]
    assert pgd[1]["success_rate"] >= pgd[0]["success_rate"]
    for r in pgd:  # medians over the images this row's attack pushed to the target itself
        if r["n_fooled"]:
            assert r["median_confidence"] > 0.5 and 0 < r["median_linf"] <= r["eps"] + 1e-9
    assert (out_dir / "examples.png").is_file()


def test_interrupted_run_keeps_finished_cells_and_resume_completes_it(run_and_onnx, tmp_path, capsys,
                                                                        monkeypatch) -> None:
    from edge_tl.attacks import engine

    _, onnx = run_and_onnx
    args = ["attack", "--model", str(onnx), "--attacks", "fgsm,square", "--eps", "4/255,16/255", "--n", "6",
            "--queries", "15", "--steps", "2"]
    code, _, err = cli([*args, "--out", str(tmp_path / "full"), "--json", str(tmp_path / "full.json")], capsys)
    assert code == 0, err
    full = json.loads((tmp_path / "full.json").read_text())

    real = engine._State.blackbox

    def stop_in_square(self, spec, name, rt):  # Ctrl-C while the black-box attack runs, after the white-box cells
        raise KeyboardInterrupt

    monkeypatch.setattr(engine._State, "blackbox", stop_in_square)
    part = tmp_path / "part"
    code, _, err = cli([*args, "--out", str(part)], capsys)
    assert code == 130 and "--resume" in err and "Traceback" not in err
    assert not (part / "attack.json").exists()
    kept = sorted(p.name for p in (part / "cells").glob("*.npz"))
    assert len(kept) == 4  # fgsm at two eps, judged on the artefact and on the surrogate

    monkeypatch.setattr(engine._State, "blackbox", real)
    code, _, err = cli([*args, "--out", str(part), "--resume", "--json", str(tmp_path / "resumed.json")], capsys)
    assert code == 0, err
    assert "(resumed)" in err  # log lines (stderr is not a terminal here), resumed cells named
    assert json.loads((tmp_path / "resumed.json").read_text()) == full

    code, _, err = cli([*args[:-4], "--queries", "16", "--out", str(part), "--resume"], capsys)
    assert code == 2 and "other inputs" in err


def test_l2_threat_model(run_and_onnx, tmp_path, capsys) -> None:
    _, onnx = run_and_onnx
    data, _ = _attack_json(capsys, onnx, tmp_path / "l2", "--norm", "l2", "--attacks", "fgsm,pgd,square",
                           "--eps", "0.5,2", "--n", "1000", "--queries", "10", "--steps", "2")
    assert data["config"]["norm"] == "l2" and any("fgsm has no l2 variant" in n for n in data["notes"])
    assert {r["attack"] for r in data["results"]} == {"pgd", "square", "worst-case"}
    assert any(r["n_attacked"] > 0 for r in data["results"])
    for r in data["results"]:
        assert r["norm"] == "l2"
        assert r["mean_l2"] is None or r["mean_l2"] <= r["eps"] + 1e-6


def test_bad_files_in_data_are_skipped_and_listed(run_and_onnx, sample_dir, tmp_path, capsys) -> None:
    _, onnx = run_and_onnx
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    first = sorted(p for p in data.iterdir() if p.is_dir())[0]
    (first / "empty.jpg").write_bytes(b"")
    (first / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    notes = _attack_json(capsys, onnx, tmp_path / "b", "--data", str(data), "--attacks", "square",
                         "--eps", "8/255", "--n", "1000", "--queries", "3")[0]["notes"]
    assert any("skipped 2 bad file(s)" in n and "empty.jpg" in n and "broken.jpg" in n for n in notes)


def test_surrogate_runs_at_the_runtimes_threads_and_torch_is_restored(run_and_onnx, tmp_path, capsys,
                                                                       monkeypatch) -> None:
    import torch

    from edge_tl.attacks import engine

    seen = []
    real = engine.run_attacks

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "run_attacks", spy)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        code, _out, err = cli(["attack", "--model", str(run_and_onnx[1]), "--attacks", "fgsm", "--n", "4",
                               "--threads", "1", "--out", str(tmp_path / "a")], capsys)
        assert code == 0, err
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)

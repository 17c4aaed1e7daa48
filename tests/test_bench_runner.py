"""The bench driver with fake runtimes: rows per artefact x thread count, failure rows, class checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from edge_tl.bench import targets as tg
from edge_tl.bench.results import BenchSettings
from edge_tl.bench.runner import plan_threads, run_bench
from edge_tl.bench.targets import EvalSet, Target, check_classes, discover, eval_set, load_targets
from edge_tl.errors import DataError
from edge_tl.runtimes import base
from helpers import bench_fakes as fakes


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench_runner")
    x, y = fakes.pixels(9)
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / "data" / fakes.CLASSES[label]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")
    exp = root / "exported"
    exp.mkdir()
    for name in ("ok.fake", "bad.fake", "crash.fake"):
        fakes.make(exp, name)
    return root


def test_plan_threads_caps_and_dedupes() -> None:
    assert plan_threads((1, 2), 2) == ((1, 2), [])
    threads, notes = plan_threads((1, 4, 2), 2)
    assert threads == (1, 2)
    assert notes == ["--threads 4 is more than the 2 cores available; capped at 2"]


def test_class_mismatch_is_a_clear_error(folder: Path) -> None:
    es = eval_set(str(folder / "data"), [])
    assert es.classes == fakes.CLASSES and len(es.files) == 9
    other = fakes.make(folder, "other.fake", classes=("a", "b", "z"))
    (t,) = load_targets([other])
    with pytest.raises(DataError, match="classes differ") as exc:
        check_classes(es, t)
    assert "model only: z" in exc.value.message and "data only: c" in exc.value.message
    reordered = EvalSet("x", ("b", "a", "c"), (Path("1"), Path("2")), (0, 1))
    assert check_classes(reordered, Target(Path("m"), fakes.card())) == (1, 0)  # labels follow the model's a, b, c


def test_run_bench_rows_and_failures(folder: Path) -> None:
    paths = discover([str(folder / "exported" / n) for n in ("ok.fake", "bad.fake", "crash.fake")])
    targets = [*load_targets(paths), Target(folder / "gone.onnx", None, "cannot read gone.onnx")]
    es = eval_set(str(folder / "data"), targets)
    settings = BenchSettings(threads=(1, 2), min_time=0.05, warmup=2)
    seen: list[str] = []
    res = run_bench(targets, es, settings, cores=2, progress=lambda m, n: seen.append(m), loader=fakes.LOADER)
    assert len(res.rows) == 4 * 2
    ok = [r for r in res.rows if r.ok]
    assert [r.name for r in ok] == ["ok.fake", "ok.fake"] and {r.threads for r in ok} == {1, 2}
    assert all(r.top1 == 100.0 and r.top5 == 100.0 and r.n_eval == 9 for r in ok)  # copied to the 2-thread row
    assert all(r.p50 > 0 and r.latency.n >= 5 and r.peak_rss_mb > 0 and r.size_mb > 0 for r in ok)
    assert all(r.agreement is None for r in ok)  # no PyTorch source measured
    errors = {r.key: r.error for r in res.rows if not r.ok}
    assert "is not a model" in errors["bad.fake/-@1t"] and "re-export it" in errors["bad.fake/-@1t"]
    assert "SIGSEGV" in errors["crash.fake/-@2t"]
    assert errors["gone.onnx/-@1t"] == "cannot read gone.onnx"
    assert res.rows[-1].status == "error" and res.recommended in ("ok.fake/fake@1t", "ok.fake/fake@2t")
    assert res.data == f"{folder / 'data'} (9 images)" and seen


def test_eval_set_limit_is_a_seeded_sample(folder: Path) -> None:
    full = eval_set(str(folder / "data"), [])
    a = eval_set(str(folder / "data"), [], limit=4, seed=1)
    assert len(a.files) == 4 and set(a.files) <= set(full.files)
    assert a == eval_set(str(folder / "data"), [], limit=4, seed=1)
    assert [full.labels[full.files.index(f)] for f in a.files] == list(a.labels)


def test_bad_eval_files_are_skipped_and_listed(folder: Path, tmp_path: Path) -> None:
    """A zero-byte, a truncated and a non-image file in --data: bench scores the rest and names them."""
    data = tmp_path / "data"
    shutil.copytree(folder / "data", data)
    good = next((data / "a").iterdir())
    (data / "a" / "empty.png").write_bytes(b"")
    (data / "b" / "cut.png").write_bytes(good.read_bytes()[:60])
    (data / "c" / "notes.jpg").write_text("not an image")
    es = eval_set(str(data), [])
    assert len(es.files) == 9 and len(es.skipped) == 3
    assert {Path(s.split(":")[0]).name for s in es.skipped} == {"empty.png", "cut.png", "notes.jpg"}
    targets = load_targets([folder / "exported" / "ok.fake"])
    res = run_bench(targets, es, BenchSettings(threads=(1,), min_time=0.05, warmup=2), cores=2, loader=fakes.LOADER)
    assert res.rows[0].ok and res.rows[0].n_eval == 9
    assert any(n.startswith("skipped 3 unusable eval file(s)") and "empty.png" in n for n in res.notes)


def test_with_runtimes_expands_and_notes_missing_backends(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = fakes.make(folder, "two.onnx")
    pt = fakes.make(folder, "model.pt", fmt="pytorch")
    targets = [Target(onnx, fakes.card()), Target(pt, fakes.card("pytorch"))]
    assert tg.parse_runtimes(["ort", "ov", "onnxruntime"]) == ("onnxruntime", "openvino")
    every, _ = tg.with_runtimes(targets, None)
    assert [(t.path.name, t.runtime) for t in every] == [("two.onnx", "onnxruntime"), ("two.onnx", "openvino"),
                                                        ("model.pt", "pytorch")]
    only, _ = tg.with_runtimes(targets, ("openvino",))
    assert [(t.path.name, t.runtime) for t in only] == [("two.onnx", "openvino"), ("model.pt", "pytorch")]
    base._ensure_loaded()
    monkeypatch.setattr(base.runtime_entry(".onnx", "openvino"), "requires", "no_such_backend_module")
    kept, notes = tg.with_runtimes(targets, None)
    assert [t.runtime for t in kept] == ["onnxruntime", "pytorch"]
    assert notes == ["openvino is not installed, so its rows are skipped (pip install openvino)"]

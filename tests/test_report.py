"""``edge-tl report``: one self-contained, escaped HTML page; absent inputs say so; checked in headless Chromium."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path

import pytest

from edge_tl._io import sha256_file
from edge_tl.errors import CardError, ConfigError, DataError
from edge_tl.parity import ParityResult, limits_for, wilson_interval
from edge_tl.report import build_report
from edge_tl.report.browser import check_page, find_chromium, headings, is_blank, measure_layout
from edge_tl.report.collect import SECTIONS
from edge_tl.report.tables import Figure, Note, figure, tables_from_json
from helpers import cards
from helpers.cli import cli, cli_process
from helpers.data import noise
from helpers.reliability import onnx_bytes, tflite_bytes

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
TITLES = [title for _, title, _ in SECTIONS]


def _png(path: Path, kind: str) -> Path:
    """A real 120 x 90 PNG standing in for the plot or image ``kind`` (the report inlines any PNG alike)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise(120, 90, seed=len(kind)).save(path, "PNG")
    return path


def make_run(root: Path, *, hostile: bool = False, complete: bool = True) -> Path:
    """A fake run folder (card only, or everything the other commands write) under ``root``."""
    run = root / "runs" / "r1"
    run.mkdir(parents=True)
    (root / "runs" / "latest").symlink_to("r1")
    classes = ("cat", HOSTILE if hostile else "dog")
    fields = {"metrics": {"test_accuracy": 0.875, "val_accuracy": 0.9}, "versions": {"torch": "2.14.1"},
              "run_dir": str(run.resolve()), "manifest": "split.json"}
    (run / "card.json").write_text(json.dumps(cards.card_json("pytorch", classes, **fields)))
    if not complete:
        return run
    items = [{"path": f"{c}/{i}.jpg", "label": k, "split": s} for k, c in enumerate(classes)
             for i, s in enumerate(["train"] * 6 + ["val", "test", "test"])]
    (run / "split.json").write_text(json.dumps({"format": "edge-tl-manifest", "dataset": "sample", "seed": 0,
                                                "classes": classes, "items": items}))
    (run / "model.pt").write_bytes(b"fake checkpoint bytes")
    _png(run / "curves.png", "curves")
    _png(run / "confusion.png", "confusion")
    (run / "history.json").write_text(json.dumps(
        [{"epoch": e, "train_loss": 1.0 / e, "val_accuracy": 0.5 + e / 10} for e in (1, 2, 3)]))
    exported = root / "exported"
    exported.mkdir()
    # what the parity gate writes into a card (ParityResult.to_json), not a hand-made schema
    parity = ParityResult(variant="model.onnx", format="onnx", quantize="float", n=400, agreement=0.98,
                          accuracy=0.86, reference_accuracy=0.875, drop=1.5, max_dlogit=0.12, saturated=0.0,
                          kl=1e-4, max_dprob=0.01, ece=0.06, ece_reference=0.05, limits=limits_for("onnx", "float"),
                          agreement_ci=wilson_interval(392, 400), resolution=0.25,
                          images="train+val+test")
    onnx_card = cards.card_json("onnx", classes, **fields, parity=parity)
    (exported / "model.onnx").write_bytes(onnx_bytes(4, json.dumps(onnx_card)))
    # matched by the checkpoint hash, not by run_dir; its sidecar has the name model.onnx's would have
    failed = dataclasses.replace(parity, agreement=0.91, failures=("agreement 91.00 % < 98.00 %",))
    tfl_card = cards.card_json("tflite", classes, **{**fields, "run_dir": "/elsewhere/gone"}, parity=failed,
                               quantization=cards.recipe("int8"), source_sha256=sha256_file(run / "model.pt"))
    (exported / "model.tflite").write_bytes(tflite_bytes(tfl_card, weights=0))
    (exported / "model.card.json").write_text(json.dumps(tfl_card))
    other = {**fields, "run_dir": str((root / "runs" / "other").resolve())}
    other_card = cards.card_json("onnx", classes, **other, parity=cards.parity(agreement=0.5))
    (exported / "model_other.onnx").write_bytes(onnx_bytes(4, json.dumps(other_card)))
    (exported / "junk.onnx").write_text("not a protobuf")
    bench = {"schema": 1, "recommended": "model.tflite@1t", "notes": ["noisy machine"], "reference_top1": 87.5,
             "settings": {"threads": [1, 2], "batch": 1, "max_drop": 2.0},
             "rows": [bench_row("r1", "pytorch", "float", "torch", t, 9.0 / t, 87.5) for t in (1, 2)]
             + [bench_row("model.onnx", "onnx", "float", "onnxruntime", t, 1.5 / t, 87.5, HOSTILE if hostile else "ok")
                for t in (1, 2)]
             + [bench_row("model.tflite", "tflite", "int8", "litert", t, 0.9 / t, 86.0) for t in (1, 2)]}
    (run / "bench.json").write_text(json.dumps(bench))
    _png(run / "bench.png", "pareto")
    attack = {"n_images": 16, "classes": classes, "clean_accuracy": {"model.onnx": 0.875},
              "results": [{"model": "model.onnx", "attack": "fgsm", "eps": e, "accuracy": 0.875 - e * 20}
                          for e in (0.0, 1 / 255, 4 / 255)]}
    (run / "attack.json").write_text(json.dumps(attack))
    _png(run / "attack" / "curve.png", "robustness")
    _png(run / "attack" / "grid.png", "image")
    _png(run / "ideal.png", "image")
    return run


def bench_row(name: str, fmt: str, quant: str, runtime: str, threads: int, p50: float, top1: float,
              status: str = "ok") -> dict:
    """A row as ``edge-tl bench --json`` writes it (latency percentiles as intervals)."""
    return {"name": name, "path": f"exported/{name}", "format": fmt, "quantization": quant, "runtime": runtime,
            "threads": threads, "batch": 1, "status": status, "size_mb": 0.002, "macs": 299501952,
            "latency": {"p50": {"value": p50, "lo": p50 * 0.9, "hi": p50 * 1.1}, "p90": {"value": p50 * 1.2}},
            "top1": top1, "agreement": 100.0 if fmt != "tflite" else 91.0}


def _sections(text: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="(\w+)"[^>]*>(.*?)</section>', text, flags=re.DOTALL))


def test_full_report_leads_with_the_verdict_and_inlines_every_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path)
    result = build_report()
    assert result.path == Path("runs/latest/report.html")
    assert all(present for _, _, present in result.sections)
    # the int8 TFLite is faster but failed its parity gate: the float ONNX at 2 threads is the pick
    assert (result.recommended, result.threads, result.failed) == ("model.onnx", 2, ("model.tflite",))
    text = (tmp_path / "runs/r1/report.html").read_text()
    secs = _sections(text)
    assert list(secs) == ["verdict"] + [key for key, _, _ in SECTIONS]
    assert text.index('id="verdict"') < text.index('id="data"')
    assert "not run yet" not in text
    # 6 PNGs, all inlined and decodable; nothing fetched from anywhere
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(uris) == 6
    assert all(base64.b64decode(u).startswith(b"\x89PNG") for u in uris)
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    verdict = secs["verdict"]
    pick = re.search(r'<div class="pick">(.*?)</div></div><p>', verdict, flags=re.DOTALL).group(1)
    assert "<code>model.onnx</code>" in pick and "ONNX, float, on onnxruntime, 2 threads" in pick
    assert "<b>0.750 ms</b>" in pick and "<b>87.5 %</b>" in pick and "<b>0.00200 MB</b>" in pick
    # the decision table: one row per artefact x runtime, p50 per thread count, badges; human units only
    heads = re.findall(r"<th>(.*?)</th>", verdict)
    assert heads == ["Artefact", "Format", "Quantisation", "Runtime", "Size", "Top-1", "Agreement",
                     "p50 at 1 thread", "p50 at 2 threads", "Parity"]
    rows = re.findall(r'<tr class="(\w*)">(.*?)</tr>', verdict)
    assert [cls for cls, _ in rows] == ["", "chosen", "failed"]
    assert "r1 (reference)" in rows[0][1] and "9.00 ms" in rows[0][1] and "4.50 ms" in rows[0][1]
    assert '<span class="badge pass">PASS</span>' in rows[1][1] and "1.50 ms" in rows[1][1]
    assert '<span class="badge fail">FAIL</span>' in rows[2][1] and "91.0 %" in rows[2][1]
    assert re.search(r'<ul class="fails"><li><b>model.tflite</b> <span class="badge fail">FAIL</span> '
                     r"agreement 91.00 % &lt; 98.00 %</li>", verdict)
    assert "The benchmark alone picked model.tflite@1t" in verdict
    for raw_name in ("top1", "latency.p50", "max_dlogit", "size_mb", "reference_accuracy", "e-0", "299501952"):
        assert raw_name not in verdict, raw_name
    # stage sections: a sentence first, plots inline, raw tables folded
    assert re.search(r'<h2>Data</h2>\n<p class="intro">18 images in 2 classes from sample, split 12 train / '
                     r"2 val / 4 test\.", secs["data"])
    assert "2 passed the parity gate" not in secs["parity"] and "1 passed the parity gate, 1 failed" in secs["parity"]
    assert "model_other" not in secs["parity"] and "skipped junk.onnx" in secs["parity"].lower()
    for key in ("training", "parity", "bench", "robustness"):
        assert "<details><summary>" in secs[key], key
    assert "<table>" not in secs["bench"].split("<details>")[0]  # raw bench rows only folded
    assert "300 M" in secs["bench"] and "Latency p50" in secs["bench"] and "Note: noisy machine" in secs["bench"]
    assert secs["training"].count("<tr>") >= 4 and "Test accuracy 87.5 %" in secs["training"]
    assert secs["robustness"].count("fgsm") >= 3 and "eps 4/255" in secs["robustness"]
    assert not list(tmp_path.glob("runs/r1/.report*"))  # no temp file left


def test_markdown_summary(tmp_path):
    run = make_run(tmp_path)
    result = build_report(run, exported=tmp_path / "exported", md=tmp_path / "ci" / "summary.md")
    md = (tmp_path / "ci" / "summary.md").read_text()
    assert result.markdown == tmp_path / "ci" / "summary.md"
    assert "**Ship `model.onnx`** (onnx, float, on onnxruntime, 2 threads): 0.00200 MB, p50 0.750 ms" in md
    assert "- **model.tflite** FAIL: agreement 91.00 % < 98.00 %" in md
    assert "| **model.onnx** | onnx | float | onnxruntime | 0.00200 MB | 87.5 % | 100 % | 1.50 ms | 0.750 ms | PASS |" in md
    assert [line for line in md.splitlines() if line.startswith("### ")] == [
        "### Verdict", *(f"### {t}" for t in TITLES)]
    assert "data:image" not in md


def test_untrusted_values_are_escaped(tmp_path):
    run = make_run(tmp_path, hostile=True)
    text = build_report(run, exported=tmp_path / "exported").path.read_text()
    assert "<script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text


def test_absent_inputs_say_which_command_makes_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = make_run(tmp_path, complete=False)
    result = build_report(run)
    assert [p for _, _, p in result.sections] == [True, False, False, False, False, False]
    secs = _sections(result.path.read_text())
    for key, command in (("training", "edge-tl train"), ("parity", "edge-tl export"), ("bench", "edge-tl bench"),
                         ("robustness", "edge-tl attack"), ("ideal", "edge-tl visualize")):
        assert "not run yet" in secs[key] and f"<code>{command}" in secs[key]


def test_explicit_inputs_override_defaults(tmp_path):
    run = make_run(tmp_path)
    alt = tmp_path / "alt_bench.json"
    alt.write_text(json.dumps([{"name": "only-this-row", "p50": 3.0}]))
    out = tmp_path / "out" / "r.html"
    result = build_report(run, exported=tmp_path / "exported", bench=alt, out=out)
    secs = _sections(out.read_text())
    assert result.path == out and "only-this-row" in secs["bench"] and "model_int8.tflite" not in secs["bench"]


@pytest.mark.parametrize("setup, kwargs, error, words", [
    (lambda r: None, {"bench": "missing.json"}, DataError, "does not exist"),
    (lambda r: None, {"attack": "runs/r1"}, DataError, "is not a file"),
    (lambda r: None, {"exported": "runs/r1/card.json"}, DataError, "is not a folder"),
    (lambda r: None, {"out": "runs/r1"}, ConfigError, "is a folder"),
    (lambda r: (r / "card.json").write_text("{not json"), {}, DataError, "not valid JSON"),
    (lambda r: (r / "card.json").write_text('{"classes": []}'), {}, CardError, "classes"),
    (lambda r: (r / "card.json").unlink(), {}, CardError, "no card.json"),
    (lambda r: (r / "bench.json").write_bytes(b"\xff\xfe\x00garbage"), {}, DataError, "not UTF-8"),
    (lambda r: (r / "history.json").write_text('[{"epoch": 1'), {}, DataError, "training history"),
])
def test_bad_inputs_raise_clear_errors(tmp_path, monkeypatch, setup, kwargs, error, words):
    monkeypatch.chdir(tmp_path)
    run = make_run(tmp_path)
    setup(run)
    with pytest.raises(error, match=words) as info:
        build_report("runs/latest", **kwargs)
    assert info.value.hint
    assert not (run / "report.html").exists()


def test_tables_from_any_layout():
    rows = tables_from_json([{"a": 1, "b": {"c": 2.123456}, "e": None}, {"a": 2, "d": "x", "e": None}])[0]
    assert rows.columns == ("a", "b.c", "d") and rows.rows[0] == ("1", "2.12", "")  # all-empty "e" dropped
    cols = tables_from_json({"eps": [0, 0.1], "acc": [0.9, 0.5]})[0]
    assert cols.columns == ("eps", "acc") and len(cols.rows) == 2
    per_model = tables_from_json({"m.onnx": {"p50": 1.0}, "m.tflite": {"p50": 2.0}}, "bench")
    assert per_model[0].columns == ("name", "p50") and per_model[0].rows[1][0] == "m.tflite"
    mixed = tables_from_json({"rows": [{"x": 1}], "wall_s": 3.5, "env": {"cpu": "xeon"}}, "bench")
    assert [t.caption for t in mixed] == ["bench: rows", "bench: details"]
    assert ("Env: cpu", "xeon") in mixed[1].rows
    assert tables_from_json(42)[0].rows == (("42",),)
    many = tables_from_json([{"i": i} for i in range(1200)])[0]
    assert len(many.rows) == 500 and many.omitted == 700
    long = tables_from_json([{"path": "/a/very/long/path/to/some/exported/artefact/model_int8.tflite", "p50": 1.5,
                              "name": "m"}])[0]
    assert long.columns == ("p50", "name", "path")  # long text columns go last


def test_fake_png_is_a_note_not_an_image(tmp_path):
    (tmp_path / "x.png").write_text("<svg onload=alert(1)>")
    assert isinstance(figure(tmp_path / "x.png", "x"), Note)
    assert isinstance(figure(_png(tmp_path / "y.png", "curves"), "y"), Figure)


def test_cli_entry_point(tmp_path):
    make_run(tmp_path)
    out = cli_process(["report", "--md", "summary.md", "--json", "-"], tmp_path, timeout=120)
    assert out.code == 0, out.err
    data = json.loads(out.out)
    assert data["path"] == "runs/latest/report.html" and len(data["sections"]) == len(SECTIONS)
    assert (data["recommended"], data["threads"], data["failed"]) == ("model.onnx", 2, ["model.tflite"])
    assert data["markdown"] == "summary.md" and (tmp_path / "summary.md").read_text().startswith("## edge-tl report")
    assert "recommended: model.onnx at 2 thread(s)" in out.err and "FAIL model.tflite" in out.err
    assert (tmp_path / "runs/r1/report.html").stat().st_size == data["bytes"]
    bad = cli_process(["report", "runs/nope"], tmp_path, timeout=120)
    assert bad.code == 2 and bad.out == ""
    assert bad.err.startswith("error: no run folder runs/nope -- ") and bad.err.count("\n") == 1


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


def test_report_renders_in_headless_chromium(tmp_path, chromium):
    run = make_run(tmp_path)
    # a long artefact name must wrap, not widen the page
    long_name = "model_" + "x" * 150 + ".onnx"
    bench = json.loads((run / "bench.json").read_text())
    bench["rows"].append(bench_row(long_name, "onnx", "float", "onnxruntime", 1, 3.0, 80.0))
    (run / "bench.json").write_text(json.dumps(bench))
    page = build_report(run, exported=tmp_path / "exported").path
    seen = check_page(page, tmp_path / "shot.png")
    assert seen.console == ()
    assert headings(seen.dom) == ["Verdict", *TITLES]
    assert seen.dom.count("<img ") == 6
    assert seen.screenshot.stat().st_size > 10_000 and not is_blank(seen.screenshot)
    # at 1280 px: no horizontal scroll, nothing in the header or verdict wider than the viewport, the pick and
    # the start of the decision table on the first screen, every image decoded
    box = measure_layout(page, width=1280, height=800)
    assert box["viewport"] == 1280 and box["scroll_width"] <= 1280, box
    assert box["widest"] <= 1280, box
    assert box["pick"]["bottom"] <= box["height"] and box["table"]["top"] < box["height"], box
    assert box["images"] == 6 and box["broken"] == 0
    # the failing artefact carries its FAIL badge in the rendered decision table
    row = re.search(r'<tr class="failed">(.*?)</tr>', seen.dom, flags=re.DOTALL).group(1)
    assert "model.tflite" in row and '<span class="badge fail">FAIL</span>' in row


def test_layout_probe_sees_overflow_and_broken_images(tmp_path, chromium):
    """The layout check is not vacuous: a wide unbreakable cell and an undecodable image are reported."""
    page = tmp_path / "wide.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' content=\"default-src "
                    "'none'; img-src data:\"></head><body><section id='verdict'><div class='pick'>x</div><table><tr>"
                    f"<td style='white-space:nowrap'>{'w' * 400}</td></tr></table>"
                    "<img src='data:image/png;base64,AAAA'></section></body></html>")
    box = measure_layout(page, width=1280, height=800)
    assert box["widest"] > 1280 and box["scroll_width"] > 1280
    assert box["images"] == 1 and box["broken"] == 1


def test_browser_check_catches_console_errors(tmp_path, chromium):
    """The detector is not vacuous: a script error and a blocked external image are reported."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' content=\"default-src "
                    "'none'; img-src data:; script-src 'unsafe-inline'\"></head><body><h2>only</h2>"
                    "<script>undefinedFunction()</script><img src='http://192.0.2.1/x.png'></body></html>")
    seen = check_page(page, tmp_path / "bad.png", width=200, height=100)
    text = "\n".join(seen.console)
    assert "Uncaught ReferenceError" in text and "Content Security Policy" in text
    assert headings(seen.dom) == ["only"]


def test_attack_results_in_their_own_folder(tmp_path):
    """`edge-tl attack --out attacks/m` keeps attack.json beside its PNGs: --attack finds them there."""
    run = make_run(tmp_path)
    folder = tmp_path / "attacks" / "model"
    folder.mkdir(parents=True)
    (folder / "attack.json").write_text(json.dumps({"results": [{"attack": "square", "eps": 0.1}]}))
    _png(folder / "robustness.png", "robustness")
    _png(folder / "examples.png", "image")
    result = build_report(run, exported=tmp_path / "exported", attack=folder / "attack.json")
    secs = _sections(result.path.read_text())
    assert "square" in secs["robustness"] and secs["robustness"].count("<img ") == 2
    assert "adversarial examples" in secs["robustness"] and "accuracy against the attack budget" in secs["robustness"]


def test_a_file_a_runtime_cannot_run_is_not_called_a_parity_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = make_run(tmp_path)
    bench = json.loads((run / "bench.json").read_text())
    bench["rows"].append({**bench_row("model.onnx", "onnx", "float", "openvino", 1, 0.0, 87.5, "error"),
                          "latency": None, "error": "OpenVINO cannot read model.onnx"})
    (run / "bench.json").write_text(json.dumps(bench))
    result = build_report()
    assert (result.recommended, result.failed) == ("model.onnx", ("model.tflite",))
    assert result.not_run == ("model.onnx on openvino: benchmark at 1 thread(s) failed: OpenVINO cannot read "
                              "model.onnx",)
    res = cli(["report"], capsys)
    assert res.code == 0 and "FAIL model.tflite (parity gate)" in res.text and "FAIL model.onnx" not in res.text
    assert "not run model.onnx on openvino: benchmark at 1 thread(s) failed" in " ".join(res.text.split())

"""Bad input across every command: a table of cases run through the real CLI entry point.

Every case must end with exit status 2, a one-line ``error: <problem> -- <fix>`` on stderr (or Click's usage
error), no traceback, and no file added, removed or changed in the case's folder (not even a hidden temp file,
nor an input overwritten).
Each case runs ``edge_tl.cli.main.main(argv)`` in-process (same error wrapper as the console script; torch is
imported once for the whole table) in a fresh folder built from named assets (:data:`helpers.reliability.ASSETS`).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.cli import cli
from helpers.reliability import ASSETS, files


@dataclass(frozen=True)
class Case:
    """One bad invocation: ``argv`` after ``edge-tl``; ``words`` (regex) must appear in the message."""

    id: str
    argv: tuple[str, ...]
    words: str
    assets: tuple[str, ...] = ()


# id | argv | words (regex) | assets; a line starting with spaces continues the one above; "#" lines are headings
TABLE = r"""
# the root command
unknown-command | trian | No such command 'trian'
# report
report-missing-run | report runs/nope | no run folder runs/nope
report-default-run-absent | report | no run folder runs/latest
report-run-is-a-file | report cat.png | not a run folder | image
report-empty-folder | report empty | no card\.json | empty_dir
report-run-without-card | report runs/r1 | no card\.json | run_nocard
report-card-not-json | report | not valid JSON | run_badjson
report-card-binary | report | not UTF-8 | run_binary
report-card-no-classes | report | classes | run_noclasses
report-bench-missing | report --bench nope.json | --bench nope\.json does not exist | run
report-bench-is-folder | report --bench runs | --bench runs is not a file | run
report-bench-truncated | report --bench bench.json | not valid JSON | run bench_trunc
report-attack-missing | report --attack a.json | --attack a\.json does not exist | run
report-exported-missing | report --exported nope | --exported nope does not exist | run
report-exported-is-file | report --exported blocker | not a folder | run blocker
report-out-is-folder | report --out runs | --out runs is a folder | run
report-out-unwritable | report --out blocker/r.html | cannot create output folder | run blocker
report-history-corrupt | report | training history .* not valid JSON | run history_bad
report-unknown-option | report --bnech x | No such option | run
# predict
predict-missing-image | predict nope.jpg | does not exist
predict-no-images | predict | Missing argument
predict-text-as-jpeg | predict cat.jpg --model good.onnx | cat\.jpg | text.jpg good.onnx
predict-zero-byte-image | predict zero.png --model good.onnx | zero\.png | zero.png good.onnx
predict-text-named-onnx | predict cat.png --model model.onnx | not a valid ONNX | image text.onnx
predict-empty-onnx | predict cat.png --model empty.onnx | not a valid ONNX | image empty.onnx
predict-onnx-other-input-size | predict cat.png --model model64.onnx | does not match the card's \d+x\d+ | image onnx64
predict-onnx-without-card | predict cat.png --model nocard.onnx | no edge-tl model card | image onnx_nocard
predict-truncated-tflite | predict cat.png --model model.tflite | truncated|damaged | image trunc.tflite
predict-text-named-tflite | predict cat.png --model text.tflite | not a TFLite model | image text.tflite
predict-garbage-checkpoint | predict cat.png --model model.pt | model\.pt | image garbage.pt
predict-malicious-pickle | predict cat.png --model evil.pt | evil\.pt | image evil.pt
predict-malicious-run | predict cat.png --model runs/r1 | model\.pt | image evil_run
predict-unknown-suffix | predict cat.png --model model.h5 | unknown model file type | image model.h5
predict-missing-model | predict cat.png --model nope.onnx | no such model | image
predict-empty-run-folder | predict cat.png --model empty | empty | image empty_dir
predict-model-and-backbone | predict cat.png --model model64.onnx --backbone tiny_cnn | exclude each other
    | image onnx64
predict-weights-with-model | predict cat.png --model model64.onnx --weights none | --weights applies to --backbone
    | image onnx64
predict-unknown-backbone | predict cat.png --backbone mobilenet_v9 | unknown backbone | image
predict-top-zero | predict cat.png --top 0 --backbone tiny_cnn | --top | image
predict-batch-negative | predict cat.png --batch-size -1 | --batch-size | image
predict-threads-zero | predict cat.png --threads 0 | --threads | image
predict-json-unwritable | predict cat.png --model good.onnx --json blocker/out.json
    | cannot create output folder blocker | image good.onnx blocker
# data check
data-missing-folder | data check nope | 'nope' is not an existing folder
data-empty-folder | data check empty | empty is empty | empty_dir
data-file-not-folder | data check blocker | blocker is a file | blocker
data-pets-root-empty | data check oxford-pets --data-root empty | not an extracted Oxford | empty_dir
data-catsdogs-root-empty | data check cats-vs-dogs --data-root empty | PetImages | empty_dir
data-show-negative | data check ds --show -1 | --show | dataset
data-json-unwritable | data check ds --json blocker/x.json | cannot create output folder | dataset blocker
# train
train-missing-data | train --data nope | 'nope' is not an existing folder
train-empty-folder | train --data empty --backbone tiny_cnn --weights none | is empty | empty_dir
train-single-class | train --data ds --backbone tiny_cnn --weights none | single class | one_class
train-no-readable-images | train --data txt --backbone tiny_cnn --weights none | 0 usable image | not_images
train-unknown-backbone | train --data ds --backbone resnet9000 | unknown backbone 'resnet9000' | dataset
train-weights-file-missing | train --data ds --backbone tiny_cnn --weights nope.pth | nope\.pth does not exist
    | dataset
train-weights-not-a-state-dict | train --data ds --backbone tiny_cnn --weights cat.png
    | cat\.png is not a loadable state dict | dataset image
train-weights-malicious-pickle | train --data ds --backbone tiny_cnn --weights evil.pt | evil\.pt | dataset evil.pt
train-img-size-too-small | train --data ds --img-size 8 | --img-size | dataset
train-lr-zero | train --data ds --lr 0 | --lr | dataset
train-unknown-mode | train --data ds --mode linear | --mode | dataset
train-fp16-on-cpu | train --data ds --backbone tiny_cnn --weights none --device cpu --precision fp16 | fp16
    | dataset
train-out-unwritable | train --data ds --backbone tiny_cnn --weights none --out blocker/x
    | cannot create output folder blocker/x | dataset blocker
train-out-is-trained-run | train --data ds --backbone tiny_cnn --weights none --out runs/r1
    | already holds a trained run.*--force | dataset run_trained
train-resume-nothing | train --data ds --backbone tiny_cnn --weights none --resume --out empty | nothing to resume
    | dataset empty_dir
train-resume-no-folder | train --resume --out nothing | nothing to resume: nothing/train_state\.pt does not exist
train-epochs-zero | train --epochs 0 --out r | --epochs
# eval
eval-no-run | eval | runs/latest.* does not exist
eval-empty-folder | eval --model empty | empty.* does not exist | empty_dir
eval-missing-model | eval --model missing | missing does not exist
eval-garbage-checkpoint | eval --model model.pt | not a readable edge-tl checkpoint | garbage.pt
eval-malicious-pickle | eval --model evil.pt | evil\.pt | evil.pt
eval-malicious-run | eval --model runs/r1 --quiet | model\.pt | evil_run
eval-unknown-split | eval --split holdout | --split
eval-unknown-engine | eval --engine tf | --engine
eval-other-classes | eval --model runs/tiny --data ds | do not match .* unknown \['cat', 'dog'\] | tiny_run dataset
eval-plot-unwritable | eval --model runs/tiny --plot blocker/x.png | cannot create output folder | tiny_run blocker
# quant-report
quant-report-no-run | quant-report | no checkpoint at runs/latest
quant-report-malicious-pickle | quant-report --model evil.pt | evil\.pt | evil.pt
quant-report-unknown-format | quant-report --format keras | --format
quant-report-n-zero | quant-report --n 0 | --n
quant-report-unknown-calib-method | quant-report --model runs/tiny --calib-method median | median | tiny_run
quant-report-tflite-entropy | quant-report --model runs/tiny --format tflite --calib-method entropy | entropy
    | tiny_run
# visualize
visualize-no-class | visualize --model empty | Missing option '--class' | empty_dir
visualize-no-model-nor-backbone | visualize --class cat | exactly one of --model and --backbone
visualize-model-and-backbone | visualize --model empty --backbone tiny_cnn --class cat
    | exactly one of --model and --backbone | empty_dir
visualize-weights-with-model | visualize --model empty --weights none --class cat | --weights applies to --backbone
    | empty_dir
visualize-empty-folder | visualize --model empty --class cat | empty.* does not exist | empty_dir
visualize-malicious-pickle | visualize --model evil.pt --class cat | evil\.pt | evil.pt
visualize-onnx-instead-of-run | visualize --model good.onnx --class cat | good\.onnx | good.onnx
visualize-unknown-backbone | visualize --backbone nope --class 1 | unknown backbone 'nope'
visualize-size-too-small | visualize --backbone tiny_cnn --class 1 --size 8 | --size
visualize-scale-out-of-range | visualize --backbone tiny_cnn --weights none --class 1 --scale 0.9 | --scale
visualize-class-index-out-of-range | visualize --backbone tiny_cnn --weights none --class 5000 --steps 1
    | unknown class '5000'
visualize-unknown-class | visualize --model runs/tiny --class zebra --steps 1 | unknown class 'zebra' | tiny_run
visualize-out-unwritable | visualize --model runs/tiny --class star --steps 1 --out blocker/x.png
    | cannot create output folder blocker | tiny_run blocker
# export
export-out-unwritable | export --model runs/tiny --out blocker/x | cannot create output folder | tiny_run blocker
export-no-run | export | no checkpoint at runs/latest.* -- .*edge-tl train
export-empty-folder | export --model empty | no checkpoint at empty | empty_dir
export-run-without-checkpoint | export --model runs/r1 | no checkpoint at runs/r1 | run
export-not-a-checkpoint | export --model blocker | not a run checkpoint | blocker
export-garbage-checkpoint | export --model model.pt | not a readable edge-tl checkpoint | garbage.pt
export-malicious-pickle | export --model evil.pt | evil\.pt | evil.pt
export-malicious-run | export --model runs/r1 --out exp | model\.pt | evil_run
export-malicious-run-tflite | export --model runs/r1/model.pt --format tflite --out exp | model\.pt | evil_run
export-unknown-format | export --format onnx,keras | unknown format 'keras'
export-unknown-quantization | export --quantize int4 | int4
export-opset-out-of-range | export --opset 12 | --opset
export-saturation-over-100 | export --max-saturated 150 | --max-saturated
export-negative-drop | export --max-drop -1 | --max-drop
export-unknown-calib-method | export --calib-method median | --calib-method
export-calib-size-zero | export --calib-size 0 | --calib-size
# bench
bench-nothing-exported | bench | no artefacts found
bench-empty-exported | bench --exported empty | no artefacts found in /\S+/empty .* -- .*edge-tl export | empty_dir
bench-missing-model | bench nope.onnx | no such model
bench-text-named-onnx | bench model.onnx --data ds | not a valid ONNX | text.onnx dataset
bench-truncated-tflite | bench model.tflite --data ds | truncated|damaged | trunc.tflite dataset
bench-onnx-other-input-size | bench model64.onnx --data ds | does not match | onnx64 dataset
bench-empty-data | bench good.onnx --data empty | empty is empty | good.onnx empty_dir
bench-mobile-with-onnx | bench good.onnx --profile mobile --data ds | --profile mobile runs tflite only
    | good.onnx dataset
bench-other-classes | bench good.onnx --data fruit | classes differ .* -- pass --data | good.onnx fruit
bench-threads-zero | bench --threads 0 | --threads
bench-unknown-profile | bench --profile phone | --profile
bench-min-time-zero | bench --min-time 0 | --min-time
bench-json-unwritable | bench good.onnx --data ds --json blocker/x.json --min-time 0.05 --threads 1 --warmup 1
    | cannot create output folder | good.onnx dataset blocker
# attack
attack-no-model | attack | Missing option '--model'
attack-missing-model | attack --model nope.onnx | no such model
attack-text-named-onnx | attack --model model.onnx | not a valid ONNX | text.onnx
attack-truncated-tflite | attack --model model.tflite --data ds | truncated|damaged | trunc.tflite dataset
attack-malicious-pickle | attack --model evil.pt --data ds | evil\.pt | evil.pt dataset
attack-eps-over-one | attack --model good.onnx --eps 2 | --eps.*out of range | good.onnx
attack-eps-zero | attack --model good.onnx --eps 0 | --eps.*out of range | good.onnx
attack-unknown-attack | attack --model good.onnx --attacks cw | unknown attack 'cw' | good.onnx
attack-misspelt-attack | attack --model good.onnx --attacks squre | did you mean 'square' | good.onnx
attack-surrogate-missing | attack --model good.onnx --surrogate nope/model.pt | surrogate checkpoint | good.onnx
attack-other-classes | attack --model good.onnx --data fruit | classes the model does not know | good.onnx fruit
attack-n-zero | attack --model good.onnx --n 0 | --n | good.onnx
attack-unknown-target-class | attack --model good.onnx --data ds --target-class zebra | unknown class 'zebra'
    | good.onnx dataset
attack-empty-data | attack --model good.onnx --data empty | empty is empty | good.onnx empty_dir
attack-out-unwritable | attack --model good.onnx --data ds --out blocker/x | cannot create output folder blocker/x
    | good.onnx dataset blocker
# outputs vs inputs
predict-json-swallows-image | predict --json cat.png dog.png --model good.onnx | not a JSON file name
    | image image2 good.onnx
predict-json-existing-not-json | predict cat.png --model good.onnx --json notes | notes exists and is not JSON
    | image good.onnx notes
predict-json-is-folder | predict cat.png --model good.onnx --json ds | ds is a folder | image good.onnx dataset
data-json-swallows-folder | data check --json ds | ds is a folder | dataset
report-json-over-input | report --bench b.json --json b.json | b\.json is also an input | run bench_ok
report-out-over-input | report --bench b.json --out b.json | b\.json is also an input | run bench_ok
eval-plot-over-photo | eval --model runs/tiny --plot cat.png | cat\.png exists and is not a png | tiny_run image
eval-plot-over-checkpoint | eval --model runs/tiny/model.pt --plot runs/tiny/model.pt | also an input | tiny_run
bench-csv-over-model | bench good.onnx --csv good.onnx | good\.onnx is also an input | good.onnx
bench-md-over-image | bench good.onnx --md cat.png | not a text file | good.onnx image
bench-json-swallows-model | bench --json good.onnx | not a JSON file name | good.onnx
visualize-out-over-photo | visualize --model runs/tiny --class star --steps 1 --out cat.png
    | cat\.png exists and is not a png | tiny_run image
quant-report-plot-over-photo | quant-report --model runs/tiny --plot cat.png | cat\.png exists and is not a png
    | tiny_run image
export-json-over-checkpoint | export --model runs/tiny --json runs/tiny/model.pt | not a JSON file name | tiny_run
train-json-over-image | train --data ds --json ds/cat/0.png | not a JSON file name | dataset
attack-json-swallows-model | attack --json good.onnx --model good.onnx | not a JSON file name | good.onnx
# split manifests
eval-split-outside-root | eval --model runs/own | outside its root | own_run escape_split
export-split-outside-root | export --model runs/own --out exp | outside its root | own_run escape_split
eval-split-files-missing | eval --model runs/own | \d+ missing since the split | own_run split_missing
eval-split-file-changed | eval --model runs/own | 1 changed since the split | own_run split_changed
"""


def _parse(table: str) -> list[Case]:
    rows = [ln.split(" | ") for ln in re.sub(r"\n +", " ", table.strip()).splitlines() if not ln.startswith("#")]
    return [Case(id, tuple(argv.split()), words, tuple(" ".join(assets).split())) for id, argv, words, *assets in rows]


CASES = _parse(TABLE)


def _copy_tiny_run(request: pytest.FixtureRequest, d: Path) -> None:
    """The session ``tiny_run`` (a really trained tiny_cnn), copied so a case can never alter it."""
    shutil.copytree(request.getfixturevalue("tiny_run"), d / "runs" / "tiny")


def _own_run(request: pytest.FixtureRequest, d: Path) -> None:
    """A run built in the case folder on a copy of the sample data (``data/``), so its split can be altered."""
    from helpers.export_fixtures import build_run

    shutil.copytree(request.getfixturevalue("sample_dir"), d / "data")
    build_run(d / "runs" / "own", d / "data", steps=5)


SPECIAL = {"tiny_run": _copy_tiny_run, "own_run": _own_run}


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture,
                   request: pytest.FixtureRequest) -> None:
    for name in c.assets:
        if name in SPECIAL:
            SPECIAL[name](request, tmp_path)
        else:
            ASSETS[name](tmp_path)
    before = files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGE_TL_DEBUG", raising=False)
    capfd.readouterr()
    cmd = f"edge-tl {' '.join(c.argv)}"
    try:
        code, out, err = cli(list(c.argv), capfd)
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is exactly what this test hunts
        pytest.fail(f"traceback: {cmd} raised {type(exc).__name__}: {exc}")
    assert code == 2, f"{cmd}: exit {code}, stderr: {err!r}"
    assert "Traceback" not in out + err, f"{cmd}: traceback in output"
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if errors:  # notes/warnings may come first; the error itself is the last line, once
        assert len(errors) == 1 and lines[-1] == errors[0], f"{cmd}: message is not one line: {err!r}"
        assert " -- " in errors[0], f"{cmd}: no hint naming the fix: {err!r}"
    else:  # Click's usage error: "Usage: ...", "Try ...", "Error: ..."
        assert lines and lines[-1].startswith("Error:"), f"{cmd}: neither 'error:' nor a usage error: {err!r}"
    assert re.search(c.words, err, flags=re.IGNORECASE), f"{cmd}: message does not name the problem: {err!r}"
    after = files(tmp_path)
    assert after == before, f"{cmd}: files added/changed: {sorted(set(after.items()) ^ set(before.items()))}"

"""Every TFLite variant edge-tl writes runs, unchanged, in MediaPipe's ImageClassifier (the standard consumer of
TFLite image classifiers): class names from the file's own metadata, top-1 and scores equal to edge-tl's runtime.

Square test images at the model's input size, so MediaPipe's resize is the identity and both see the same pixels.
MediaPipe reports the output tensor as scores (here logits; dequantised for a uint8 output).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import cards
from helpers.cards import card
from helpers.tflite import export_variants, needs

pytestmark = needs("litert_torch", "mediapipe")

torch = pytest.importorskip("torch")

from edge_tl.data.preprocess import normalize  # noqa: E402
from edge_tl.export.tflite_export import FILENAMES, write_tflite_card  # noqa: E402
from edge_tl.export.tflite_metadata import LABELS_FILE, TFLITE_METADATA, packed_files  # noqa: E402
from edge_tl.models import create_model, get_spec  # noqa: E402
from edge_tl.runtimes import load  # noqa: E402
from edge_tl.runtimes.litert_rt import read_tflite_metadata  # noqa: E402

SIZE = 32
CLASSES = ("cat", "dog", "fox", "owl")
# agreement with edge-tl's runtime (top-1) and the largest score difference allowed, per variant
TOLERANCE = {"none": (1.0, 1e-4), "fp16": (1.0, 1e-3), "dynamic": (0.99, 0.05), "int8": (0.99, 1e-5)}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], np.ndarray]:
    rng = np.random.default_rng(0)
    calib = rng.integers(0, 256, (40, SIZE, SIZE, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (30, SIZE, SIZE, 3), dtype=np.uint8)
    torch.manual_seed(0)
    model = create_model("tiny_cnn", num_classes=len(CLASSES), weights="none", img_size=SIZE).eval()
    spec = get_spec("tiny_cnn").input_spec(SIZE)
    with torch.no_grad():
        model.head.weight.mul_(300)  # logits of a few units, not ties
        assert model(torch.from_numpy(normalize(test, spec))).std() > 0.1
    paths = export_variants(model, card("pytorch", CLASSES, spec=spec), tmp_path_factory.mktemp("mp"), calib,
                            output="quantized")
    return paths, test


def _mediapipe(path: Path, images: np.ndarray) -> tuple[list[str], list[dict[str, float]]]:
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=-1)
    top, scores = [], []
    with vision.ImageClassifier.create_from_options(opts) as clf:
        for img in images:
            res = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img)))
            cats = res.classifications[0].categories
            top.append(cats[0].category_name)
            scores.append({c.category_name: c.score for c in cats})
    return top, scores


@pytest.mark.parametrize("quantize", list(FILENAMES))
def test_mediapipe_runs_every_variant(files, quantize: str) -> None:
    paths, test = files
    rt = load(paths[quantize])
    logits = rt(test)
    top, scores = _mediapipe(paths[quantize], test)
    assert {c for s in scores for c in s} == set(CLASSES)  # the names come from the file's labels.txt
    mine = [CLASSES[i] for i in logits.argmax(1)]
    min_agree, tol = TOLERANCE[quantize]
    assert np.mean([a == b for a, b in zip(top, mine)]) >= min_agree
    diff = max(abs(s[c] - logits[i, CLASSES.index(c)]) for i, s in enumerate(scores) for c in s)
    assert diff <= tol, f"{quantize}: MediaPipe scores differ from edge-tl's by {diff}"


@pytest.mark.parametrize("quantize", list(FILENAMES))
def test_standard_metadata_read_back(files, quantize: str) -> None:
    from mediapipe.tasks.metadata import metadata_schema_py_generated as md_fb

    content = files[0][quantize].read_bytes()
    buf = read_tflite_metadata(content, TFLITE_METADATA)
    assert buf is not None and buf[4:8] == b"M001"
    md = md_fb.ModelMetadataT.InitFromObj(md_fb.ModelMetadata.GetRootAs(buf, 0))
    assert b"tiny_cnn" in md.name and md.author == b"edge-tl" and b"Apache-2.0" in md.license
    assert md.minParserVersion == b"1.0.0" and md.version
    image = md.subgraphMetadata[0].inputTensorMetadata[0]
    assert image.content.contentPropertiesType == md_fb.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == md_fb.ColorSpaceType.RGB
    unit = image.processUnits[0]
    assert unit.optionsType == md_fb.ProcessUnitOptions.NormalizationOptions
    assert list(unit.options.mean) == [0.0] and list(unit.options.std) == [255.0]  # pixels / 255 in
    assert (list(image.stats.min), list(image.stats.max)) == (([0.0], [255.0]) if quantize == "int8"
                                                              else ([0.0], [1.0]))
    label = md.subgraphMetadata[0].outputTensorMetadata[0].associatedFiles[0]
    assert label.name == LABELS_FILE.encode() and label.type == md_fb.AssociatedFileType.TENSOR_AXIS_LABELS
    assert packed_files(content) == {LABELS_FILE: b"cat\ndog\nfox\nowl\n"}


def test_card_rewrite_keeps_standard_metadata(files, tmp_path: Path) -> None:
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(files[0]["int8"].read_bytes())
    write_tflite_card(path, load(path).card.with_(parity=cards.parity(format="tflite")))
    content = path.read_bytes()
    assert packed_files(content) == {LABELS_FILE: b"cat\ndog\nfox\nowl\n"}
    top, _ = _mediapipe(path, files[1][:4])
    assert len(top) == 4

"""The model card: round trips, validation, and defensive parsing of untrusted bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_tl.card import ModelCard, OutputSpec, sidecar_path
from edge_tl.errors import CardError, EdgeTLError
from edge_tl.records import BudgetRecord, BudgetStep, Calibration, PrepRecord, QuantRecipe
from helpers import cards
from helpers.cards import card as make_card


def test_cards_written_before_typed_records_read_the_same():
    # a TFLite card of an earlier version kept the logits' and input's types inside its calibration
    old = {"mode": "int8", "recipe": "static_wi8_ai8", "float_layers": ["FC"],
           "calibration": {"images": 40, "method": "minmax", "output": "quantized", "io_type": "uint8",
                           "output_margin": 0.25, "split": "train"}}
    q = QuantRecipe.from_json(old)
    assert (q.output, q.io_type, q.calibration) == ("quantized", "uint8", Calibration(40, "minmax", "train", None, 0.25))
    assert q.to_json()["output"] == "quantized" and "io_type" not in q.to_json()["calibration"]


def test_round_trip_json_and_file(tmp_path):
    budget = BudgetRecord(max_drop=0.5, min_agreement=0.99, split="train+val", images=200, float_accuracy=0.9,
                          int8_accuracy=0.895, drop=0.5, agreement=0.99, fits=True, fallback_layers=("fc",),
                          agreement_ci=(0.96, 0.997), steps=(BudgetStep(1, 0.5, 0.99, 1000, 2.5),),
                          reasons={"fc": "alone adds most"})
    quant = cards.recipe("int8", output="quantized", io_type="uint8", calibration=Calibration(40, "percentile",
                         percentile=99.9), float_layers=("fc",), output_range={"logits": (-3.0, 4.0)},
                         prep=PrepRecord("cle", "auto", 3, {"cle": {"pairs": 2}}), budget=budget)
    card = make_card(output=OutputSpec(dtype="int8", scale=0.1, zero_point=-3), quantization=quant,
                     metrics={"test_accuracy": 0.9}, parity=cards.parity(failures=("drop 2 pt",)))
    assert ModelCard.loads(card.dumps()) == card
    assert card.to_json()["parity"]["passed"] is False and card.to_json()["quantization"]["prep"]["cle"]["pairs"] == 2
    with pytest.raises(TypeError, match="QuantRecipe"):
        make_card(quantization={"mode": "int8"})
    path = card.save(tmp_path / "c.json")
    assert ModelCard.load(path) == card
    assert not list(tmp_path.glob(".*")), "atomic write left a temp file"
    assert sidecar_path(tmp_path / "model_int8.onnx").name == "model_int8.onnx.card.json"


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d.pop("classes"), "lacks 'classes'"), (lambda d: d.update(classes=[]), "non-empty"),
    (lambda d: d.update(classes=["a", "a"]), "duplicate"), (lambda d: d["input"].update(std=[0, 1, 1]), "out of range"),
    (lambda d: d["input"].update(mean=[0.5, 0.5]), "three numbers"),
    (lambda d: d["input"].update(layout="NWHC"), "expected one of"),
    (lambda d: d["input"].update(size=-1), "out of range"), (lambda d: d.update(format="caffe"), "expected one of"),
    (lambda d: d.update(schema=99), "newer"), (lambda d: d.update(backbone=3), "wrong type"),
])
def test_invalid_cards_raise_card_error(mutate, fragment):
    d = make_card().to_json()
    mutate(d)
    with pytest.raises(CardError, match=fragment):
        ModelCard.from_json(d)


def test_not_json():
    with pytest.raises(CardError, match="not valid JSON"):
        ModelCard.loads(b"\x00\xff garbage")
    assert issubclass(CardError, EdgeTLError)  # the errors share one root


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data):
    try:
        ModelCard.loads(data)
    except CardError:
        pass


_json = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                     | st.text(max_size=8), lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(["classes", "input", "backbone", "weights", "format", "output", "quantization", "parity", "metrics",
                        "versions", "schema", "size", "mean", "std", "layout", "scale"]), _json)
def test_mutated_json_only_raises_card_error(key, value):
    d = make_card().to_json()
    target = d["input"] if key in ("size", "mean", "std", "layout", "scale") else d
    target[key] = value
    try:
        card = ModelCard.loads(json.dumps(d))
    except CardError:
        return
    # whatever the reader accepts it can write back and read again to the same card
    assert ModelCard.loads(json.dumps(card.to_json())) == card
    assert all(isinstance(c, str) for c in card.classes) and len(card.classes) >= 1

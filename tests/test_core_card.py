"""The model card: round trips, validation, and defensive parsing of untrusted bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_tl.card import ModelCard, OutputSpec, sidecar_path
from edge_tl.errors import CardError, EdgeTLError
from helpers.cards import card as make_card


def test_round_trip_json_and_file(tmp_path):
    card = make_card(output=OutputSpec(dtype="int8", scale=0.1, zero_point=-3), quantization={"mode": "int8"},
                     metrics={"test_accuracy": 0.9}, parity={"agreement": 1.0})
    assert ModelCard.loads(card.dumps()) == card
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
@given(st.sampled_from(["classes", "input", "backbone", "weights", "format", "output", "quantization", "metrics",
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

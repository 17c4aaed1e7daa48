"""model.pt save/load contract: weights_only round trip, card inside, every defect a CheckpointError."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from edge_tl.card import ModelCard
from edge_tl.errors import CheckpointError
from edge_tl.models import create_model
from edge_tl.models.checkpoint import FORMAT, load_checkpoint, read_card, read_checkpoint, save_checkpoint, unwrap
from helpers.cards import card


@pytest.fixture()
def tiny():
    torch.manual_seed(1)
    model = create_model("tiny_cnn", num_classes=3, weights="none", img_size=32)
    with torch.no_grad():
        model.head.weight.normal_()  # distinguishable from any fresh init
    return model


@pytest.fixture()
def tiny_card(tiny) -> ModelCard:
    return card("pytorch", ("a", "b", "c"), spec=tiny.input_spec, weights="random", manifest="split.json",
                run_dir="/x/run", metrics={"test_accuracy": 0.75})


def test_round_trip_weights_only(tmp_path: Path, tiny, tiny_card) -> None:
    path = save_checkpoint(tmp_path / "model.pt", tiny, tiny_card, extra={"note": "x"})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == 1 and raw["extra"] == {"note": "x"}
    assert ModelCard.from_json(raw["card"]) == tiny_card
    model, card2 = load_checkpoint(path)
    assert card2 == tiny_card
    assert not model.training
    x = torch.randn(4, 3, 32, 32)
    tiny.eval()
    with torch.no_grad():
        assert torch.equal(model(x), tiny(x))
    assert read_card(tmp_path) == tiny_card  # a run folder works too
    assert not list(tmp_path.glob(".model*")), "temp file left behind"


def test_saves_from_ddp_like_wrapper(tmp_path: Path, tiny, tiny_card) -> None:
    wrapper = torch.nn.Module()
    wrapper.module = tiny
    assert unwrap(wrapper) is tiny
    save_checkpoint(tmp_path / "model.pt", wrapper, tiny_card)
    sd = read_checkpoint(tmp_path / "model.pt")["state_dict"]
    assert set(sd) == set(tiny.state_dict())


@pytest.mark.parametrize("content", [None, b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_missing_and_garbage_files(tmp_path: Path, content: bytes | None) -> None:
    p = tmp_path / "model.pt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(CheckpointError, match="does not exist" if content is None else "not a readable edge-tl"):
        load_checkpoint(p)


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


@pytest.mark.parametrize(("write", "load", "match"), [
    (lambda p, m, c: torch.save({"format": FORMAT, "version": 1, "state_dict": {}, "card": {}, "x": _Evil()}, p),
     read_checkpoint, r"refused to load .*may be malicious"),
    (lambda p, m, c: p.write_bytes(pickle.dumps({"a": 1})), read_checkpoint, None),  # a legacy, non-zip pickle
    (lambda p, m, c: torch.save({"state_dict": m.state_dict()}, p), read_checkpoint,
     "not an edge-tl checkpoint"),  # a bare state dict file, not ours
    (lambda p, m, c: torch.save({"format": FORMAT, "version": 99, "state_dict": m.state_dict(), "card": {}}, p),
     read_checkpoint, "upgrade edge-tl"),
    (lambda p, m, c: torch.save({"format": FORMAT, "version": 1, "state_dict": {}, "card": c.to_json()}, p),
     read_checkpoint, "no valid state dict"),
    (lambda p, m, c: torch.save({"format": FORMAT, "version": 1, "state_dict": m.state_dict(),
                                 "card": {"classes": []}}, p), load_checkpoint, "classes"),
    (lambda p, m, c: save_checkpoint(p, m, c.with_(classes=("a", "b", "c", "d"))), load_checkpoint,
     "do not fit"),  # head has 3 outputs, card says 4
    (lambda p, m, c: save_checkpoint(p, m, c.with_(backbone="no_such_backbone")), load_checkpoint, "cannot rebuild"),
], ids=["arbitrary-pickle", "plain-pickle", "bare-state-dict", "newer-version", "no-state-dict", "bad-card",
        "mismatched-weights", "unknown-backbone"])
def test_defective_checkpoint_is_refused(tmp_path: Path, tiny, tiny_card, write, load, match) -> None:
    """Written by ``write(path, model, card)``: ``load`` refuses it with a CheckpointError matching ``match``."""
    write(tmp_path / "model.pt", tiny, tiny_card)
    with pytest.raises(CheckpointError, match=match):
        load(tmp_path / "model.pt")

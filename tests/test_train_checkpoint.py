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


def test_arbitrary_pickle_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "model.pt"
    torch.save({"format": FORMAT, "version": 1, "state_dict": {}, "card": {}, "x": _Evil()}, p)
    with pytest.raises(CheckpointError, match=r"refused to load .*may be malicious"):
        read_checkpoint(p)
    p.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        read_checkpoint(p)


def test_wrong_format_version_and_state(tmp_path: Path, tiny, tiny_card) -> None:
    p = tmp_path / "model.pt"
    torch.save({"state_dict": tiny.state_dict()}, p)  # a bare state dict file, not ours
    with pytest.raises(CheckpointError, match="not an edge-tl checkpoint"):
        read_checkpoint(p)
    torch.save({"format": FORMAT, "version": 99, "state_dict": tiny.state_dict(), "card": {}}, p)
    with pytest.raises(CheckpointError, match="upgrade edge-tl"):
        read_checkpoint(p)
    torch.save({"format": FORMAT, "version": 1, "state_dict": {}, "card": tiny_card.to_json()}, p)
    with pytest.raises(CheckpointError, match="no valid state dict"):
        read_checkpoint(p)


def test_bad_card_and_mismatched_weights(tmp_path: Path, tiny, tiny_card) -> None:
    p = tmp_path / "model.pt"
    torch.save({"format": FORMAT, "version": 1, "state_dict": tiny.state_dict(), "card": {"classes": []}}, p)
    with pytest.raises(CheckpointError, match="classes"):
        load_checkpoint(p)
    save_checkpoint(p, tiny, tiny_card.with_(classes=("a", "b", "c", "d")))  # head has 3 outputs, card says 4
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(p)
    save_checkpoint(p, tiny, tiny_card.with_(backbone="no_such_backbone"))
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        load_checkpoint(p)

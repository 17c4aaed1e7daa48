"""The one registry rule: duplicates raise, unknown names suggest the closest, order is registration order."""

from __future__ import annotations

import pytest

from edge_tl.attacks.registry import get_attack, register_attack
from edge_tl.bench import flops
from edge_tl.errors import CardError, ConfigError, UnknownNameError
from edge_tl.export.registry import get_card_writer, register_card_writer
from edge_tl.export.sensitivity import get_backend
from edge_tl.models import registry
from edge_tl.registry import Registry
from edge_tl.runtimes import timing as engines
from edge_tl.runtimes.base import CARD_READERS, read_card, runtime_entry, runtime_names
from edge_tl.train import features
from helpers.cards import card


def test_duplicate_raises_unless_replace() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(ConfigError, match="widget 'a' is already registered"):
        reg.add("a", 2)
    reg.add("a", 3, replace=True)
    assert reg.get("a") == 3


def test_unknown_name_suggests_closest() -> None:
    reg: Registry[str] = Registry("attack")
    for name in ("square", "fgsm", "pgd"):
        reg.register(name)(name.upper())
    with pytest.raises(UnknownNameError) as info:
        reg.get("fgsn")
    assert "did you mean 'fgsm'" in str(info.value) and info.value.kind == "attack"
    assert reg.find("fgsn") is None and reg.names() == ["square", "fgsm", "pgd"] and "pgd" in reg


def test_loader_runs_once_before_first_read() -> None:
    calls = []
    reg: Registry[int] = Registry("thing", load=lambda: calls.append(1) or reg.add("built-in", 0))
    assert calls == []
    assert reg.names() == ["built-in"] and len(reg) == 1 and reg.get("built-in") == 0
    assert calls == [1]


def test_builtin_registries_use_the_rule() -> None:
    for reg in (registry.BACKBONES, engines.ADAPTERS, flops.COUNTERS, features.ENGINES):
        first = reg.names()[0]
        with pytest.raises(ConfigError):
            reg.add(first, reg.get(first))
    assert {"onnx", "tflite"} <= set(flops.COUNTERS.names())


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: get_attack("fgsn"), UnknownNameError, "did you mean 'fgsm'"),
    (lambda: register_attack("fgsm", "whitebox")(lambda *a: None), ConfigError, "already registered"),
    (lambda: get_card_writer("tflit"), UnknownNameError, "did you mean 'tflite'"),
    (lambda: register_card_writer("onnx")(lambda p, c: None), ConfigError, "already registered"),
    (lambda: get_backend("onnxx"), UnknownNameError, "did you mean 'onnx'"),
    (lambda: runtime_entry(".tflite", "litrt"), UnknownNameError, "did you mean 'litert'"),
])
def test_migrated_tables_use_the_rule(call, error: type, match: str) -> None:
    names = runtime_names()  # the first registered stays the default
    assert (names[".tflite"], names[".onnx"], names[".pt"]) == ("litert", "onnxruntime", "pytorch")
    with pytest.raises(error, match=match):
        call()


def test_peek_does_not_load() -> None:
    reg: Registry[int] = Registry("thing", load=lambda: reg.add("built-in", 0))
    assert reg.peek("built-in") is None
    assert reg.find("built-in") == 0 and reg.peek("built-in") == 0


def test_one_card_reader_per_format(tmp_path) -> None:
    assert set(runtime_names()) <= set(CARD_READERS.names())  # every file a runtime loads has its card reader
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"x")
    with pytest.raises(CardError, match="cannot read a model card"):
        read_card(odd)
    cards_dir = tmp_path / "side"
    cards_dir.mkdir()
    card("onnx").save(cards_dir / "model.bin.card.json")
    (cards_dir / "model.bin").write_bytes(b"x")
    assert read_card(cards_dir / "model.bin").format == "onnx"

"""The model card of each exported artefact, read from inside the file (without running it).

The card embedded in the artefact is the authority; the sidecar (``model.onnx.card.json``) is used only when
it describes the same format (a sidecar copied or renamed by hand may not). Imports ``onnx`` / the LiteRT
flatbuffer schema only when called.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_tl.card import CARD_KEY, sidecar_path
from edge_tl.errors import EdgeTLError

MAX_ARTEFACT_BYTES = 2 << 30


class UnreadableArtefact(Exception):
    """An artefact whose card cannot be read; the message says why (shown as a note, not fatal)."""


def _onnx_card(path: Path) -> str | None:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise UnreadableArtefact(f"not a valid ONNX model ({type(exc).__name__})") from None
    return {p.key: p.value for p in model.metadata_props}.get(CARD_KEY)


def _tflite_card(path: Path) -> str | None:
    from edge_tl.runtimes.litert_rt import check_tflite_bytes, read_tflite_metadata

    data = path.read_bytes()
    try:
        check_tflite_bytes(data, path.name)
        raw = read_tflite_metadata(data, CARD_KEY)
    except EdgeTLError as exc:
        raise UnreadableArtefact(exc.message) from None
    except (IndexError, ValueError, TypeError, AttributeError) as exc:
        raise UnreadableArtefact(f"damaged TFLite model ({type(exc).__name__})") from None
    return None if raw is None else raw.decode("utf-8", "replace")


READERS: dict[str, tuple[str, Callable[[Path], str | None]]] = {
    ".onnx": ("onnx", _onnx_card),
    ".tflite": ("tflite", _tflite_card),
}


def artefacts(folder: Path) -> list[Path]:
    """Every file in ``folder`` with a registered artefact suffix, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in READERS)


def artefact_card(path: Path) -> dict[str, Any]:
    """The card dict of ``path``: embedded, else a sidecar of the same format; :class:`UnreadableArtefact` if none."""
    fmt, reader = READERS[path.suffix.lower()]
    try:
        if path.stat().st_size > MAX_ARTEFACT_BYTES:
            raise UnreadableArtefact("larger than 2 GiB; not inspected")
        text = reader(path)
    except OSError as exc:
        raise UnreadableArtefact(f"cannot read it ({exc.strerror})") from None
    if text is None:
        side = sidecar_path(path)
        try:
            text = side.read_text(encoding="utf-8") if side.is_file() else None
        except (OSError, UnicodeDecodeError):
            text = None
        if text is None:
            raise UnreadableArtefact("carries no edge-tl model card")
    try:
        card = json.loads(text)
    except (ValueError, RecursionError):
        raise UnreadableArtefact("its model card is not valid JSON") from None
    if not isinstance(card, dict):
        raise UnreadableArtefact("its model card is not a JSON object")
    if card.get("format") not in (None, fmt):
        raise UnreadableArtefact(f"carries no embedded card and its sidecar describes a {card.get('format')} model")
    return card

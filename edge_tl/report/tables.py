"""Schema-tolerant conversion of untrusted JSON results into report blocks (tables, figures, notes).

The other commands (bench, attack, export, train) own their JSON layouts and may change them; the report does
not depend on exact field names. Any list of objects becomes a table whose columns are the union of the keys
(nested objects flattened to ``a.b``), a dict of equal-length lists becomes a table with one row per index,
and scalar fields become a two-column key/value table. Cell text is plain text here; escaping happens once,
in :mod:`edge_tl.report.html`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge_tl.errors import DataError
from edge_tl.report.human import fmt, label
from edge_tl.report.human import value as human_value

MAX_JSON_BYTES = 64 << 20
MAX_IMAGE_BYTES = 25 << 20
MAX_ROWS = 500
MAX_COLUMNS = 40
LONG_CELL = 40

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class Table:
    """Rows of plain-text cells under ``columns``; ``omitted`` rows were cut to keep the page small."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    omitted: int = 0
    collapsed: bool = False  # secondary detail: rendered folded (<details>), still in the page


@dataclass(frozen=True)
class Figure:
    """An image to inline as a data URI."""

    mime: str
    data: bytes
    caption: str


@dataclass(frozen=True)
class Note:
    """A sentence for the reader; ``command`` (if any) is shown as code after it."""

    text: str
    command: str | None = None


Block = Table | Figure | Note


def flatten(obj: Mapping[str, Any], prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` down to ``depth`` levels; deeper values stay as they are."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and depth > 0:
            out.update(flatten(value, f"{name}.", depth - 1))
        else:
            out[name] = value
    return out


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def table_from_rows(rows: Iterable[Any], caption: str = "", first: Iterable[str] = ()) -> Table:
    """A table from a list of objects (non-objects become a ``value`` column); columns in first-seen order."""
    flat: list[dict[str, Any]] = []
    omitted = 0
    for row in rows:
        if len(flat) >= MAX_ROWS:
            omitted += 1
            continue
        flat.append(flatten(row) if isinstance(row, Mapping) else {"value": row})
    columns: dict[str, None] = {c: None for c in first}
    for row in flat:
        columns.update((str(k), None) for k in row)
    # a column that is empty in every row (an unused optional field) only costs width
    used = [c for c in columns if c in first or any(row.get(c) not in (None, "") for row in flat)]
    text = {c: [human_value(c, row.get(c)) if c in row else "" for row in flat] for c in used}
    # long free-text columns (paths, messages) go last so the short numeric ones stay in view
    cols = tuple(sorted(used, key=lambda c: c not in first and max(map(len, text[c]), default=0) > LONG_CELL))
    cols = cols[:MAX_COLUMNS]
    cells = tuple(tuple(text[c][i] for c in cols) for i in range(len(flat)))
    return Table(columns=cols, rows=cells, caption=caption, omitted=omitted)


def table_from_mapping(obj: Mapping[str, Any], caption: str = "") -> Table:
    """A two-column key/value table (nested objects flattened)."""
    items = list(flatten(obj).items())
    kept = items[:MAX_ROWS]
    return Table(columns=("field", "value"), rows=tuple((label(str(k)), human_value(str(k), v)) for k, v in kept),
                 caption=caption,
                 omitted=len(items) - len(kept))


def _columns_of_lists(obj: Mapping[str, Any]) -> bool:
    lists = [v for v in obj.values() if isinstance(v, list)]
    if len(lists) < 2 or len(lists) != len(obj):
        return False
    n = len(lists[0])
    return n > 0 and all(len(v) == n and all(_is_scalar(x) for x in v) for v in lists)


def _list_of_objects(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, Mapping) for x in value)


def _mapping_of_objects(value: Mapping[str, Any]) -> bool:
    return bool(value) and all(isinstance(v, Mapping) for v in value.values())


def tables_from_json(obj: Any, caption: str = "", depth: int = 2) -> list[Table]:
    """Every table found in a JSON value, whatever its exact layout (see the module docstring)."""
    if isinstance(obj, list):
        return [table_from_rows(obj, caption)] if obj else []
    if not isinstance(obj, Mapping):
        return [Table(columns=("value",), rows=((fmt(obj),),), caption=caption)]
    if _columns_of_lists(obj):
        keys = list(obj)
        n = len(obj[keys[0]])
        return [table_from_rows(({k: obj[k][i] for k in keys} for i in range(n)), caption)]
    if _mapping_of_objects(obj):
        rows = ({"name": k, **flatten(v)} for k, v in obj.items())
        return [table_from_rows(rows, caption, first=("name",))]
    scalars: dict[str, Any] = {}
    tables: list[Table] = []
    for key, value in obj.items():
        sub = f"{caption}: {key}" if caption else str(key)
        tabular = _list_of_objects(value) or (isinstance(value, Mapping) and (
            _columns_of_lists(value) or _mapping_of_objects(value)))
        if tabular and depth > 0:
            tables.extend(tables_from_json(value, sub, depth - 1))
        else:
            scalars[str(key)] = value
    if scalars and tables:
        details = table_from_mapping(scalars, f"{caption}: details" if caption else "details")
        tables.append(replace(details, collapsed=True))
    elif scalars:
        tables.append(table_from_mapping(scalars, caption))
    return tables


def read_json(path: Path, what: str, producer: str) -> Any:
    """Parse a JSON file written by another command; a defect is a one-line :class:`DataError`."""
    hint = f"re-run `{producer}`"
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise DataError(f"{what} {path} is too large ({size >> 20} MiB) to be a result file", hint)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror}", hint) from None
    except UnicodeDecodeError:
        raise DataError(f"{what} {path} is not UTF-8 text", hint) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DataError(f"{what} {path} is not valid JSON ({exc})", hint) from None
    except RecursionError:
        raise DataError(f"{what} {path} is nested too deeply", hint) from None


def figure(path: Path, caption: str) -> Block:
    """A :class:`Figure` for an image file, or a :class:`Note` saying why it cannot be shown."""
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            return Note(f"{path.name} is too large to inline ({size >> 20} MiB).")
        data = path.read_bytes()
    except OSError as exc:
        return Note(f"cannot read {path}: {exc.strerror}.")
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return Figure(mime=mime, data=data, caption=caption)
    return Note(f"{path.name} is not a PNG/JPEG/GIF image; not shown.")

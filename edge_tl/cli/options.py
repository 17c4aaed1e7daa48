"""Reusable Click options and parameter types shared by the commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    return click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True), default=None,
                        help="Also write the result as JSON to FILE ('-' for stdout).")(f)


def seed_option(f: F) -> F:
    return click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                        help="Random seed.")(f)


def force_option(f: F) -> F:
    return click.option("--force", is_flag=True, help="Overwrite existing outputs.")(f)


def threads_option(default: int | None = None) -> Callable[[F], F]:
    def deco(f: F) -> F:
        return click.option("--threads", type=click.IntRange(min=1), default=default,
                            help="CPU threads for inference (default: all cores).")(f)
    return deco


class FloatListType(click.ParamType):
    """Comma-separated numbers; fractions such as ``1/255`` allowed."""

    name = "LIST"

    def __init__(self, low: float | None = None, high: float | None = None, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[float]:
        if isinstance(value, list):
            return value
        out: list[float] = []
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                v = float(Fraction(part))
            except (ValueError, ZeroDivisionError):
                self.fail(f"'{part}' is not a number (use e.g. 0.5 or 8/255)", param, ctx)
            if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
                self.fail(f"{part} is out of range ({'>' if self.low_open else '>='} {self.low})", param, ctx)
            if self.high is not None and v > self.high:
                self.fail(f"{part} is out of range (<= {self.high})", param, ctx)
            out.append(v)
        if not out:
            self.fail("empty list", param, ctx)
        return out


class IntListType(click.ParamType):
    """Comma-separated positive integers."""

    name = "INTS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            out = [int(p) for p in str(value).split(",") if p.strip()]
        except ValueError:
            self.fail(f"'{value}' is not a comma-separated list of integers", param, ctx)
        if not out or min(out) < 1:
            self.fail(f"'{value}' must list integers >= 1", param, ctx)
        return out


class NameListType(click.ParamType):
    """Comma-separated names checked against a registry (given as a callable so it loads lazily)."""

    name = "NAMES"

    def __init__(self, kind: str, choices: Callable[[], list[str]]) -> None:
        self.kind, self.choices = kind, choices

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        from edge_tl.errors import UnknownNameError

        if isinstance(value, list):
            return value
        names = [p.strip() for p in str(value).split(",") if p.strip()]
        valid = self.choices()
        for n in names:
            if n not in valid:
                self.fail(str(UnknownNameError(self.kind, n, valid)), param, ctx)
        return names


def cpu_count() -> int:
    """Cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def emit_json(obj: Any, json_path: str | None) -> None:
    """Write ``obj`` as JSON to ``json_path`` ('-' = stdout), atomically for files."""
    if not json_path:
        return
    import json
    from pathlib import Path

    from edge_tl._io import _json_default, atomic_write_text

    text = json.dumps(obj, indent=2, default=_json_default)
    if json_path == "-":
        click.echo(text)
    else:
        atomic_write_text(Path(json_path), text + "\n")

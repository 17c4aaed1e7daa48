"""Reusable Click options and parameter types shared by the commands."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# suffixes of files a JSON result never goes to: when --json is followed by one, it took an input by mistake
NOT_JSON_SUFFIXES = frozenset([
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".onnx", ".tflite", ".pt", ".pth",
    ".ckpt", ".pb", ".h5", ".bin", ".safetensors", ".npz", ".npy", ".csv", ".md", ".html", ".zip", ".tar", ".gz",
    ".tgz", ".txt"])


class JsonPathType(click.ParamType):
    """A file for a JSON result, or '-' for stdout; never an option, a folder, an image/model, or a non-JSON file."""

    name = "FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        value = str(value)
        if value == "-":
            return value
        fix = "give --json OUT.json, or --json - (or --json last) for stdout"
        if value.startswith("-"):
            self.fail(f"'{value}' is an option, not a file name ({fix})", param, ctx)
        path = Path(value)
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte
            self.fail(f"{value[:80]} is not a usable file name ({getattr(exc, 'strerror', None) or exc})", param, ctx)
        if is_dir:
            self.fail(f"{value} is a folder ({fix})", param, ctx)
        if path.suffix.lower() in NOT_JSON_SUFFIXES:
            self.fail(f"{value} is not a JSON file name: --json would write over a {path.suffix} file ({fix})",
                      param, ctx)
        if exists:
            from edge_tl._io import OUTPUT_KINDS

            if not OUTPUT_KINDS["json"](path):
                self.fail(f"{value} exists and is not JSON: --json never writes over it ({fix})", param, ctx)
        return value


def json_option(f: F) -> F:
    return click.option("--json", "json_path", type=JsonPathType(), is_flag=False, flag_value="-", default=None,
                        help="Also write the result as JSON to FILE ('-', or no FILE, for stdout).")(f)


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


# output parameters of the commands -> kind of file (keys of edge_tl._io.OUTPUT_KINDS); "out" depends on its suffix
OUTPUT_PARAMS: dict[str, str] = {"json_path": "json", "csv_path": "text", "md_path": "text", "plot": "png",
                                 "plot_path": "png"}
OUT_SUFFIX_KINDS: dict[str, str] = {".json": "json", ".png": "png", ".html": "html", ".htm": "html"}


def _path_values(value: Any) -> Iterator[Path]:
    if isinstance(value, (str, os.PathLike)) and str(value) not in ("", "-"):
        yield Path(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _path_values(v)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a value that is no usable path (too long, NUL): not an input file
        return False


def output_files(params: dict[str, Any]) -> dict[str, tuple[Path, str]]:
    """The single-file outputs among a command's parsed ``params``: name -> (path, kind)."""
    outs: dict[str, tuple[Path, str]] = {}
    for name, value in params.items():
        if value is None or (name not in OUTPUT_PARAMS and name != "out"):
            continue
        path = Path(value)
        kind = OUTPUT_PARAMS.get(name) or OUT_SUFFIX_KINDS.get(path.suffix.lower())
        if kind is not None and str(value) != "-":
            outs[name] = (path, kind)
    return outs


def check_outputs(params: dict[str, Any], force: bool) -> list[Path]:
    """Refuse outputs that are inputs or foreign files; return the inputs (every other existing file named)."""
    from edge_tl._io import check_output_file, protected_inputs

    outs = output_files(params)
    out_names = set(outs) | {"out"}
    inputs = [p for name, v in params.items() if name not in out_names for p in _path_values(v) if _is_file(p)]
    with protected_inputs(inputs):
        for name, (path, kind) in outs.items():
            check_output_file(path, kind, force=force, what="--" + name.removesuffix("_path").replace("_", "-"))
    return inputs


def guard_command(cmd: click.Command) -> click.Command:
    """Give ``cmd`` (and a group's sub-commands) the output guard, once.

    Before the command runs, its single-file outputs are checked (:func:`check_outputs`); while it runs, every
    existing file named in its arguments is protected from being written over. A command without its own
    ``--force`` gets one, which lets a check replace an existing file of another kind (never an input).
    """
    if getattr(cmd, "_edge_tl_guarded", False):
        return cmd
    cmd._edge_tl_guarded = True  # type: ignore[attr-defined]
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            guard_command(sub)
        return cmd
    inner = cmd.callback
    if inner is None:
        return cmd
    own_force = any(p.name == "force" for p in cmd.params)
    if not own_force:
        cmd.params.append(click.Option(["--force"], is_flag=True,
                                       help="Replace an existing output file that edge-tl did not write."))

    @functools.wraps(inner)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        from edge_tl._io import protected_inputs

        force = bool(kwargs.get("force") if own_force else kwargs.pop("force", False))
        with protected_inputs(check_outputs(kwargs, force)):
            return inner(*args, **kwargs)

    cmd.callback = guarded
    return cmd


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

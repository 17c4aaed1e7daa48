"""The root CLI: instant help (no heavy imports), one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge_tl.cli.main import COMMANDS

HEAVY = ("torch", "onnxruntime", "tensorflow", "ai_edge_litert", "litert_torch", "ai_edge_quantizer")

_PROBE = """
import sys, json
from edge_tl.cli.main import main
try:
    main({args!r})
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})), file=sys.stderr)
"""


def _loaded_after(args: list[str]) -> list[str]:
    code = _PROBE.format(args=args, heavy=set(HEAVY))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return json.loads(out.stderr.strip().splitlines()[-1])


def test_root_help_imports_nothing_heavy():
    assert _loaded_after(["--help"]) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_imports_nothing_heavy(name):
    assert _loaded_after([name, "--help"]) == []


def test_every_command_is_listed():
    out = subprocess.run([sys.executable, "-m", "edge_tl.cli.main", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


def test_edge_tl_error_is_one_line_exit_2(monkeypatch, capsys):
    import click

    from edge_tl.cli import main as m
    from edge_tl.errors import DataError

    @click.command()
    def boom() -> None:
        raise DataError("dataset 'x' is empty", "put images in x/<class>/")

    monkeypatch.setitem(m.COMMANDS, "boom", ("tests.test_cli_main", "_boom", "test"))
    monkeypatch.setattr(m.LazyGroup, "get_command", lambda self, ctx, name: boom if name == "boom" else None)
    with pytest.raises(SystemExit) as exc:
        m.main(["boom"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: dataset 'x' is empty -- put images in x/<class>/"
    with pytest.raises(DataError):
        m.main(["--debug", "boom"])


def test_unknown_command_exit_2():
    out = subprocess.run([sys.executable, "-m", "edge_tl.cli.main", "trian"], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr

"""The root CLI: instant help (no heavy imports), one-line errors with exit status 2 (an unknown command is a
row of ``test_reliability_bad_input``)."""

from __future__ import annotations

import pytest

from edge_tl.cli.main import COMMANDS
from helpers.cli import cli, imports_after


@pytest.mark.parametrize("args", [["--help"], *([name, "--help"] for name in sorted({*COMMANDS, "predict"}))],
                         ids=" ".join)
def test_help_imports_nothing_heavy(args):
    """``edge-tl --help`` and every command's ``--help`` print usage without importing a heavy package."""
    loaded, res = imports_after(args)
    assert loaded == [] and res.code == 0 and "Usage:" in res.out, res.err
    assert args != ["--help"] or all(name in res.out for name in COMMANDS)  # every command is listed


def test_edge_tl_error_is_one_line_exit_2(monkeypatch, capsys):
    import click

    from edge_tl.cli import main as m
    from edge_tl.errors import DataError

    @click.command()
    def boom() -> None:
        raise DataError("dataset 'x' is empty", "put images in x/<class>/")

    monkeypatch.setitem(m.COMMANDS, "boom", ("tests.test_cli_main", "_boom", "test"))
    monkeypatch.setattr(m.LazyGroup, "get_command", lambda self, ctx, name: boom if name == "boom" else None)
    code, _, err = cli(["boom"], capsys)
    assert code == 2
    assert err.strip() == "error: dataset 'x' is empty -- put images in x/<class>/"
    with pytest.raises(DataError):
        cli(["--debug", "boom"], capsys)

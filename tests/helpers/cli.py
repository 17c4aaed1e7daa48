"""The one way tests run the CLI in-process: ``code, out, err = cli(["export", ...], capsys)``."""

from __future__ import annotations

from typing import NamedTuple

import pytest


class CliResult(NamedTuple):
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """stdout and stderr together (for messages that may go to either)."""
        return self.out + self.err


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> CliResult:
    """Run ``edge-tl ARGS`` in this process; the exit status (0 when the command returns) and what it printed."""
    from edge_tl.cli.main import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return CliResult(code, out.out, out.err)

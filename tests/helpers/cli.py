"""The one way tests run the CLI: in-process ``code, out, err = cli(["export", ...], capsys)``, or as a fresh
process with :func:`cli_process` (exit codes, signals, file-size limits, what ``--help`` imports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, NamedTuple

import pytest

# packages ``edge-tl --help`` and each command's ``--help`` must not import
HEAVY = ("torch", "torchvision", "onnxruntime", "onnx", "tensorflow", "timm", "ai_edge_litert", "litert_torch",
         "openvino", "ai_edge_quantizer", "matplotlib", "art")


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


def cli_process(args: list[str], cwd: Any = None, *, env: dict[str, str] | None = None, timeout: float = 600,
                prefix: list[str] | None = None) -> CliResult:
    """Run ``edge-tl ARGS`` as a fresh process (``python -m edge_tl.cli.main``), as a user's shell would.

    ``prefix`` goes before the interpreter (for instance ``["bash", "-c", "ulimit -f 64; exec \\"$@\\"", "sh"]``).
    """
    argv = [*(prefix or []), sys.executable, "-m", "edge_tl.cli.main", *args]
    res = subprocess.run(argv, cwd=cwd, env=dict(os.environ, MPLBACKEND="Agg", **(env or {})), capture_output=True,
                         text=True, timeout=timeout, check=False)
    return CliResult(res.returncode, res.stdout, res.stderr)


def imports_after(args: list[str], heavy: tuple[str, ...] = HEAVY) -> tuple[list[str], CliResult]:
    """The heavy top-level packages loaded after ``edge-tl ARGS`` runs in a fresh process, and what it printed."""
    code = (f"import sys, json\nfrom edge_tl.cli.main import main\ntry:\n    main({args!r})\nexcept SystemExit:\n"
            f"    pass\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {set(heavy)!r})), "
            "file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    lines = res.stderr.strip().splitlines()
    loaded = json.loads(lines[-1]) if lines else ["<no output: " + res.stderr[-500:] + ">"]
    return loaded, CliResult(res.returncode, res.stdout, "\n".join(lines[:-1]))

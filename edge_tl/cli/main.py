"""``edge-tl``: the root group. Sub-commands load lazily so ``edge-tl --help`` never imports torch."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
from typing import Any

import click

from edge_tl import __version__

LOG_WIDTH = 160  # columns rich lays tables out in when output is not a terminal (COLUMNS overrides)

# name -> (module, attribute, one-line help). Help text lives here so listing commands imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("edge_tl.cli.data_cmd", "data", "Inspect datasets: hygiene scan of an image folder."),
    "predict": ("edge_tl.cli.predict_cmd", "predict", "Top-k labels for images, from a backbone, run or artefact."),
    "train": ("edge_tl.cli.train_cmd", "train", "Transfer learning: frozen features or fine-tuning."),
    "eval": ("edge_tl.cli.eval_cmd", "eval_", "Accuracy, per-class accuracy and confusion matrix of a model."),
    "export": ("edge_tl.cli.export_cmd", "export", "Export a run to ONNX / TFLite, float or quantised, verified."),
    "quant-report": ("edge_tl.cli.quant_report_cmd", "quant_report", "Per-layer int8 sensitivity of a run."),
    "bench": ("edge_tl.cli.bench_cmd", "bench", "Latency, memory, size and accuracy of every artefact."),
    "attack": ("edge_tl.cli.attack_cmd", "attack", "Adversarial robustness of a deployed artefact."),
    "visualize": ("edge_tl.cli.visualize_cmd", "visualize", "The 'ideal class image' by gradient ascent."),
    "report": ("edge_tl.cli.report_cmd", "report", "One self-contained HTML report of a run."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when invoked (or their own --help is asked for)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, (mod, _, _) in COMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        mod, attr, _ = COMMANDS[name]
        if importlib.util.find_spec(mod) is None:
            return None
        from edge_tl.cli.options import guard_command

        return guard_command(getattr(importlib.import_module(mod), attr))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][2]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="edge-tl")
@click.option("--debug", is_flag=True, envvar="EDGE_TL_DEBUG", help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """edge-tl: from a folder of images to a small, fast, quantised, verified classifier on an edge runtime.

    \b
    Typical pipeline:
      edge-tl train --data PATH          # runs/NAME, runs/latest
      edge-tl export --format all --quantize int8
      edge-tl bench                      # everything in exported/
      edge-tl attack --model exported/model.onnx
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: EdgeTLError -> one-line message and exit status 2 (traceback with --debug)."""
    from edge_tl.errors import EdgeTLError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("EDGE_TL_DEBUG") not in (None, "", "0")
    if "COLUMNS" not in os.environ and not sys.stdout.isatty() and not sys.stderr.isatty():
        os.environ["COLUMNS"] = str(LOG_WIDTH)  # a log or a pipe: tables keep one row per line instead of 80 columns
    if hasattr(signal, "SIGXFSZ"):  # over a file-size limit a write then fails with EFBIG instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        try:
            return cli.main(args=args, prog_name="edge-tl", standalone_mode=False)
        except (OSError, RuntimeError) as exc:  # a write inside a library (a converter's temp file) that hit a fault
            fault = _write_fault(exc)
            if fault is None or debug:
                raise
            raise fault from exc
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except EdgeTLError as exc:
        if debug:
            raise
        hint = f" -- {exc.hint}" if exc.hint else ""
        click.echo(f"error: {exc.message}{hint}".replace("\n", " "), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def _write_fault(exc: BaseException) -> Exception | None:
    """The one-line error for a write fault raised outside edge-tl's own writers, or None for anything else."""
    from edge_tl._io import WRITE_ONLY_ERRNOS, write_error

    if isinstance(exc, OSError) and exc.errno not in WRITE_ONLY_ERRNOS:  # e.g. a permission error on a read
        return None
    path = getattr(exc, "filename", None) if isinstance(exc, OSError) else None
    return write_error(path if isinstance(path, str | os.PathLike) else "a file", exc)


if __name__ == "__main__":
    main()

"""One error hierarchy for the whole toolkit.

Every error a user can cause derives from :class:`EdgeTLError`. The CLI prints ``error: <message>`` and,
when set, ``hint: <fix>`` on one line each, and exits with status 2; a traceback only with ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgeTLError(Exception):
    """Root of every expected edge-tl failure. ``hint`` says how to fix it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(EdgeTLError):
    """Invalid or contradictory options."""


class UnknownNameError(ConfigError):
    """A name (backbone, dataset, format, attack, runtime) that is not registered."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]) -> None:
        choices = sorted(choices)
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        hint += f"valid {kind}s: {', '.join(choices)}"
        super().__init__(f"unknown {kind} '{name}'", hint)
        self.kind, self.name, self.choices = kind, name, choices


class WriteError(EdgeTLError):
    """A file that could not be written: disk full, file-size limit, quota, read-only file system, no permission.

    ``path`` is the file edge-tl was writing, ``cause`` the system's reason in words.
    """

    def __init__(self, path: str, cause: str, hint: str | None = None) -> None:
        super().__init__(f"cannot write {path}: {cause}", hint)
        self.path, self.cause = path, cause


class OutputConflictError(ConfigError):
    """An output path that would replace one of the command's inputs, or an existing file of another kind."""


class DataError(EdgeTLError):
    """A dataset that cannot be used (missing, empty, one class, too small to split, wrong classes)."""


class WeightsError(EdgeTLError):
    """Pretrained weights that cannot be found or fail their hash check."""


class CheckpointError(EdgeTLError):
    """A run checkpoint that is missing, corrupt, unsafe or incompatible."""


class CardError(EdgeTLError):
    """A model card that is missing or malformed."""


class ArtifactError(EdgeTLError):
    """An exported artefact that cannot be loaded or run (wrong type, truncated, wrong input size)."""


class ExportError(EdgeTLError):
    """A conversion or quantisation that failed."""


class ParityError(EdgeTLError):
    """An artefact that does not behave like its source model; carries the failing rows."""

    def __init__(self, message: str, rows: list[dict] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.rows = rows or []


class DeviceError(EdgeTLError):
    """A device that was asked for but is absent, or ran out of memory."""


class BackendMissingError(EdgeTLError):
    """An optional backend (onnxruntime, ai-edge-litert, litert-torch) is not installed."""

    def __init__(self, package: str, purpose: str) -> None:
        super().__init__(f"{package} is needed to {purpose} but is not installed", f"pip install {package}")


def check_choice(kind: str, name: str, choices: Iterable[str]) -> str:
    """Return ``name`` if it is one of ``choices``, else raise :class:`UnknownNameError` with a suggestion."""
    choices = list(choices)
    if name not in choices:
        raise UnknownNameError(kind, name, choices)
    return name

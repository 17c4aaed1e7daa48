"""Device and precision choice: cuda > mps > cpu, bf16 where supported else fp16 with a grad scaler.

The same training code runs everywhere; only :class:`Precision` changes what autocast does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_tl.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """What autocast runs in on ``device_type``; ``scaler`` is True for fp16 (GradScaler needed)."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for the forward pass (a no-op for fp32)."""
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda if present, else mps, else cpu; an absent device that was asked for -> DeviceError."""
    import torch

    if name not in DEVICES:
        raise ConfigError(f"unknown device '{name}'", f"use one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but no CUDA GPU is available",
                              "use --device cpu (or auto)")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    if name == "mps":
        if not _mps_available():
            raise DeviceError("--device mps was asked for but Apple MPS is not available", "use --device cpu (or auto)")
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``auto`` -> bf16 on a GPU that supports it, fp16 on other GPUs / mps, fp32 on CPU."""
    import torch

    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision '{name}'", f"use one of {', '.join(PRECISIONS)}")
    kind = device.type
    if name == "auto":
        if kind == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif kind == "mps":
            name = "fp16"
        else:
            name = "fp32"
    if name == "fp16" and kind == "cpu":
        raise ConfigError("fp16 autocast is not supported for training on CPU", "use --precision bf16 or fp32")
    if name == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("this GPU does not support bf16", "use --precision fp16")
    return Precision(name, kind)


def make_scaler(precision: Precision) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16."""
    import torch

    return torch.amp.GradScaler(precision.device_type if precision.device_type != "mps" else "cpu",
                                enabled=precision.scaler and precision.device_type == "cuda")


@contextlib.contextmanager
def oom_guard(batch_size: int) -> Iterator[None]:
    """Turn a CUDA out-of-memory error into a one-line DeviceError suggesting a smaller batch."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise DeviceError(f"out of GPU memory at batch size {batch_size}",
                          f"use a smaller --batch-size, e.g. {max(1, batch_size // 2)}") from None


def device_summary(device: torch.device) -> str:
    """A short human description: 'cpu (2 threads)' / 'cuda:0 (NVIDIA H100)'."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)

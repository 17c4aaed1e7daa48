"""The two kinds of training data behind :class:`edge_tl.train.loop.Task`: cached features and images.

* :class:`FeatureTask` trains the head alone on cached backbone features (one view per image per epoch, drawn
  from the cached augmented views) - seconds on a CPU.
* :class:`ImageTask` trains (part of) the backbone on decoded images with augmentation, in background
  DataLoader workers, with pinned memory, channels-last and autocast on the device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_tl.train import ddp
from edge_tl.train.augment import AugmentConfig, augmented_pixels
from edge_tl.train.loop import EpochStats

if TYPE_CHECKING:
    import torch

    from edge_tl.card import InputSpec
    from edge_tl.train.ddp import Dist
    from edge_tl.train.device import Precision


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that decides an epoch's order and views: a pure function of (seed, epoch)."""
    import torch

    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def _stats_add(stats: EpochStats, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
    n = int(y.shape[0])
    stats.loss += float(loss.detach()) * n
    stats.correct += float((logits.detach().argmax(1) == y).sum())
    stats.images += n


class FeatureTask:
    """Head training on cached features ``(N, V, D)`` (V = 1 + augmented views) and val features ``(M, D)``."""

    def __init__(self, module: torch.nn.Module, train_x: torch.Tensor, train_y: torch.Tensor,
                 val_x: torch.Tensor, val_y: torch.Tensor, *, batch_size: int, seed: int, dist: Dist,
                 label_smoothing: float) -> None:
        self.module, self.batch_size, self.seed, self.dist = module, batch_size, seed, dist
        self.train_x, self.train_y, self.val_x, self.val_y = train_x, train_y, val_x, val_y
        self.label_smoothing = label_smoothing

    def epoch_images(self) -> int:
        return len(ddp.shard(list(range(len(self.train_y))), self.dist))

    def train_epoch(self, epoch: int, step: Callable[[torch.Tensor], None],
                    progress: Callable[[int], None]) -> EpochStats:
        import torch
        import torch.nn.functional as F

        g = epoch_generator(self.seed, epoch)
        perm = torch.randperm(len(self.train_y), generator=g).tolist()
        views = torch.randint(self.train_x.shape[1], (len(self.train_y),), generator=g)
        idx = torch.tensor(ddp.shard(perm, self.dist), dtype=torch.long)
        stats, t0 = EpochStats(), time.perf_counter()
        for b in range(0, len(idx), self.batch_size):
            bi = idx[b:b + self.batch_size]
            x, y = self.train_x[bi, views[bi]], self.train_y[bi]
            logits = self.module(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
            step(loss)
            _stats_add(stats, loss, logits, y)
            progress(len(bi))
        stats.seconds = time.perf_counter() - t0
        return stats

    def validate(self) -> EpochStats:
        import torch
        import torch.nn.functional as F

        part = list(range(len(self.val_y)))[self.dist.rank::self.dist.world]
        stats = EpochStats()
        with torch.no_grad():
            x, y = self.val_x[part], self.val_y[part]
            if len(y):
                logits = self.module(x)
                stats.loss = float(F.cross_entropy(logits, y, reduction="sum"))
                stats.correct = float((logits.argmax(1) == y).sum())
                stats.images = float(len(y))
        return stats


class ImageDataset:
    """``dataset[(i, epoch)]`` -> (uint8 ``(H, W, 3)`` tensor, label); augmented when ``aug`` is set.

    The augmentation of image ``i`` in ``epoch`` is seeded by (seed, epoch, image hash): identical across worker
    counts, ranks and resumes.
    """

    def __init__(self, files: Sequence[Path], labels: Sequence[int], shas: Sequence[str], spec: InputSpec,
                 aug: AugmentConfig | None, seed: int) -> None:
        self.files, self.labels, self.shas = list(files), list(labels), list(shas)
        self.spec, self.aug, self.seed = spec, aug, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        import torch

        from edge_tl.data.preprocess import load_pixels

        i, epoch = key
        if self.aug is None:
            pixels = load_pixels(self.files[i], self.spec)
        else:
            rng = np.random.default_rng([int(self.seed), int(epoch), int(self.shas[i][:15], 16)])
            pixels = augmented_pixels(self.files[i], self.spec, rng, self.aug)
        return torch.from_numpy(np.require(pixels, np.uint8, ["C", "W"])), int(self.labels[i])


class KeySampler:
    """A sampler whose keys (``(index, epoch)`` pairs) are replaced before each pass over the data."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


class ImageTask:
    """Fine-tuning / full training on images: background loading, autocast, channels-last."""

    def __init__(self, module: torch.nn.Module, train: ImageDataset, val: ImageDataset, *, batch_size: int,
                 seed: int, dist: Dist, device: torch.device, precision: Precision, workers: int,
                 label_smoothing: float) -> None:
        self.module, self.train, self.val = module, train, val
        self.batch_size, self.seed, self.dist, self.device = batch_size, seed, dist, device
        self.precision, self.workers, self.label_smoothing = precision, workers, label_smoothing
        spec = train.spec
        import torch

        self.mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
        self._loaders: dict[int, tuple[torch.utils.data.DataLoader, KeySampler]] = {}

    def _loader(self, ds: ImageDataset, keys: list[tuple[int, int]]) -> torch.utils.data.DataLoader:
        """One DataLoader per dataset, its workers kept alive across epochs; ``keys`` set for this pass."""
        import torch

        if id(ds) not in self._loaders:
            sampler = KeySampler()
            loader: torch.utils.data.DataLoader = torch.utils.data.DataLoader(
                ds,  # type: ignore[arg-type]  # a map-style dataset keyed by (index, epoch)
                batch_size=self.batch_size, sampler=sampler, num_workers=self.workers,
                pin_memory=self.device.type == "cuda", persistent_workers=self.workers > 0,
                prefetch_factor=4 if self.workers > 0 else None)
            self._loaders[id(ds)] = (loader, sampler)
        loader, sampler = self._loaders[id(ds)]
        sampler.keys = list(keys)
        return loader

    def to_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC batch -> normalised float NCHW (channels-last memory) on the device."""
        import torch

        x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def epoch_images(self) -> int:
        return len(ddp.shard(list(range(len(self.train))), self.dist))

    def train_epoch(self, epoch: int, step: Callable[[torch.Tensor], None],
                    progress: Callable[[int], None]) -> EpochStats:
        import torch
        import torch.nn.functional as F

        perm = torch.randperm(len(self.train), generator=epoch_generator(self.seed, epoch)).tolist()
        keys = [(i, epoch) for i in ddp.shard(perm, self.dist)]
        stats, t0 = EpochStats(), time.perf_counter()
        for pixels, y in self._loader(self.train, keys):
            x, y = self.to_input(pixels), y.to(self.device, non_blocking=True)
            with self.precision.autocast():
                logits = self.module(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
            step(loss)
            _stats_add(stats, loss, logits, y)
            progress(len(y))
        stats.seconds = time.perf_counter() - t0
        return stats

    def predict(self, ds: ImageDataset, shard: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels of ``ds`` (this rank's share with ``shard``), no augmentation, on the CPU."""
        import torch

        from edge_tl.models.checkpoint import unwrap

        keys = [(i, 0) for i in range(len(ds))]
        if shard:
            keys = keys[self.dist.rank::self.dist.world]
        bare = unwrap(self.module)  # no DDP collectives: ranks may see different numbers of batches
        outs, ys = [], []
        with torch.no_grad():
            for pixels, y in self._loader(ds, keys):
                with self.precision.autocast():
                    outs.append(bare(self.to_input(pixels)).float().cpu())
                ys.append(y)
        if not outs:
            return torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)
        return torch.cat(outs), torch.cat(ys)

    def validate(self) -> EpochStats:
        import torch.nn.functional as F

        logits, y = self.predict(self.val)
        stats = EpochStats()
        if len(y):
            stats.loss = float(F.cross_entropy(logits, y, reduction="sum"))
            stats.correct = float((logits.argmax(1) == y).sum())
            stats.images = float(len(y))
        return stats

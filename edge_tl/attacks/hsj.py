"""HopSkipJump (Chen, Jordan and Wainwright 2020), decision-based, batched across images on the 8-bit grid.

Every query is a real uint8 image, so what the search sees is what is judged. All images advance in lockstep
through the algorithm's phases (binary search to the boundary, gradient-direction estimate from random probes,
geometric step-size search); each phase sends the rows of every still-active image through the model in calls
of ``settings.batch_size`` rows, never one image at a time. Queries are counted per image as the rows sent for
it, and no image ever gets more than ``settings.queries``. An image stops early once its distance is at or below
``stop_at`` (the smallest eps asked about: more queries could not change any result). L-inf and L2 variants.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import numpy as np

from edge_tl.attacks.blackbox import image_streams
from edge_tl.attacks.pixels import Predict
from edge_tl.attacks.registry import AttackSettings, Crafted, register_attack
from edge_tl.data.preprocess import normalize_levels

_PROBE = 0.1  # L-inf probe size as a fraction of the distance (at least one grey level)
_GAIN = 1.5  # probe-size adaptation factor
AttackProgress = Callable[[int, float], None]
"""``progress(images_done, fraction_of_work_done)``, called after each phase."""


class _Oracle:
    """Asks the model about rows owned by images, in calls of ``batch`` rows, and counts rows per image.

    A :class:`~edge_tl.runtimes.base.Runtime` is asked in its own input format: rows come in its
    :attr:`layout` (the search keeps its images that way), as uint8 or, from :meth:`decide_levels`, as float32
    grey levels, and are normalised straight into the engine's tensor (the same values as the runtime's own
    call, bit for bit). For a plain pixels function the layout is NHWC and rows are uint8 pixels."""

    def __init__(self, predict: Predict, labels: np.ndarray, targeted: bool, batch: int, n: int,
                 pool: Executor | None = None) -> None:
        self.predict, self.labels, self.targeted, self.batch = predict, labels, targeted, batch
        self.pool = pool
        self.used = np.zeros(n, np.int64)
        layout = getattr(predict, "layout", None)
        tensor_ok = callable(getattr(predict, "run_tensor", None)) and hasattr(predict, "card")
        self.layout: str | None = layout if tensor_ok and layout in ("NCHW", "NHWC") else None

    def decide(self, rows: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """True where the row is adversarial for its owner (uint8 rows, one owner index per row)."""
        if self.layout is None:
            return self._decide(self.predict, rows, owners)
        levels = rows.astype(np.float32)
        return self.decide_levels(levels, owners)

    def decide_levels(self, levels: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """:meth:`decide` for float32 grey levels in :attr:`layout`, normalised in place (``levels`` then
        holds the engine's tensor; :meth:`level_sums` maps sums of its rows back to grey levels)."""
        tensor = normalize_levels(levels, self.predict.card.input, self.layout, out=levels)
        return self._decide(self.predict.run_tensor, tensor, owners)

    def submit(self, levels: np.ndarray, owners: np.ndarray) -> Future[np.ndarray]:
        """:meth:`decide_levels` for one call's rows (at most :attr:`batch`), run on :attr:`pool` so that the
        caller prepares the next rows meanwhile; ``levels`` must stay untouched until the result is read."""
        if self.layout is None:
            fn, rows = self.predict, levels.astype(np.uint8)
        else:
            fn, rows = self.predict.run_tensor, normalize_levels(levels, self.predict.card.input, self.layout,
                                                                 out=levels)
        np.add.at(self.used, owners, 1)
        lab = self.labels[owners]
        if self.pool is None:
            done: Future[np.ndarray] = Future()
            done.set_result(self._judge(fn, rows, lab))
            return done
        return self.pool.submit(self._judge, fn, rows, lab)

    def _judge(self, fn: Predict, rows: np.ndarray, lab: np.ndarray) -> np.ndarray:
        pred = np.asarray(fn(rows)).argmax(axis=1)
        return pred == lab if self.targeted else pred != lab

    def level_sums(self, sums: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Weighted sums of normalised rows -> the same sums of the rows' grey levels. Each is a whole number
        (integer levels, integer weights), recovered exactly by rounding: the float error is far below 0.5."""
        spec = self.predict.card.input
        nchw = self.layout == "NCHW"
        shape = (1, 3, 1) if nchw else (1, 1, 3)
        g = (sums.reshape(len(sums), 3, -1) if nchw else sums.reshape(len(sums), -1, 3)).astype(np.float64)
        g *= 255.0 * np.asarray(spec.std, np.float64).reshape(shape)
        g += 255.0 * np.asarray(spec.mean, np.float64).reshape(shape) * weights.reshape(-1, 1, 1)
        return np.rint(g, out=g).astype(np.float32).reshape(sums.shape)

    def _decide(self, fn: Predict, rows: np.ndarray, owners: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows), bool)
        for s in range(0, len(rows), self.batch):
            pred = np.asarray(fn(rows[s:s + self.batch])).argmax(axis=1)
            lab = self.labels[owners[s:s + self.batch]]
            out[s:s + self.batch] = pred == lab if self.targeted else pred != lab
        np.add.at(self.used, owners, 1)
        return out


def _to_layout(a: np.ndarray, layout: str | None) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if layout == "NCHW" else a


def _from_layout(a: np.ndarray, layout: str | None) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if layout == "NCHW" else a


def _dist(a: np.ndarray, b: np.ndarray, norm: str) -> np.ndarray:
    """Per-image distance in grey levels (L-inf: max |d|; L2: sqrt(sum d^2))."""
    d = (a.astype(np.float32) - b.astype(np.float32)).reshape(len(a), -1)
    return np.abs(d).max(axis=1) if norm == "linf" else np.sqrt((d * d).sum(axis=1))


def _u8(a: np.ndarray) -> np.ndarray:
    r = np.rint(a)
    np.clip(r, 0, 255, out=r)
    return r.astype(np.uint8)


def _between(x0: np.ndarray, cand: np.ndarray, alpha: np.ndarray, norm: str) -> np.ndarray:
    """The point ``alpha`` of the way from ``x0`` to ``cand``: L-inf clips ``cand`` to ``x0 +- alpha`` grey
    levels; L2 interpolates linearly (``alpha`` in [0, 1])."""
    if norm == "linf" and np.array_equal(alpha, np.floor(alpha)):  # whole grey levels: exact in int16
        a = alpha.astype(np.int16).reshape(-1, 1, 1, 1)
        x = x0.astype(np.int16)
        return np.clip(cand, x - a, x + a).astype(np.uint8)
    a = alpha.reshape(-1, 1, 1, 1)
    if norm == "linf":
        x = x0.astype(np.float32)
        return _u8(np.clip(cand.astype(np.float32), x - a, x + a))
    return _u8((1 - a) * x0.astype(np.float32) + a * cand.astype(np.float32))


class _Search:
    """State of the batched search; arrays are indexed by image."""

    def __init__(self, oracle: _Oracle, x: np.ndarray, settings: AttackSettings, norm: str, stop_at: float,
                 ids: np.ndarray) -> None:
        self.o, self.x, self.norm, self.budget = oracle, x, norm, settings.queries
        self.rngs = image_streams(settings.seed, ids)
        self.stop_at = stop_at
        n = len(x)
        self.cur = x.copy()
        self.dist = np.full(n, np.inf)
        self.best = x.copy()
        self.best_dist = np.full(n, np.inf)
        self.alive = np.zeros(n, bool)
        self.gain = np.ones(n)  # probe size, adapted so that about half the probes stay adversarial
        self.init_eval = max(min(100, self.budget // 10), 5)
        self.max_eval = max(self.budget // 4, 10)

    def left(self, idx: np.ndarray) -> np.ndarray:
        return self.budget - self.o.used[idx]

    def start(self, init_images: np.ndarray | None, tries: int = 10) -> None:
        """A first adversarial per image: its seed, else uniform noise (up to ``tries`` draws)."""
        n = len(self.x)
        found = np.zeros(n, bool)
        cand = np.empty_like(self.x)
        if init_images is not None:
            ok = self.o.decide(init_images, np.arange(n))
            cand[ok], found = init_images[ok], ok
        for _ in range(tries):
            todo = np.flatnonzero(~found & (self.left(np.arange(n)) > 0))
            if todo.size == 0:
                break
            noise = np.stack([self.rngs[i].integers(0, 256, self.x.shape[1:], dtype=np.uint8) for i in todo])
            ok = self.o.decide(noise, todo)
            cand[todo[ok]], found[todo[ok]] = noise[ok], True
        self.alive = found.copy()
        self.cand = cand
        self._keep(np.flatnonzero(found), cand[found])

    def _keep(self, idx: np.ndarray, pts: np.ndarray) -> None:
        """Adopt verified adversarial points as current, and as best where closer."""
        d = _dist(pts, self.x[idx], self.norm)
        self.cur[idx], self.dist[idx] = pts, d
        better = d < self.best_dist[idx]
        self.best[idx[better]], self.best_dist[idx[better]] = pts[better], d[better]
        done = idx[(d <= self.stop_at) | (self.left(idx) <= 0)]
        self.alive[done] = False

    def binary_search(self) -> None:
        """From each adversarial candidate towards its image, to the boundary (within one grey level)."""
        idx = np.flatnonzero(self.alive)
        if idx.size == 0:
            return
        cand, x0 = self.cand[idx], self.x[idx]
        span = _dist(cand, x0, self.norm)
        lo = np.zeros(idx.size)
        hi = span.copy() if self.norm == "linf" else np.ones(idx.size)
        tol = np.ones(idx.size) if self.norm == "linf" else 1.0 / np.maximum(span, 1.0)
        while True:
            act = np.flatnonzero((hi - lo > tol) & (self.left(idx) > 0))
            if act.size == 0:
                break
            mid = (lo[act] + hi[act]) / 2
            if self.norm == "linf":
                mid = np.floor(mid)
            ok = self.o.decide(_between(x0[act], cand[act], mid, self.norm), idx[act])
            hi[act[ok]], lo[act[~ok]] = mid[ok], mid[~ok]
        self._keep(idx, _between(x0, cand, hi, self.norm))

    def gradient(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The boundary's normal at each current point, estimated from random probes (HopSkipJump's
        baseline-corrected Monte Carlo estimate); returns the active indices and the update directions.

        Probes are drawn and rounded as float32 grey levels in two reused buffers, each of which then becomes
        the engine's input tensor in place: while the engine runs one batch, the next is drawn and the last one's
        per-image sums are taken (on that tensor, mapped back to grey levels)."""
        idx = np.flatnonzero(self.alive)
        n_ev = np.minimum(int(self.init_eval * np.sqrt(t + 1)), self.max_eval)
        counts = np.minimum(n_ev, self.left(idx) - 1)  # keep one query for the step
        idx, counts = idx[counts >= 2], counts[counts >= 2]
        base = self.cur[idx].astype(np.float32)  # (images, *shape), in the model's layout
        shape = base.shape[1:]
        d = int(np.prod(shape))
        flat_base = base.reshape(idx.size, d)
        su = np.zeros((idx.size, d), np.float32)  # per image: sum of probe offsets u, and of f * u
        sfu = np.zeros_like(su)
        sf = np.zeros(idx.size)
        owners = np.repeat(np.arange(idx.size), counts)
        bs = self.o.batch
        size = min(bs, owners.size)
        bufs = [np.empty((size, *shape), np.float32) for _ in range(2)]  # the engine reads one, numpy fills the other
        pending: tuple[Future[np.ndarray], np.ndarray, np.ndarray] | None = None
        for k, s in enumerate(range(0, owners.size, bs)):
            own = owners[s:s + bs]
            probe = bufs[k % 2][:own.size]
            first = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])  # owners are sorted: rows come in runs
            for w, a, r in zip(own[first], first, np.diff(np.r_[first, own.size])):  # each image's own stream
                self._draw(probe[a:a + r], int(idx[w]), base[w], d)
            np.rint(probe, out=probe)
            np.clip(probe, 0, 255, out=probe)
            job = (self.o.submit(probe, idx[own]), probe, own)  # a tensor runtime's: normalised in place
            if pending is not None:
                self._tally(*pending, flat_base, su, sfu, sf)
            pending = job
        if pending is not None:
            self._tally(*pending, flat_base, su, sfu, sf)
        su, sfu = su.reshape(idx.size, *shape), sfu.reshape(idx.size, *shape)
        mean_f = (sf / np.maximum(counts, 1)).reshape(-1, 1, 1, 1)
        frac = (mean_f.ravel() + 1) / 2
        self.gain[idx] = np.clip(self.gain[idx] * np.where(frac > 0.8, _GAIN, np.where(frac < 0.2, 1 / _GAIN, 1.0)),
                                 1 / 16, 16)
        grad = np.where(np.abs(mean_f) == 1.0, mean_f * su, sfu - mean_f * su)
        if self.norm == "linf":
            upd = np.sign(grad)
        else:
            upd = grad / np.maximum(np.sqrt((grad * grad).reshape(len(grad), -1).sum(axis=1)), 1e-12).reshape(
                -1, 1, 1, 1)
        return idx, upd

    def _tally(self, job: Future[np.ndarray], probe: np.ndarray, own: np.ndarray, flat_base: np.ndarray,
               su: np.ndarray, sfu: np.ndarray, sf: np.ndarray) -> None:
        """Add one probe batch, once judged, to its images' sums of offsets ``u`` and of ``f * u``."""
        ok = job.result()
        first = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
        runs = np.diff(np.r_[first, own.size])
        who = own[first]
        f = np.where(ok, 1.0, -1.0).astype(np.float32)
        sums = np.zeros((2 * who.size, flat_base.shape[1]), np.float32)  # per image: sum of probes, of f * probe
        rows = probe.reshape(own.size, -1)
        # Row by row, in place: a matrix product would start BLAS threads that keep spinning against the engine's.
        for j, k in enumerate(np.repeat(np.arange(who.size), runs)):
            sums[k] += rows[j]
            if ok[j]:
                sums[who.size + k] += rows[j]
            else:
                sums[who.size + k] -= rows[j]
        n_f = np.add.reduceat(f, first)
        if self.o.layout is not None:
            sums = self.o.level_sums(sums, np.r_[runs, n_f])
        su[who] += sums[:who.size] - runs.astype(np.float32)[:, None] * flat_base[who]
        sfu[who] += sums[who.size:] - n_f[:, None] * flat_base[who]
        sf[who] += n_f

    def _draw(self, slab: np.ndarray, i: int, base: np.ndarray, d: int) -> None:
        """``len(slab)`` random probes around ``base`` (grey levels) from image ``i``'s stream, unrounded:
        L-inf uniform in ``base +- delta``, L2 at distance ``delta`` in a random direction."""
        if self.norm == "linf":  # uniform on 256 sub-levels of [-delta, delta]: one random byte per value
            delta = np.float32(max(1.0, _PROBE * self.dist[i]) * self.gain[i])
            raw = self.rngs[i].bit_generator.random_raw(-(-slab.size // 8)).view(np.uint8)[:slab.size]
            np.multiply(raw.reshape(slab.shape), 2 * delta / 256, out=slab, dtype=np.float32)
            slab += base + (delta / 256 - delta)
            return
        delta = np.float32(max(np.sqrt(d), 0.1 * self.dist[i]) * self.gain[i])
        self.rngs[i].standard_normal(out=slab, dtype=np.float32)
        flat = slab.reshape(len(slab), -1)
        length = np.sqrt(np.einsum("ij,ij->i", flat, flat))
        slab *= (delta / np.maximum(length, 1e-12)).astype(np.float32).reshape(-1, *([1] * (slab.ndim - 1)))
        slab += base

    def step(self, idx: np.ndarray, upd: np.ndarray, t: int) -> None:
        """Geometric step-size search along each update: halve until the moved point is adversarial."""
        size = 2.0 * self.dist[idx] / np.sqrt(t + 1)
        moved = np.zeros(idx.size, bool)
        self.cand[idx] = self.cur[idx]
        floor = 0.5 if self.norm == "linf" else 1.0  # below it the move rounds away
        while True:
            size = size / 2
            act = np.flatnonzero(~moved & (size >= floor) & (self.left(idx) > 0))
            if act.size == 0:
                break
            pts = _u8(self.cur[idx[act]].astype(np.float32) + size[act].reshape(-1, 1, 1, 1) * upd[act])
            ok = self.o.decide(pts, idx[act])
            self.cand[idx[act[ok]]] = pts[ok]
            moved[act[ok]] = True
        stuck = idx[~moved]
        self.alive[stuck[self.left(stuck) <= 0]] = False

    def images_done(self) -> int:
        return int((~self.alive).sum())


def batched_hopskipjump(predict: Predict, x: np.ndarray, y: np.ndarray, settings: AttackSettings,
                        target: np.ndarray | None = None, init_images: np.ndarray | None = None, *,
                        norm: str = "linf", stop_at: float = 0.0, progress: AttackProgress | None = None,
                        ids: np.ndarray | None = None) -> tuple[Crafted, np.ndarray]:
    """Minimum-distance adversarials of uint8 images ``x`` within ``settings.queries`` queries each; returns
    the crafted images (unchanged where none was found) and their distances in [0, 1] units (inf: none).
    ``init_images[i]``, an image already classified as wanted, seeds image ``i``; ``stop_at`` ([0, 1] units)
    ends an image's search once it is that close. ``ids`` (default ``0..n-1``) key each image's own random
    stream, so an image's search does not depend on the other images in the run."""
    n = len(x)
    labels = np.asarray(target if target is not None else y, np.int64)
    if n == 0:
        return Crafted(x.copy(), np.zeros(0, np.int64)), np.zeros(0)
    with ThreadPoolExecutor(1, thread_name_prefix="edge-tl-hsj") as pool:
        return _run(_Oracle(predict, labels, target is not None, settings.batch_size, n, pool), x, settings,
                    init_images, norm, stop_at, progress, ids)


def _run(oracle: _Oracle, x: np.ndarray, settings: AttackSettings, init_images: np.ndarray | None, norm: str,
         stop_at: float, progress: AttackProgress | None, ids: np.ndarray | None) -> tuple[Crafted, np.ndarray]:
    n = len(x)
    layout = oracle.layout  # the search runs in the model's own layout
    xl = np.ascontiguousarray(_to_layout(x, layout))
    seeds = None if init_images is None else np.ascontiguousarray(_to_layout(init_images, layout))
    s = _Search(oracle, xl, settings, norm, stop_at * 255.0, np.arange(n) if ids is None else np.asarray(ids))
    s.start(seeds)
    s.binary_search()
    t = 0
    total = float(n * settings.queries)
    while s.alive.any():
        idx, upd = s.gradient(t)
        s.alive[np.setdiff1d(np.flatnonzero(s.alive), idx)] = False  # too few queries left for an estimate
        if idx.size:
            s.step(idx, upd, t)
            s.binary_search()
        t += 1
        if progress is not None:
            progress(s.images_done(), float(np.minimum(oracle.used, settings.queries).sum()) / total)
    return Crafted(_from_layout(s.best, layout), oracle.used.copy()), s.best_dist / 255.0


def _hsj(predict: Predict, x: np.ndarray, y: np.ndarray, eps: float | None, settings: AttackSettings,
         target: np.ndarray | None = None, init_images: np.ndarray | None = None, stop_at: float = 0.0,
         progress: AttackProgress | None = None, ids: np.ndarray | None = None) -> Crafted:
    return batched_hopskipjump(predict, x, y, settings, target, init_images, norm=settings.norm, stop_at=stop_at,
                               progress=progress, ids=ids)[0]


register_attack("hopskipjump", "blackbox", eps_bounded=False, norms=("linf", "l2"),
                description="HopSkipJump (decision-based), own batched implementation, budgeted and "
                            "query-counted.")(_hsj)

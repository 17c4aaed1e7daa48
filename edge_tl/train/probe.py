"""The linear probe on cached frozen features: all of ``features`` mode, and the head that ``finetune`` / ``full``
start from (linear probe, then fine-tune).

Features mode pools train + val, picks the head's L2 strength by stratified k-fold cross-validation on that pool
(:func:`edge_tl.train.head.select_head`), refits on all of it and measures once on the untouched test split. Its
``val_accuracy`` is the cross-validated accuracy on train + val. The image modes fit the probe on train alone, so
their validation split stays clean for early stopping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edge_tl.errors import CheckpointError
from edge_tl.train import ddp

if TYPE_CHECKING:
    from edge_tl.train.config import TrainConfig
    from edge_tl.train.context import Outcome, RunContext
    from edge_tl.train.features import ExtractStats
    from edge_tl.train.head import HeadSelection

SGD_ONLY = ("epochs", "lr", "batch_size", "patience", "weight_decay")


def split_features(ctx: RunContext, views: dict[str, int]) -> tuple[dict[str, np.ndarray], ExtractStats, str]:
    """Features ``(N, 1 + views, D)`` of the named splits (cached or computed), the combined stats, the engine."""
    from edge_tl.train.context import input_spec
    from edge_tl.train.features import ExtractStats, extract

    cfg, model, prep = ctx.cfg, ctx.model, ctx.prep
    spec = input_spec(model)
    engine = cfg.engine if cfg.engine != "auto" else ("onnx" if ctx.device.type == "cpu" else "torch")
    if engine == "torch":
        model.to(ctx.device)
    if ctx.dist.enabled:  # every rank computes its share into the shared cache first
        for name, nv in views.items():
            part = prep.split(name)
            mine = list(range(len(part)))[ctx.dist.rank::ctx.dist.world]
            extract(model, spec, [part.files[i] for i in mine], [part.shas[i] for i in mine], views=nv,
                    engine=engine)
        ddp.barrier(ctx.dist)
    feats: dict[str, np.ndarray] = {}
    hits = misses = 0
    seconds = 0.0
    total = sum(len(prep.split(n)) * (1 + nv) for n, nv in views.items())
    with ctx.tasks.task("features", total, "img") as tick:
        for name, nv in views.items():
            part = prep.split(name)
            feats[name], st = extract(model, spec, part.files, part.shas, views=nv, engine=engine, progress=tick)
            hits, misses, seconds = hits + st.hits, misses + st.misses, seconds + st.seconds
    model.to("cpu")
    rate = f" at {misses / seconds:,.0f} img/s" if misses and seconds > 0 else ""
    ctx.reporter.note(f"features: {hits} from cache, {misses} computed{rate} ({engine})")
    return feats, ExtractStats(hits, misses, seconds), engine


def fit_probe(ctx: RunContext, x: np.ndarray, y: list[int], what: str) -> HeadSelection:
    """Select and fit the head on features ``x`` ``(N, V, D)``; load it into ``ctx.model.head`` (raw features)."""
    from edge_tl.train.head import load_into, probe

    with ctx.tasks.task(f"head ({what})", None, "fit") as advance:
        fits = [0]

        def on_fit(done: int, total: int) -> None:
            advance(done - fits[0])
            fits[0] = done

        sel, w, b = probe(x, y, len(ctx.prep.classes), seed=ctx.cfg.seed, progress=on_fit)
    load_into(ctx.model.head, w, b)
    cv = sel.best
    score = f"cv accuracy {100 * cv['cv_acc']:.2f}%, cv loss {cv['cv_loss']:.4f}, " if cv else ""
    ctx.reporter.note(f"head ({what}): L-BFGS, l2 {sel.fit.l2:.1e} by {sel.chosen_by}; {score}"
                      f"{len(y)} images, {x.shape[1]} view(s), {sel.seconds:.1f} s")
    return sel


def _history_row(sel: HeadSelection, rows: int) -> dict[str, float]:
    cv = sel.best
    return {"epoch": 1, "train_loss": sel.fit.loss, "train_acc": sel.fit.accuracy,
            "val_loss": cv.get("cv_loss", float("nan")), "val_acc": cv.get("cv_acc", float("nan")),
            "lr": 0.0, "l2": sel.fit.l2, "seconds": sel.seconds,
            "images_per_s": rows / max(sel.seconds, 1e-9), "train_images": rows}


def run_features(ctx: RunContext) -> Outcome:
    """Frozen backbone: extract (or read cached) features once, fit the head to convergence on train + val."""
    import torch

    from edge_tl.train import state
    from edge_tl.train.context import Outcome
    from edge_tl.train.features import weights_hash
    from edge_tl.train.loop import LoopState

    cfg, model, prep = ctx.cfg, ctx.model, ctx.prep
    model.freeze(except_last=0)
    wsha = weights_hash(model.features)
    if ctx.saved is not None and ctx.saved.get("features_sha") != wsha:
        raise CheckpointError("cannot resume: the backbone weights differ from the interrupted run's",
                              "resume with the run's own --weights, or train a new run")
    feats, st, _ = split_features(ctx, {"train": cfg.aug_views, "val": cfg.aug_views, "test": 0})
    pool = np.concatenate([feats["train"], feats["val"]])
    pool_y = list(prep.train.labels) + list(prep.val.labels)
    sel = fit_probe(ctx, pool, pool_y, "train + val")
    row = _history_row(sel, int(pool.shape[0] * pool.shape[1]))
    loop = LoopState(epoch=1, best_acc=row["val_acc"] if sel.best else -1.0,
                     best_loss=row["val_loss"] if sel.best else float("inf"), best_epoch=1, history=[row])
    if ctx.dist.is_main:
        state.save_state(ctx.run_dir, {
            "config": cfg.to_json(), "classes": list(prep.classes), "backbone": cfg.backbone, "mode": cfg.mode,
            "model": state.tensors_to_cpu(model.head.state_dict()), "optimizer": {}, "scheduler": {},
            "loop": loop.to_json(), "features_sha": wsha})
    ddp.barrier(ctx.dist)
    if ctx.on_epoch:
        ctx.on_epoch(1, row)
    model.eval()
    with torch.no_grad():
        logits = model.head(torch.from_numpy(feats["test"][:, 0]).to(model.head.weight.dtype)).float()
    metrics: dict[str, Any] = {"feature_cache_hits": st.hits, "feature_cache_misses": st.misses,
                               "feature_images_per_s": st.misses / st.seconds if st.misses and st.seconds else None,
                               **sel.metrics()}
    return Outcome(loop, logits, torch.tensor(prep.test.labels, dtype=torch.long), metrics, l2_path=sel.path)


def init_head(ctx: RunContext) -> dict[str, Any]:
    """Image modes: start the head from the linear probe on the frozen backbone's train features (val kept
    clean for early stopping). Returns the probe's metrics, prefixed ``probe_``."""
    feats, _, _ = split_features(ctx, {"train": 0})
    sel = fit_probe(ctx, feats["train"], list(ctx.prep.train.labels), "linear probe on train, before fine-tuning")
    return {f"probe_{k.removeprefix('head_')}": v for k, v in sel.metrics().items()}


def sgd_settings_note(cfg: TrainConfig) -> str | None:
    """A note when settings of the SGD loop were given to features mode, which does not use them."""
    if (cfg.mode or "features") != "features":
        return None
    used = [f"--{k.replace('_', '-')}" for k in SGD_ONLY if getattr(cfg, k) is not None]
    if not used:
        return None
    return (f"note: {', '.join(used)} set(s) the SGD loop of --mode finetune/full; features mode fits its head to "
            "convergence (L-BFGS) and does not use them")

"""Cost of building pretrained backbones and of ``edge-tl predict``'s PyTorch path, per backbone.

For each backbone with offline weights (pip packages; and any others already in the torch hub cache): time to
resolve + hash-check + load the weights into an EdgeModel, and the median eager latency of a batch of 1 and of 16
normalised 224 px images (``torch.inference_mode``), at the given thread count. Also checks each model's top-1
on scikit-image's ``chelsea`` photo (cat classes 281-285), so a wrongly wired model cannot post a good time.

    .venv/bin/python benchmarks/bench_models.py [--threads 1] [--repeats 10]

No ../shared data is used. The machine is shared: compare rows measured in one run, not across runs.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()

    import torch
    from PIL import Image
    from rich.console import Console
    from rich.table import Table
    from skimage.data import chelsea

    from edge_tl.data.preprocess import normalize, resize_crop
    from edge_tl.errors import WeightsError
    from edge_tl.models import create_model, get_spec, list_backbones

    torch.set_num_threads(args.threads)
    table = Table(title=f"backbones: build + eager latency, {args.threads} thread(s), median of {args.repeats}")
    for col in ("backbone", "weights source", "build s", "batch 1 ms", "batch 16 ms/img", "chelsea top-1"):
        table.add_column(col, justify="left" if col in ("backbone", "weights source") else "right")
    for name in list_backbones():
        t0 = time.perf_counter()
        try:
            model = create_model(name)
        except WeightsError:
            table.add_row(name, "offline: none", "-", "-", "-", "-")
            continue
        build = time.perf_counter() - t0
        spec = get_spec(name).input_spec()
        x1 = torch.from_numpy(normalize(resize_crop(Image.fromarray(chelsea()), spec)[None], spec))
        x16 = x1.repeat(16, 1, 1, 1)
        with torch.inference_mode():
            top1 = int(model(x1).argmax())
            model(x16)  # warm-up
            t1 = [_timed(model, x1) for _ in range(args.repeats)]
            t16 = [_timed(model, x16) / 16 for _ in range(max(2, args.repeats // 4))]
        ok = "ok" if 281 <= top1 <= 285 else "WRONG"
        table.add_row(name, model.weights_info.source, f"{build:.2f}", f"{1e3 * statistics.median(t1):.1f}",
                      f"{1e3 * statistics.median(t16):.1f}", f"{top1} {ok}")
        del model
    Console().print(table)


def _timed(model: object, x: object) -> float:
    a = time.perf_counter()
    model(x)  # type: ignore[operator]
    return time.perf_counter() - a


if __name__ == "__main__":
    main()

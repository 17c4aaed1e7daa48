"""Ideal-class-image benchmark: are the images made on one network recognised by another?

Usage::

    .venv/bin/python benchmarks/bench_visualize.py --out /tmp/viz                  # 10 classes, defaults
    .venv/bin/python benchmarks/bench_visualize.py --out /tmp/viz --param fourier,pixel --classes zebra,tabby
    .venv/bin/python benchmarks/bench_visualize.py --out /tmp/viz --steps 32 --size 128 --classes zebra  # quick

Each class image is optimised on ``--maker`` (ImageNet-pretrained ``mobilenet_v2``) with ``edge-tl visualize``'s
defaults for each ``--param`` and then judged by ``--judge`` (``efficientnet_lite0``, a different architecture
and training run) at the judge's own input size: its probability of the class, the class's rank among the 1000
and the judge's top class. "Recognisable" = in the judge's top 5. Writes one PNG per class and method, a grid
per method and ``results.json`` under ``--out``; prints a table. Uses no data set (the images start from noise).
Seconds are the optimisation alone, on ``--threads`` torch threads, as wall time and as this process's CPU time
(with ``--threads 1`` the CPU time is what one free core would take; on a shared machine the wall time is noisy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

CLASSES = "zebra,tabby,goldfish,flamingo,pizza,volcano,jellyfish,lemon,daisy,monarch"


def pixel_module(name: str):
    from edge_tl.attacks.pixels import pixel_model
    from edge_tl.models import create_model, get_spec

    spec = get_spec(name)
    module = pixel_model(create_model(name, weights="default"), spec.mean, spec.std)
    for p in module.parameters():
        p.requires_grad_(False)
    return module, spec.input_size


def run(args: argparse.Namespace) -> dict:
    import torch
    from PIL import Image

    from edge_tl.attacks.visualize import VisualizeSettings, ideal_image, judge, resolve_classes, save_grid
    from edge_tl.models import imagenet_classes

    torch.set_num_threads(args.threads)
    classes = imagenet_classes()
    names = [n.strip() for n in args.classes.split(",") if n.strip()]
    indices = resolve_classes(names, classes)
    maker, maker_size = pixel_module(args.maker)
    judge_model, judge_size = pixel_module(args.judge)
    size = args.size or maker_size
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"maker": args.maker, "judge": args.judge, "size": size, "judge_size": judge_size,
                     "threads": args.threads, "methods": {}}
    for param in args.param.split(","):
        settings = VisualizeSettings.preset(param, steps=args.steps, seed=args.seed)
        images, cpu_seconds = [], {}
        for name, index in zip(names, indices):
            cpu = time.process_time()
            im = ideal_image(maker, index, size, settings, name=name)
            cpu_seconds[name] = time.process_time() - cpu
            im = judge(im, judge_model, classes, args.judge, judge_size)
            Image.fromarray(im.image).save(args.out / f"{param}_{name.replace(' ', '_')}.png")
            images.append(im)
            print(f"  {param:8s} {name:12s} {args.maker} p={im.probability:.3f}  {args.judge} "
                  f"p={im.judged.probability:.3f} rank={im.judged.rank} ({im.judged.top})  {im.seconds:.1f} s "
                  f"(CPU {cpu_seconds[name]:.1f} s)",
                  flush=True)
        save_grid(images, args.out / f"{param}_grid.png", title=f"{args.maker} -> judged by {args.judge} ({param})")
        results["methods"][param] = {"settings": settings.__dict__,
                                     "images": [{**im.to_json(), "cpu_seconds": cpu_seconds[im.name]} for im in images],
                                     "top5": sum(im.judged.rank <= 5 for im in images),
                                     "top1": sum(im.judged.rank == 1 for im in images),
                                     "median_seconds": statistics.median(im.seconds for im in images),
                                     "median_cpu_seconds": statistics.median(cpu_seconds.values())}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def print_table(results: dict) -> None:
    judge = results["judge"]
    print(f"\nmade on {results['maker']} at {results['size']} px, judged by {judge} at {results['judge_size']} px, "
          f"{results['threads']} torch threads")
    print(f"{'method':8s} {'class':12s} {'maker p':>8s} {judge + ' p':>22s} {'rank':>5s} {'top-5':>6s}  "
          f"{'judge top class':24s} {'s':>6s} {'CPU s':>6s}")
    for param, m in results["methods"].items():
        for im in m["images"]:
            j = im["judged"]
            print(f"{param:8s} {im['class']:12s} {im['probability']:8.3f} {j['probability']:22.3f} {j['rank']:5d} "
                  f"{'yes' if j['rank'] <= 5 else 'no':>6s}  {j['top'][:24]:24s} {im['seconds']:6.1f} "
                  f"{im['cpu_seconds']:6.1f}")
        n = len(m["images"])
        print(f"{param:8s} in {judge}'s top-5: {m['top5']}/{n}, top-1: {m['top1']}/{n}, "
              f"median {m['median_seconds']:.1f} s ({m['median_cpu_seconds']:.1f} CPU s) per class "
              f"({m['settings']['steps']} steps)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the PNGs and results.json")
    ap.add_argument("--maker", default="mobilenet_v2")
    ap.add_argument("--judge", default="efficientnet_lite0")
    ap.add_argument("--classes", default=CLASSES)
    ap.add_argument("--param", default="fourier", help="comma-separated: fourier,pixel")
    ap.add_argument("--steps", type=int, default=None, help="default: each method's preset")
    ap.add_argument("--size", type=int, default=None, help="default: the maker's input size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    print_table(run(ap.parse_args()))


if __name__ == "__main__":
    main()

"""One report section per pipeline stage: a sentence or two of what it shows, its plots, raw tables folded away.

Every builder takes the resolved inputs and the run card and returns ``(intro, blocks, present)``. Inputs are
untrusted JSON written by other commands; fields are read with ``.get`` and type checks so a layout that gains
or loses a field still renders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_tl.card import ModelCard
from edge_tl.report import human
from edge_tl.report.tables import (
    Block,
    Note,
    Table,
    figure,
    read_json,
    table_from_mapping,
    table_from_rows,
    tables_from_json,
)

if TYPE_CHECKING:
    from edge_tl.report.collect import ReportInputs

MAX_FIGURES = 24
Built = tuple[str, list[Block], bool]


def folded(tables: list[Table]) -> list[Block]:
    return [replace(t, collapsed=True) for t in tables]


CAPTIONS = {"bench": "latency against accuracy (Pareto front)", "robustness": "accuracy against the attack budget",
            "examples": "adversarial examples", "ideal": "ideal class images", "curves": "training curves",
            "confusion": "confusion matrix"}


def _figures(paths: list[Path], caption: str) -> list[Block]:
    blocks: list[Block] = [figure(p, CAPTIONS.get(p.stem, f"{caption}: {p.stem.replace('_', ' ')}"))
                           for p in paths[:MAX_FIGURES]]
    if len(paths) > MAX_FIGURES:
        blocks.append(Note(f"{len(paths) - MAX_FIGURES} more images not shown."))
    return blocks


def data_section(inp: ReportInputs, card: ModelCard) -> Built:
    name = Path(card.manifest).name if isinstance(card.manifest, str) and card.manifest else "split.json"
    path = inp.run / name
    if not path.is_file():
        intro = f"{card.num_classes} classes: {', '.join(card.classes)}. No split manifest in the run folder."
        return intro, [], True
    manifest = read_json(path, "split manifest", "edge-tl train")
    items = manifest.get("items") if isinstance(manifest, Mapping) else None
    items = [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []
    counts: Counter[tuple[int, str]] = Counter()
    for item in items:
        if isinstance(item.get("label"), int):
            counts[(item["label"], str(item.get("split", "?")))] += 1
    splits = [s for s in ("train", "val", "test") if any(k[1] == s for k in counts)]
    splits += sorted({k[1] for k in counts} - set(splits))
    per_split = {s: sum(n for (_, sp), n in counts.items() if sp == s) for s in splits}
    dataset = manifest.get("dataset") if isinstance(manifest, Mapping) else None
    intro = (f"{len(items)} images in {card.num_classes} classes"
             + (f" from {dataset}" if isinstance(dataset, str) and dataset else "") + ", split "
             + " / ".join(f"{per_split[s]} {s}" for s in splits) + ". The split is fixed by the manifest (every "
             "image with its hash), so every later stage knows which images the model never trained on.")
    rows = [{"class": name, **{s: counts[(i, s)] for s in splits}} for i, name in enumerate(card.classes)]
    scalars = {k: v for k, v in manifest.items() if not isinstance(v, (list, dict))} if isinstance(
        manifest, Mapping) else {}
    blocks: list[Block] = [table_from_rows(rows, "images per class and split", first=("class", *splits))]
    blocks += folded([table_from_mapping(scalars, "split manifest")]) if scalars else []
    return intro, blocks, True


def training_section(inp: ReportInputs, card: ModelCard) -> Built:
    blocks: list[Block] = []
    for name, caption in (("curves.png", "training curves"), ("confusion.png", "confusion matrix")):
        if (inp.run / name).is_file():
            blocks.append(figure(inp.run / name, caption))
    m = card.metrics or {}
    acc, n = m.get("test_accuracy"), m.get("test_images")
    weights = "random initial weights" if card.weights in ("none", "random") else f"weights {card.weights}"
    mode = {"features": "frozen features and a trained head", "finetune": "last blocks fine-tuned",
            "full": "fully trained"}.get(str(m.get("mode")))
    intro = f"{card.backbone} ({weights})" + (f", {mode}" if mode else "")
    if isinstance(m.get("epochs_run"), int):
        intro += f" for {m['epochs_run']} epochs" + (f", best epoch {m['best_epoch']}" if "best_epoch" in m else "")
    intro += "."
    if isinstance(acc, (int, float)):
        intro += f" Test accuracy {human.pct(acc)}" + (f" on {n} held-out images." if isinstance(n, int) else ".")
    per_class = m.get("per_class_test_accuracy")
    if isinstance(per_class, Mapping) and per_class:
        worst = min(per_class.items(), key=lambda kv: kv[1] if isinstance(kv[1], (int, float)) else 2)
        if isinstance(worst[1], (int, float)):
            intro += f" Weakest class: {worst[0]} ({human.pct(worst[1])})."
    history = inp.run / "history.json"
    tables: list[Table] = []
    if history.is_file():
        raw = read_json(history, "training history", "edge-tl train")
        epochs = raw.get("history") if isinstance(raw, Mapping) and isinstance(raw.get("history"), list) else raw
        tables += [replace(t, caption="epochs") for t in tables_from_json(epochs, "history")]
    d = card.to_json()
    scalar_metrics = {k: v for k, v in d["metrics"].items() if not isinstance(v, Mapping)}
    if scalar_metrics:
        tables.append(table_from_mapping(scalar_metrics, "metrics"))
    if isinstance(per_class, Mapping) and per_class:
        tables.append(table_from_rows([{"class": k, "accuracy": v} for k, v in per_class.items()],
                                      "test accuracy per class"))
    tables.append(table_from_mapping(d["input"], "input preprocessing"))
    if d["versions"]:
        tables.append(table_from_mapping(d["versions"], "library versions"))
    present = bool(blocks) or history.is_file()
    if not present:
        blocks.append(Note("No curves.png, confusion.png or history.json: run", "edge-tl train"))
    return intro, blocks + folded(tables), present


def parity_section(inp: ReportInputs, card: ModelCard, rows: list[dict[str, Any]], notes: list[Note]) -> Built:
    if inp.exported is None:
        return "", [Note("Not run yet (no exported/ folder): run", "edge-tl export --format all --quantize int8")], False
    if not rows:
        return "", [Note(f"No artefacts of this run in {inp.exported}: run", "edge-tl export"), *notes], False
    checked = [r for r in rows if isinstance(r.get("parity"), Mapping)]
    failed = [r for r in checked if r["parity"].get("passed") is False or r["parity"].get("failures")]
    n = next((r["parity"].get("n") for r in checked if isinstance(r["parity"].get("n"), int)), None)
    which = next((r["parity"].get("images") for r in checked if isinstance(r["parity"].get("images"), str)
                  and r["parity"].get("images")), None)
    images = f"{n} images" if n else "held-out images"
    intro = (f"{len(rows)} file{'s' if len(rows) != 1 else ''} in {inp.exported}. Each was run on {images}"
             + (f" ({which})" if which else "")
             + " and compared with the PyTorch model (top-1 agreement, logits, saturated int8 outputs): "
             f"{len(checked) - len(failed)} passed the parity gate, {len(failed)} failed.")
    if len(checked) < len(rows):
        k = len(rows) - len(checked)
        intro += f" {k} {'carries' if k == 1 else 'carry'} no parity result."
    summary, raw = [], []
    for r in rows:
        par = r.get("parity") if isinstance(r.get("parity"), Mapping) else {}
        fails = par.get("failures") if isinstance(par.get("failures"), list) else []
        state = "not checked" if not par else ("FAIL" if fails or par.get("passed") is False else "PASS")
        summary.append({"artefact": r["artefact"], "format": r["format"], "quantization": r["quantization"],
                        "size_mb": r["size_mb"], "agreement": par.get("agreement"), "accuracy": par.get("accuracy"),
                        "drop": par.get("drop"), "parity": state, "failures": fails})
        raw.append({"artefact": r["artefact"], **{k: v for k, v in par.items() if k not in ("limits",)}})
    blocks: list[Block] = [table_from_rows(summary, "artefacts", first=("artefact", "format", "quantization"))]
    blocks += notes
    blocks += folded([table_from_rows(raw, "every parity figure", first=("artefact",))])
    return intro, blocks, True


def _result_images(path: Path, run: Path, image_dir: bool) -> list[Path]:
    """``X.png`` beside ``X.json``; for attacks also the PNGs in ``X/`` and, when the JSON lives in its own
    output folder (``attacks/NAME/attack.json``), the PNGs beside it."""
    images = [path.with_suffix(".png")] if path.with_suffix(".png").is_file() else []
    if image_dir:
        folders = [path.with_suffix("")]
        if path.parent.resolve() != run.resolve():
            folders.append(path.parent)
        for folder in folders:
            if folder.is_dir():
                images += sorted(p for p in folder.glob("*.png") if p.is_file() and p not in images)
    return images


def bench_intro(raw: Any) -> str:
    if not isinstance(raw, Mapping):
        return "Latency of each artefact."
    settings = raw.get("settings") if isinstance(raw.get("settings"), Mapping) else {}
    env = raw.get("env") if isinstance(raw.get("env"), Mapping) else {}
    rows = raw.get("rows") if isinstance(raw.get("rows"), list) else []
    threads = settings.get("threads")
    cpu = next((env[k] for k in ("cpu", "cpu_model", "processor") if isinstance(env.get(k), str)), None)
    text = (f"Median (p50) latency per image of {len({r.get('name') for r in rows if isinstance(r, Mapping)})} "
            f"models at batch {settings.get('batch', 1)}")
    if isinstance(threads, list) and threads:
        text += f", {' and '.join(str(t) for t in threads)} thread{'s' if threads != [1] else ''}"
    text += f", on {cpu}." if cpu else "."
    text += " The plot puts latency against accuracy: the lower right is better."
    return text


def bench_section(inp: ReportInputs, card: ModelCard) -> Built:
    producer = "edge-tl bench --json RUN/bench.json --plot RUN/bench.png"
    if inp.bench is None:
        return "", [Note("Not run yet (no bench results): run", producer)], False
    raw = read_json(inp.bench, "bench results", producer)
    tables = tables_from_json(raw, "bench")
    blocks = _figures(_result_images(inp.bench, inp.run, False), "latency and accuracy")
    blocks += folded(tables) if tables else [Note(f"{inp.bench} holds no results.")]
    notes = raw.get("notes") if isinstance(raw, Mapping) and isinstance(raw.get("notes"), list) else []
    blocks[:0] = [Note(f"Note: {n}") for n in notes[:10] if isinstance(n, str)]
    return bench_intro(raw), blocks, True


WORST = "worst-case"


def _attack_intro(raw: Any) -> str:
    res = raw.get("results") if isinstance(raw, Mapping) and isinstance(raw.get("results"), list) else []
    res = [r for r in res if isinstance(r, Mapping)]
    n = raw.get("n_images") if isinstance(raw, Mapping) else None
    config = raw.get("config") if isinstance(raw, Mapping) and isinstance(raw.get("config"), Mapping) else {}
    l2 = config.get("norm") == "l2"
    models = sorted({str(r.get("model")) for r in res if r.get("model") is not None})
    attacks = sorted({str(r.get("attack")) for r in res if r.get("attack") not in (None, WORST)})
    text = ("Accuracy that survives an adversarial perturbation "
            + ("of L2 norm at most eps" if l2 else "of at most eps per pixel")
            + (f", on {n} test images" if isinstance(n, int) else "")
            + (f"; attacks: {', '.join(attacks)}" if attacks else "") + ".")
    pool = [r for r in res if r.get("attack") == WORST] or res
    worst: dict[str, tuple[float, float]] = {}
    for r in pool:
        acc, eps = r.get("robust_accuracy", r.get("accuracy")), r.get("eps")
        if isinstance(acc, (int, float)) and isinstance(eps, (int, float)) and r.get("model") is not None:
            m = str(r["model"])
            if m not in worst or eps > worst[m][0] or (eps == worst[m][0] and acc < worst[m][1]):
                worst[m] = (float(eps), float(acc))
    if worst and len(models) <= 6:
        text += " At the largest budget, worst case over the attacks: " + "; ".join(
            f"{m} keeps {human.pct(a)} at eps {human.sig(e) if l2 else human.eps(e)}"
            for m, (e, a) in worst.items()) + "."
    return text


def attack_section(inp: ReportInputs, card: ModelCard) -> Built:
    producer = "edge-tl attack --model exported/model.onnx --json RUN/attack.json --out RUN/attack/"
    if inp.attack is None:
        return "", [Note("Not run yet (no attack results): run", producer)], False
    raw = read_json(inp.attack, "attack results", producer)
    tables = tables_from_json(raw, "attack")
    blocks = _figures(_result_images(inp.attack, inp.run, True), "robustness")
    blocks += folded(tables) if tables else [Note(f"{inp.attack} holds no results.")]
    return _attack_intro(raw), blocks, True


def ideal_section(inp: ReportInputs, card: ModelCard) -> Built:
    images = sorted(p for p in inp.run.glob("ideal*.png") if p.is_file())
    if not images:
        return "", [Note("Not run yet (no ideal.png): run", "edge-tl visualize")], False
    intro = ("What the model considers the most typical image of a class: gradient ascent on the class logit from "
             "noise, with total-variation smoothing. Shapes or textures that do not belong to the class hint at a "
             "shortcut the model learnt.")
    return intro, _figures(images, "ideal class image"), True

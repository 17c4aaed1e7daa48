"""The export driver: run folder -> verified artefacts in ``out_dir``.

``export(run_dir, formats, quantize, out_dir, options)`` plans the (format, quantisation) pairs from the
registry, refuses to overwrite without ``force`` *before* doing any work, writes the float artefact of a format
before its quantised variants (reusing an existing one made from the same checkpoint), verifies every new file
with :mod:`edge_tl.parity` on every image the run did not calibrate on (the accuracy budget judges the same
images with the same rule), stores the result in the card (inside and beside),
and finally raises :class:`~edge_tl.errors.ParityError` if any artefact failed its limits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_tl._io import ensure_writable_dir, sha256_file
from edge_tl.card import ModelCard, sidecar_path
from edge_tl.errors import BackendMissingError, CardError, CheckpointError, ConfigError, ParityError
from edge_tl.export.registry import (
    FORMAT_PACKAGES,
    PRECISION_VARIANTS,
    QUANTIZE_MODES,
    Artifact,
    ExporterEntry,
    ExportOptions,
    ExportRequest,
    get_card_writer,
    get_exporter,
    has_exporter,
)
from edge_tl.export.registry import formats as registered_formats
from edge_tl.parity import ParityResult, check_parity, gate, limits_for
from edge_tl.progress import Reporter, of
from edge_tl.runtimes import default_threads

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote (``artifacts``), reused (``reused``) and how each behaved (``parity``)."""

    run_dir: Path
    out_dir: Path
    artifacts: tuple[Artifact, ...]
    parity: tuple[ParityResult, ...]
    reused: tuple[Path, ...] = ()
    skipped: tuple[str, ...] = ()  # formats left out of --format all, with the reason

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.parity)

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "out_dir": str(self.out_dir), "passed": self.passed,
                "artifacts": [a.to_json() for a in self.artifacts], "reused": [str(p) for p in self.reused],
                "skipped": list(self.skipped), "parity": [r.to_json() for r in self.parity]}


def resolve_checkpoint(model: str | Path) -> Path:
    """``runs/latest`` or ``runs/NAME`` or ``runs/NAME/model.pt`` -> the checkpoint path (must exist)."""
    p = Path(model)
    ckpt = p / "model.pt" if p.is_dir() else p
    if not ckpt.is_file():
        raise CheckpointError(f"no checkpoint at {ckpt}", "train first (edge-tl train) or pass --model runs/NAME")
    if ckpt.suffix != ".pt":
        raise CheckpointError(f"{ckpt} is not a run checkpoint (.pt)", "export from a run folder, e.g. runs/latest")
    return ckpt


def plan(formats: Sequence[str], quantize: Sequence[str], precisions: Sequence[str] = ()) -> list[ExporterEntry]:
    """Ordered exporter entries: per format, the float artefact first when a quantised one needs it, then the
    float artefacts pinned to another precision (``precisions``, e.g. ``bf16``) for formats that register them."""
    fmts = registered_formats() if "all" in formats else list(dict.fromkeys(formats))
    out: list[ExporterEntry] = []
    for f in fmts:
        wanted = [get_exporter(f, q) for q in sorted(set(quantize), key=QUANTIZE_MODES.index)]
        wanted += [get_exporter(f, p) for p in PRECISION_VARIANTS if p in precisions and has_exporter(f, p)]
        if any(e.needs_float for e in wanted) and all(e.quantize != "none" for e in wanted):
            wanted.insert(0, get_exporter(f, "none"))
        out.extend(wanted)
    return out


def missing_package(fmt: str) -> str | None:
    """The first Python package ``fmt``'s exporters need that cannot be imported, or None."""
    import importlib

    for pkg in FORMAT_PACKAGES.get(fmt, ((), ""))[0]:
        try:
            importlib.import_module(pkg)
        except ImportError:
            return pkg
    return None


def available_formats(formats: Sequence[str], warn: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """``formats`` without those whose backend is missing, and the reasons. ``all`` skips them with one warning
    each; a format asked for by name raises :class:`BackendMissingError` naming what to install."""
    auto = "all" in formats
    fmts = registered_formats() if auto else list(dict.fromkeys(formats))
    kept, skipped = [], []
    for f in fmts:
        pkg = missing_package(f)
        if pkg is None:
            kept.append(f)
            continue
        install = FORMAT_PACKAGES[f][1]
        if not auto:
            err = BackendMissingError(pkg, f"export {f}")
            err.hint = install
            raise err
        skipped.append(f"{f}: {pkg} is not installed ({install})")
        warn(f"skipping {f} artefacts: {pkg} is not installed ({install})")
    return kept, skipped


def _reusable(path: Path, source_sha: str) -> bool:
    try:
        card = ModelCard.load(sidecar_path(path))
    except CardError:
        return False
    return card.source_sha256 == source_sha


def _check_targets(entries: list[ExporterEntry], out_dir: Path, requested: set[str], source_sha: str,
                   force: bool) -> set[str]:
    """Names of float dependencies to reuse; raises on any existing target unless ``force``."""
    reuse: set[str] = set()
    for e in entries:
        target = out_dir / e.filename
        if not target.exists() or force:
            continue
        if e.quantize not in requested and _reusable(target, source_sha):
            reuse.add(e.filename)
            continue
        raise ConfigError(f"{target} already exists", "pass --force to overwrite it, or choose another --out")
    return reuse


def export(run_dir: str | Path, formats: Sequence[str] = ("onnx",), quantize: Sequence[str] = ("none",),
           out_dir: str | Path = "exported", options: ExportOptions | None = None,
           progress: Progress | None = None, reporter: Reporter | None = None) -> ExportResult:
    """Export the run at ``run_dir`` to every (format, quantize) pair and verify each artefact.

    Raises ``ConfigError`` (bad pair, existing file, unwritable folder), ``CheckpointError``, ``DataError``
    (no calibration / held-out images), ``ExportError`` (converter failure; earlier artefacts are kept),
    ``BackendMissingError`` (a format named in ``formats`` whose package is missing; ``all`` skips it) and
    ``ParityError`` (after everything is written, when any artefact failed its limits).

    ``reporter`` (:class:`edge_tl.progress.Reporter`) gets the steps as notes and the calibration as a task;
    ``progress`` (a plain ``message -> None``), when given, gets the notes instead.
    """
    from edge_tl.data.manifest import manifest_for_card
    from edge_tl.export.calibration import make_calibration
    from edge_tl.models.checkpoint import load_checkpoint

    opts = options or ExportOptions()
    rep = of(reporter)
    say = progress or rep.note
    warn = (lambda m: say(f"warning: {m}")) if progress else (lambda m: rep.note(m, "warning"))
    ckpt = resolve_checkpoint(run_dir)
    fmts, skipped = available_formats(formats, warn)
    if set(opts.openvino_precision) - {"f32"} and "openvino" not in fmts and "all" not in formats:
        raise ConfigError("--openvino-precision applies to OpenVINO IR", "add --format openvino (or all)")
    entries = plan(fmts, quantize, opts.openvino_precision)
    out = Path(out_dir)
    source_sha = sha256_file(ckpt)
    asked = {*quantize, *opts.openvino_precision}
    reuse = _check_targets(entries, out, asked, source_sha, opts.force) if out.exists() else set()
    ensure_writable_dir(out)
    say(f"loading {ckpt}")
    model, card = load_checkpoint(ckpt)
    card = card.with_(run_dir=card.run_dir or str(ckpt.parent.resolve()))
    needs_data = opts.verify or any(e.needs_calibration for e in entries)
    manifest = manifest_for_card(card, ckpt.parent / "card.json") if needs_data else None
    calibration = None
    if manifest is not None and any(e.needs_calibration for e in entries):
        calibration = make_calibration(manifest, card.input, opts.calib_size, opts.calib_split, opts.seed,
                                       reporter=reporter)
    fidelity = None
    if manifest is not None and (opts.verify or calibration is not None):
        from edge_tl.parity import fidelity_set

        fidelity = fidelity_set(manifest, card.input, exclude=getattr(calibration, "files", ()))
        say(f"judging on {len(fidelity.labels)} images ({fidelity.description})")
    verifier = _Verifier(model, card, fidelity, ckpt, opts, say) if opts.verify else None
    prep = None
    if calibration is not None and any(e.quantize == "int8" for e in entries):
        from edge_tl.export.int8_prep import PreparedSources

        def export_float(fmt: str, m: Any, folder: Path) -> Path:
            fe = get_exporter(fmt, "none")
            folder.mkdir(parents=True, exist_ok=True)
            return fe.fn(ExportRequest(model=m, card=card, checkpoint=ckpt, source_sha256=source_sha,
                                       out_path=folder / fe.filename, format=fmt, quantize="none", options=opts,
                                       manifest=manifest, reporter=reporter)).path

        from edge_tl.export.onnx_quant import weight_scheme

        # each quantiser's weight grid: the preparation simulates the rounding the file will get
        prep = PreparedSources(model, card.input, card.backbone, calibration, opts.int8_prep, export_float, say,
                               weight_qmax={"onnx": weight_scheme(opts.onnx_weights).qmax})

    artifacts: list[Artifact] = []
    results: list[ParityResult] = []
    reused: list[Path] = []
    float_paths: dict[str, Path] = {}
    for e in entries:
        target = out / e.filename
        if e.filename in reuse:
            say(f"reusing {target} (same checkpoint)")
            float_paths[e.format] = target
            reused.append(target)
            continue
        source = prep.float_path(e.format) if prep is not None and e.quantize == "int8" else None
        req = ExportRequest(model=model, card=card, checkpoint=ckpt, source_sha256=source_sha, out_path=target,
                            format=e.format, quantize=e.quantize, options=opts, manifest=manifest,
                            float_path=source or float_paths.get(e.format),
                            calibration=calibration if e.needs_calibration else None, reporter=reporter,
                            fidelity=fidelity)
        say(f"exporting {target}")
        art = e.fn(req)
        if prep is not None and e.quantize == "int8" and art.card.quantization is not None:
            art = _with_card(art, art.card.with_(quantization=prep.stamp(art.card.quantization, e.format)))
        if e.quantize == "int8" and opts.fallback and manifest is not None and not e.own_budget:
            from edge_tl.export.budget import enforce_budget

            art = enforce_budget(art, card, manifest, float_paths.get(e.format), calibration, opts.max_drop,
                                 opts.calib_method, default_threads(opts.threads), opts.output, say,
                                 min_agreement=opts.min_agreement, fidelity=fidelity,
                                 reference=verifier.reference if verifier is not None else None,
                                 source_path=source)
        if e.quantize == "none":
            float_paths[e.format] = art.path
        if verifier is not None:
            res = verifier.verify(art)
            results.append(res)
            art = _store_parity(art, res)
        artifacts.append(art)
    if prep is not None:
        prep.close()
    result = ExportResult(ckpt.parent, out, tuple(artifacts), tuple(results), tuple(reused), tuple(skipped))
    if results:
        try:
            gate(results)
        except ParityError as exc:
            exc.result = result  # type: ignore[attr-defined]  # the CLI still reports what was written
            raise
    return result


def _with_card(art: Artifact, card: ModelCard) -> Artifact:
    get_card_writer(art.format)(art.path, card)
    return Artifact(art.path, card, art.format, art.quantize, art.seconds, art.notes)


def _store_parity(art: Artifact, res: ParityResult) -> Artifact:
    card = art.card.with_(parity=res)
    get_card_writer(art.format)(art.path, card)
    return Artifact(art.path, card, art.format, art.quantize, art.seconds, art.notes)


class _Verifier:
    """Holds the judged pixels (:func:`edge_tl.parity.fidelity_set`, shared with the accuracy budget) and the
    reference logits, computed once for all artefacts."""

    def __init__(self, model: Any, card: ModelCard, fidelity: Any, ckpt: Path, opts: ExportOptions,
                 say: Progress) -> None:
        from edge_tl.runtimes import default_threads
        from edge_tl.runtimes.torch_rt import TorchRuntime

        self.pixels, self.labels, self.images = fidelity.pixels, fidelity.labels, fidelity.description
        self.opts = opts
        say(f"reference logits of the PyTorch model on {len(self.labels)} images")
        self.reference = TorchRuntime(model, card, ckpt, default_threads(opts.threads))(self.pixels)

    def verify(self, art: Artifact) -> ParityResult:
        from edge_tl.runtimes import load

        rt = load(art.path, threads=self.opts.threads)
        limits = limits_for(art.format, art.quantize, max_drop=self.opts.max_drop,
                            min_int8_agreement=self.opts.min_agreement,
                            max_saturated=self.opts.max_saturated, max_ece_delta=self.opts.max_ece_delta)
        return check_parity(rt, self.reference, self.pixels, self.labels, limits, variant=art.path.name,
                            format=art.format, quantize=art.quantize, images=self.images)

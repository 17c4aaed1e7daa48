"""The decision the report leads with: which exported file to ship, on which runtime and thread count, and why.

Merges two untrusted inputs, each optional: the parity results in the cards of the exported artefacts
(``edge-tl export``) and the rows of ``bench.json`` (``edge-tl bench``). Fields are read defensively, so older
and newer layouts both work (a bench row may or may not carry ``runtime`` or a parity mark such as
``parity_failed``; latency may be a number or ``{"value": ...}``; the recommended key may be ``name@Nt`` or
``name/runtime@Nt``). The choice: the fastest p50 among artefacts that passed the parity gate, ran in
the benchmark and stay within the bench's accuracy budget of the reference top-1. The PyTorch checkpoint is the
reference, never the recommendation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_tl.report import human

PASS, FAIL, UNCHECKED = "PASS", "FAIL", "not checked"
SUFFIX_FORMATS = {"onnx": "onnx", "tflite": "tflite", "xml": "openvino", "pt": "pytorch"}


@dataclass(frozen=True)
class Candidate:
    """One artefact on one runtime: its figures (percent, ms, MB) and its gate result with the reasons in words."""

    name: str
    format: str
    quantization: str
    runtime: str | None = None
    size_mb: float | None = None
    top1: float | None = None
    agreement: float | None = None
    drop: float | None = None
    p50: Mapping[int, float] = field(default_factory=dict)
    parity: str = UNCHECKED
    problems: tuple[str, ...] = ()
    reference: bool = False

    @property
    def failed(self) -> bool:
        return self.parity == FAIL or (bool(self.problems) and not self.p50)


@dataclass(frozen=True)
class Verdict:
    """The recommended candidate (``None`` when nothing qualifies), why, and every candidate for the table."""

    candidates: tuple[Candidate, ...]
    threads: tuple[int, ...]
    chosen: Candidate | None
    chosen_threads: int | None
    why: str
    reference_top1: float | None = None
    max_drop: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def failures(self) -> list[Candidate]:
        return [c for c in self.candidates if c.failed]


def _num(x: Any) -> float | None:
    if isinstance(x, Mapping):
        x = x.get("value")
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _str(x: Any, default: str = "") -> str:
    return x if isinstance(x, str) and x else default


def _quant(x: Any) -> str:
    if isinstance(x, Mapping):
        x = x.get("mode")
    text = _str(x, "float")
    return "float" if text in ("none", "fp32", "float32") else text


def _parity_mark(obj: Any) -> tuple[str, tuple[str, ...]] | None:
    """A gate result from a card's ``parity`` dict or a bench row's mark (bool, "PASS"/"FAIL", dict)."""
    if isinstance(obj, bool):
        return (PASS, ()) if obj else (FAIL, ("failed the parity gate",))
    if isinstance(obj, str) and obj.upper() in (PASS, FAIL):
        return (obj.upper(), () if obj.upper() == PASS else ("failed the parity gate",))
    if not isinstance(obj, Mapping):
        return None
    fails = obj.get("failures")
    fails = tuple(str(f) for f in fails) if isinstance(fails, list) else ()
    passed = obj.get("passed")
    if isinstance(passed, bool):
        return (PASS, ()) if passed else (FAIL, fails or ("failed the parity gate",))
    if fails:
        return FAIL, fails
    return (PASS, ()) if "agreement" in obj else None


def _from_cards(parity_rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in parity_rows:
        mark = _parity_mark(row.get("parity"))
        par = row.get("parity") if isinstance(row.get("parity"), Mapping) else {}
        agreement, accuracy = _num(par.get("agreement")), _num(par.get("accuracy"))
        out[str(row.get("artefact"))] = {
            "format": _str(row.get("format"), "?"), "quantization": _quant(row.get("quantization")),
            "size_mb": _num(row.get("size_mb")), "parity": mark,
            "agreement": None if agreement is None else 100 * agreement,
            "top1": None if accuracy is None else 100 * accuracy, "drop": _num(par.get("drop"))}
    return out


def _bench_rows(bench: Any) -> list[Mapping[str, Any]]:
    rows = bench.get("rows") if isinstance(bench, Mapping) else bench
    return [r for r in rows if isinstance(r, Mapping) and "name" in r] if isinstance(rows, list) else []


def _merge(cards: dict[str, dict[str, Any]], rows: list[Mapping[str, Any]]) -> list[Candidate]:
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    for r in rows:
        name = str(r["name"])
        key = (name, _str(r.get("runtime")) or None)
        g = groups.setdefault(key, {"rows": [], **cards.get(name, {})})
        g["rows"].append(r)
    for name, info in cards.items():
        if not any(k[0] == name for k in groups):
            groups[(name, None)] = {"rows": [], **info}
    out = []
    for (name, runtime), g in groups.items():
        rs = g["rows"]
        first = rs[0] if rs else {}
        p50: dict[int, float] = {}
        problems: list[str] = []
        mark = g.get("parity")
        for r in rs:
            threads = r.get("threads") if isinstance(r.get("threads"), int) else 0
            lat = _num(r.get("latency", {}).get("p50")) if isinstance(r.get("latency"), Mapping) else _num(r.get("p50"))
            if _str(r.get("status"), "ok") == "ok" and lat is not None:
                p50[threads] = lat
            else:
                problems.append(f"benchmark at {threads} thread(s) failed: {_str(r.get('error'), 'no timing')}")
            row_mark = next((m for m in (_parity_mark(r.get(k)) for k in ("parity", "parity_passed")) if m), None)
            if r.get("parity_failed") is True:  # False only means "not known to have failed"
                row_mark = (FAIL, ("its card records a failed parity check",))
            if row_mark and (mark is None or row_mark[0] == FAIL):
                mark = row_mark
        fmt = _str(first.get("format"), g.get("format") or SUFFIX_FORMATS.get(name.rpartition(".")[2].lower(), "?"))
        top1 = _num(first.get("top1")) if rs else None
        agreement = _num(first.get("agreement")) if rs else None
        state, reasons = mark or (UNCHECKED, ())
        out.append(Candidate(
            name=name, format=fmt, quantization=_quant(first.get("quantization", g.get("quantization"))),
            runtime=runtime, size_mb=_num(first.get("size_mb")) or g.get("size_mb"),
            top1=top1 if top1 is not None else g.get("top1"),
            agreement=agreement if agreement is not None else g.get("agreement"), drop=g.get("drop"),
            p50=p50, parity=state, problems=tuple(reasons) + tuple(problems), reference=fmt == "pytorch"))
    return sorted(out, key=lambda c: (not c.reference, c.failed, min(c.p50.values(), default=float("inf")), c.name))


def _budget(bench: Any) -> tuple[float | None, float | None]:
    if not isinstance(bench, Mapping):
        return None, None
    settings = bench.get("settings") if isinstance(bench.get("settings"), Mapping) else {}
    return _num(bench.get("reference_top1")), _num(settings.get("max_drop"))


def decide(parity_rows: Iterable[Mapping[str, Any]], bench: Any) -> Verdict:
    """The verdict for a run's artefacts (parity rows from their cards) and its bench results (raw JSON or None)."""
    cands = _merge(_from_cards(parity_rows), _bench_rows(bench))
    ref, max_drop = _budget(bench)
    threads = tuple(sorted({t for c in cands for t in c.p50}))
    notes: list[str] = []
    pool = [c for c in cands if not c.reference and c.p50 and c.parity != FAIL]
    if ref is not None and max_drop is not None:
        within = [c for c in pool if c.top1 is None or c.top1 >= ref - max_drop - 1e-9]
        for c in pool:
            if c not in within:
                where = f"{c.name} on {c.runtime}" if c.runtime else c.name
                notes.append(f"{where} is {human.points(ref - (c.top1 or 0))} below the reference top-1, "
                             f"outside the {human.points(max_drop)} budget.")
        pool = within
    if not cands:
        return Verdict((), (), None, None, "Nothing to decide yet: no exported artefacts and no benchmark.")
    if not any(c.p50 for c in cands):
        return Verdict(tuple(cands), threads, None, None,
                       "No latency measured yet, so no file is recommended: run edge-tl bench on the artefacts.")
    if not pool:
        return Verdict(tuple(cands), threads, None, None,
                       "No artefact qualifies: every benchmarked file failed its parity gate, its benchmark or "
                       "the accuracy budget (reasons in the table).", ref, max_drop, tuple(notes))
    best = min(((c, t, ms) for c in pool for t, ms in c.p50.items()), key=lambda x: (x[2], x[1]))
    chosen, t, p50 = best
    failed = [c for c in cands if c.parity == FAIL]
    why = [f"Fastest median latency ({human.ms(p50)}) of the {len(pool)} benchmarked artefact"
           f"{'s' if len(pool) != 1 else ''} that "
           + ("passed the parity gate" if chosen.parity == PASS else "were not rejected by a parity gate")]
    if ref is not None and max_drop is not None:
        why.append(f"and stay within {human.points(max_drop)} of the reference top-1 ({human.pct_points(ref)})")
    text = " ".join(why) + "."
    if failed:
        text += f" {len(failed)} artefact{'s' if len(failed) != 1 else ''} failed the parity gate and " \
                f"{'were' if len(failed) != 1 else 'was'} not considered."
    if chosen.parity == UNCHECKED:
        notes.append(f"{chosen.name} has no parity result in its card: run edge-tl export to check it.")
    recommended = bench.get("recommended") if isinstance(bench, Mapping) else None
    if isinstance(recommended, str) and recommended.split("@")[0].split("/")[0] != chosen.name:
        notes.append(f"The benchmark alone picked {recommended} (latency and accuracy only, without the parity gate).")
    return Verdict(tuple(cands), threads, chosen, t or None, text, ref, max_drop, tuple(notes))


__all__ = ["FAIL", "PASS", "UNCHECKED", "Candidate", "Verdict", "decide"]

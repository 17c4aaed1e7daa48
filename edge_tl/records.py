"""The typed records a model card carries: how an artefact was quantised, and how it compared with PyTorch.

:class:`QuantRecipe` (``card.quantization``) is written by every quantising exporter in the same shape for every
format: the mode, the quantiser's recipe, the logits' and the input's dtype, the calibration, the layers kept in
float, the int8 weight preparation (:class:`PrepRecord`) and the accuracy-budget search (:class:`BudgetRecord`).
:class:`ParityResult` (``card.parity``) is the parity gate's verdict on the file. Each record reads and writes
plain JSON (``from_json`` / ``to_json``); reading keeps only the fields named here and raises ``TypeError`` /
``KeyError`` / ``ValueError`` on a malformed record, which the card turns into a :class:`~edge_tl.errors.CardError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    return float(v)


def _opt_num(v: Any) -> float | None:
    return None if v is None else _num(v)


def _opt_int(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an integer, got {type(v).__name__}")
    return v


def _strs(v: Any) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)) or not all(isinstance(s, str) for s in v):
        raise TypeError("expected a list of names")
    return tuple(v)


def _pair(v: Any) -> tuple[float, float]:
    a, b = v
    return _num(a), _num(b)


def _plain(obj: Any) -> Any:
    """Records, tuples and mappings -> JSON-able values (dataclass records through their own ``to_json``)."""
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _to_json(rec: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(rec, f.name)) for f in fields(rec)}


@dataclass(frozen=True)
class ParityLimits:
    """Pass criteria. ``None`` means reported, not gated. Drops and ECE deltas are in percentage points."""

    max_dlogit: float | None = None
    min_agreement: float = 1.0
    max_drop: float | None = None
    max_saturated: float = 0.001
    max_ece_delta: float | None = 1.0
    max_kl: float | None = None
    max_dprob: float | None = None
    ignore_ties: bool = True  # float variants: a flip where the reference's top-2 margin <= max_dlogit is a tie
    min_ece_images: int = 100  # ECE over 15 bins on fewer images is noise: reported, not gated

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ParityLimits:
        return cls(max_dlogit=_opt_num(d.get("max_dlogit")), min_agreement=_num(d.get("min_agreement", 1.0)),
                   max_drop=_opt_num(d.get("max_drop")), max_saturated=_num(d.get("max_saturated", 0.001)),
                   max_ece_delta=_opt_num(d.get("max_ece_delta")), max_kl=_opt_num(d.get("max_kl")),
                   max_dprob=_opt_num(d.get("max_dprob")), ignore_ties=bool(d.get("ignore_ties", True)),
                   min_ece_images=int(d.get("min_ece_images", 100)))


@dataclass(frozen=True)
class ParityResult:
    """Figures of one artefact against the reference on ``n`` images, and the failures against ``limits``."""

    variant: str
    format: str
    quantize: str
    n: int
    agreement: float
    accuracy: float | None
    reference_accuracy: float | None
    drop: float | None  # percentage points
    max_dlogit: float
    saturated: float  # fraction of integer outputs at their limits
    kl: float
    max_dprob: float
    ece: float | None
    ece_reference: float | None
    ece_delta_ci: tuple[float, float] | None = None  # 95 % paired bootstrap of ece - ece_reference, when gated
    limits: ParityLimits = field(default_factory=ParityLimits)
    failures: tuple[str, ...] = ()
    agreement_ci: tuple[float, float] = (0.0, 1.0)  # Wilson 95 % interval of the top-1 agreement
    resolution: float = 0.0  # percentage points one image moves the accuracy (100 / n)
    images: str = ""  # which images: e.g. "train+val+test without 200 calibration images, + mirrored views"
    precision: str | None = None  # what the judged runtime computed in (f32, bf16, int8), when it says

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {**_to_json(self), "passed": self.passed}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ParityResult:
        limits = d.get("limits")
        return cls(variant=str(d["variant"]), format=str(d["format"]), quantize=str(d["quantize"]),
                   n=int(d["n"]), agreement=_num(d["agreement"]), accuracy=_opt_num(d.get("accuracy")),
                   reference_accuracy=_opt_num(d.get("reference_accuracy")), drop=_opt_num(d.get("drop")),
                   max_dlogit=_num(d["max_dlogit"]), saturated=_num(d.get("saturated", 0.0)),
                   kl=_num(d.get("kl", 0.0)), max_dprob=_num(d.get("max_dprob", 0.0)),
                   ece=_opt_num(d.get("ece")), ece_reference=_opt_num(d.get("ece_reference")),
                   ece_delta_ci=None if d.get("ece_delta_ci") is None else _pair(d["ece_delta_ci"]),
                   limits=ParityLimits.from_json(limits) if isinstance(limits, Mapping) else ParityLimits(),
                   failures=_strs(d.get("failures", [])), agreement_ci=_pair(d.get("agreement_ci", (0.0, 1.0))),
                   resolution=_num(d.get("resolution", 0.0)), images=str(d.get("images", "")),
                   precision=None if d.get("precision") is None else str(d["precision"]))


@dataclass(frozen=True)
class Calibration:
    """The images a static quantiser took its ranges from."""

    images: int
    method: str  # minmax, percentile, entropy, ... or nncf
    split: str = "train"
    percentile: float | None = None  # method percentile
    output_margin: float | None = None  # headroom added to a quantised output's range

    def with_split(self, split: str) -> Calibration:
        from dataclasses import replace

        return replace(self, split=split)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in _to_json(self).items() if v is not None}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Calibration:
        return cls(images=int(d["images"]), method=str(d["method"]), split=str(d.get("split", "train")),
                   percentile=_opt_num(d.get("percentile")), output_margin=_opt_num(d.get("output_margin")))


@dataclass(frozen=True)
class PrepRecord:
    """The weight preparation applied before int8 (``steps``, e.g. ``cle+bias``, resolved from ``choice``) and
    what each step measured (``details``: ``cle``, ``bias_correction``, ``adaround``, written beside the steps)."""

    steps: str = "none"
    choice: str = "n/a"
    bn_folded: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"steps": self.steps, "choice": self.choice}
        if self.bn_folded is not None:
            d["bn_folded"] = self.bn_folded
        return {**d, **_plain(self.details)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PrepRecord:
        rest = {k: v for k, v in d.items() if k not in ("steps", "choice", "bn_folded")}
        return cls(steps=str(d.get("steps", "none")), choice=str(d.get("choice", "n/a")),
                   bn_folded=_opt_int(d.get("bn_folded")), details=rest)


@dataclass(frozen=True)
class BudgetStep:
    """One try of the float-fallback search: ``float_layers`` layers kept in float."""

    float_layers: int
    drop: float
    agreement: float
    size_bytes: int | None = None
    latency_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BudgetStep:
        return cls(float_layers=int(d["float_layers"]), drop=_num(d["drop"]), agreement=_num(d["agreement"]),
                   size_bytes=_opt_int(d.get("size_bytes")), latency_ms=_opt_num(d.get("latency_ms")))


@dataclass(frozen=True)
class BudgetCandidate:
    """One repair the OpenVINO budget tried (NNCF accuracy control, the float-fallback search)."""

    int8_accuracy: float
    drop: float
    agreement: float
    fits: bool
    fallback_layers: tuple[str, ...] = ()
    latency_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BudgetCandidate:
        return cls(int8_accuracy=_num(d["int8_accuracy"]), drop=_num(d["drop"]), agreement=_num(d["agreement"]),
                   fits=bool(d["fits"]), fallback_layers=_strs(d.get("fallback_layers", [])),
                   latency_ms=_opt_num(d.get("latency_ms")))


@dataclass(frozen=True)
class BudgetRecord:
    """The accuracy budget (``--max-drop`` / ``--min-agreement``) as measured on ``images`` images of ``split``,
    and, when plain int8 missed it, what the repair kept (``fallback_layers``) and measured after it."""

    max_drop: float
    min_agreement: float
    split: str
    images: int
    float_accuracy: float
    int8_accuracy: float
    drop: float  # percentage points, after the repair when there was one
    agreement: float
    fits: bool
    fallback_layers: tuple[str, ...] = ()
    method: str = "search"  # search (edge-tl's float fallback), nncf, accuracy_control
    max_drop_resolved: float | None = None  # --max-drop as these images can resolve it
    unique_images: int | None = None
    resolution: float | None = None  # points one image moves the accuracy
    agreement_ci: tuple[float, float] | None = None
    drop_before: float | None = None  # plain int8, before the repair
    agreement_before: float | None = None
    latency_ms: float | None = None
    reasons: Mapping[str, str] = field(default_factory=dict)  # layer -> why it was kept in float
    steps: tuple[BudgetStep, ...] = ()
    candidates: Mapping[str, BudgetCandidate] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)  # repair -> why it failed

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BudgetRecord:
        ci = d.get("agreement_ci")
        return cls(
            max_drop=_num(d["max_drop"]), min_agreement=_num(d["min_agreement"]), split=str(d["split"]),
            images=int(d["images"]), float_accuracy=_num(d["float_accuracy"]),
            int8_accuracy=_num(d["int8_accuracy"]), drop=_num(d["drop"]), agreement=_num(d["agreement"]),
            fits=bool(d["fits"]), fallback_layers=_strs(d.get("fallback_layers", [])),
            method=str(d.get("method", "search")), max_drop_resolved=_opt_num(d.get("max_drop_resolved")),
            unique_images=_opt_int(d.get("unique_images")), resolution=_opt_num(d.get("resolution")),
            agreement_ci=None if ci is None else _pair(ci), drop_before=_opt_num(d.get("drop_before")),
            agreement_before=_opt_num(d.get("agreement_before")), latency_ms=_opt_num(d.get("latency_ms")),
            reasons={str(k): str(v) for k, v in dict(d.get("reasons") or {}).items()},
            steps=tuple(BudgetStep.from_json(s) for s in d.get("steps") or ()),
            candidates={str(k): BudgetCandidate.from_json(v) for k, v in dict(d.get("candidates") or {}).items()},
            errors={str(k): str(v) for k, v in dict(d.get("errors") or {}).items()})


@dataclass(frozen=True)
class QuantRecipe:
    """How an artefact was quantised, the same fields for every format (``card.quantization``)."""

    mode: str  # the --quantize mode: int8, dynamic, fp16, bf16
    recipe: str  # the quantiser and its settings, as a person reads them
    output: str = "float"  # the logits: float, or int8 (quantised output)
    io_type: str | None = None  # the integer type of a quantised input tensor (TFLite full int8: uint8 / int8)
    calibration: Calibration | None = None
    float_layers: tuple[str, ...] = ()  # layers kept in float, by the file's own names
    output_range: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # calibrated I/O ranges
    prep: PrepRecord | None = None
    budget: BudgetRecord | None = None
    weight_bits: int | None = None  # integer weights' range: 8 (full int8) or 7 (reduced, no saturation); None: n/a
    weight_type: str | None = None  # integer weights' type: int8 or uint8 (zero point 128), both symmetric; None: n/a

    @property
    def full_range_int8_weights(self) -> bool:
        """Signed weights over the full 8-bit range, what u8 x s8 kernels without VNNI can saturate on: true
        unless the card records 7-bit or uint8 weights."""
        return self.weight_bits != 7 and self.weight_type != "uint8"

    def with_(self, **changes: Any) -> QuantRecipe:
        from dataclasses import replace

        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> QuantRecipe:
        cal = d.get("calibration")
        cal = dict(cal) if isinstance(cal, Mapping) else None
        # Cards written before the record was typed kept the TFLite output/input types inside the calibration.
        output = d.get("output", (cal or {}).get("output", "float"))
        io_type = d.get("io_type", (cal or {}).get("io_type"))
        prep, budget = d.get("prep"), d.get("budget")
        return cls(mode=str(d["mode"]), recipe=str(d.get("recipe", "")), output=str(output),
                   io_type=None if io_type is None else str(io_type),
                   calibration=None if cal is None else Calibration.from_json(cal),
                   float_layers=_strs(d.get("float_layers") or []),
                   output_range={str(k): _pair(v) for k, v in dict(d.get("output_range") or {}).items()},
                   prep=PrepRecord.from_json(prep) if isinstance(prep, Mapping) else None,
                   budget=BudgetRecord.from_json(budget) if isinstance(budget, Mapping) else None,
                   weight_bits=_opt_int(d.get("weight_bits")),
                   weight_type=None if d.get("weight_type") is None else str(d["weight_type"]))

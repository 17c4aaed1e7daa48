"""OpenVINO backend for the sensitivity analysis and budget search (:mod:`edge_tl.export.sensitivity`).

NNCF calibrates once (``nncf.quantize`` of the float IR, done by the exporter); every variant is then derived
from that one quantised ``ov.Model`` without recalibrating: a layer is kept in float by routing its activation
inputs around the ``FakeQuantize`` ops that feed it and giving it the float model's weights instead of NNCF's
int8 ones (the effect of naming it in NNCF's ``IgnoredScope``; a quantiser shared with other consumers stays
on for them). A build is therefore a graph edit and a compile, not a
statistics pass, so ranking every layer costs about one compile each.

A build is an :class:`IrContent`: ``bytes`` to the generic search (its length is the estimated file size: int8
weights at 1 byte, float ones at 4) carrying the ``ov.Model``, which runs in an
:class:`~edge_tl.runtimes.openvino_rt.OpenVinoRuntime` (one dynamic-batch compilation per variant; latency
timed at batch 1 on the engine call bench times).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_tl.card import ModelCard
from edge_tl.export.sensitivity import LayerInfo


class IrContent(bytes):
    """A built variant: the ``ov.Model`` and its estimated size (``len``)."""

    model: Any
    size: int

    def __new__(cls, model: Any, size: int) -> IrContent:
        obj = super().__new__(cls, b"")
        obj.model, obj.size = model, size
        return obj

    def __len__(self) -> int:
        return self.size


def _is_quantiser(node: Any) -> bool:
    """A FakeQuantize (activations) or the dequantising end of NNCF's compressed int8 weights (``fq_weights``)."""
    return node.get_type_name() == "FakeQuantize" or "/fq_weights_" in node.get_friendly_name()


def quantised_inputs(model: Any) -> dict[str, list[Any]]:
    """Layer name -> its inputs fed by a quantiser (FakeQuantize on activations, int8 weights on weights)."""
    out: dict[str, list[Any]] = {}
    for op in model.get_ops():
        if _is_quantiser(op):
            continue
        fed = [i for i in op.inputs() if _is_quantiser(i.get_source_output().get_node())]
        if fed:
            out[op.get_friendly_name()] = fed
    return out


def _weight_elements(model: Any) -> tuple[int, int]:
    """(elements of int8 weight constants, elements of the float ones), a size estimate of the file."""
    quantised, other = 0, 0
    for op in model.get_ops():
        if op.get_type_name() != "Constant" or not op.get_output_partial_shape(0).is_static:
            continue
        n = int(np.prod(list(op.get_output_shape(0))))
        if n < 16:  # scales, zero points, limits, shapes
            continue
        if op.get_element_type().is_real():
            other += n
        else:
            quantised += n
    return quantised, other


class OpenVinoQuantBackend:
    """Variants of one NNCF-quantised IR with any set of layers routed around their quantisers."""

    format = "openvino"

    def __init__(self, float_model: Any, quantized: Any, card: ModelCard, threads: int = 1,
                 base_float: Sequence[str] = ()) -> None:
        """``card`` describes the variants (the float IR's: its input and classes)."""
        import openvino as ov

        self.core, self.card, self.threads = ov.Core(), card, threads
        self.float_model, self.quantized = float_model, quantized
        self.base_float = set(base_float)
        self._float: Any = None

    def layers(self) -> list[LayerInfo]:
        names = [n for n in quantised_inputs(self.quantized) if n not in self.base_float]
        types = {op.get_friendly_name(): op.get_type_name() for op in self.quantized.get_ops()}
        order = {op.get_friendly_name(): i for i, op in enumerate(self.quantized.get_ordered_ops())}
        names.sort(key=lambda n: order.get(n, 0))
        return [LayerInfo(n, types.get(n, "?"), i) for i, n in enumerate(names)]

    def build(self, float_layers: Sequence[str] = (), only: str | None = None) -> IrContent:
        import openvino.opset13 as ops

        model = self.quantized.clone()
        consumers = quantised_inputs(model)
        keep_float = set(consumers) - {only} if only is not None else set(float_layers)
        float_ops = {op.get_friendly_name(): op for op in self.float_model.get_ops()}
        for name in keep_float:
            for port in consumers.get(name, []):
                src = port.get_source_output().get_node()
                if src.get_type_name() == "FakeQuantize":  # activations: route around the quantiser
                    port.replace_source_output(src.input_value(0))
                elif name in float_ops:  # int8 weights: the float model's own weights instead
                    data = float_ops[name].input_value(port.get_index()).get_node()
                    if data.get_type_name() == "Constant":
                        port.replace_source_output(ops.constant(data.get_data(), name=f"{name}/float_w").output(0))
        model.validate_nodes_and_infer_types()
        q, other = _weight_elements(model)
        return IrContent(model, q + 4 * other)

    def _runtime(self, model: Any) -> Any:
        from edge_tl.runtimes.openvino_rt import OpenVinoRuntime

        return OpenVinoRuntime.from_model(model, self.card, self.threads, dynamic_batch=True, core=self.core)

    def run(self, content: bytes, pixels: np.ndarray) -> np.ndarray:
        return self._runtime(_model_of(content))(pixels)

    def float_logits(self, pixels: np.ndarray) -> np.ndarray:
        if self._float is None:
            self._float = self._runtime(self.float_model)
        return self._float(pixels)

    def latency_ms(self, content: bytes) -> float:
        return latency_ms(_model_of(content), self.card, core=self.core)


def _model_of(content: bytes) -> Any:
    model = getattr(content, "model", None)
    if model is None:
        raise TypeError("the OpenVINO backend runs the variants it built (IrContent), not raw bytes")
    return model


def latency_ms(model: Any, card: ModelCard, threads: int = 1, core: Any = None) -> float:
    """Median batch-1 latency of an in-memory ``ov.Model`` at ``threads``: the engine call bench times, on a
    runtime compiled for batch 1 as a loaded file is (int8 where quantised, f32 otherwise)."""
    from edge_tl.runtimes.openvino_rt import OpenVinoRuntime
    from edge_tl.runtimes.timing import batch1_ms

    return batch1_ms(OpenVinoRuntime.from_model(model, card, threads, core=core))


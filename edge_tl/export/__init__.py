"""Export: a run's PyTorch model -> ONNX / TFLite artefacts, float or quantised, each verified by parity.

Public entry points: :func:`edge_tl.export.api.export` (the driver) and the exporter registry in
:mod:`edge_tl.export.registry`. Importing this package imports nothing heavy.
"""

from __future__ import annotations

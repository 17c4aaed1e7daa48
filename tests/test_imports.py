"""Every edge_tl module imports on its own: no hidden dependency on what another module imported first, and
the default runtime of each file type is the same whichever module came first.

One subprocess walks the package; before each module it drops every ``edge_tl`` module from ``sys.modules``, so
the module is imported from a clean slate (third-party packages stay loaded, which keeps this fast) and an import
cycle or an order dependency shows as that module's failure.
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import importlib, json, pkgutil, sys, traceback
import edge_tl
names = sorted(m.name for m in pkgutil.walk_packages(edge_tl.__path__, "edge_tl."))
failed, defaults = {}, {}
for name in names:
    for key in [k for k in sys.modules if k == "edge_tl" or k.startswith("edge_tl.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
        defaults[name] = importlib.import_module("edge_tl.runtimes.base").runtime_names()
    except Exception as exc:  # noqa: BLE001 - reported below
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"names": names, "failed": failed, "defaults": defaults}))
"""


def test_every_module_imports_on_its_own() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["names"]) > 50, result["names"]  # the walk found the package, not an empty path
    for pkg in ("edge_tl.cli.main", "edge_tl.runtimes.onnx_rt", "edge_tl.export.api", "edge_tl.attacks.engine"):
        assert pkg in result["names"]
    assert result["failed"] == {}
    # the runtime each file type gets by default does not depend on which module was imported first
    first = {".pt": "pytorch", ".onnx": "onnxruntime", ".tflite": "litert", ".xml": "openvino"}
    assert {n: d for n, d in result["defaults"].items() if d != first} == {}

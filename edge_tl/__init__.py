"""edge-tl: from a folder of images to a small, fast, quantised, verified classifier on an edge runtime.

The top-level package imports nothing heavy: torch, onnxruntime and LiteRT are imported by the modules
that need them, so ``edge-tl --help`` stays instant.
"""

__version__ = "0.1.0"

"""Datasets, decoding and preprocessing. Preprocessing lives here only (see :mod:`edge_tl.data.preprocess`)."""

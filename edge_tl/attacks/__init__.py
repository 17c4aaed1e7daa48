"""Adversarial robustness of deployed artefacts, and the ideal-class image.

* :mod:`~edge_tl.attacks.registry`: ``register_attack``, ``list_attacks``, ``get_attack``, ``AttackSettings``.
* :mod:`~edge_tl.attacks.whitebox`: FGSM, PGD (torchattacks) crafted on a PyTorch surrogate in [0, 1] pixels.
* :mod:`~edge_tl.attacks.blackbox`: Square (own, batched, query-counted, L-inf and L2) through any predict
  function, i.e. any :class:`~edge_tl.runtimes.base.Runtime`; ART's HopSkipJump as a reference.
* :mod:`~edge_tl.attacks.hsj`: HopSkipJump (own, batched across images on the 8-bit grid, L-inf and L2).
* :mod:`~edge_tl.attacks.engine`: ``run_attacks(targets, images, labels, classes, attacks, eps, ...)`` judges
  every adversarial on its 8-bit image and adds the worst case over attacks; :mod:`~edge_tl.attacks.results`:
  ``AttackResult``, ``AttackReport``; :mod:`~edge_tl.attacks.cells`: finished cells on disk for ``--resume``.
* :mod:`~edge_tl.attacks.inputs`: models, surrogate, images and target class for ``edge-tl attack``.
* :mod:`~edge_tl.attacks.plots`: robustness curve and image grid PNGs.
* :mod:`~edge_tl.attacks.visualize`: ``ideal_image`` (gradient ascent with TV, jitter, L2), ``save_grid``.

Importing this package imports nothing heavy; torch, torchattacks and ART load inside the functions.
"""

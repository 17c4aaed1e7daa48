"""Shared test helpers: one CLI runner (:mod:`helpers.cli`) and one card builder (:mod:`helpers.cards`)."""

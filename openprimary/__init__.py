"""The composition root: the commands, and the one place that wires settings, Redis,
the channels and the core together (:mod:`openprimary.app`).

Layers, outermost first: ``openprimary`` may import anything; ``channels``
may import ``bot`` and ``ballots``; ``bot`` may import ``ballots``;
``ballots`` imports neither.  ``tests/test_layers.py`` checks it.
"""

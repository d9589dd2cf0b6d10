"""Shared package of the l2l-replications project (see DESIGN.md).

One concept per module: ``tasks`` (optimizee families), ``learned_optimizers`` and ``baselines``
(update rules), ``meta_training`` (outer loops), ``data`` (datasets), and experiment plumbing
(``profiles``, ``runtime``, ``results``, ``claims``, ``plotting``, ``batch``).
"""

__version__ = "0.1.0"

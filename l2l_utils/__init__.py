"""Shared package of the l2l-replications project.

One core that every replication uses: ``update_rules`` (one interface for every optimizer, hand-designed or
learned), ``unroll`` (the one inner loop) and ``meta_train`` (the one meta-training driver, with the estimators
``truncated_bptt``, ``episodic_training`` and ``implicit_meta_training``); problems and data (``models``, ``tasks``,
``episodes``, ``datasets``); and experiment plumbing (``profiles``, ``runtime``, ``results``, ``verdicts``,
``claims``, ``plotting``, ``batch``). The project README describes every module.
"""

__version__ = "0.1.0"

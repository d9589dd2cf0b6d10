"""Meta-testing a trained rule against baselines: comparisons at a step, grid searches, convergence, loss landscapes,
inspection probes and transfer baselines. Used by the notebooks and by `reporting`'s plots.
"""

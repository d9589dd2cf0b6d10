"""Turning measurements into the claims table: verdict functions, confidence intervals, the claims table itself,
the authors' published curves and the paper-style plots.
"""

"""Where results live: atomic writes, cache keys, checkpoints, the results store and the project's paths.
The basement every floor may use (meta-training checkpoints, claims files, dataset roots).
"""

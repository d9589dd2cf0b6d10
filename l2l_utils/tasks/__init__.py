"""What is optimised: networks (`models`), optimizee families (`problems`, `neural_art`), few-shot episodes and the datasets.
Used by meta-training and evaluation to sample problems; depends only on `storage` for paths.
"""

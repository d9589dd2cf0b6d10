"""Update rules, hand-designed and the interface learned ones share, and `unroll`, the one inner loop every rule runs in.
The ground floor: everything above (learned optimizers, meta-training, evaluation) builds on it.
"""

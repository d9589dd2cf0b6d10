"""The one meta-training driver (`meta_train`) and its meta-gradient estimators, one file each: truncated BPTT,
episodic (MAML / LSTM / TURTLE), MetaMD's Algorithm 1 with its hypergradients; and SimpleOptimizer's fine-tuning.
"""

"""The papers' learned update rules: the L2L LSTM (fused cells), RNNProp, SimpleOptimizer, MTL2L, MetaMD's mirror map and
the episodic meta-learners (MAML, meta-learner LSTM, TURTLE). Meta-training (`meta_training`) fits their parameters.
"""

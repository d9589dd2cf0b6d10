"""The papers' learned update rules: the L2L LSTM (fused cells), RNNProp, SimpleOptimizer, MTL2L, MetaMD's mirror map,
the episodic meta-learners (MAML, meta-learner LSTM, TURTLE) and L2L App. D's LSTM+GAC and NTM-BFGS / NTM-L-BFGS.
Meta-training (`meta_training`) fits their parameters.
"""

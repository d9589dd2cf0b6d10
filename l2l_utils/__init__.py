"""Shared package of the l2l-replications project, one folder per concept; imports run one way (top to bottom):

harness → reporting → evaluation → meta_training → learned_optimizers, tasks → optimizers → storage.
The project README gives one line per folder.
"""

__version__ = "0.1.0"

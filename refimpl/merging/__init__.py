"""Merging: combining the weights of several trained models.

Ops in this family (one file per paper):

* ``task_vector``, ``expert_merging``, ``expert_merging_coefficient_regularizer``,
  ``hidden_state_mse`` — *Expert Merging: Model Merging with Unsupervised Expert Alignment
  and Importance-Guided Layer Chunking*
"""

from .expert_merging import (
    expert_merging,
    expert_merging_coefficient_regularizer,
    hidden_state_mse,
    task_vector,
)

__all__ = [
    "expert_merging",
    "expert_merging_coefficient_regularizer",
    "hidden_state_mse",
    "task_vector",
]

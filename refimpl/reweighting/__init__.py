"""Reweighting: per-sample (or per-group) statistics turned into weights, priors or selections.

Ops in this family (one file per paper):

* ``loss_based_sample_weights``, ``loss_weighted_objective``, ``loss_reweighting_temperature``
  — *Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining*
"""

from .loss_based import (
    loss_based_sample_weights,
    loss_reweighting_temperature,
    loss_weighted_objective,
)

__all__ = ["loss_based_sample_weights", "loss_reweighting_temperature", "loss_weighted_objective"]

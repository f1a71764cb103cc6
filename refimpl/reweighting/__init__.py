"""Reweighting: per-sample (or per-group) statistics turned into weights, priors or selections.

Ops in this family (one file per paper):

* ``loss_based_sample_weights``, ``loss_weighted_objective``, ``loss_reweighting_temperature``
  — *Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining*
* ``kl_dro_weights``, ``kl_dro_value``, ``kl_dro_compositional_weights`` — *Doubly Robust
  Instance-Reweighted Adversarial Training*
* ``temperature_sampling_probs``, ``scalarization_weights``, ``cooldown_temperature_schedule`` —
  *Upsample or Upweight? Balanced Training on Heavily Imbalanced Datasets*
"""

from .kl_dro import kl_dro_compositional_weights, kl_dro_value, kl_dro_weights
from .loss_based import (
    loss_based_sample_weights,
    loss_reweighting_temperature,
    loss_weighted_objective,
)
from .upsample_upweight import (
    cooldown_temperature_schedule,
    scalarization_weights,
    temperature_sampling_probs,
)

__all__ = [
    "cooldown_temperature_schedule",
    "kl_dro_compositional_weights",
    "kl_dro_value",
    "kl_dro_weights",
    "loss_based_sample_weights",
    "loss_reweighting_temperature",
    "loss_weighted_objective",
    "scalarization_weights",
    "temperature_sampling_probs",
]

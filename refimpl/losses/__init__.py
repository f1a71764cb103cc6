"""Losses: scalar training objectives on logits, embeddings or predicted distributions.

Ops in this family (one file per paper):

* ``stablemax``, ``stablemax_cross_entropy`` — *Grokking at the Edge of Numerical Stability*
* ``distillation_kl`` — temperature knowledge distillation (T²·KL), shared by many papers
* ``bar_distribution_nll``, ``full_support_bar_distribution_nll``, ``bar_distribution_mean``,
  ``bar_borders_from_quantiles`` — *Transformers Can Do Bayesian Inference*
* ``multinomial_log_likelihood``, ``mult_vae_loss``, ``mult_vae_beta_schedule`` — *Variational
  Autoencoders for Collaborative Filtering*
* ``ldr_kl_loss``, ``aldr_kl_loss``, ``aldr_lambda_update`` — *Label Distributionally Robust Losses
  for Multi-class Classification: Consistency, Robustness and Adaptivity*
* ``comp_sum_loss`` — *Cross-Entropy Loss Functions: Theoretical Analysis and Applications*
* ``z_loss`` — *The Z-loss: a shift and scale invariant classification loss belonging to the
  Spherical Family*
* ``pskd_alpha_schedule``, ``pskd_targets``, ``pskd_loss``, ``pskd_memory_update`` — *Self-Knowledge
  Distillation with Progressive Refinement of Targets*
* ``pinball_loss``, ``weighted_interval_score``, ``quantile_aggregation`` — *Flexible Model
  Aggregation for Quantile Regression*
* ``dcdm_loss`` — *A Deep Conjugate Direction Method for Iteratively Solving Linear Systems*
* ``cosine_infonce``, ``sampled_softmax_logq``, ``correlated_feature_masking`` — *Self-supervised
  Learning for Large-scale Item Recommendations*
* ``f_divergence_weight``, ``vsd_loss`` — *One-step Diffusion Models with f-Divergence Distribution
  Matching*
"""

from .bar_distribution import (
    bar_borders_from_quantiles,
    bar_distribution_mean,
    bar_distribution_nll,
    full_support_bar_distribution_nll,
)
from .comp_sum import comp_sum_loss
from .dcdm import dcdm_loss
from .distillation import distillation_kl
from .f_distill import f_divergence_weight, vsd_loss
from .ldr_kl import aldr_kl_loss, aldr_lambda_update, ldr_kl_loss
from .mult_vae import mult_vae_beta_schedule, mult_vae_loss, multinomial_log_likelihood
from .pskd import pskd_alpha_schedule, pskd_loss, pskd_memory_update, pskd_targets
from .quantile_aggregation import pinball_loss, quantile_aggregation, weighted_interval_score
from .ssl_recommendation import correlated_feature_masking, cosine_infonce, sampled_softmax_logq
from .stablemax import stablemax, stablemax_cross_entropy
from .z_loss import z_loss

__all__ = [
    "aldr_kl_loss",
    "aldr_lambda_update",
    "bar_borders_from_quantiles",
    "bar_distribution_mean",
    "bar_distribution_nll",
    "comp_sum_loss",
    "correlated_feature_masking",
    "cosine_infonce",
    "dcdm_loss",
    "distillation_kl",
    "f_divergence_weight",
    "full_support_bar_distribution_nll",
    "ldr_kl_loss",
    "mult_vae_beta_schedule",
    "mult_vae_loss",
    "multinomial_log_likelihood",
    "pinball_loss",
    "pskd_alpha_schedule",
    "pskd_loss",
    "pskd_memory_update",
    "pskd_targets",
    "quantile_aggregation",
    "sampled_softmax_logq",
    "stablemax",
    "stablemax_cross_entropy",
    "vsd_loss",
    "weighted_interval_score",
    "z_loss",
]

"""The default of every optional argument, as the catalog states it (paper or official code).

This table is a second record of the defaults, kept apart from the reference's signatures on
purpose: every backend receives its defaults from the reference's signature, so a default
changed there (LayerNorm's ε from 1e-5 to 1e-4, normalized HSIC's official ε) agrees with
itself on every backend and no sample can see it. ``refimpl check`` compares each op's
signature with this table (the ``defaults`` check); changing a default means changing it
here too, on purpose, with the catalog. Ops added since declare theirs beside their samples
(``OpCases(..., defaults={...})``); an op may not be in both places.

``None`` is a default meaning "not given" (the op's docstring says what it selects then).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DECLARED_DEFAULTS"]

_POINCARE = {"c": 1.0}  # curvature −c; the authors' library (hyperbolic_learning_library) uses c = 1

DECLARED_DEFAULTS: dict[str, dict[str, Any]] = {
    # adapters
    "lora_linear": {"bias": None},
    "pissa_init": {"scale": 1.0},
    # data selection (submodlib's euclidean similarity; CRAIG's block size is a memory knob)
    "class_budget_split": {"equal_num": True},
    "coreset_cluster_weights": {"kernel": "submodlib_euclidean", "normalize": True, "block_size": 1024},
    "craig_gradient_proxy": {"h": None, "use_linear": False},
    "facility_location_greedy": {
        "kernel": "submodlib_euclidean",
        "lazy": True,
        "block_size": 1024,
        "tie_break": "lowest",
    },
    "facility_location_similarity": {"kernel": "submodlib_euclidean", "block_size": 1024},
    # layers
    "layer_norm": {"eps": 1e-5},  # PyTorch's default, inside the square root
    "mobius_add": _POINCARE,
    "mobius_matvec": _POINCARE,
    "mobius_scalar_mul": _POINCARE,
    "poincare_batch_norm": _POINCARE,
    "poincare_beta_concat": _POINCARE,
    "poincare_conv2d": {**_POINCARE, "stride": 1, "padding": 0},
    "poincare_distance": _POINCARE,
    "poincare_expmap": _POINCARE,
    "poincare_expmap0": _POINCARE,
    "poincare_fc": _POINCARE,
    "poincare_gyration": _POINCARE,
    "poincare_logmap": _POINCARE,
    "poincare_logmap0": _POINCARE,
    "poincare_midpoint": _POINCARE,
    "poincare_parallel_transport": _POINCARE,
    "poincare_project": {**_POINCARE, "eps": None},  # None: the library's 4e-3 (float32) / 1e-5 (float64)
    "poincare_relu": _POINCARE,
    "poincare_residual": {**_POINCARE, "activation": "tangent_relu"},
    # losses
    "aldr_kl_loss": {"c": 0.1, "lam0": 10.0, "alpha": 2.0, "normalize": "none", "reduction": "mean"},
    "aldr_lambda_update": {
        "c": 0.1,
        "lam0": 10.0,
        "alpha": 2.0,
        "normalize": "none",
        "update_without_margin": False,
    },
    "bar_borders_from_quantiles": {"full_range": None},
    "bar_distribution_mean": {"full_support": True},
    "bar_distribution_nll": {"reduction": "mean"},
    "comp_sum_loss": {"reduction": "mean"},
    "cosine_infonce": {"eps": 0.0, "symmetric": False},
    "distillation_kl": {"scale": "T2", "form": "kl", "reduction": "mean"},
    "f_divergence_weight": {  # FastGen's f-distill preprocessing
        "time_bin": None,
        "divergence": "js",
        "logit_clip": 10.0,
        "ratio_lower": 0.1,
        "ratio_upper": 20.0,
        "ratio_normalization": True,
        "normalize": True,
    },
    "full_support_bar_distribution_nll": {"reduction": "mean"},
    "ldr_kl_loss": {"c": 0.1, "lam": 10.0, "normalize": "none", "reduction": "mean"},
    "mae_loss": {"reduction": "mean"},  # the official torch.mean (ICML2023_LDR loss.py, MAELoss)
    "mult_vae_beta_schedule": {"anneal_cap": 0.2, "total_anneal_steps": 200000},  # official run
    "pinball_loss": {"reduction": "mean"},
    "pskd_alpha_schedule": {"alpha_T": 0.8},
    "pskd_loss": {"reduction": "mean"},
    "pskd_targets": {"first_epoch": False},
    "sampled_softmax_logq": {"reduction": "mean"},
    "stablemax_cross_entropy": {"reduction": "mean", "compute_in_float64": False},
    "weighted_interval_score": {"reduction": "mean"},
    # merging
    "expert_merging": {"official_chunking": True},
    "expert_merging_coefficient_regularizer": {"weight": 0.1, "target": 0.1},
    # optim (lion-pytorch's defaults)
    "lion_step": {"lr": 1e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.0},
    # regularizers (BiDO: σ = 5 and the normalized HSIC's ε = 1e-5 of the official code)
    "bido_loss": {
        "measure": "hsic",
        "estimator": "biased",
        "norm": "spectral",
        "sigma": 5.0,
        "bandwidth_scales_with_dim": False,
        "abs_distances": False,
        "epsilon": 1e-5,
    },
    "coco": {"norm": "spectral"},
    "elr_loss": {"clamp": False},
    "elr_target_update": {"clamp": False},
    "gaussian_kernel_matrix": {"sigma": 5.0, "bandwidth_scales_with_dim": False, "abs_distances": False},
    "l_orth": {"stride": 1, "variant": "achour"},
    "lol_comparative_regularization": {"margin": 0.0, "tie_active": False},
    "normalized_hsic": {"epsilon": 1e-5},
    # reweighting
    "loss_based_sample_weights": {"delta": 1.0},
    "loss_reweighting_temperature": {"burnout_steps": 1000},
    "loss_weighted_objective": {"world_size": 1},
}

"""Regularizers: penalties added to a training objective.

Ops in this family (one file per paper):

* ``lol_comparative_regularization``, ``lol_passage_ranking_loss``, ``lol_query_ranking_loss``,
  ``flops_regularizer`` — *LoL: A Comparative Regularization Loss over Query Reformulation
  Losses for Pseudo-Relevance Feedback*
* ``gaussian_kernel_matrix``, ``hsic``, ``normalized_hsic``, ``coco``, ``bido_loss`` — *Bilateral
  Dependency Optimization: Defending Against Model-inversion Attacks*
* ``softmax_head_gradient``, ``softmax_head_hvp``, ``softmax_head_hessian_diag``,
  ``hutchinson_hessian_diag``, ``hessian_alignment_penalty`` — *Understanding Hessian Alignment
  for Domain Generalization*
* ``elr_target_update``, ``elr_loss`` — *Early-Learning Regularization Prevents Memorization of
  Noisy Labels*
* ``l_orth`` — *Existence, Stability and Scalability of Orthogonal Convolutional Neural Networks*
"""

from .bido import bido_loss, coco, gaussian_kernel_matrix, hsic, normalized_hsic
from .elr import elr_loss, elr_target_update
from .hessian_alignment import (
    hessian_alignment_penalty,
    hutchinson_hessian_diag,
    softmax_head_gradient,
    softmax_head_hessian_diag,
    softmax_head_hvp,
)
from .lol import (
    flops_regularizer,
    lol_comparative_regularization,
    lol_passage_ranking_loss,
    lol_query_ranking_loss,
)
from .orthogonal_conv import l_orth

__all__: list[str] = [
    "bido_loss",
    "coco",
    "elr_loss",
    "elr_target_update",
    "flops_regularizer",
    "gaussian_kernel_matrix",
    "hessian_alignment_penalty",
    "hsic",
    "hutchinson_hessian_diag",
    "l_orth",
    "lol_comparative_regularization",
    "lol_passage_ranking_loss",
    "lol_query_ranking_loss",
    "normalized_hsic",
    "softmax_head_gradient",
    "softmax_head_hessian_diag",
    "softmax_head_hvp",
]

"""Losses: scalar training objectives on logits, embeddings or predicted distributions.

Ops in this family (one file per paper):

* ``stablemax``, ``stablemax_cross_entropy`` — *Grokking at the Edge of Numerical Stability*
* ``distillation_kl`` — temperature knowledge distillation (T²·KL), shared by many papers
"""

from .distillation import distillation_kl
from .stablemax import stablemax, stablemax_cross_entropy

__all__ = ["distillation_kl", "stablemax", "stablemax_cross_entropy"]

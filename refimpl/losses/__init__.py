"""Losses: scalar training objectives on logits, embeddings or predicted distributions.

Ops in this family (one file per paper):

* ``stablemax``, ``stablemax_cross_entropy`` — *Grokking at the Edge of Numerical Stability*
"""

from .stablemax import stablemax, stablemax_cross_entropy

__all__ = ["stablemax", "stablemax_cross_entropy"]

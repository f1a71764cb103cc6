"""Regularizers: penalties added to a training objective.

Ops in this family (one file per paper):

* ``lol_comparative_regularization``, ``lol_passage_ranking_loss``, ``lol_query_ranking_loss``,
  ``flops_regularizer`` — *LoL: A Comparative Regularization Loss over Query Reformulation
  Losses for Pseudo-Relevance Feedback*
"""

from .lol import (
    flops_regularizer,
    lol_comparative_regularization,
    lol_passage_ranking_loss,
    lol_query_ranking_loss,
)

__all__: list[str] = [
    "flops_regularizer",
    "lol_comparative_regularization",
    "lol_passage_ranking_loss",
    "lol_query_ranking_loss",
]

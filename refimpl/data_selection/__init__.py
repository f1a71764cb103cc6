"""Data selection: per-sample scores, coresets and subset weights.

Ops in this family (one file per paper):

* ``craig_gradient_proxy``, ``facility_location_similarity``, ``facility_location_greedy``,
  ``coreset_cluster_weights``, ``class_budget_split`` — *Data-Efficient Augmentation for
  Training Neural Networks* (CRAIG-style coresets)
"""

from .craig import (
    class_budget_split,
    coreset_cluster_weights,
    craig_gradient_proxy,
    facility_location_greedy,
    facility_location_similarity,
)

__all__ = [
    "class_budget_split",
    "coreset_cluster_weights",
    "craig_gradient_proxy",
    "facility_location_greedy",
    "facility_location_similarity",
]

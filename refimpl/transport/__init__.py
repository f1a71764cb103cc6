"""Optimal transport: regularized transport objectives in their dual forms, projections, plans.

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family transport`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

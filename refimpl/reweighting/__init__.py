"""Reweighting: per-sample (or per-group) statistics turned into weights, priors or selections.

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family reweighting`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

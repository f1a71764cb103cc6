"""Merging: combining the weights of several trained models.

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family merging`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

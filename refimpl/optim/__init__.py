"""Optimizer steps: update rules as pure functions of parameters, gradients and explicit state.

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family optim`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

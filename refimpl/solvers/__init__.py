"""Solvers: iterative and closed-form procedures (block coordinate descent, implicit
differentiation, small convex programs).

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family solvers`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

"""Structure learning: continuous acyclicity functions, DAG scores and the solvers built on them.

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family structure_learning`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

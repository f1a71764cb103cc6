"""Other routines: guidance rules, randomized products, calibration, isotonic regression, metrics.

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family other`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

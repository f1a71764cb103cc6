"""Data selection: per-sample scores, coresets and subset weights.

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family data_selection`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

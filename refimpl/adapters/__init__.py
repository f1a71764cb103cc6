"""Adapters: low-rank and other structured updates of frozen weights (parameter-efficient fine-tuning).

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family adapters`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

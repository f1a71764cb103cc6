"""Quantization and sparsity: fake quantizers with straight-through estimators, vector
quantization, N:M masks, sparse allocation.

One file per paper; every op defined in the family's modules is exported here by itself
(``refimpl list --family quantization_sparsity`` lists them, with their papers).
"""

from ..authoring import export_family

__all__ = export_family(__name__)

"""Layers: normalizations, hyperbolic (Poincaré-ball) operations and other building blocks.

Ops in this family (one file per paper):

* ``layer_norm`` — *Layer Normalization*
"""

from .layer_norm import layer_norm

__all__ = ["layer_norm"]

"""Layers: normalizations, hyperbolic (Poincaré-ball) operations and other building blocks.

Ops in this family (one file per paper):

* ``layer_norm`` — *Layer Normalization*
* ``mobius_add``, ``poincare_expmap0``, ``poincare_logmap0`` — *Poincaré ResNet*
"""

from .layer_norm import layer_norm
from .poincare import mobius_add, poincare_expmap0, poincare_logmap0

__all__ = ["layer_norm", "mobius_add", "poincare_expmap0", "poincare_logmap0"]

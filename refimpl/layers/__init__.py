"""Layers: normalizations, hyperbolic (Poincaré-ball) operations and other building blocks.

Ops in this family (one file per paper):

* ``layer_norm`` — *Layer Normalization*
* ``mobius_add``, ``poincare_expmap0``, ``poincare_logmap0`` — *Poincaré ResNet*
* ``poincare_fc``, ``poincare_beta_concat``, ``poincare_conv2d``, ``poincare_relu``,
  ``poincare_residual`` (and the helper ``poincare_identity_init``) — *Poincaré ResNet* / HNN++
* ``mobius_scalar_mul``, ``mobius_matvec``, ``poincare_expmap``, ``poincare_logmap``,
  ``poincare_distance``, ``poincare_gyration``, ``poincare_parallel_transport``,
  ``poincare_project`` — *Poincaré ResNet* (gyrovector geometry)
* ``poincare_midpoint``, ``poincare_batch_norm`` — *Poincaré ResNet* (midpoint batch norm)
"""

from .layer_norm import layer_norm
from .poincare import (
    mobius_add,
    mobius_matvec,
    mobius_scalar_mul,
    poincare_distance,
    poincare_expmap,
    poincare_expmap0,
    poincare_gyration,
    poincare_logmap,
    poincare_logmap0,
    poincare_parallel_transport,
    poincare_project,
)
from .poincare_batchnorm import poincare_batch_norm, poincare_midpoint
from .poincare_fc import (
    poincare_beta_concat,
    poincare_conv2d,
    poincare_fc,
    poincare_identity_init,
    poincare_relu,
    poincare_residual,
)

__all__ = [
    "layer_norm",
    "mobius_add",
    "poincare_expmap0",
    "poincare_logmap0",
    "mobius_scalar_mul",
    "mobius_matvec",
    "poincare_expmap",
    "poincare_logmap",
    "poincare_distance",
    "poincare_gyration",
    "poincare_parallel_transport",
    "poincare_project",
    "poincare_midpoint",
    "poincare_batch_norm",
    "poincare_fc",
    "poincare_beta_concat",
    "poincare_conv2d",
    "poincare_identity_init",
    "poincare_relu",
    "poincare_residual",
]

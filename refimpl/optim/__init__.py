"""Optimizer steps: update rules as pure functions of parameters, gradients and explicit state.

Ops in this family (one file per paper):

* ``lion_init``, ``lion_step`` — *Symbolic Discovery of Optimization Algorithms* (Lion)
"""

from .lion import lion_init, lion_step

__all__ = ["lion_init", "lion_step"]

"""Regularizers: penalties added to a training objective.

Ops in this family (one file per paper):
"""

__all__: list[str] = []

"""Merging: combining the weights of several trained models.

Ops in this family (one file per paper):
"""

__all__: list[str] = []

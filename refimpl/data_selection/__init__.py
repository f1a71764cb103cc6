"""Data selection: per-sample scores, coresets and subset weights.

Ops in this family (one file per paper):
"""

__all__: list[str] = []

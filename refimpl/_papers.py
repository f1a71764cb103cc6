"""The papers the catalog's routines come from (one constant per paper)."""

from __future__ import annotations

from ._op import Paper

GROKKING_STABLEMAX = Paper(
    "Grokking at the Edge of Numerical Stability",
    arxiv="2501.04697",
    year=2025,
    code="LucasPrietoAl/grokking-at-the-edge-of-numerical-stability",
)
LAYER_NORM = Paper("Layer Normalization", arxiv="1607.06450", year=2016)
POINCARE_RESNET = Paper(
    "Poincaré ResNet",
    arxiv="2303.14027",
    year=2023,
    code="maxvanspengler/hyperbolic_learning_library",
)
PISSA = Paper(
    "PiSSA: Principal Singular Values and Singular Vectors Adaptation of Large Language Models",
    arxiv="2404.02948",
    year=2024,
    code="GraphPKU/PiSSA",
)
LION = Paper(
    "Symbolic Discovery of Optimization Algorithms",
    arxiv="2302.06675",
    year=2023,
    code="google/automl (lion)",
)
LOSS_REWEIGHTING = Paper(
    "Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining",
    arxiv="2502.06733",
    year=2025,
    code="sowmaster/Sample-Level-Loss-Reweighting-ICLR-2025",
)

"""Feat-Mix, feature-wise mixup (ExcelFormer: Can a DNN be a Sure Bet for Tabular Prediction?)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, Paper, array_namespace, op
from .mixup import _check_unit_interval, mix_rows, mix_rows_backward

__all__ = ["PAPER", "feat_mix"]

PAPER = Paper(
    "ExcelFormer: Can a DNN be a Sure Bet for Tabular Prediction?",
    arxiv="2301.02819",
    year=2024,
    code="WhatAShot/ExcelFormer",
)


def _check(arguments) -> None:
    _check_unit_interval(arguments, "lam")
    importances = arguments["importances"]
    xp = array_namespace(importances)
    bad = importances < 0
    if bool(xp.any(bad)):
        index = int(xp.argmax(bad))
        raise ArgumentError(
            "importances",
            "non-negative feature importances (normalized mutual information MI/ΣMI)",
            f"{float(importances[index])!r} at feature {index}",
        )


@op(
    inputs={
        "x": FloatArray("B", "F"),
        "perm": IntArray("B", low=0, high="B"),
        "lam": FloatArray("B"),
        "u": FloatArray("B", "F"),
        "importances": FloatArray("F"),
    },
    outputs=("x_mixed", "label_weight"),
    differentiable=("x",),
    check=_check,
)
def feat_mix(x, perm, lam, u, importances):
    r"""Feat-Mix: swap whole features with a partner row; weight the labels by the importance kept.

    MixUp's interpolation makes little sense for tabular features (a mix of two categories,
    of two quantile codes). Feat-Mix instead keeps some features of row i and takes the
    others from its partner π(i), like CutMix over the feature axis; the label of the new row
    is the two labels weighted by how much *information* each side contributed, measured by
    the features' normalized mutual information with the target (computed upstream).

    Forward, per row i and feature j (the draws are inputs: λ_i ~ Beta(β, β), u_ij ~ U(0, 1),
    π a permutation of the batch)::

        m_ij = 1[u_ij > λ_i]                           (strict, as batch_feat_shuffle)
        x̃_ij = m_ij x_ij + (1 − m_ij) x_{π(i)j}
        Λ_i  = Σ_j I_j m_ij                            (label weight of y_i; 1 − Λ_i of y_{π(i)})

    The training loss (outside the op) is ``Λ_i ℓ(ŷ_i, y_i) + (1 − Λ_i) ℓ(ŷ_i, y_{π(i)})``
    averaged over the batch, ŷ_i the prediction on x̃_i. m is a 0/1 mask, so x̃ is an exact copy
    of one of the two entries.

    Backward (x only; λ, u, π and I are constants, so m and Λ are too). x_j enters x̃_j through
    m_j and every x̃_i with π(i) = j through 1 − m_i::

        x̄_j = m_j ⊙ ḡ_j + Σ_{i: π(i) = j} (1 − m_i) ⊙ ḡ_i

    (a scatter-add, as MixUp's backward with the per-entry mask in place of λ). Λ has no
    differentiable input: its cotangent is dropped.

    In the official code the mix is applied to the tokenizer's output (B, F, d) with the mask
    broadcast over d. The tokenizer embeds each feature on its own
    (``x1 = W_j x_ij + b_j``, ``x2 = W'_j x_ij + b'_j``, ``x1 ⊙ tanh(x2)``), so mixing the raw
    features (B, F) first gives the same tokens; this op works on (B, F).

    Args:
        x: features (B, F), float32 or float64.
        perm: partner of each row (B,), integers in [0, B) (``np.random.permutation(B)`` in the
            official code; any index array is accepted).
        lam: shuffle rates λ_i (B,), in [0, 1]; official draw Beta(β, β), β = 0.5
            (``run_default_config_excel.py``, ``--beta`` default).
        u: uniform draws (B, F) in [0, 1) compared with λ_i.
        importances: I (F,), non-negative; the official code passes ``MI/ΣMI`` (sums to 1, so
            Λ ∈ [0, 1]), with MI from scikit-learn's ``mutual_info_classif`` or
            ``mutual_info_regression`` on the training set.

    Returns:
        x_mixed: x̃ (B, F); label_weight: Λ (B,), in the dtype of x.

    Reference: Chen, Yan, Chen, Wu, *ExcelFormer: Can a DNN be a Sure Bet for Tabular
    Prediction?*, KDD 2024, arXiv:2301.02819, Section "Feat-Mix". Official code
    WhatAShot/ExcelFormer: ``batch_feat_shuffle`` (mask ``random > shuffle_rates``, kept where
    True) and ``run_default_config_excel.py`` (``lambdas = (sorted_mi_scores * feat_masks).sum(1)``).

    >>> import numpy as np, refimpl
    >>> x = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    >>> u = np.array([[0.9, 0.1, 0.6], [0.2, 0.2, 0.2]])
    >>> x_mixed, weight = refimpl.regularizers.feat_mix(
    ...     x, np.array([1, 0]), np.array([0.5, 0.0]), u, np.array([0.5, 0.3, 0.2]))
    >>> x_mixed.tolist(), weight.tolist()  # row 0 keeps features 0 and 2: Λ = 0.5 + 0.2
    ([[1.0, 20.0, 3.0], [10.0, 20.0, 30.0]], [0.7, 1.0])
    """
    dtype = x.dtype
    keep = (u > lam[:, None]).astype(dtype)  # m: 1 where row i keeps its own feature
    x_mixed = mix_rows(x, keep, perm)
    label_weight = keep @ importances.astype(dtype, copy=False)
    return (x_mixed, label_weight), (keep, perm)


@feat_mix.defvjp
def feat_mix_backward(residuals, cotangents):
    keep, perm = residuals
    g_x_mixed, _ = cotangents  # Λ depends on no differentiable input
    return (mix_rows_backward(keep, perm, np.asarray(g_x_mixed).astype(keep.dtype, copy=False)),)

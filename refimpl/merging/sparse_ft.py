"""Composable sparse fine-tunings: add several sparse differences to one pretrained model
(Composable Sparse Fine-Tuning for Cross-Lingual Transfer, Ansell et al.)."""

from __future__ import annotations

import numpy as np

from ..adapters.lt_sft import PAPER
from ..authoring import FloatArray, StateDict, op

__all__ = ["PAPER", "sparse_ft_compose"]


@op(
    inputs={"theta0": FloatArray("..."), "phis": FloatArray("...", "S")},
    outputs=("theta",),
    state_dict=StateDict({"theta0": "tensor", "phis": "models"}, outputs=("theta",)),
)
def sparse_ft_compose(theta0, phis):
    r"""Compose sparse fine-tunings: ``θ = θ₀ + Σ_s φ_s``.

    A sparse fine-tuning (SFT, :func:`refimpl.adapters.lt_sft_mask`) is a difference
    ``φ = (θ₂ − θ₀) ⊙ μ`` that touches few parameters. Because each one is small and sparse,
    several can be added to the same pretrained model with little interference: a language
    SFT learned by masked language modelling on a target language plus a task SFT learned
    on labelled source-language data give zero-shot cross-lingual transfer. Composition is
    plain addition; removing an SFT is subtracting it (up to rounding).

    Forward, for one parameter tensor, with the S differences stacked on the last axis
    (``phis[..., s] = φ_s``), in the dtype and in the official order (each SFT's ``apply``
    adds it to the parameter in place, one after the other)::

        θ = (…((θ₀ + φ_1) + φ_2) + …) + φ_S

    Entries where every φ_s is zero are copied exactly; where one φ_s is non-zero the
    result is the correctly rounded sum, so for SFTs with disjoint supports the order does
    not matter. The official code adds in place; this op returns a new array.

    Not differentiable (a merge rule).

    Whole models: ``sparse_ft_compose(theta0_state_dict, [phi_1, ..., phi_S])`` with state
    dicts. The official SFT stores only the parameters it changes; pass a zero tensor for a
    parameter an SFT does not touch (every state dict has the same names). The official
    ``head`` (a classifier copied, not added) is outside this op.

    Args:
        theta0: the pretrained parameter tensor (any shape), float32/float64.
        phis: the S sparse differences stacked on a trailing axis, shape ``θ₀.shape + (S,)``
            (``numpy.stack(phis, axis=-1)``), same dtype.

    Returns:
        theta: the composed tensor, shape and dtype of ``theta0``.

    Reference: Ansell et al., *Composable Sparse Fine-Tuning for Cross-Lingual Transfer*,
    ACL 2022, arXiv:2110.07560, §3 (composition ``θ₀ + φ_L + φ_T``); official code
    cambridgeltl/composable-sft, ``src/sft/sft.py`` (``SFT.apply``:
    ``param_tensor += diff``; ``SFT.revert``: ``param_tensor -= diff``).

    >>> import numpy as np, refimpl
    >>> theta0 = np.array([1.0, 2.0, 3.0])
    >>> language, task = np.array([0.5, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])
    >>> refimpl.merging.sparse_ft_compose(theta0, np.stack([language, task], axis=-1))
    array([1.5, 2. , 2. ])
    """
    theta = theta0.copy()
    for s in range(phis.shape[-1]):  # the official order: one SFT after the other, in the dtype
        theta = theta + phis[..., s]
    return np.asarray(theta, dtype=theta0.dtype), None

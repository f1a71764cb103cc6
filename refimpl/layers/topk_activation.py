"""Top-k activation thresholding and the activation-sparsity statistic (The Lazy Neuron
Phenomenon: On Emergence of Activation Sparsity in Transformers)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, OneOf, Paper, op

__all__ = ["PAPER", "activation_sparsity", "topk_activation"]

PAPER = Paper(
    "The Lazy Neuron Phenomenon: On Emergence of Activation Sparsity in Transformers",
    arxiv="2210.06313",
    year=2023,
)


def _check_k(arguments) -> None:
    d, k = arguments["h"].shape[-1], arguments["k"]
    if k > d:
        raise ArgumentError("k", f"at most the number of features D = {d}", f"k = {k}")


def topk_mask(h, k, tie_rule):
    """The kept entries of every row: its k largest (see ``topk_activation`` for the ties)."""
    d = h.shape[-1]
    kth = np.partition(h, d - k, axis=-1)[..., d - k : d - k + 1]  # t_k: the k-th largest value
    if tie_rule == "threshold":
        return h >= kth
    above = h > kth
    at = h == kth
    places_left = k - above.sum(axis=-1, keepdims=True)  # ≥ 1: t_k itself is among the k largest
    return above | (at & (np.cumsum(at, axis=-1) <= places_left))  # lowest indices first


@op(
    inputs={"h": FloatArray("...", "D"), "k": IntScalar(1), "tie_rule": OneOf("exactly_k", "threshold")},
    outputs=("h_topk",),
    differentiable=("h",),
    check=_check_k,
)
def topk_activation(h, *, k, tie_rule="exactly_k"):
    r"""Top-k thresholding: keep each token's k largest activations and zero the rest.

    The paper observes that the MLP activations ``h = ReLU(x W1 + b1)`` of trained
    Transformers are very sparse, and that enforcing the sparsity with a per-token top-k
    (keeping the k largest entries of h) costs little accuracy and improves robustness and
    calibration. h is computed upstream (the ReLU's own mask belongs to that upstream
    step); this op applies the top-k mask along the last axis.

    Forward, per row (token) of D features::

        t_k = the k-th largest value of h
        "exactly_k":  m = the k largest entries; entries equal to t_k fill the places left
                      after those > t_k in order of increasing index (ties: lowest index wins)
        "threshold":  m_i = [h_i ≥ t_k]     (keeps more than k entries when t_k is tied)
        h̃ = h ⊙ m

    ``t_k`` comes from a partition (``np.partition``), not a full sort. After a ReLU, k
    larger than the number of positive entries keeps some zeros: harmless, h̃ = h.

    Backward. The mask is piecewise constant in h (it changes only where two entries cross
    at the threshold), so almost everywhere ``∂h̃_i/∂h_j = m_i δ_ij`` and::

        h̄ = h̃̄ ⊙ m

    exact away from ties at ``t_k``; at a tie the stated mask is used.

    Args:
        h: activations (..., D), float32 or float64 (typically after the ReLU).
        k: entries kept per row, 1 ≤ k ≤ D (required: the paper sweeps it per model).
        tie_rule: ``"exactly_k"`` (default: exactly k entries, like the "top-k" the paper
            describes and ``torch.topk``, with the tie order pinned to the lowest index) or
            ``"threshold"`` (every entry ≥ the k-th value).

    Returns:
        h_topk: same shape and dtype as ``h``.

    Reference: Li, You, Bhojanapalli, Li, Rawat, Reddi, Ye, Chern, Yu, Guo, Kumar, *The Lazy
    Neuron Phenomenon: On Emergence of Activation Sparsity in Transformers*, ICLR 2023,
    arXiv:2210.06313 (Top-k Transformer).

    >>> import numpy as np, refimpl
    >>> h = np.array([[0.0, 3.0, 1.0, 3.0, 2.0]])
    >>> refimpl.layers.topk_activation(h, k=2)
    array([[0., 3., 0., 3., 0.]])
    >>> refimpl.layers.topk_activation(np.array([[1.0, 2.0, 2.0, 0.5]]), k=2)
    array([[0., 2., 2., 0.]])
    >>> refimpl.layers.topk_activation(np.array([[2.0, 1.0, 1.0, 1.0]]), k=2)
    array([[2., 1., 0., 0.]])
    >>> refimpl.layers.topk_activation(np.array([[2.0, 1.0, 1.0, 1.0]]), k=2, tie_rule="threshold")
    array([[2., 1., 1., 1.]])
    """
    mask = topk_mask(h, k, tie_rule)
    return np.where(mask, h, h.dtype.type(0)), mask


@topk_activation.defvjp
def topk_activation_backward(mask, g_h_topk):
    return (np.where(mask, g_h_topk, g_h_topk.dtype.type(0)),)


@op(inputs={"h": FloatArray("...", "D")}, outputs=("fraction",))
def activation_sparsity(h):
    r"""The fraction of nonzero activations of every token.

    The paper's measure of activation sparsity: for the MLP activations h of a token, the
    share of entries that are not 0 (it reports about 3% for T5-Base and 6.3% for ViT-B/16;
    observations, not test vectors)::

        fraction = (1/D) · #{i : h_i ≠ 0}

    A statistic, not differentiable (piecewise constant in h): reference only, no VJP and no
    fast backend. ``−0.0`` counts as zero.

    Args:
        h: activations (..., D), float32 or float64.

    Returns:
        fraction: (...), in the dtype of ``h``; 0 for an all-zero row, 1 for a dense one.

    Reference: Li et al., arXiv:2210.06313 (the percentage of nonzero entries in the MLP
    activation maps).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.activation_sparsity(np.array([[0.0, 1.5, 0.0, -0.0], [1.0, 2.0, 3.0, 4.0]]))
    array([0.25, 1.  ])
    """
    nonzero = np.count_nonzero(h, axis=-1)
    return (nonzero / h.shape[-1]).astype(h.dtype), None

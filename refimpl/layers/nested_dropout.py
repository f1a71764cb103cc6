"""Nested dropout of a feature vector and its prefix-length distribution (Compressing
Features for Learning with Noisy Labels)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, RealScalar, op, softmax
from ..reweighting.coteaching import PAPER

__all__ = ["PAPER", "nested_dropout", "nested_dropout_prefix_probs"]


def _check_k(arguments) -> None:
    d, k = arguments["h"].shape[-1], arguments["k"]
    if k > d:
        raise ArgumentError("k", f"at most the number of features D = {d}", f"k = {k}")


@op(
    inputs={"h": FloatArray("...", "D"), "k": IntScalar(1)},
    outputs=("h_masked",),
    differentiable=("h",),
    check=_check_k,
)
def nested_dropout(h, *, k):
    r"""Nested dropout: keep the first k features of every row and zero the rest.

    Nested dropout orders a representation's features by importance: in each mini-batch
    ONE prefix length k is drawn and only the first k features reach the classifier, so the
    first features must carry the most information. Nested Co-teaching uses it to compress
    features against noisy labels; at test time the k with the best validation accuracy is
    kept. The prefix length is an input (drawn outside from
    :func:`nested_dropout_prefix_probs`).

    Forward, for a row h of D features and ``1 ≤ k ≤ D``::

        mask_j = 1 if j < k else 0          (j = 0..D−1: the first k features kept)
        h̃     = h ⊙ mask                    (no rescaling of the kept features)

    Backward. h̃ is linear in h with a diagonal 0/1 Jacobian, so ``h̄ = mask ⊙ h̃̄``:
    the gradient of the dropped features is 0.

    Args:
        h: features (..., D), float32 or float64 (the official code masks the pooled
            (B, D) features before the linear classifier).
        k: the kept prefix length, ``1 ≤ k ≤ D`` (the official mask index ``k`` keeps
            ``k + 1`` features: ``mask_feat_dim[k][:, :k + 1] = 1``).

    Returns:
        h_masked: h̃, the shape and dtype of ``h``. ``k = D`` is the identity.

    Reference: Chen, Shen, Hu, Aubry, *Compressing Features for Learning with Noisy Labels*,
    arXiv:2206.13140; official code yingyichen-cyy/Nested-Co-teaching,
    ``nested/train_resnet.py`` (``main``: ``mask_feat_dim``; ``Train``:
    ``feature_masked = feature * mask_k``).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.nested_dropout(np.array([[1.0, 2.0, 3.0]]), k=2)
    array([[1., 2., 0.]])
    """
    mask = (np.arange(h.shape[-1]) < k).astype(h.dtype)
    return h * mask, mask


@nested_dropout.defvjp
def nested_dropout_backward(mask, g_h_masked):
    return (g_h_masked * mask,)


@op(
    # D ≤ 2²⁴ (a 128 MiB vector): far beyond any feature width, and a huge D fails cleanly
    inputs={"D": IntScalar(1, 2**24), "sigma": RealScalar(0, low_open=True), "mu": RealScalar()},
    outputs=("probs",),
)
def nested_dropout_prefix_probs(*, D, sigma, mu=0.0):  # noqa: N803 - the catalog's name
    r"""The distribution of nested dropout's kept prefix length: a half-Gaussian over 1..D.

    Nested Co-teaching draws the prefix length k of :func:`nested_dropout` once per
    mini-batch from a discretized Gaussian shape centred at μ (0: short prefixes are the
    most likely, so the first features are trained the most), of width σ (the official
    ``--nested`` option). The classic nested dropout of Rippel et al. draws k from a
    geometric distribution instead; this is the official code's shape.

    Forward, over the kept lengths ``k = 1..D``::

        p(k) = exp(−((k − μ)/σ)²) / Σ_{k'=1..D} exp(−((k' − μ)/σ)²)

    evaluated as the softmax of the log-weights ``−z_k²``, ``z_k = |k − μ|/σ``, shifted by
    their max as ``−(z_k − z₀)(z_k + z₀)`` (``z₀ = min z``): the same numbers, but finite
    where every exp underflows (μ far below 1 with a small σ), where the official
    ``dist / np.sum(dist)`` divides 0 by 0.

    A one-off construction, not differentiated: reference-only.

    Args:
        D: the feature dimension (the number of prefix lengths), 1 ≤ D ≤ 2²⁴.
        sigma: σ > 0, the official ``--nested``; REQUIRED: the official default 0 switches
            nested dropout off, and the runs use per-dataset values (e.g. 100 on CIFAR).
        mu: μ, the official ``--mu`` (default 0.0, ``nested/train_resnet.py``).

    Returns:
        probs: p (D,), float64, summing to 1; ``probs[k − 1] = p(k)``.

    Reference: Chen, Shen, Hu, Aubry, *Compressing Features for Learning with Noisy Labels*,
    arXiv:2206.13140; official code yingyichen-cyy/Nested-Co-teaching,
    ``nested/train_resnet.py``, ``GaussianDist(mu, std, N)`` (``np.exp(-((i - mu) / std)**2)``
    for ``i in range(1, N + 1)``, normalized) and the ``--mu``/``--nested`` options.

    >>> import numpy as np, refimpl
    >>> p = refimpl.layers.nested_dropout_prefix_probs(D=2, sigma=1.0)  # ∝ (e^−1, e^−4)
    >>> np.allclose(p, [1 / (1 + np.exp(-3)), np.exp(-3) / (1 + np.exp(-3))])
    True
    """
    distance = np.abs((np.arange(1, D + 1, dtype=np.float64) - mu) / sigma)  # |k − μ|/σ
    nearest = distance.min()
    # the log-weights shifted by their max, −(z² − z₀²) = −(z − z₀)(z + z₀) ≤ 0: no 0/0 when every
    # exp(−z²) underflows, and no inf − inf when z² overflows
    # (a product beyond the float64 range is −inf: a weight of exactly 0, as it should be)
    with np.errstate(over="ignore"):
        log_weights = -(distance - nearest) * (distance + nearest)
    return softmax(log_weights), None

"""Cluster-level weighted decorrelation of random Fourier features (Learning to Reweight for Graph
Neural Network, L2R-GNN)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, Paper, array_namespace, op

__all__ = ["PAPER", "weighted_rff_decorrelation_loss"]

PAPER = Paper("Learning to Reweight for Graph Neural Network", arxiv="2312.12475", year=2024)


def _check(arguments) -> None:
    w = arguments["w"]
    xp = array_namespace(w)
    negative = w < 0
    if bool(xp.any(negative)):
        index = int(xp.argmax(negative))
        raise ArgumentError("w", "sample weights w >= 0", f"{float(w[index])!r} at index {index}")


def random_fourier_features(Z, omega, phi):  # noqa: N803
    """``U[i, a·Q + q] = √2·cos(ω_aq Z_ia + φ_aq)``: Q features per dimension, flattened to (n, d·Q)."""
    n = Z.shape[0]
    angles = Z[:, :, None] * omega[None, :, :] + phi[None, :, :]
    return (Z.dtype.type(math.sqrt(2.0)) * np.cos(angles)).reshape(n, -1)


def between_cluster_mask(clusters, num_features):
    """``M[(a, q), (b, r)] = 1[cluster(a) ≠ cluster(b)]`` over the flattened features."""
    labels = np.repeat(clusters, num_features)
    return labels[:, None] != labels[None, :]


@op(
    inputs={
        "Z": FloatArray("n", "d"),
        "w": FloatArray("n"),
        "clusters": IntArray("d", low=0),
        "omega": FloatArray("d", "Q"),
        "phi": FloatArray("d", "Q"),
    },
    outputs=("loss",),
    differentiable=("w",),
    check=_check,
)
def weighted_rff_decorrelation_loss(Z, w, clusters, omega, phi):  # noqa: N803 - the paper's Z
    r"""L2R-GNN's decorrelation loss: weighted covariances of random Fourier features between
    clusters of representation dimensions, as a function of the sample weights.

    Stable learning (StableNet-style) removes spurious correlations between the dimensions of
    a representation by reweighting the samples until the dimensions look independent. Linear
    independence is not enough, so each dimension is lifted by random Fourier features (RFF)
    and the weighted cross-covariances of the features are driven to zero — a proxy for the
    Hilbert–Schmidt independence of the dimensions. L2R-GNN decorrelates only *between*
    clusters of dimensions (dimensions inside a cluster stay correlated; this keeps enough
    effective samples on graphs, where decorrelating every pair over-reduces the sample size).
    The weights minimize this loss; the GNN minimizes the w-weighted task loss (bilevel).

    Forward (n samples, d dimensions in clusters P_1..P_m given by ``clusters``, Q features per
    dimension)::

        u_q(Z_ia)  = √2·cos(ω_aq Z_ia + φ_aq)                U = [u_q(Z_ia)] (n, d·Q)
        Ā_w        = (1/n) Σ_i w_i U_i
        C          = (1/n) Σ_i w_i (U_i − Ā_w)(U_i − Ā_w)ᵀ     (d·Q, d·Q)
        L          = Σ_{p≠q} Σ_{a∈P_p, b∈P_q} ‖C[a, b]‖_F² = Σ M ⊙ C²

    with ``M`` the between-cluster mask (the sum runs over ordered pairs p ≠ q, so each
    unordered pair of clusters counts twice). The features are bounded (|u| ≤ √2), so every term
    is; C is formed as ``(1/n)(w ⊙ V)ᵀ V`` with ``V = U − Ā_w`` (centered first, no
    ``E[uuᵀ] − ĀĀᵀ`` cancellation).

    Backward (w.r.t. w; Z, ω, φ are constants here). With ``s = Σ_i w_i``,
    ``∂Ā/∂w_k = U_k/n`` and ``Σ_i w_i (U_i − Ā) = (n − s)Ā``::

        ∂C/∂w_k = (1/n) V_k V_kᵀ − ((n − s)/n²)(U_k Āᵀ + Ā U_kᵀ)

    (the second term vanishes when Σw = n). With ``G = ∂L/∂C = 2 M ⊙ C`` (symmetric)::

        ∂L/∂w_k = ⟨G, ∂C/∂w_k⟩ = (1/n) V_kᵀ G V_k − (2(n − s)/n²) U_kᵀ G Ā

    and ``w̄ = ḡ·∂L/∂w``. To keep Σw = n, parameterize ``w = n·softmax(θ)`` and chain the
    softmax Jacobian outside this op.

    Not pinned (the RFF sampling and the clustering): no code was released (none
    found), and the paper's text was not available to transcribe how ω and φ are drawn, how many
    features Q each dimension gets, and how the dimensions are clustered (by the stability of
    their correlations). All three are therefore inputs: ``omega``, ``phi`` (the usual RFF
    draw is ω ~ N(0, 1), φ ~ U(0, 2π), as in StableNet's √2·cos(ωz + φ)) and
    ``clusters`` (a label per dimension). Randomness is an input anyway, so with them given
    the op is fully defined and has no hidden constant.

    Args:
        Z: representations (n, d), float32 or float64 (constants).
        w: sample weights (n,) ≥ 0, same dtype (Σw = n in the paper; not enforced).
        clusters: the cluster of each dimension (d,), integers ≥ 0 (any labels; equal labels
            share a cluster).
        omega: RFF frequencies ω (d, Q), same dtype.
        phi: RFF phases φ (d, Q), same dtype.

    Returns:
        loss: L, a scalar in the dtype of ``Z``.

    Reference: Chen et al., *Learning to Reweight for Graph Neural Network*, AAAI 2024,
    arXiv:2312.12475 (no code released); the RFF decorrelation after StableNet (Zhang et
    al., *Deep Stable Learning for Out-Of-Distribution Generalization*, CVPR 2021).

    >>> import numpy as np, refimpl
    >>> Z, w = np.array([[0.0, 0.0], [np.pi, np.pi]]), np.ones(2)
    >>> ones = np.ones((2, 1))  # u = √2·cos(z): ±√2 in both dimensions, perfectly correlated
    >>> loss = refimpl.reweighting.weighted_rff_decorrelation_loss(Z, w, np.array([0, 1]), ones, 0 * ones)
    >>> round(float(loss), 12)  # C = [[2, 2], [2, 2]]: the two off-diagonal entries, 2² each, twice
    8.0
    """
    dtype = Z.dtype
    n = Z.shape[0]
    features = random_fourier_features(Z, omega, phi)  # U (n, d·Q)
    mean = (w @ features) / dtype.type(n)  # Ā_w
    centered = features - mean  # V
    covariance = ((w[:, None] * centered).T @ centered) / dtype.type(n)  # C
    mask = between_cluster_mask(clusters, omega.shape[1])
    masked = np.where(mask, covariance, dtype.type(0))  # M ⊙ C
    loss = (masked * covariance).sum()
    return np.asarray(loss, dtype=dtype), (features, centered, mean, masked, w.sum(), n)


@weighted_rff_decorrelation_loss.defvjp
def weighted_rff_decorrelation_loss_backward(residuals, g_loss):
    features, centered, mean, masked, weight_sum, n = residuals
    dtype = features.dtype
    g = dtype.type(np.asarray(g_loss))
    g_covariance = dtype.type(2) * masked  # G = 2 M ⊙ C
    quadratic = ((centered @ g_covariance) * centered).sum(axis=1) / dtype.type(n)  # V_kᵀ G V_k / n
    cross = features @ (g_covariance @ mean)  # U_kᵀ G Ā
    g_w = quadratic - dtype.type(2 * (n - weight_sum) / (n * n)) * cross
    return ((g * g_w).astype(dtype, copy=False),)

"""Bilateral Dependency Optimization (BiDO): Gaussian kernels, HSIC, normalized HSIC, COCO, the BiDO loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import ArgumentError, Flag, FloatArray, IntArray, OneOf, Paper, RealScalar, op

__all__ = [
    "PAPER",
    "bido_loss",
    "center",
    "coco",
    "gaussian_kernel_matrix",
    "gaussian_kernel_matrix_backward",
    "hsic",
    "linear_kernel_matrix",
    "linear_kernel_matrix_backward",
    "normalized_hsic",
]

PAPER = Paper(
    "Bilateral Dependency Optimization: Defending Against Model-inversion Attacks",
    arxiv="2206.05483",
    year=2022,
    code="AlanPeng0897/Defend_MI",
)

OFFICIAL_SIGMA = 5.0  # BiDO/engine.py: sigma=5. for every kernel
OFFICIAL_EPSILON = 1e-5  # hsic.hsic_normalized_cca: epsilon = 1E-5


# -- shared pieces (plain functions: the ops below and bido_loss are built from them) -----------
def center(K: np.ndarray) -> np.ndarray:
    """``H K H`` with ``H = I − 11ᵀ/m``: subtract the row means, the column means, add the grand mean.

    Never forms H (O(m²) instead of O(m³)).
    """
    return K - K.mean(axis=1, keepdims=True) - K.mean(axis=0, keepdims=True) + K.mean()


def _right_center(K: np.ndarray) -> np.ndarray:
    """``K H``: subtract each row's mean (the official code's one-sided centring)."""
    return K - K.mean(axis=1, keepdims=True)


def _bandwidth(sigma: float, dim: int, scales_with_dim: bool) -> float:
    """``v = 2σ²`` (paper) or ``2σ²·d`` (official ``kernelmat``: ``2·sigma·sigma·X.size()[1]``)."""
    return 2.0 * sigma * sigma * (dim if scales_with_dim else 1)


def _squared_distances(Z: np.ndarray, abs_distances: bool) -> np.ndarray:
    """``D_ij = r_i − 2⟨z_i, z_j⟩ + r_j`` (Gram form, ``r_i = ‖z_i‖²``) of the centred points.

    Distances do not change under a shift, so the points are first centred on their mean:
    the Gram form loses ``ε·(r_i + r_j)`` to cancellation, and centring keeps ``r`` as small
    as the spread of the batch allows (points far from the origin lose nothing). ``D_ii`` is
    exactly 0 (it is ``‖z_i − z_i‖²``; the Gram form would leave round-off there, which at
    large ``‖z‖`` turns ``K_ii = 1`` into 0). Off the diagonal the Gram form can go slightly
    negative for nearby points; the reference clamps at 0, ``abs_distances=True`` takes
    ``|D|`` like the official ``distmat``.
    """
    Z = Z - Z.mean(axis=0)
    r = np.einsum("id,id->i", Z, Z)
    D = r[:, None] - 2 * (Z @ Z.T) + r[None, :]
    D = np.abs(D) if abs_distances else np.maximum(D, 0)
    np.fill_diagonal(D, 0)
    return D


def gaussian_kernel_matrix_backward(Z: np.ndarray, K: np.ndarray, v: float, g_K: np.ndarray) -> np.ndarray:
    """VJP of ``K = exp(−D/v)``: ``Z̄ = −(2/v)(diag(P1) − P)Z`` with ``S = K̄ ⊙ K``, ``P = S + Sᵀ``.

    The graph-Laplacian form (see ``gaussian_kernel_matrix`` for the derivation); it is exact
    on the diagonal, where ``D_ii ≡ 0`` contributes nothing.
    """
    S = g_K * K
    P = S + S.T
    laplacian_times_Z = P.sum(axis=1)[:, None] * Z - P @ Z
    return (-2.0 / v) * laplacian_times_Z


def linear_kernel_matrix(Z: np.ndarray) -> np.ndarray:
    """``K = Z Zᵀ`` (the official ``ktype="linear"``, used on one-hot labels)."""
    return Z @ Z.T


def linear_kernel_matrix_backward(Z: np.ndarray, g_K: np.ndarray) -> np.ndarray:
    """VJP of ``K = Z Zᵀ``: ``dK = dZ Zᵀ + Z dZᵀ`` gives ``Z̄ = (K̄ + K̄ᵀ) Z``."""
    return (g_K + g_K.T) @ Z


def _hsic_value(K: np.ndarray, L: np.ndarray) -> np.ndarray:
    m = K.shape[0]
    # tr(K H L H) = tr((H K H) L) = Σ_ij (HKH)_ij L_ji
    return np.sum(center(K) * L.T) / K.dtype.type((m - 1) ** 2)


def _hsic_backward(K: np.ndarray, L: np.ndarray, g: Any) -> tuple[np.ndarray, np.ndarray]:
    m = K.shape[0]
    scale = g / K.dtype.type((m - 1) ** 2)
    return scale * center(L.T), scale * center(K.T)


def _regularized_projection(K: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """``A = K H`` and ``R = A (A + cI)⁻¹`` by a linear solve (``Rᵀ = (A + cI)⁻ᵀ Aᵀ``)."""
    A = _right_center(K)
    shifted = A + c * np.eye(A.shape[0], dtype=A.dtype)
    R = np.linalg.solve(shifted.T, A.T).T
    return A, R


def _sandwich(A: np.ndarray, c: float, X: np.ndarray) -> np.ndarray:
    """``M X M`` with ``M = (A + cI)⁻¹``, by two solves (no inverse is formed)."""
    shifted = A + c * np.eye(A.shape[0], dtype=A.dtype)
    MX = np.linalg.solve(shifted, X)
    return np.linalg.solve(shifted.T, MX.T).T


def _normalized_hsic_value(K: np.ndarray, L: np.ndarray, epsilon: float):
    """Float64 value and residuals of ``tr(R^x R^y)``."""
    K64, L64 = K.astype(np.float64), L.astype(np.float64)
    c = epsilon * K.shape[0]
    A_x, R_x = _regularized_projection(K64, c)
    A_y, R_y = _regularized_projection(L64, c)
    value = np.sum(R_x * R_y.T)
    return value, (A_x, R_x, A_y, R_y, c)


def _normalized_hsic_backward(residuals, g: float) -> tuple[np.ndarray, np.ndarray]:
    A_x, R_x, A_y, R_y, c = residuals
    g_A_x = (g * c) * _sandwich(A_x, c, R_y).T
    g_A_y = (g * c) * _sandwich(A_y, c, R_x).T
    # A = K H  ⇒  K̄ = Ā Hᵀ = Ā H: subtract each row's mean
    return _right_center(g_A_x), _right_center(g_A_y)


def _power_of_two_scale(A: np.ndarray) -> float:
    """A power of two near ``max|A|`` (1 for a zero matrix): dividing by it is exact."""
    largest = float(np.max(np.abs(A)))
    return 1.0 if largest == 0 else float(2.0 ** np.frexp(largest)[1])


def _coco_value(K: np.ndarray, L: np.ndarray, norm: str):
    """COCO on ``K/s_K`` and ``L/s_L`` (powers of two), scaled back by ``sqrt(s_K s_L)``.

    ``‖(sK)(tL)‖ = st‖KL‖``: the product of two float32 kernels of size 1e-30 underflows
    to 0 unscaled, while the scaled computation is exact up to the final factor.
    """
    m = K.shape[0]
    s_K, s_L = _power_of_two_scale(K), _power_of_two_scale(L)
    K_c, L_c = center(K / K.dtype.type(s_K)), center(L / L.dtype.type(s_L))
    P = K_c @ L_c
    if norm == "spectral":
        U, s, Vt = np.linalg.svd(P)
        size, direction = s[0], np.outer(U[:, 0], Vt[0])  # ∂σ₁/∂P = u₁v₁ᵀ (σ₁ simple)
    else:
        size = np.sqrt(np.sum(P * P))
        direction = P / size if size > 0 else np.zeros_like(P)  # ∂‖P‖_F/∂P = P/‖P‖_F
    value = np.sqrt(size) * np.sqrt(s_K * s_L) / m
    return value, (K_c, L_c, size, direction, m, s_K, s_L)


def _coco_backward(residuals, g: Any) -> tuple[np.ndarray, np.ndarray]:
    K_c, L_c, size, direction, m, s_K, s_L = residuals
    if size == 0:  # sqrt is not differentiable at 0: take 0 (see coco's docstring)
        return np.zeros_like(K_c), np.zeros_like(L_c)
    # on the scaled kernels K̂ = K/s_K, L̂ = L/s_L: COCO = sqrt(s_K s_L)·sqrt(ŝ)/m, so
    # K̄ = sqrt(s_L/s_K)·∂(sqrt(ŝ)/m)/∂K̂ and L̄ = sqrt(s_K/s_L)·∂(sqrt(ŝ)/m)/∂L̂
    g_P = (g / (2 * m * np.sqrt(size))) * direction
    # P = K̃ L̃: K̃̄ = P̄ L̃ᵀ, L̃̄ = K̃ᵀ P̄; K̃ = H K H: K̄ = H K̃̄ H
    g_K = center(g_P @ L_c.T) * K_c.dtype.type(np.sqrt(s_L / s_K))
    g_L = center(K_c.T @ g_P) * L_c.dtype.type(np.sqrt(s_K / s_L))
    return g_K, g_L


def _at_least_two_samples(name: str):
    def check(arguments: Mapping[str, Any]) -> None:
        m = arguments[name].shape[0]
        if m < 2:
            raise ArgumentError(
                name, "at least m = 2 samples (the biased HSIC divides by (m − 1)²)", f"m = {m}"
            )

    return check


# -- gaussian_kernel_matrix -------------------------------------------------------------------
@op(
    inputs={
        "Z": FloatArray("m", "d"),
        "sigma": RealScalar(0, low_open=True),
        "bandwidth_scales_with_dim": Flag(),
        "abs_distances": Flag(),
    },
    outputs=("K",),
    differentiable=("Z",),
)
def gaussian_kernel_matrix(Z, *, sigma=OFFICIAL_SIGMA, bandwidth_scales_with_dim=False, abs_distances=False):
    r"""Gaussian (RBF) kernel matrix of a batch of points, with the graph-Laplacian VJP.

    Every kernel dependence measure (HSIC, COCO) starts from the m × m similarity matrix of
    a batch. This one compares all pairs of rows of ``Z`` (inputs, or a flattened hidden
    layer) with a Gaussian of bandwidth ``v``.

    Forward::

        z_i ← z_i − mean_j z_j                      (distances are shift-invariant)
        r_i  = ‖z_i‖²
        D_ij = max(r_i − 2⟨z_i, z_j⟩ + r_j, 0)      (|·| instead of max(·, 0): abs_distances)
        D_ii = 0
        v    = 2σ²                                  (2σ²·d: bandwidth_scales_with_dim)
        K_ij = exp(−D_ij / v)

    Backward. ``D_ij = ‖z_i − z_j‖²`` has ``∂D_ij/∂z_i = 2(z_i − z_j)`` and
    ``∂D_ij/∂z_j = −2(z_i − z_j)``; ``∂K_ij/∂D_ij = −K_ij/v``. For a cotangent ``K̄`` write
    ``S = K̄ ⊙ K`` (so ``D̄ = −S/v``). Row a of ``Z̄`` collects the pairs (a, j) and (i, a)::

        z̄_a = Σ_j D̄_aj·2(z_a − z_j) + Σ_i D̄_ia·2(z_a − z_i)
            = 2 Σ_j (D̄ + D̄ᵀ)_aj (z_a − z_j)
            = −(2/v) [(diag(P1) − P) Z]_a,          P = S + Sᵀ

    i.e. the Laplacian of the graph with edge weights P applied to Z. The diagonal (j = a)
    drops out exactly, since ``z_a − z_a = 0``. The clamp (or ``|·|``) only acts on round-off
    around coincident points, where ``z_i − z_j = 0`` as well; the backward differentiates the
    exact distance, so both variants share it.

    Paper vs official code. The paper writes ``k(z, z') = exp(−‖z − z'‖²/(2σ²))``; the
    official ``kernelmat`` divides by ``2σ²·d`` with d the flattened feature dimension
    (``bandwidth_scales_with_dim=True``) and takes ``|D|`` of the Gram-form distances
    (``abs_distances=True``). σ = 5 everywhere in the official code (the default here). A
    median-heuristic σ is a plain number here, so it is detached as it must be.

    Args:
        Z: points (m, d), float32 or float64.
        sigma: bandwidth σ > 0 (official 5).
        bandwidth_scales_with_dim: official ``v = 2σ²·d``.
        abs_distances: official ``|D|`` instead of ``max(D, 0)``.

    Returns:
        K: (m, m) kernel matrix in the dtype of Z; ``K_ii = 1``, ``0 < K_ij ≤ 1``.

    Reference: Peng et al., *Bilateral Dependency Optimization: Defending Against
    Model-inversion Attacks*, KDD 2022, arXiv:2206.05483; official code AlanPeng0897/Defend_MI
    (``BiDO/hsic.py``, from the HSIC-bottleneck code base).

    >>> import numpy as np, refimpl
    >>> Z = np.array([[0.0, 0.0], [1.0, 1.0]])
    >>> refimpl.regularizers.gaussian_kernel_matrix(Z, sigma=1.0).round(7)  # exp(−2/2)
    array([[1.       , 0.3678794],
           [0.3678794, 1.       ]])
    """
    v = _bandwidth(sigma, Z.shape[1], bandwidth_scales_with_dim)
    D = _squared_distances(Z, abs_distances)
    K = np.exp(-D / Z.dtype.type(v))
    return K, (Z, K, v)


@gaussian_kernel_matrix.defvjp
def _gaussian_kernel_matrix_vjp(residuals, g_K):
    Z, K, v = residuals
    return (gaussian_kernel_matrix_backward(Z, K, v, g_K).astype(Z.dtype, copy=False),)


# -- hsic ---------------------------------------------------------------------------------------
@op(
    inputs={"K": FloatArray("m", "m"), "L": FloatArray("m", "m")},
    outputs=("hsic",),
    differentiable=("K", "L"),
    check=_at_least_two_samples("K"),
)
def hsic(K, L):
    r"""The biased empirical HSIC of two kernel matrices (the paper's dependence measure).

    The Hilbert–Schmidt independence criterion is the squared norm of the cross-covariance
    operator between the two feature maps; it is 0 when the samples are independent (for
    characteristic kernels, in the population limit). BiDO minimizes it between inputs and a
    hidden layer, and maximizes it between the hidden layer and the labels.

    Forward, with ``H = I − 11ᵀ/m`` the centring matrix::

        HSIC(K, L) = tr(K H L H) / (m − 1)² = Σ_ij (HKH)_ij L_ji / (m − 1)²

    Backward. ``tr(K H L H)`` is linear in K: ``d tr(dK·HLH) = ⟨(HLH)ᵀ, dK⟩``, so::

        K̄ = ḡ · H Lᵀ H / (m − 1)²        L̄ = ḡ · H Kᵀ H / (m − 1)²

    (for symmetric kernels the transposes are no-ops; they make the VJP exact for any
    square input).

    Invariants: ``HSIC(K, L) = 0`` for a constant K (no variation); ``HSIC ≥ 0`` for PSD
    kernels; unchanged when the samples are permuted jointly (``K → ΠKΠᵀ``, ``L → ΠLΠᵀ``).

    Args:
        K: kernel matrix (m, m), float32 or float64, m ≥ 2.
        L: kernel matrix (m, m), same dtype.

    Returns:
        hsic: a scalar (0-d array, dtype of K).

    Reference: arXiv:2206.05483 (BiDO-HSIC); Gretton et al. 2005 for the estimator.

    >>> import numpy as np, refimpl
    >>> K = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> float(refimpl.regularizers.hsic(K, K))  # (HKH = H, tr(HH) = 1)/1
    1.0
    """
    return _hsic_value(K, L), (K, L)


@hsic.defvjp
def _hsic_vjp(residuals, g):
    K, L = residuals
    g_K, g_L = _hsic_backward(K, L, g)
    return g_K.astype(K.dtype, copy=False), g_L.astype(L.dtype, copy=False)


# -- normalized_hsic ----------------------------------------------------------------------------
@op(
    inputs={"K": FloatArray("m", "m"), "L": FloatArray("m", "m"), "epsilon": RealScalar(0, low_open=True)},
    outputs=("nhsic",),
    differentiable=("K", "L"),
)
def normalized_hsic(K, L, *, epsilon=OFFICIAL_EPSILON):
    r"""The normalized HSIC that BiDO's official code computes (``hsic_normalized_cca``).

    A regularized, kernel-CCA-like normalization of HSIC: each centred kernel is turned into
    a "hat" matrix ``R = K̃(K̃ + εmI)⁻¹`` (close to a projection onto the span of the centred
    features), and the two projections are compared by their trace inner product. The value
    lies roughly in [0, m − 1] and is far less sensitive to the kernel scale than HSIC.

    Forward (official code; note the one-sided centring ``K H``, not ``H K H``)::

        A_x = K H,   A_y = L H,   c = ε·m
        R^x = A_x (A_x + cI)⁻¹,   R^y = A_y (A_y + cI)⁻¹
        nHSIC = Σ_ij R^x_ij R^y_ji = tr(R^x R^y)

    Backward. With ``M = (A + cI)⁻¹`` one has ``R = A M = I − cM`` (because
    ``(A + cI)M = I``), so ``dR = −c dM = c M dA M``. From ``d tr(R^x R^y) = ⟨(R^y)ᵀ, dR^x⟩``::

        ⟨(R^y)ᵀ, c M dA M⟩ = c tr(M R^y M dA)   ⇒   Ā_x = c (M_x R^y M_x)ᵀ
        A_x = K H                                ⇒   K̄ = Ā_x H   (subtract row means)

    and symmetrically ``Ā_y = c (M_y R^x M_y)ᵀ``, ``L̄ = Ā_y H``. ``M X M`` is evaluated by two
    linear solves with ``A + cI``; no inverse is formed.

    Precision: ``A + cI`` has condition number ~‖K‖/(εm) ≈ 1e5 (A is singular: ``K H 1 = 0``),
    so float32 solves would lose 4–5 digits. The op computes in float64 and casts the result
    (and the VJP) back to the input dtype; the official code works in float32.

    Args:
        K: kernel matrix (m, m), float32 or float64 (in BiDO: Gaussian kernel of a layer).
        L: kernel matrix (m, m) (inputs' Gaussian kernel, or labels' linear kernel).
        epsilon: the ridge ε (official 1e-5); the shift is ε·m.

    Returns:
        nhsic: a scalar (0-d array, dtype of K).

    Reference: arXiv:2206.05483; official code AlanPeng0897/Defend_MI (``hsic.hsic_normalized_cca``),
    inherited from the HSIC-bottleneck code base (Ma et al., arXiv:1908.01580).

    >>> import numpy as np, refimpl
    >>> K = np.eye(3)
    >>> round(float(refimpl.regularizers.normalized_hsic(K, K)), 6)  # 2/(1 + 3e−5)², ≈ rank of HKH
    1.99988
    """
    value, residuals = _normalized_hsic_value(K, L, epsilon)
    return np.asarray(value, dtype=K.dtype), (residuals, K.dtype)


@normalized_hsic.defvjp
def _normalized_hsic_vjp(residuals, g):
    inner, dtype = residuals
    g_K, g_L = _normalized_hsic_backward(inner, float(g))
    return g_K.astype(dtype), g_L.astype(dtype)


# -- coco ---------------------------------------------------------------------------------------
@op(
    inputs={"K": FloatArray("m", "m"), "L": FloatArray("m", "m"), "norm": OneOf("spectral", "fro")},
    outputs=("coco",),
    differentiable=("K", "L"),
)
def coco(K, L, *, norm="spectral"):
    r"""COCO, the constrained covariance: the largest singular value of the centred kernel product.

    COCO (Gretton et al. 2005) is the largest kernel cross-covariance between the two feature
    maps, i.e. the operator norm where HSIC takes the Hilbert–Schmidt (Frobenius) norm. BiDO
    uses it as an alternative dependence measure.

    Forward (paper, ``norm="spectral"``), with ``K̃ = HKH``, ``L̃ = HLH``::

        P    = K̃ L̃
        COCO = (1/m)·sqrt(‖P‖₂)            ‖P‖₂ = σ₁(P), the largest singular value

    The official ``coco_normalized_cca`` takes ``torch.norm(K̃ L̃)``, the **Frobenius** norm
    (``norm="fro"``): ``(1/m)·sqrt(‖P‖_F)``, a different quantity (≥ the spectral one).

    Backward. With ``s = ‖P‖``: ``∂COCO/∂s = 1/(2m·sqrt(s))``; ``∂σ₁/∂P = u₁v₁ᵀ`` (top
    singular pair; valid when σ₁ is simple — a repeated top singular value is a kink, and
    the product ``u₁v₁ᵀ`` does not depend on the signs SVD picks); ``∂‖P‖_F/∂P = P/‖P‖_F``.
    Then ``P = K̃L̃`` gives ``K̃̄ = P̄ L̃ᵀ``, ``L̃̄ = K̃ᵀ P̄``, and ``K̃ = HKH`` (H symmetric)
    gives ``K̄ = H K̃̄ H``, ``L̄ = H L̃̄ H``.

    At ``s = 0`` (a constant kernel: K̃ = 0) COCO = 0 and sqrt has an infinite slope; the
    VJP returns 0 there (the official autograd gives NaN), so finite inputs give finite
    gradients.

    Precision: COCO is homogeneous, ``COCO(sK, tL) = sqrt(st)·COCO(K, L)``; K and L are
    divided by powers of two near their largest entries before the product (exact), so
    kernels of size 1e-30 in float32 do not underflow to COCO = 0.

    Args:
        K: kernel matrix (m, m), float32 or float64.
        L: kernel matrix (m, m), same dtype.
        norm: "spectral" (paper) or "fro" (official code).

    Returns:
        coco: a scalar (0-d array, dtype of K), ≥ 0.

    Reference: arXiv:2206.05483 (BiDO-COCO); official code AlanPeng0897/Defend_MI
    (``hsic.coco_normalized_cca``).

    >>> import numpy as np, refimpl
    >>> K = np.array([[2.0, 0.0], [0.0, 0.0]])  # K̃ = HKH = [[.5, −.5], [−.5, .5]], σ₁(K̃²) = 1
    >>> float(refimpl.regularizers.coco(K, K))
    0.5
    """
    value, residuals = _coco_value(K, L, norm)
    return np.asarray(value, dtype=K.dtype), (residuals, K.dtype)


@coco.defvjp
def _coco_vjp(residuals, g):
    inner, dtype = residuals
    g_K, g_L = _coco_backward(inner, g)
    return g_K.astype(dtype, copy=False), g_L.astype(dtype, copy=False)


# -- bido_loss ----------------------------------------------------------------------------------
def _dependence(measure, estimator, norm, epsilon):
    """(value, backward) pair of the chosen dependence measure D(K, L)."""
    if measure == "coco":
        return (lambda K, L: _coco_value(K, L, norm)), _coco_backward
    if estimator == "normalized":
        return (lambda K, L: _normalized_hsic_value(K, L, epsilon)), _normalized_hsic_backward

    def value(K, L):
        return _hsic_value(K, L), (K, L)

    def backward(residuals, g):
        return _hsic_backward(*residuals, g)

    return value, backward


@op(
    inputs={
        "x": FloatArray("B", "Dx"),
        "features": FloatArray("B", "F"),
        "y": IntArray("B", low=0),
        "lambda_x": RealScalar(0),
        "lambda_y": RealScalar(0),
        "measure": OneOf("hsic", "coco"),
        "estimator": OneOf("biased", "normalized"),
        "norm": OneOf("spectral", "fro"),
        "sigma": RealScalar(0, low_open=True),
        "bandwidth_scales_with_dim": Flag(),
        "abs_distances": Flag(),
        "epsilon": RealScalar(0, low_open=True),
    },
    outputs=("loss", "dependence_xz", "dependence_zy"),
    differentiable=("features",),
    check=_at_least_two_samples("x"),
)
def bido_loss(
    x,
    features,
    y,
    *,
    lambda_x,
    lambda_y,
    measure="hsic",
    estimator="biased",
    norm="spectral",
    sigma=OFFICIAL_SIGMA,
    bandwidth_scales_with_dim=False,
    abs_distances=False,
    epsilon=OFFICIAL_EPSILON,
):
    r"""BiDO's bilateral dependence term for one hidden layer: forget the input, keep the label.

    Model-inversion attacks reconstruct training inputs from a classifier. BiDO makes each
    hidden representation Z depend *little* on the input X (nothing to invert) and *much* on
    the label Y (accuracy stays), measured by a kernel dependence D.

    Forward, for one hidden layer (flattened to (B, F)); the training objective is
    ``CE + Σ_layers bido_loss`` — CE and the sum over layers are the caller's::

        K_X = gaussian_kernel_matrix(x),  K_Z = gaussian_kernel_matrix(features)
        K_Y = Y Yᵀ  (linear kernel on one-hot labels: K_Y[i, j] = 1[y_i = y_j])
        D_xz = D(K_X, K_Z),   D_zy = D(K_Z, K_Y)
        loss = λ_x·D_xz − λ_y·D_zy

    with D = ``hsic`` (biased; ``estimator="normalized"``: ``normalized_hsic``) or ``coco``
    (``norm="spectral"`` paper, ``"fro"`` official). All three are returned (the official code
    logs D_xz and D_zy).

    Backward (features only; X and Y are data). The kernel of Z enters D_xz as the second
    argument and D_zy as the first; with cotangents ``(ḡ, ḡ_xz, ḡ_zy)`` on the outputs::

        K̄_Z = (λ_x ḡ + ḡ_xz)·∂D(K_X, K_Z)/∂K_Z + (ḡ_zy − λ_y ḡ)·∂D(K_Z, K_Y)/∂K_Z
        features̄ = gaussian_kernel_matrix VJP of K̄_Z  (the graph-Laplacian form)

    Official settings (``BiDO/engine.py``): Gaussian kernels with σ = 5 and
    ``v = 2σ²·d`` and ``|D|`` for X and Z, the linear kernel for one-hot Y, ``normalized``
    HSIC (``hsic_normalized_cca``) or Frobenius COCO. To reproduce them pass
    ``estimator="normalized"`` (or ``measure="coco", norm="fro"``),
    ``bandwidth_scales_with_dim=True, abs_distances=True``. λ_x, λ_y are set per dataset in
    the run scripts (a re-implementation uses λ_x = 0.05, λ_y = 0.5); no default is given here.
    The official ``ktype`` option also allows Gaussian/IMQ label kernels; only the linear
    (official default) is implemented.

    Precision: with ``estimator="normalized"`` the kernels and the solves are computed in
    float64 and the results cast back. The ridge ε·m = 1e-5·B leaves ``K H + εmI`` with a
    condition number ~1e5, which amplifies the round-off of float32 kernels (~1e-7) into
    ~1e-3 relative error of the gradient; the official code runs in float32 regardless.

    Args:
        x: inputs, flattened (B, Dx).
        features: one hidden layer, flattened (B, F).
        y: integer labels (B,).
        lambda_x, lambda_y: weights λ_x ≥ 0 (input side, minimized) and λ_y ≥ 0 (label side,
            maximized).
        measure: "hsic" or "coco".
        estimator: for HSIC, "biased" (paper) or "normalized" (official).
        norm: for COCO, "spectral" (paper) or "fro" (official).
        sigma, bandwidth_scales_with_dim, abs_distances: see ``gaussian_kernel_matrix``.
        epsilon: ridge of the normalized HSIC.

    Returns:
        loss, dependence_xz, dependence_zy: scalars in the dtype of ``features``.

    Reference: arXiv:2206.05483; official code AlanPeng0897/Defend_MI (``engine.multilayer_hsic``).

    >>> import numpy as np, refimpl
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); z = np.array([[0.0], [0.0], [1.0], [1.0]])
    >>> loss, d_xz, d_zy = refimpl.regularizers.bido_loss(x, z, np.array([0, 0, 1, 1]),
    ...     lambda_x=0.0, lambda_y=1.0, sigma=1.0)
    >>> round(float(loss), 7), round(float(d_zy), 7)  # D_zy = 8(1 − e^(−1/2))/(2·9)
    (-0.1748753, 0.1748753)
    """
    dtype = features.dtype
    if measure == "hsic" and estimator == "normalized":  # see "Precision" above
        x, features = x.astype(np.float64), features.astype(np.float64)
    value, _ = _dependence(measure, estimator, norm, epsilon)
    kernel = {
        "sigma": sigma,
        "bandwidth_scales_with_dim": bandwidth_scales_with_dim,
        "abs_distances": abs_distances,
    }
    K_X, _ = gaussian_kernel_matrix.forward(x, **kernel)
    K_Z, (_, _, v) = gaussian_kernel_matrix.forward(features, **kernel)
    K_Y = (y[:, None] == y[None, :]).astype(features.dtype)  # one-hot Gram matrix
    d_xz, res_xz = value(K_X, K_Z)
    d_zy, res_zy = value(K_Z, K_Y)
    loss = lambda_x * d_xz - lambda_y * d_zy
    outputs = tuple(np.asarray(o, dtype=dtype) for o in (loss, d_xz, d_zy))
    settings = (measure, estimator, norm, epsilon, lambda_x, lambda_y, dtype)
    return outputs, (features, K_Z, v, res_xz, res_zy, settings)


@bido_loss.defvjp
def _bido_loss_vjp(residuals, cotangents):
    features, K_Z, v, res_xz, res_zy, settings = residuals
    measure, estimator, norm, epsilon, lambda_x, lambda_y, dtype = settings
    g_loss, g_xz, g_zy = (float(c) for c in cotangents)
    _, backward = _dependence(measure, estimator, norm, epsilon)
    _, g_K_Z_from_xz = backward(res_xz, lambda_x * g_loss + g_xz)  # K_Z is D_xz's second argument
    g_K_Z_from_zy, _ = backward(res_zy, g_zy - lambda_y * g_loss)  # ... and D_zy's first
    g_K_Z = (g_K_Z_from_xz + g_K_Z_from_zy).astype(features.dtype, copy=False)
    g_features = gaussian_kernel_matrix_backward(features, K_Z, v, g_K_Z)
    return (g_features.astype(dtype, copy=False),)

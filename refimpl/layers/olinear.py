"""OLinear's OrthoTrans basis and transform, and its NormLin token-mixing layer (OLinear, Yue et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntScalar,
    Paper,
    RealScalar,
    known_deviation,
    op,
    sigmoid,
    softplus,
)

__all__ = ["PAPER", "normlin", "orthotrans_basis", "orthotrans_transform"]

PAPER = Paper(
    "OLinear: A Linear Model for Time Series Forecasting in Orthogonally Transformed Domain",
    arxiv="2505.08550",
    year=2025,
)

#: F.normalize's default clamp of the row's L1 norm (``torch.nn.functional.normalize(p=1)``)
ROW_NORM_EPS = 1e-12
#: an eigenvector's first entry above this magnitude is made positive (see :func:`fix_signs`)
SIGN_PIVOT_THRESHOLD = 1e-8


def lagged_matrix(a, tau):
    """``L_τ`` (τ, n − τ + 1): row k is the window ``a[k : k + n − τ + 1]`` (shifted by k steps)."""
    width = a.shape[0] - tau + 1
    return np.stack([a[k : k + width] for k in range(tau)])


def fix_signs(vectors):
    """Each (unit) column's first entry of magnitude above 1e-8 made positive.

    "First non-negligible" rather than "largest": two entries of equal magnitude (a 2 × 2
    correlation's (1, ±1)/√2) are tied only up to rounding, and the largest-entry rule would
    flip with it; an entry that is 0 in exact arithmetic is ~1e-16 after the solver, far below
    the threshold, while a unit vector has an entry of at least 1/√τ.
    """
    pivot = np.argmax(np.abs(vectors) > SIGN_PIVOT_THRESHOLD, axis=0)
    signs = np.sign(vectors[pivot, np.arange(vectors.shape[1])])
    return vectors * signs


def _check_basis(args):
    series, tau = args["series"], args["tau"]
    if tau > series.shape[0] - 1:
        raise ArgumentError(
            "tau",
            f"a lag count with at least 2 windows: tau <= n − 1 = {series.shape[0] - 1}",
            f"tau = {tau}",
        )
    kept = [
        np.all(np.diag(_lag_covariance(series[:, c], tau)) >= args["min_variance"])
        for c in range(series.shape[1])
    ]
    if not any(kept):
        raise ArgumentError(
            "series",
            f"at least one channel with every lag variance >= min_variance = {args['min_variance']}",
            "none",
        )


def _lag_covariance(a, tau):
    """``cov(L_τ)`` (τ × τ, ddof 1) of one channel's series."""
    return np.atleast_2d(np.cov(lagged_matrix(a.astype(np.float64), tau)))


@op(
    inputs={
        "series": FloatArray("n", "C"),
        "tau": IntScalar(1),
        "min_variance": RealScalar(0),
        "official_column_normalization": Flag(),
    },
    outputs=("q", "eigenvalues"),
    check=_check_basis,
)
def orthotrans_basis(series, *, tau, min_variance=1e-4, official_column_normalization=False):
    r"""OrthoTrans's basis: the eigenvectors of the channels' averaged temporal correlation matrix.

    OLinear forecasts in a decorrelated domain: a window of τ time steps is projected on the
    eigenvectors of the τ × τ correlation between its lags, estimated once on the training
    series. A construction run once before training: reference-only (no fast backends, not
    differentiated).

    Forward, for each channel c with training series ``a = series[:, c]`` (n steps)::

        L_τ = [a[k : k + n − τ + 1]]_{k < τ}       (τ, n − τ + 1): the lagged windows as rows
        C   = cov(L_τ)                               (τ × τ, ddof 1, as np.cov)
        P   = D^{−½} C D^{−½},  D = diag(C)          (Pearson correlation)

    a channel with any lag variance ``C_kk < min_variance`` is skipped (constant stretches
    give undefined correlations); ``P̄`` is the mean of P over the remaining channels (the
    paper's ``CorrMat_t``), and ``P̄ = V Λ Vᵀ`` by ``np.linalg.eigh``. The basis ``q`` holds the
    eigenvectors as ROWS, by descending eigenvalue; each eigenvector's sign is fixed so that
    its first entry of magnitude above 1e-8 is positive: eigenvectors are defined up to sign,
    and this makes the result deterministic. Equal eigenvalues leave the
    basis of their eigenspace to the solver.

    ``official_column_normalization=True`` reproduces the official code: each column j of C
    is divided by its variance ``C_jj`` (a unit diagonal, but not symmetric unless the lag
    variances are equal), and the symmetric eigensolver (``np.linalg.eigh``) then reads only
    the LOWER triangle, i.e. it decomposes ``S_ij = C_ij / C_mm`` with ``m = min(i, j)``.

    Args:
        series: training series (n, C): n time steps of C channels.
        tau: the window length τ (the look-back T for the input basis, the horizon H for the
            output basis), 1 <= tau <= n − 1. No default: set by the forecasting task.
        min_variance: channels with a lag variance below it are skipped; default 1e-4 (official
            code).
        official_column_normalization: the official code's column normalization (see above).

    Returns:
        q: the orthogonal basis (τ, τ), eigenvectors as rows (``x̃ = q x``).
        eigenvalues: (τ,), descending.

    Reference: Yue et al., *OLinear*, arXiv:2505.08550, §3 (OrthoTrans; the temporal Pearson
    correlation averaged over variates, then its eigendecomposition).

    >>> import numpy as np, refimpl
    >>> t = np.arange(40.0)
    >>> q, lam = refimpl.layers.orthotrans_basis(np.stack([np.sin(t), np.cos(0.3 * t)], 1), tau=2)
    >>> q.round(6)                                    # 2 × 2 correlation: eigenvectors (1, ±1)/√2
    array([[ 0.707107,  0.707107],
           [ 0.707107, -0.707107]])
    """
    correlations = []
    for channel in range(series.shape[1]):
        cov = _lag_covariance(series[:, channel], tau)
        variances = np.diag(cov)
        if np.any(variances < min_variance):
            continue  # a (nearly) constant stretch: its correlation is undefined
        if official_column_normalization:
            correlations.append(cov / variances[None, :])  # column j divided by var_j
        else:
            scale = 1.0 / np.sqrt(variances)
            correlations.append(cov * scale[:, None] * scale[None, :])
    mean_correlation = np.mean(correlations, axis=0)
    eigenvalues, vectors = np.linalg.eigh(mean_correlation)  # reads the lower triangle only
    order = np.argsort(-eigenvalues, kind="stable")
    q = fix_signs(vectors[:, order]).T
    return (q.astype(series.dtype), eigenvalues[order].astype(series.dtype)), None


known_deviation(
    orthotrans_basis,
    name="olinear-orthotrans-column-normalization",
    source="OLinear official repository, the notebook that builds the Q matrices (covariance of the lagged "
    "windows divided column-wise by the variances, then np.linalg.eigh)",
    official="divides each column j of the lag covariance by var_j: a unit diagonal, but asymmetric unless "
    "all lag variances are equal; np.linalg.eigh then reads only the lower triangle, so the matrix "
    "decomposed is S_ij = C_ij / C_min(i,j)min(i,j)",
    paper="the temporal Pearson correlation D^−½ C D^−½ (symmetric), averaged over variates",
    example=Example(
        args=(np.array([[0.0], [1.0], [0.0], [3.0]]),),
        kwargs={"tau": 2},
        official={"eigenvalues": [3.0, -1.0]},
        reference={"eigenvalues": [1.0 + 2.0 / 7.0**0.5, 1.0 - 2.0 / 7.0**0.5]},
        note="lags (0, 1, 0) and (1, 0, 3): cov = [[1/3, −2/3], [−2/3, 7/3]]; the official columns "
        "give [[1, −2/7], [−2, 1]], whose lower triangle has eigenvalues 1 ± 2 (a negative "
        "'correlation' eigenvalue); Pearson's off-diagonal is −2/√7, eigenvalues 1 ± 0.756",
    ),
    flag={"official_column_normalization": True},
)


@op(
    inputs={
        "x": FloatArray("...", "T"),
        "q": FloatArray("T", "T"),
        "offset": FloatArray("T"),
        "inverse": Flag(),
    },
    outputs=("y",),
    differentiable=("x", "offset"),
)
def orthotrans_transform(x, q, offset, *, inverse=False):
    r"""OrthoTrans: each series window projected on the orthogonal basis Q (or mapped back), plus an offset.

    Forward, along the last (time) axis of ``x``, Q from :func:`orthotrans_basis` (rows are the
    basis vectors)::

        inverse=False:  y = Q x + δ      (per window; as arrays  y = x Qᵀ + δ,  the paper's Z = X Qᵀ)
        inverse=True:   y = Qᵀ x + δ     (per window; as arrays  y = x Q + δ:   back to time steps)

    OLinear encodes the look-back window with ``Q_T`` (δ₁) and maps its forecast in the
    transformed domain back to time steps with the horizon's basis ``Q_H`` (δ₂). Q is a
    constant (built once from data): it gets no gradient.

    Backward. ``y`` is linear in ``x``: ``∂y_i/∂x_j = Q_ij`` (forward), so
    ``x̄_j = Σ_i Q_ij ȳ_i``, i.e. ``x̄ = Qᵀ ȳ`` per window (arrays: ``x̄ = ȳ Q``); for the inverse
    map ``x̄ = Q ȳ`` (arrays: ``x̄ = ȳ Qᵀ``). ``δ̄ = Σ ȳ`` over every leading axis.

    Args:
        x: series windows (..., T), time last.
        q: the basis (T, T), eigenvectors as rows.
        offset: the learnable offset δ (T,).
        inverse: map back (``Qᵀ``) instead of forward (``Q``); default False.

    Returns:
        y: (..., T), dtype of ``x``.

    Reference: Yue et al., *OLinear*, arXiv:2505.08550, §3 (``Z = X Q_iᵀ``; the output mapped back
    with ``Q_o``).

    >>> import numpy as np, refimpl
    >>> q = np.array([[0.6, 0.8], [-0.8, 0.6]])
    >>> refimpl.layers.orthotrans_transform(np.array([1.0, 2.0]), q, np.array([0.0, 1.0]))
    array([2.2, 1.4])
    """
    basis_map = q if inverse else q.T
    y = x @ basis_map + offset
    return y, (q, inverse, x.shape)


@orthotrans_transform.defvjp
def orthotrans_transform_backward(residuals, g_y):
    q, inverse, shape = residuals
    g_x = g_y @ (q.T if inverse else q)
    g_offset = g_y.reshape(-1, shape[-1]).sum(axis=0)
    return g_x, g_offset


@op(
    inputs={"w": FloatArray("N", "N"), "v": FloatArray("...", "N", "D")},
    outputs=("y",),
    differentiable=("w", "v"),
)
def normlin(w, v):
    r"""NormLin: token mixing across variates with a row-normalized softplus weight.

    OLinear replaces self-attention over the N variate tokens by a fixed, learned mixing
    matrix whose rows are convex weights: ``A = row_L1_normalize(softplus(W))``, so every
    output token is a weighted average of the value tokens (rows of A sum to 1).

    Forward (``v`` = the value tokens ``X W_vᵀ + b_v``, an ordinary linear layer applied before
    this op; the Transformer shell around it — out-projection, residual, LayerNorm, FFN — is
    not part of it)::

        S    = softplus(W)                          (N × N, > 0; the stable log1p form)
        r_i  = max(Σ_j |S_ij|, 1e-12)               (torch.nn.functional.normalize, p = 1)
        A    = S / r                                (rows sum to 1)
        Y    = A V                                  (each leading index: Y[b] = A V[b])

    Backward. With ``G = ∂L/∂Y``: ``V̄[b] = Aᵀ G[b]`` and ``G_A = Σ_b G[b] V[b]ᵀ``. Through
    ``A_ij = S_ij / r_i`` with ``∂r_i/∂S_ij = 1`` (S > 0, clamp inactive)::

        S̄_ij = G_A,ij / r_i − Σ_k G_A,ik S_ik / r_i² = (G_A,ij − Σ_k G_A,ik A_ik) / r_i

    (where the clamp is active, r is a constant: ``S̄ = G_A / 1e-12``); finally
    ``W̄ = S̄ ⊙ sigmoid(W)`` (softplus' slope).

    Args:
        w: the mixing weight W (N, N) (OLinear initializes ``I + N(0, 1)``; initialization is not
            part of the op).
        v: the value tokens (..., N, D).

    Returns:
        y: (..., N, D), dtype of ``v``.

    Reference: Yue et al., *OLinear*, arXiv:2505.08550, §3 (NormLin: ``Softplus``, then
    ``L1`` row normalization, in place of multi-head self-attention).

    >>> import numpy as np, refimpl
    >>> w = np.zeros((2, 2))                         # softplus(0) = log 2 everywhere: A = ½·ones
    >>> refimpl.layers.normlin(w, np.array([[1.0, 3.0], [5.0, 7.0]]))
    array([[3., 5.],
           [3., 5.]])
    """
    s = softplus(w)
    r = np.maximum(np.abs(s).sum(axis=1, keepdims=True), ROW_NORM_EPS)
    a = s / r
    y = np.matmul(a, v)
    return y, (w, a, r, v)


@normlin.defvjp
def normlin_backward(residuals, g_y):
    w, a, r, v = residuals
    n, d = a.shape[0], v.shape[-1]
    g_v = np.matmul(a.T, g_y)
    g_rows = np.moveaxis(g_y.reshape(-1, n, d), 1, 0).reshape(n, -1)  # (N, batch·D)
    v_rows = np.moveaxis(v.reshape(-1, n, d), 1, 0).reshape(n, -1)
    g_a = g_rows @ v_rows.T  # Σ_b G[b] V[b]ᵀ
    clamped = r <= ROW_NORM_EPS
    g_s = np.where(clamped, g_a / r, (g_a - (g_a * a).sum(axis=1, keepdims=True)) / r)
    g_w = g_s * sigmoid(w)
    return g_w, g_v

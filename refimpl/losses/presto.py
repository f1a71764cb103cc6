"""PRESTO: the cumulative-logit (ordinal regression) NLL and the fused penalty shrinking its
slopes towards proportional odds (Predicting Rare Events by Shrinking Towards Proportional Odds)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    log_sigmoid,
    op,
    reduce_rows,
    row_weights,
    sigmoid,
)

__all__ = [
    "PAPER",
    "crossing_rows",
    "cumulative_logit_nll",
    "log_one_minus_exp",
    "presto_penalty",
    "standardization_scale",
]

PAPER = Paper(
    "Predicting Rare Events by Shrinking Towards Proportional Odds",
    arxiv="2305.18700",
    year=2023,
    code="gregfaletto/presto",
)


def log_one_minus_exp(d):
    """``log(1 − e^(−d))`` for ``d > 0`` (``d = +inf`` gives 0): ``log(−expm1(−d))`` below ln 2,
    ``log1p(−exp(−d))`` above (each keeps its digits where the other cancels)."""
    xp = array_namespace(d)
    small = d < np.log(2.0)
    with np.errstate(divide="ignore"):
        return xp.where(small, xp.log(-xp.expm1(-xp.where(small, d, 1.0))), xp.log1p(-xp.exp(-d)))


def crossing_rows(X, alpha, beta):
    """Boolean (n,): rows i where some ``η_{k−1}(x_i) ≥ η_k(x_i)`` (the hyperplanes cross or
    touch at x_i, so some class would get a probability ≤ 0)."""
    eta = alpha + X @ beta
    xp = array_namespace(eta)
    return xp.any(eta[:, 1:] <= eta[:, :-1], axis=1)


def _check_nll(arguments) -> None:
    X, y, alpha, beta = (arguments[name] for name in ("X", "y", "alpha", "beta"))
    xp = array_namespace(X)
    thresholds = alpha.shape[0]
    above = xp.nonzero(y > thresholds)[0]
    if above.size:
        i = int(above[0])
        raise ArgumentError(
            "y",
            f"labels in [0, K) with K = len(alpha) + 1 = {thresholds + 1} (0-based: class 0 is the lowest)",
            f"{int(y[i])} at index {i}",
        )
    if not arguments.get("allow_crossing", False):
        crossed = xp.nonzero(crossing_rows(X, alpha, beta))[0]
        if crossed.size:
            raise ArgumentError(
                "beta",
                "increasing linear predictors η_0(x_i) < η_1(x_i) < … < η_{K−2}(x_i) for every row "
                "(ordered alpha alone is not enough when the slopes differ; pass allow_crossing=True "
                "for a loss of +inf on such rows)",
                f"the hyperplanes cross at row {int(crossed[0])}",
            )


@op(
    inputs={
        "X": FloatArray("n", "p"),
        "y": IntArray("n", low=0),
        "alpha": FloatArray("T"),
        "beta": FloatArray("p", "T"),
        "reduction": OneOf("mean", "sum", "none"),
        "allow_crossing": Flag(),
    },
    outputs=("loss",),
    differentiable=("alpha", "beta"),
    check=_check_nll,
    nonfinite_outputs={"loss": ("inf",)},  # allow_crossing: +inf on a row whose hyperplanes cross
)
def cumulative_logit_nll(X, y, alpha, beta, *, reduction="mean", allow_crossing=False):
    r"""Negative log-likelihood of the cumulative-logit (non-parallel) ordinal regression model.

    An ordered outcome with K classes is modelled by K − 1 logistic "at most k" questions,
    each with its own intercept α_k and its own slope vector β_k (PRESTO's relaxation of the
    proportional-odds model, where all β_k are equal). The probability of a class is the
    difference of two consecutive cumulative probabilities. K = 2 is logistic regression.

    Forward (0-based classes y ∈ {0, …, K−1}; T = K − 1 thresholds; F the logistic sigmoid)::

        η_k(x)    = α_k + β_kᵀx                      (k = 0..T−1;  η_{−1} = −∞, η_T = +∞)
        P(y ≤ k)  = F(η_k)
        P(y = k)  = F(u) − F(l)                      u = η_k, l = η_{k−1}
        ℓ_i       = −log P(y_i | x_i),   L = mean_i ℓ_i  (reduction="mean"; "sum"; "none")

    Evaluation: with d = u − l > 0 (the row's hyperplanes do not cross),
    ``F(u) − F(l) = F(u)·F(−l)·(1 − e^{−d})``, so::

        log P = log F(u) + log F(−l) + log(1 − e^{−d})

    with stable log-sigmoids and ``log(1 − e^{−d})`` by ``log_one_minus_exp``. No difference
    of two sigmoids is ever formed: both tails keep their digits (the usual upper-tail
    rewrite ``F(−l) − F(−u)`` is a special case) and so do close thresholds (d → 0). For the
    lowest class l = −∞ (``log P = log F(u)``), for the highest u = +∞ (``log P = log F(−l)``).

    Backward. ``∂ log F(u)/∂u = F(−u)``, ``∂ log F(−l)/∂l = −F(l)``, and
    ``∂ log(1 − e^{−d})/∂d = e^{−d}/(1 − e^{−d}) = 1/expm1(d) =: r`` with ``∂d/∂u = 1``,
    ``∂d/∂l = −1``. Hence::

        ∂ℓ/∂u = −(F(−u) + r),     ∂ℓ/∂l = F(l) + r          (r = 0 for the end classes)

    (the textbook ``−f(η_k)/P`` and ``+f(η_{k−1})/P`` with ``f = F(1 − F)``, written without
    the division by a small P). With ``w_i`` the row's cotangent, the row scatters
    ``G[i, y_i] = w_i ∂ℓ/∂u`` (if y_i < T) and ``G[i, y_i − 1] = w_i ∂ℓ/∂l`` (if y_i > 0) into
    G (n, T), and ``∂η_k/∂α_k = 1``, ``∂η_k/∂β_k = x`` give::

        ᾱ = Σ_i G[i, :],     β̄ = Xᵀ G

    Crossing hyperplanes: the model is a distribution at x_i only if
    ``η_0(x_i) < … < η_{T−1}(x_i)``; ordered α is not enough when the slopes differ. By default
    such a row is refused (InputError); ``allow_crossing=True`` gives it ℓ_i = +inf and a zero
    gradient (the loss is +inf on an open set around a strict crossing).

    Args:
        X: features (n, p), float32 or float64 (not differentiated).
        y: ordinal labels (n,), integers in [0, K) with K = T + 1 (0-based; the paper and the R
            code number the classes 1..K).
        alpha: intercepts α (T,), T = K − 1 ≥ 1.
        beta: slopes β (p, T), column k is β_k.
        reduction: "mean" (default: the paper's −(1/n) Σ log P, also ordinalNet's ``−loglik/n``),
            "sum" or "none".
        allow_crossing: return +inf for rows whose hyperplanes cross instead of refusing them
            (default False).

    Returns:
        loss: a scalar, or ℓ (n,) for reduction="none", in the dtype of X.

    Reference: Faletto, Bien, *Predicting Rare Events by Shrinking Towards Proportional Odds*,
    ICML 2023, arXiv:2305.18700 (§2, the relaxed proportional-odds model
    ``P(y ≤ k | x) = F(α_k + β_kᵀx)``); authors' R code gregfaletto/presto
    (``ordinalNet modified``, family "cumulative", link "logit").

    >>> import numpy as np, refimpl
    >>> X, alpha, beta = np.zeros((1, 1)), np.array([-1.0, 1.0]), np.zeros((1, 2))
    >>> loss = refimpl.losses.cumulative_logit_nll(X, np.array([1]), alpha, beta)
    >>> round(float(loss), 7)  # −log(F(1) − F(−1)) = −log(tanh(1/2))
    0.7719368
    """
    dtype = X.dtype
    n, thresholds = X.shape[0], alpha.shape[0]
    rows = np.arange(n)
    eta = alpha + X @ beta  # η (n, T)
    infinity = np.full((n, 1), np.inf, dtype=dtype)
    padded = np.concatenate([-infinity, eta, infinity], axis=1)  # η_{−1} = −∞, η_T = +∞
    upper, lower = padded[rows, y + 1], padded[rows, y]  # u = η_y, l = η_{y−1}
    gap = upper - lower  # d > 0 on valid rows
    crossed = np.any(eta[:, 1:] <= eta[:, :-1], axis=1)
    safe_gap = np.where(crossed, np.inf, gap)
    log_p = log_sigmoid(upper) + log_sigmoid(-lower) + log_one_minus_exp(safe_gap)
    per_row = np.where(crossed, np.inf, -log_p)
    r = 1 / np.expm1(safe_gap)  # ∂ log(1 − e^{−d})/∂d; 0 at d = +∞
    d_upper = np.where(crossed, 0, -(sigmoid(-upper) + r))
    d_lower = np.where(crossed, 0, sigmoid(lower) + r)
    residuals = (X, y, d_upper, d_lower, thresholds, reduction)
    return reduce_rows(per_row, reduction, dtype), residuals


@cumulative_logit_nll.defvjp
def cumulative_logit_nll_backward(residuals, g_loss):
    X, y, d_upper, d_lower, thresholds, reduction = residuals
    dtype = X.dtype
    n = X.shape[0]
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, n)
    # G (n, T + 2) over the padded columns, then drop η_{−1} and η_T
    G = np.zeros((n, thresholds + 2), dtype=dtype)
    rows = np.arange(n)
    G[rows, y + 1] = w * d_upper  # ∂ℓ/∂u at column y
    G[rows, y] += w * d_lower  # ∂ℓ/∂l at column y − 1
    G = G[:, 1:-1]
    g_alpha = G.sum(axis=0)
    g_beta = X.T @ G
    return g_alpha.astype(dtype, copy=False), g_beta.astype(dtype, copy=False)


def standardization_scale(X):
    """Per-feature population standard deviations of X (p,), float64, a zero one replaced by 1:
    the ``xSD`` of ordinalNet's ``standardize=TRUE`` (``sqrt(Σ_i (x_ij − x̄_j)²/n)``,
    ``xSD[xSD == 0] <- 1``). Computed in float64 from the deviations scaled by their largest
    magnitude, so tiny or huge features neither underflow nor overflow when squared."""
    xp = array_namespace(X)
    centered = X.astype(xp.float64) - X.astype(xp.float64).mean(axis=0)
    largest = xp.abs(centered).max(axis=0)
    scaled = centered / xp.where(largest == 0, 1.0, largest)
    sd = largest * xp.sqrt((scaled * scaled).mean(axis=0))
    return xp.where(sd == 0, 1.0, sd)


@op(
    inputs={
        "beta": FloatArray("p", "T"),
        "X": FloatArray("n", "p"),
        "lam": RealScalar(0),
        "standardize": Flag(),
    },
    outputs=("penalty",),
    differentiable=("beta",),
)
def presto_penalty(beta, X, *, lam, standardize=True):
    r"""PRESTO's fused L1 penalty: shrinks the K − 1 slope vectors towards one common vector.

    PRESTO fits the cumulative-logit model (``cumulative_logit_nll``) with a separate slope
    vector β_k per threshold, and penalizes, feature by feature, the first slope and every
    change between adjacent thresholds. A large λ fuses all β_k into one vector (the
    proportional-odds model), then shrinks that to 0; λ = 0 is the unpenalized model.

    Forward (p features, T = K − 1 thresholds; ψ the first differences along k)::

        ψ_{j,0} = β_{j,0},   ψ_{j,k} = β_{j,k} − β_{j,k−1}   (k = 1..T−1)
        s_j     = population SD of column j of X (1 where it is 0)   if standardize, else 1
        P(β)    = λ Σ_j s_j Σ_k |ψ_{j,k}|

    ``s_j`` reproduces the official fit: ordinalNet (``standardize=TRUE``) scales each column of
    X to unit population SD before fitting, so the lasso acts on the coefficients of the
    standardized features, ``s_j·ψ_{j,k}``, which are mapped back (``/xSD``) afterwards.
    Intercepts are not penalized (penalty factor 0 in the official code), so α is not an input.
    Minimizing ``cumulative_logit_nll(mean) + presto_penalty`` is the official objective
    ``−loglik/n + λ Σ|ψ|`` (ordinalNet with alpha = 1, the lasso).

    Backward (a subgradient). ``ψ`` is linear in β: ``∂ψ_{j,k}/∂β_{j,k} = 1``,
    ``∂ψ_{j,k+1}/∂β_{j,k} = −1``. With ``σ = sign(ψ)``::

        β̄_{j,k} = ḡ·λ·s_j·(σ_{j,k} − σ_{j,k+1})            (σ_{j,T} := 0)

    At a kink (ψ_{j,k} = 0: two adjacent slopes equal, or a first slope 0) the subgradient
    sign(0) = 0 is taken — the convention of ``torch.abs``, the value the central difference
    ``(|h·v| − |−h·v|)/2h = 0`` gives along every direction v (each term is even around its
    kink), and the minimum-norm element of ∂|·| at 0 for a lone term. The X statistics are
    constants (X is not differentiated).

    Args:
        beta: slopes β (p, T), column k the slope vector of threshold k (the ``beta`` of
            ``cumulative_logit_nll``), float32 or float64.
        X: the training features (n, p), used only for their column SDs when ``standardize``.
        lam: λ ≥ 0 (required: the official code picks it per data set by 5-fold CV over 20
            values, ``lambdaMinRatio = 0.01``, the largest λ with the minimum mean Brier score,
            ``presto_func.R``, ``getLambdaFusedPolr``).
        standardize: penalize the coefficients of standardized features (default True, the
            official ``ordinalNetMod(standardize=TRUE)``); False penalizes β as given.

    Returns:
        penalty: the scalar P(β) (0-d array) in the dtype of beta.

    Reference: Faletto, Bien, arXiv:2305.18700 (the PRESTO estimator: an L1 penalty on the
    differences of adjacent weight vectors); authors' R code gregfaletto/presto,
    ``ordinalNet modified/ordinalNet.R`` (``ordinalNetMod``: penalty factor 1 on all K − 1 blocks
    of ψ — an earlier version, commented out, used 0 on the first block; intercept factor 0;
    ``xSD`` population SD with 0 → 1), and ``getParamEstsMod`` (``β_k = β_{k−1} + ψ_k``).

    >>> import numpy as np, refimpl
    >>> beta = np.array([[1.0, 1.0, 3.0], [-2.0, 0.0, 0.0]])  # ψ = [[1, 0, 2], [−2, 2, 0]]
    >>> float(refimpl.losses.presto_penalty(beta, np.eye(2), lam=0.5, standardize=False))
    3.5
    """
    dtype = beta.dtype
    scale = standardization_scale(X) if standardize else np.ones(beta.shape[0], dtype=dtype)
    psi = beta.copy()  # ψ_{·,0} = β_{·,0}
    psi[:, 1:] = beta[:, 1:] - beta[:, :-1]  # ψ_{·,k} = β_{·,k} − β_{·,k−1}
    weight = dtype.type(lam) * scale.astype(dtype, copy=False)  # λ s_j
    penalty = (weight * np.abs(psi).sum(axis=1)).sum()
    return np.asarray(penalty, dtype=dtype), (np.sign(psi), weight)


@presto_penalty.defvjp
def presto_penalty_backward(residuals, g_penalty):
    sign_psi, weight = residuals
    dtype = sign_psi.dtype
    # σ_{j,k} − σ_{j,k+1}, with σ_{j,T} = 0
    next_sign = np.concatenate([sign_psi[:, 1:], np.zeros_like(sign_psi[:, :1])], axis=1)
    g_beta = (np.asarray(g_penalty, dtype=dtype) * weight)[:, None] * (sign_psi - next_sign)
    return (g_beta.astype(dtype, copy=False),)

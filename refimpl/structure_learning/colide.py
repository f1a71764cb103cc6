"""CoLiDE: concomitant linear DAG estimation, equal and non-equal noise variances
(CoLiDE: Concomitant Linear DAG Estimation, Saboksayr, Mateos, Tepper)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntScalar,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    known_deviation,
    op,
    row_norm,
)

__all__ = ["PAPER", "colide_ev_score", "colide_homotopy_fit", "colide_nv_score", "colide_sigma"]

PAPER = Paper(
    "CoLiDE: Concomitant Linear DAG Estimation",
    arxiv="2310.02895",
    year=2024,
    code="SAMiatto/colide",
)

#: The official ``minimize``'s constants (SAMiatto/colide ``model.py``): Adam's ε, the domain
#: test ``inv(sI − W∘W) + 1e−16 < −1e−6`` and the smallest learning rate of the backtracking.
ADAM_EPS = 1e-8
DOMAIN_SHIFT = 1e-16
DOMAIN_TOLERANCE = -1e-6
SMALLEST_LR = 1e-16
#: The official default homotopy schedule of s, one value per stage (padded with its last value).
DEFAULT_S = (1.0, 0.9, 0.8, 0.7, 0.6)
#: ``stage_status`` codes of :func:`colide_homotopy_fit`.
CONVERGED, ITERATION_LIMIT, LEARNING_RATE_EXHAUSTED = 0, 1, 2


def _check_positive_sigma(arguments) -> None:
    sigma = arguments["sigma"]
    xp = array_namespace(sigma)
    if bool(xp.any(sigma <= 0)):
        where = "" if sigma.ndim == 0 else f" at index {int(xp.argmax(sigma <= 0))}"
        raise ArgumentError(
            "sigma", "noise standard deviations σ > 0", f"σ = {float(xp.min(sigma))!r}{where}"
        )


# -- the scores ------------------------------------------------------------------------------------
@op(
    inputs={"X": FloatArray("n", "d"), "W": FloatArray("d", "d"), "sigma": FloatArray()},
    outputs=("score",),
    differentiable=("W", "sigma"),
    check=_check_positive_sigma,
)
def colide_ev_score(X, W, sigma):
    r"""CoLiDE-EV score: least squares with a concomitant noise scale, ``‖X − XW‖²/(2nσ) + dσ/2``.

    The lasso-type score of NOTEARS ties the weight of its ℓ1 penalty to the unknown noise
    level. CoLiDE estimates the scale jointly (the smoothed concomitant lasso): dividing the
    squared residuals by σ and adding ``dσ/2`` makes the score jointly convex in (W, σ), and
    its minimum over σ is ``σ* = ‖X − XW‖_F/√(nd)`` (:func:`colide_sigma`), the residuals'
    RMS. Then λ no longer needs retuning when the noise level changes.

    Forward. ``R = X − XW`` (n, d), ``ρ = Σ R²`` (= ``n·tr((I − W)ᵀΣ̂(I − W))``, Σ̂ = XᵀX/n)::

        S = ρ/(2nσ) + dσ/2

    Backward. ``dρ = −2⟨XᵀR, dW⟩``, so ``∂S/∂W = −XᵀR/(nσ) = −Σ̂(I − W)/σ``; and
    ``∂S/∂σ = −ρ/(2nσ²) + d/2`` (zero at σ*)::

        W̄ = ḡ · (−XᵀR/(nσ)),      σ̄ = ḡ · (d/2 − ρ/(2nσ²))

    Args:
        X: centred data (n, d).
        W: weighted adjacency (d, d), W_ij ≠ 0 meaning i → j.
        sigma: the common noise standard deviation σ > 0, a 0-d array.

    Returns:
        score: a scalar.

    Reference: Saboksayr, Mateos, Tepper, *CoLiDE: Concomitant Linear DAG Estimation*,
    ICLR 2024, arXiv:2310.02895, eq. (5); official code SAMiatto/colide ``model.py``
    (``colide_ev._score``).

    >>> import numpy as np, refimpl
    >>> X = np.array([[1.0, 2.0], [-1.0, -2.0]])   # residuals of W = 0: ρ = 10
    >>> float(refimpl.structure_learning.colide_ev_score(X, np.zeros((2, 2)), np.array(1.0)))  # 10/4 + 1
    3.5
    """
    n, d = X.shape
    dtype = X.dtype.type
    R = X - X @ W
    rss = np.sum(R * R)
    score = rss / (dtype(2 * n) * sigma) + dtype(d) * sigma / 2
    return np.asarray(score, dtype=X.dtype), (X, R, rss, sigma)


@colide_ev_score.defvjp
def colide_ev_score_backward(residuals, g_score):
    X, R, rss, sigma = residuals
    n, d = X.shape
    dtype = X.dtype.type
    g = dtype(g_score)
    g_W = -(g / (dtype(n) * sigma)) * (X.T @ R)
    g_sigma = g * (dtype(d) / 2 - rss / (dtype(2 * n) * sigma * sigma))
    return g_W.astype(X.dtype, copy=False), np.asarray(g_sigma, dtype=X.dtype)


@op(
    inputs={"X": FloatArray("n", "d"), "W": FloatArray("d", "d"), "sigma": FloatArray("d")},
    outputs=("score",),
    differentiable=("W", "sigma"),
    check=_check_positive_sigma,
)
def colide_nv_score(X, W, sigma):
    r"""CoLiDE-NV score: one concomitant noise scale per variable, ``Σ_j ‖x_j − Xw_j‖²/(2nσ_j) + Σσ_j/2``.

    The heteroscedastic version of :func:`colide_ev_score`: each equation ``x_j = Xw_j + z_j``
    has its own noise level σ_j, estimated jointly; the score is convex in (W, σ) and its
    minimum over σ_j is ``σ_j* = ‖x_j − Xw_j‖/√n``.

    Forward. ``R = X − XW``, column sums ``ρ_j = Σ_i R_ij²``::

        S = Σ_j ρ_j/(2nσ_j) + ½ Σ_j σ_j

    Backward. Column j of W enters only ``ρ_j``: ``∂ρ_j/∂w_j = −2Xᵀr_j``, so
    ``∂S/∂W = −XᵀR diag(1/σ)/n = −Σ̂(I − W) diag(1/σ)``; ``∂S/∂σ_j = −ρ_j/(2nσ_j²) + ½``::

        W̄ = ḡ · (−XᵀR/(nσ)) (columns divided by σ_j),   σ̄_j = ḡ · (½ − ρ_j/(2nσ_j²))

    Args:
        X: centred data (n, d).
        W: weighted adjacency (d, d).
        sigma: the noise standard deviations σ_j > 0 (d,).

    Returns:
        score: a scalar.

    Reference: Saboksayr, Mateos, Tepper, *CoLiDE: Concomitant Linear DAG Estimation*,
    arXiv:2310.02895, eq. (8); official code SAMiatto/colide ``model.py`` (``colide_nv._score``).

    >>> import numpy as np, refimpl
    >>> X = np.array([[1.0, 2.0], [-1.0, -2.0]])   # ρ = (2, 8): 2/4 + 8/8 + (1 + 2)/2
    >>> float(refimpl.structure_learning.colide_nv_score(X, np.zeros((2, 2)), np.array([1.0, 2.0])))
    3.0
    """
    n, d = X.shape
    dtype = X.dtype.type
    R = X - X @ W
    rss = np.sum(R * R, axis=0)
    score = np.sum(rss / (dtype(2 * n) * sigma)) + np.sum(sigma) / 2
    return np.asarray(score, dtype=X.dtype), (X, R, rss, sigma)


@colide_nv_score.defvjp
def colide_nv_score_backward(residuals, g_score):
    X, R, rss, sigma = residuals
    n = X.shape[0]
    dtype = X.dtype.type
    g = dtype(g_score)
    g_W = -(g / dtype(n)) * (X.T @ R) / sigma[None, :]
    g_sigma = g * (dtype(0.5) - rss / (dtype(2 * n) * sigma * sigma))
    return g_W.astype(X.dtype, copy=False), g_sigma.astype(X.dtype, copy=False)


# -- closed-form σ -----------------------------------------------------------------------------------
def _check_floor(arguments) -> None:
    if arguments["clamp_sigma"] and arguments["sigma_floor"] is None:
        raise ArgumentError(
            "sigma_floor",
            "a floor σ_min > 0 when clamp_sigma=True (the paper states no value: pass one, or "
            "clamp_sigma=False for the official code's unclamped σ)",
            "None",
        )


def profiled_sigma(R, variance, floor):
    """σ* from the residuals R (n, d): EV ``‖R‖_F/√(nd)``, NV ``‖r_j‖/√n``; at least ``floor``."""
    n, d = R.shape
    # norms by row_norm: a float32 sum of squares under- or overflows at |R| ~ 1e-19 or 2e19
    if variance == "equal":
        sigma = row_norm(R.reshape(1, -1))[0, 0] / R.dtype.type(np.sqrt(n * d))
    else:
        sigma = row_norm(np.ascontiguousarray(R.T))[:, 0] / R.dtype.type(np.sqrt(n))
    if floor is not None:
        sigma = np.maximum(sigma, R.dtype.type(floor))
    return sigma


@op(
    inputs={
        "X": FloatArray("n", "d"),
        "W": FloatArray("d", "d"),
        "variance": OneOf("equal", "nonequal"),
        "clamp_sigma": Flag(),
        "sigma_floor": RealScalar(0, low_open=True, optional=True),
    },
    outputs=("sigma",),
    check=_check_floor,
)
def colide_sigma(X, W, *, variance="equal", clamp_sigma=True, sigma_floor=None):
    r"""CoLiDE's closed-form noise scales: the σ that minimizes the score for a given W.

    Setting ``∂S/∂σ = 0`` in :func:`colide_ev_score` gives ``σ* = ‖X − XW‖_F/√(nd)`` (equal
    variances), and in :func:`colide_nv_score` ``σ_j* = ‖x_j − Xw_j‖/√n`` (one per
    variable): the residuals' root mean squares. CoLiDE re-solves σ this way after every
    gradient step on W. By the envelope theorem the gradient of the profiled score
    ``S(W, σ*(W))`` with respect to W is ``∂S/∂W`` at σ*.

    A perfect fit of a column (a variable that is an exact linear function of the others,
    or a column of zeros) gives ``σ_j* = 0``, where the score divides by zero. With
    ``clamp_sigma=True`` (default) σ is raised to ``sigma_floor``; the paper states no floor,
    so it is a required argument then. ``clamp_sigma=False`` is the official code, which
    has no clamp. Not differentiable.

    Args:
        X: centred data (n, d).
        W: weighted adjacency (d, d).
        variance: "equal" (default, CoLiDE-EV: one σ) or "nonequal" (CoLiDE-NV: σ per column).
        clamp_sigma: raise σ to ``sigma_floor`` (default True).
        sigma_floor: the floor σ_min > 0 (required with clamp_sigma=True; default None).

    Returns:
        sigma: a 0-d array (equal) or (d,) (nonequal), ``max(σ*, σ_min)`` when clamped.

    Reference: Saboksayr, Mateos, Tepper, *CoLiDE: Concomitant Linear DAG Estimation*,
    arXiv:2310.02895, Section 4 (closed-form σ updates); official code SAMiatto/colide
    ``model.py`` (``minimize``: ``sigma = np.sqrt(np.trace(dif.T @ rhs) / d)`` and
    ``np.sqrt(np.diag(dif.T @ rhs))``).

    >>> import numpy as np, refimpl
    >>> X = np.array([[1.0, 2.0], [-1.0, -2.0]])
    >>> float(refimpl.structure_learning.colide_sigma(X, np.zeros((2, 2)), clamp_sigma=False))  # √(10/4)
    1.5811388300841898
    >>> refimpl.structure_learning.colide_sigma(X, np.array([[0.0, 2.0], [0.0, 0.0]]),
    ...     variance="nonequal", sigma_floor=1e-3)  # x₁ = 2x₀ exactly: σ₁* = 0, clamped
    array([1.   , 0.001])
    """
    R = X - X @ W
    sigma = profiled_sigma(R, variance, sigma_floor if clamp_sigma else None)
    return np.asarray(sigma, dtype=X.dtype), None


# -- the homotopy fit -----------------------------------------------------------------------------------
def _check_fit(arguments) -> None:
    _check_floor(arguments)
    X, s = arguments["X"], arguments["s"]
    if s is not None and bool(np.any(np.asarray(s) <= 0)):
        raise ArgumentError("s", "log-det scales s > 0", f"{np.asarray(s).tolist()}")
    if not arguments["clamp_sigma"]:
        norms = np.sqrt(np.sum(np.asarray(X, dtype=np.float64) ** 2, axis=0))
        if bool(np.any(norms == 0)):
            raise ArgumentError(
                "X",
                "columns that are not all zero when clamp_sigma=False (the starting σ is a column "
                "norm: 0 divides)",
                f"column {int(np.argmax(norms == 0))} is zero",
            )


def _score(cov, W, sigma, equal):
    """The score from Σ̂ = XᵀX/n, as the official code evaluates it."""
    d = W.shape[0]
    difference = np.eye(d) - W
    gram = difference.T @ cov @ difference  # n⁻¹ (X − XW)ᵀ(X − XW)
    if equal:
        return 0.5 * np.trace(gram) / sigma + 0.5 * sigma * d
    return 0.5 * (np.sum(np.diag(gram) / sigma) + np.sum(sigma))


def _closed_form_sigma(cov, W, equal, floor):
    d = W.shape[0]
    difference = np.eye(d) - W
    gram = difference.T @ cov @ difference
    sigma = np.sqrt(np.trace(gram) / d) if equal else np.sqrt(np.diag(gram))
    return sigma if floor is None else np.maximum(sigma, floor)


def _objective(cov, W, sigma, mu, s, lambda1, equal):
    d = W.shape[0]
    _, log_abs_det = np.linalg.slogdet(s * np.eye(d) - W * W)
    h = -log_abs_det + d * np.log(s)
    return mu * (_score(cov, W, sigma, equal) + lambda1 * np.sum(np.abs(W))) + h


def _stage(cov, W, sigma, mu, s, lr, iterations, *, lambda1, equal, beta1, beta2, checkpoint, tol, floor):
    """The official ``minimize``: Adam on ``μ(S + λ‖W‖₁) + h_s`` with σ re-solved after every step.

    Returns ``(W, σ, status, iterations run, learning rate at the end, failed)``; ``failed`` is
    True when the iterate left the domain at the first step or with s ≤ 0.9 (the caller
    restarts the stage).
    """
    d = W.shape[0]
    identity = np.eye(d)
    objective_before = 1e16
    m = v = 0.0
    direction = None
    for iteration in range(1, iterations + 1):
        M = np.linalg.inv(s * identity - W * W) + DOMAIN_SHIFT
        while np.any(M < DOMAIN_TOLERANCE):  # the iterate left the M-matrix domain
            if iteration == 1 or s <= 0.9:
                return W, sigma, None, iteration - 1, lr, True
            W = W + lr * direction  # undo the step, halve the learning rate, redo it
            lr *= 0.5
            if lr <= SMALLEST_LR:
                return W, sigma, LEARNING_RATE_EXHAUSTED, iteration - 1, lr, False
            W = W - lr * direction
            sigma = _closed_form_sigma(cov, W, equal, floor)
            M = np.linalg.inv(s * identity - W * W) + DOMAIN_SHIFT
        # ∇_W of μ(S + λ‖W‖₁) + h_s: −μΣ̂(I − W)/σ (column j over σ_j), μλ sign(W), 2W ∘ M^{−T}
        g_score = -mu * (cov @ (identity - W)) / sigma
        gradient = g_score + mu * lambda1 * np.sign(W) + 2 * W * M.T
        m = beta1 * m + (1 - beta1) * gradient
        v = beta2 * v + (1 - beta2) * gradient**2
        m_hat = m / (1 - beta1**iteration)
        v_hat = v / (1 - beta2**iteration)
        direction = m_hat / (np.sqrt(v_hat) + ADAM_EPS)
        W = W - lr * direction
        sigma = _closed_form_sigma(cov, W, equal, floor)
        if iteration % checkpoint == 0 or iteration == iterations:
            objective = _objective(cov, W, sigma, mu, s, lambda1, equal)
            if abs((objective_before - objective) / objective_before) <= tol:
                return W, sigma, CONVERGED, iteration, lr, False
            objective_before = objective
    return W, sigma, ITERATION_LIMIT, iterations, lr, False


@op(
    inputs={
        "X": FloatArray("n", "d"),
        "lambda1": RealScalar(0),
        "variance": OneOf("equal", "nonequal"),
        "T": IntScalar(1),
        "mu_init": RealScalar(0, low_open=True),
        "mu_factor": RealScalar(0, low_open=True),
        "s": FloatArray("K", optional=True),
        "warm_iter": IntScalar(1),
        "max_iter": IntScalar(1),
        "lr": RealScalar(0, low_open=True),
        "beta1": RealScalar(0, 1, high_open=True),
        "beta2": RealScalar(0, 1, high_open=True),
        "checkpoint": IntScalar(1),
        "tol": RealScalar(0),
        "clamp_sigma": Flag(),
        "sigma_floor": RealScalar(0, low_open=True, optional=True),
    },
    outputs=(
        "W",
        "sigma",
        "stage_s",
        "stage_lr",
        "stage_iterations",
        "stage_restarts",
        "stage_status",
        "stage_objective",
    ),
    check=_check_fit,
)
def colide_homotopy_fit(
    X,
    *,
    lambda1,
    warm_iter,
    max_iter,
    variance="equal",
    T=5,
    mu_init=1.0,
    mu_factor=0.1,
    s=None,
    lr=3e-4,
    beta1=0.99,
    beta2=0.999,
    checkpoint=1000,
    tol=1e-6,
    clamp_sigma=True,
    sigma_floor=None,
):
    r"""CoLiDE's fit: a homotopy over (μ, s) of Adam steps on ``μ(S + λ‖W‖₁) + h_s(W)``.

    The DAGMA recipe with CoLiDE's score: for stages t = 1..T, minimize
    ``μ_t (S(W, σ) + λ‖W‖₁) + h_{s_t}(W)`` (S: :func:`colide_ev_score` or
    :func:`colide_nv_score`; ``h_s = −log det(s_tI − W∘W) + d log s_t``,
    :func:`dagma_acyclicity_logdet`) starting from the previous stage's W, with μ shrinking
    (``μ ← μ·mu_factor``): the acyclicity term weighs more at every stage, until the last,
    longest stage returns a near-DAG. σ is not a variable of the descent: after every step on
    W it is re-solved in closed form (:func:`colide_sigma`).

    One stage (the official ``minimize``, step by step), from W, σ, Adam's m = v = 0::

        for k = 1..iterations:
            M = inv(sI − W∘W) + 1e−16
            while any(M < −1e−6):                  (W left the M-matrix domain)
                if k = 1 or s ≤ 0.9: the stage fails (restart)
                W ← W + η·step;  η ← η/2;  stop (kept) if η ≤ 1e−16;  W ← W − η·step;  σ ← σ*(W)
            G = −μΣ̂(I − W)/σ + μλ sign(W) + 2W ∘ Mᵀ     (column j over σ_j for NV)
            Adam (β1, β2, bias-corrected, ε = 1e−8): step = m̂/(√v̂ + ε);  W ← W − η·step
            σ ← σ*(W)
            every `checkpoint` steps and at the last: stop if |Δobjective/objective| ≤ tol

    and the fit (the official ``fit``): W = 0, σ = ``min_j ‖x_j‖/√n`` (EV) or the column
    norms ``‖x_j‖/√n`` (NV); stage t runs ``warm_iter`` steps (``max_iter`` for the last) at
    ``s_t`` and learning rate η; a failed stage restarts from the same W with ``s_t + 0.1``
    and η/2. ``Σ̂ = XᵀX/n`` with X centred by the caller (the official ``fit`` centres X
    itself). Computed in float64 whatever the dtype (an Adam path is not rounding-stable in
    float32), the outputs rounded to the dtype of X. Not differentiable (a solver).

    σ clamp: a variable fitted exactly (NV) drives ``σ_j* → 0`` and the score's gradient to
    infinity. ``clamp_sigma=True`` (default) keeps σ ≥ ``sigma_floor`` (the paper states no
    value: required then); ``clamp_sigma=False`` is the official code, which has no clamp.

    Not pinned by the paper: λ (tuned per problem), a required argument.

    Args:
        X: centred data (n, d).
        lambda1: ℓ1 weight λ ≥ 0 (required).
        variance: "equal" (CoLiDE-EV, default) or "nonequal" (CoLiDE-NV).
        T: number of stages (default 5).
        mu_init: μ of the first stage (default 1).
        mu_factor: μ's factor per stage (default 0.1).
        s: the log-det scale per stage (K,) (default None: 1, 0.9, 0.8, 0.7, 0.6), padded
            with its last value to T stages.
        warm_iter: the most Adam steps of stages 1..T−1 (required; the official value is
            30000).
        max_iter: the most Adam steps of the last stage (required; the official value is
            60000). Both are required rather than defaulted: at the official budgets one
            call runs up to 180000 Adam steps (minutes in NumPy); pass them to reproduce it.
        lr: Adam's learning rate η (default 3e−4).
        beta1, beta2: Adam's decays (defaults 0.99 and 0.999).
        checkpoint: steps between convergence checks (default 1000).
        tol: relative objective change that ends a stage (default 1e−6).
        clamp_sigma: keep σ ≥ sigma_floor (default True).
        sigma_floor: the floor σ_min > 0 (required with clamp_sigma=True; default None).

    Returns:
        W: the estimate (d, d), not thresholded.
        sigma: the noise scale(s): 0-d (EV) or (d,) (NV).
        stage_s: the s each stage finally ran at (T,).
        stage_lr: each stage's learning rate at its end: η halved once per restart and once
            per backtracking step (T,).
        stage_iterations: the Adam steps of each stage's final run (T,), int64.
        stage_restarts: how many times each stage restarted (T,), int64.
        stage_status: 0 converged (tol), 1 iteration limit, 2 learning rate exhausted (T,), int64.
        stage_objective: ``μ_t(S + λ‖W‖₁) + h_{s_t}`` at the end of each stage (T,).

    Reference: Saboksayr, Mateos, Tepper, *CoLiDE: Concomitant Linear DAG Estimation*,
    ICLR 2024, arXiv:2310.02895, Algorithm 1 and Appendix (hyperparameters); official code
    SAMiatto/colide ``model.py`` (``colide_ev.fit``/``minimize``, ``colide_nv``).

    >>> import numpy as np, refimpl
    >>> rng = np.random.default_rng(0)
    >>> x0 = rng.standard_normal(500)
    >>> X = np.stack([x0, 1.5 * x0 + rng.standard_normal(500)], axis=1)
    >>> X = X - X.mean(axis=0)
    >>> out = refimpl.structure_learning.colide_homotopy_fit(
    ...     X, lambda1=0.05, T=2, warm_iter=2000, max_iter=4000, lr=0.01, checkpoint=200, sigma_floor=1e-6)
    >>> W = out[0]
    >>> bool(abs(W[0, 1]) > 1.0 > 0.1 > abs(W[1, 0]))  # the edge 0 → 1, not 1 → 0
    True
    """
    dtype = X.dtype
    equal = variance == "equal"
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    cov = X.T @ X / float(n)
    floor = float(sigma_floor) if clamp_sigma else None
    schedule = [float(v) for v in (DEFAULT_S if s is None else np.asarray(s, dtype=np.float64))]
    schedule = (schedule + [schedule[-1]] * T)[:T]
    W_est = np.zeros((d, d))
    norms = np.sqrt(np.sum(X * X, axis=0) / n)  # the official start, not the closed-form σ*
    sigma_est = np.min(norms) if equal else norms
    if floor is not None:
        sigma_est = np.maximum(sigma_est, floor)
    mu = float(mu_init)
    record = {key: [] for key in ("s", "lr", "iterations", "restarts", "status", "objective")}
    for stage in range(T):
        stage_lr, restarts = float(lr), 0
        iterations = int(max_iter) if stage == T - 1 else int(warm_iter)
        while True:
            W_new, sigma_new, status, done, final_lr, failed = _stage(
                cov, W_est.copy(), np.copy(sigma_est), mu, schedule[stage], stage_lr, iterations,
                lambda1=lambda1, equal=equal, beta1=beta1, beta2=beta2, checkpoint=checkpoint,
                tol=tol, floor=floor,
            )  # fmt: skip
            if not failed:
                break
            stage_lr *= 0.5
            schedule[stage] += 0.1
            restarts += 1
        W_est, sigma_est = W_new, sigma_new
        record["s"].append(schedule[stage])
        record["lr"].append(final_lr)
        record["iterations"].append(done)
        record["restarts"].append(restarts)
        record["status"].append(status)
        record["objective"].append(_objective(cov, W_est, sigma_est, mu, schedule[stage], lambda1, equal))
        mu *= mu_factor
    outputs = (
        W_est.astype(dtype),
        np.asarray(sigma_est, dtype=dtype),
        np.array(record["s"], dtype=dtype),
        np.array(record["lr"], dtype=dtype),
        np.array(record["iterations"], dtype=np.int64),
        np.array(record["restarts"], dtype=np.int64),
        np.array(record["status"], dtype=np.int64),
        np.array(record["objective"], dtype=dtype),
    )
    return outputs, None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    colide_sigma,
    name="colide-sigma-no-clamp",
    source="SAMiatto/colide, model.py, colide_nv.minimize (and colide_ev): "
    "`sigma = np.sqrt(np.diag(dif.T @ rhs))`",
    official="no floor on σ: a column fitted exactly gives σ_j = 0 and the next gradient "
    "−Σ̂(I − W) diag(1/σ) divides by zero (inf/NaN iterates)",
    paper="σ* = ‖x_j − Xw_j‖/√n is the minimizer only while positive; refimpl keeps σ ≥ sigma_floor "
    "(clamp_sigma=True, default; clamp_sigma=False reproduces the official σ)",
    example=Example(
        args=(np.array([[1.0, 2.0], [-1.0, -2.0]]), np.array([[0.0, 2.0], [0.0, 0.0]])),
        kwargs={"variance": "nonequal", "sigma_floor": 1e-3},
        official={"sigma": [1.0, 0.0]},
        reference={"sigma": [1.0, 0.001]},
    ),
    flag={"clamp_sigma": False},
)

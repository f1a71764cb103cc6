"""Adaptive worst-case (Auto-PGD) and average-case sharpness, and the ellipsoid projection
they use (A Modern Look at the Relationship between Sharpness and Generalization,
Andriushchenko, Croce, Müller, Hein and Flammarion)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    Function,
    InputError,
    IntScalar,
    OneOf,
    Paper,
    RealScalar,
    known_deviation,
    op,
)

__all__ = ["PAPER", "adaptive_sharpness_apgd", "adaptive_sharpness_average", "ellipsoid_projection"]

PAPER = Paper(
    "A Modern Look at the Relationship between Sharpness and Generalization",
    arxiv="2302.07011",
    year=2023,
    code="tml-epfl/sharpness-vs-generalization",
)

#: sharpness.py, weight_ascent_step_momentum: ``step_size / (grad_norm + 1e-12)`` (L2 ascent)
GRAD_NORM_EPS = 1e-12
#: sharpness.py, projection on the ellipsoid: ``lmbd = 0.1``, ``max_lmbd_limit = 10.0``, the
#: limit doubled when the upper end comes within ``10**-2`` of it
BISECTION_START, BISECTION_LIMIT, BISECTION_LIMIT_MARGIN = 0.1, 10.0, 1e-2
#: sharpness.py, eval_APGD_sharpness: checkpoints ``p = [0, 0.22]``,
#: ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``, ``step_size_scaler = .5``
CHECKPOINT_FIRST, CHECKPOINT_DECAY, CHECKPOINT_MIN_GAP, STEP_SIZE_SCALER = 0.22, 0.03, 0.06, 0.5


def _host(value):
    return np.asarray(value.get() if hasattr(value, "get") else value)


def _check_scales(arguments) -> None:
    c = _host(arguments["c"])
    if bool(np.any(c < 0)):
        raise ArgumentError("c", "scales c_i >= 0 (|w_i| for adaptive sharpness)", "a negative scale")


def _weighted_norm(delta: np.ndarray, c: np.ndarray, movable: np.ndarray) -> float:
    """‖δ/c‖₂ over the coordinates with c > 0 (float64)."""
    return float(np.sqrt(np.sum((delta[movable] / c[movable]) ** 2)))


def _project_ellipsoid(delta, c, rho, tol, max_iter):
    """The bisection of ``ellipsoid_projection`` on float64 arrays: (δ', λ, norms, iterations, converged)."""
    movable = c > 0
    delta = np.where(movable, delta, 0.0)  # c_i = 0: the constraint pins δ_i to 0
    norm = _weighted_norm(delta, c, movable)
    norms = []
    if norm <= rho:
        return delta, 0.0, norms, 0, True
    c_squared = c * c
    lam, low, high, limit = BISECTION_START, 0.0, BISECTION_LIMIT, BISECTION_LIMIT
    projected, used = delta, 0.0
    while abs(norm - rho) > tol:
        if max_iter is not None and len(norms) >= max_iter:
            return projected, used, norms, len(norms), False
        # δ' = δ/(1 + 2λ/c²), written δ·c²/(c² + 2λ): no overflow for tiny c
        projected, used = delta * c_squared / (c_squared + 2.0 * lam), lam
        norm = _weighted_norm(projected, c, movable)
        norms.append(norm)
        if norm > rho:  # still outside: raise λ
            new_lam, low = (lam + high) / 2, lam
        else:
            new_lam, high = (low + lam) / 2, lam
        if limit - high < BISECTION_LIMIT_MARGIN:  # the bracket's top is near its limit: double both
            limit, high = 2 * limit, 2 * high
        if new_lam == lam and abs(norm - rho) > tol:  # the bracket cannot shrink in float64
            return projected, used, norms, len(norms), False
        lam = new_lam
    return projected, used, norms, len(norms), True


@op(
    inputs={
        "delta": FloatArray("P"),
        "c": FloatArray("P"),
        "rho": RealScalar(0, low_open=True),
        "tol": RealScalar(0, low_open=True),
        "max_iter": IntScalar(0, optional=True),
    },
    outputs=("projected", "multiplier", "norms", "iterations", "converged"),
    check=_check_scales,
)
def ellipsoid_projection(delta, c, *, rho, tol=1e-5, max_iter=None):
    r"""Euclidean projection onto the ellipsoid ``‖δ/c‖₂ ≤ ρ`` by bisection on the multiplier.

    Adaptive L2 sharpness perturbs each weight in proportion to its magnitude, c = |w|: the
    feasible set is an axis-aligned ellipsoid. Its Euclidean projection solves
    ``min ‖x − δ‖²`` s.t. ``Σ x_i²/c_i² ≤ ρ²``; stationarity of ``½‖x − δ‖² + λ(Σx²/c² − ρ²)``
    gives ``x = δ/(1 + 2λ/c²)``, and ``‖x(λ)/c‖`` decreases in λ ≥ 0, so λ is found by a 1-D
    search: bisection, as in the official code.

    Forward (float64)::

        δ_i ← 0 where c_i = 0              (the ellipsoid is flat there: such a weight cannot move)
        if ‖δ/c‖ ≤ ρ: return δ              (λ = 0, no iteration)
        λ = 0.1, [lo, hi] = [0, 10], limit = 10
        repeat while |‖x/c‖ − ρ| > tol:
            x = δ·c²/(c² + 2λ)              (= δ/(1 + 2λ/c²), no overflow for small c)
            ‖x/c‖ > ρ:  λ, lo ← (λ + hi)/2, λ      else:  λ, hi ← (lo + λ)/2, λ
            limit − hi < 1e-2:  limit, hi ← 2·limit, 2·hi      (the bracket grows while λ must)

    The loop's exact order (test the norm of the previous λ, then move λ; the bracket's
    doubling) mirrors the official code, so its iterates and the returned λ are the same.
    The stopping rule is absolute, ``|‖x/c‖ − ρ| ≤ tol``: the result may lie up to ``tol``
    outside the ellipsoid. Where the official loop has no cap, this one stops also when
    ``max_iter`` (if given) is reached or when λ no longer changes in float64 (a tolerance
    below the resolution), returning ``converged = False``. Reference-only: a solver of a
    1-D root, called per ascent step by ``adaptive_sharpness_apgd`` (no gradient).

    Args:
        delta: the point δ to project (P,), flattened over all parameters.
        c: the scales c ≥ 0 (P,): ``|w|`` for adaptive sharpness, ones for the ball.
        rho: the radius ρ > 0.
        tol: absolute tolerance on ``‖x/c‖ − ρ`` (default 1e-5: official ``10**-5``).
        max_iter: a cap on the bisection steps, or None (default: none, as the official code).

    Returns:
        projected: the projection x (P,), delta's dtype.
        multiplier: λ of the returned x (0-d, 0 when δ is inside).
        norms: ``‖x/c‖`` after each bisection step (iterations,), delta's dtype.
        iterations: the bisection steps taken (0-d int64).
        converged: whether ``|‖x/c‖ − ρ| ≤ tol`` (or δ was inside) (0-d bool).

    Reference: Andriushchenko et al., *A Modern Look at the Relationship between Sharpness
    and Generalization*, ICML 2023, arXiv:2302.07011 (adaptive sharpness, Section 3). Official
    code: tml-epfl/sharpness-vs-generalization, ``sharpness.py``, ``weight_ascent_step_momentum``
    (the "projection on the ellipsoid" branch: ``lmbd = 0.1``, ``max_lmbd_limit = 10.0``,
    ``while (new_norm - rho).abs() > 10**-5``).

    >>> import numpy as np, refimpl
    >>> x, lam, _, _, ok = refimpl.other.ellipsoid_projection(
    ...     np.array([3.0, 4.0]), np.array([1.0, 1.0]), rho=1.0)
    >>> np.round(x, 4), bool(ok)       # a ball (c = 1): the radial projection (0.6, 0.8)
    (array([0.6, 0.8]), True)
    """
    projected, multiplier, norms, iterations, converged = _project_ellipsoid(
        delta.astype(np.float64), c.astype(np.float64), float(rho), float(tol), max_iter
    )
    outputs = (
        projected.astype(delta.dtype),
        np.asarray(multiplier, dtype=delta.dtype),
        np.asarray(norms, dtype=delta.dtype),
        np.asarray(iterations, dtype=np.int64),
        np.asarray(converged),
    )
    return outputs, None


def _call_loss(op_name: str, loss, point: np.ndarray, where: str) -> float:
    value = _host(loss(point))
    if value.size != 1 or value.dtype.kind not in "fiu" or not np.isfinite(value).all():
        raise InputError(
            f"{op_name}: argument 'loss': expected a callable returning a finite real scalar "
            f"L(w + δ), got {value.dtype} of shape {value.shape} ({where})"
        )
    return float(value.reshape(()))


def _call_grad(grad, point: np.ndarray, iteration: int) -> np.ndarray:
    value = _host(grad(point))
    if value.shape != point.shape or value.dtype.kind not in "fiu" or not np.isfinite(value).all():
        raise InputError(
            f"adaptive_sharpness_apgd: argument 'grad': expected a callable returning a finite real "
            f"array ∇L(w + δ) of shape {point.shape}, got {value.dtype} of shape {value.shape} at "
            f"iteration {iteration}"
        )
    return value.astype(np.float64)


def apgd_checkpoints(n_iters: int) -> list[int]:
    """The iterations at which Auto-PGD may halve its step (official ``eval_APGD_sharpness``).

    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``,
    checkpoints ``ceil(p_j·n_iters)`` for j ≥ 1 until one reaches ``n_iters`` or repeats.
    """
    p = [0.0, CHECKPOINT_FIRST]
    w = [0, int(np.ceil(n_iters * CHECKPOINT_FIRST))]
    while w[-1] < n_iters and w[-1] != w[-2]:
        p.append(p[-1] + max(p[-1] - p[-2] - CHECKPOINT_DECAY, CHECKPOINT_MIN_GAP))
        w.append(int(np.ceil(p[-1] * n_iters)))
    return w[1:]


def _scales(w: np.ndarray, adaptive: bool) -> np.ndarray:
    return np.abs(w) if adaptive else np.ones_like(w)


@op(
    inputs={
        "w": FloatArray("P"),
        "loss": Function(),
        "grad": Function(),
        "delta0": FloatArray("P", optional=True),
        "rho": RealScalar(0, low_open=True),
        "n_iters": IntScalar(1, 1_000_000),
        "norm": OneOf("linf", "l2"),
        "adaptive": Flag(),
        "step_size_mult": RealScalar(0, low_open=True),
        "min_update_ratio": RealScalar(0, 1),
        "momentum": RealScalar(0, 1),
        "restart": OneOf("best", "official"),
    },
    outputs=("sharpness", "delta", "losses", "step_sizes"),
)
def adaptive_sharpness_apgd(
    w,
    loss,
    grad,
    delta0=None,
    *,
    rho,
    n_iters=200,
    norm="linf",
    adaptive=False,
    step_size_mult=1.0,
    min_update_ratio=0.75,
    momentum=0.75,
    restart="best",
):
    r"""Worst-case (adaptive) sharpness by Auto-PGD with momentum: the largest loss increase
    within a (weight-scaled) ball around the weights.

    ``S_max^ρ(w) = max_{‖δ ⊙ c⁻¹‖_p ≤ ρ} L(w + δ) − L(w)``, with c = |w| (adaptive: invariant
    to rescaling the weights of ReLU networks) or c = 1, p ∈ {2, ∞}. The maximization runs
    Auto-PGD (Croce and Hein 2020) in weight space: a fixed budget of projected ascent steps
    with momentum, whose step is halved at checkpoints when the ascent stalls.

    Forward (float64; δ_prev starts at δ0; the step η = 2ρ·step_size_mult)::

        for i = 0, …, n_iters − 1:
            g = ∇L(w + δ)                        (at w + δ_best after a halving, "official")
            z = δ + η·c ⊙ sign(g)                (linf)      z = δ + η·c ⊙ g/(‖g‖ + 1e-12)   (l2)
            z = clip(z, −ρc, ρc)                 (linf)
            z = z·min(1, ρ/‖z‖)                  (l2, c = 1)
            z = ellipsoid_projection(z, c, ρ)    (l2, adaptive)
            δ_prev, δ = δ, momentum·z + (1 − momentum)·δ_prev
            ℓ_i = L(w + δ);  if ℓ_i > ℓ_best: ℓ_best, δ_best = ℓ_i, δ;  count an update
            at a checkpoint i (apgd_checkpoints): if updates < min_update_ratio·(i − i_prev)
              or (η and ℓ_best unchanged since the last checkpoint): η ← η/2 and restart
        S = ℓ_best − L(w)                        (ℓ_best starts at L(w): S ≥ 0)

    Note the momentum mixes z with the δ of two steps back (``prev_delta_dict`` in the
    official code holds ``w[k−1] − w[0]``), and the random start δ0 is used as given (the
    official L2 start ``ρc ⊙ N(0, I)`` lies outside the ball; it is not projected).
    ``restart="best"`` (default) continues from δ_best after a halving (Auto-PGD's
    restart from the best point, Croce and Hein 2020, Algorithm 1); ``restart="official"`` reproduces the
    official code, which reloads the best weights only for the next gradient while its δ
    continues from the current iterate (a recorded known deviation). The official code
    averages S over batches: call once per batch (loss and grad of that batch) and average.
    Reference-only: a whole solver around user oracles (no gradient).

    Args:
        w: the weights (P,), flattened over all parameters (batch-norm statistics frozen).
        loss: callable ``L(v) -> scalar`` on a (P,) float64 array (one batch).
        grad: callable ``∇L(v) -> (P,)`` of the same loss.
        delta0: the random start (P,): ``ρc ⊙ N(0, I)`` (l2) or ``ρc ⊙ U(−1, 1)`` (linf) drawn
            by the caller (official ``random_init_lw``); None (default) starts at 0
            (official ``rand_init=False``).
        rho: the radius ρ (required: the paper sweeps it per model).
        n_iters: the step budget (default 200: official ``eval_APGD_sharpness``).
        norm: "linf" (default, official) or "l2".
        adaptive: c = |w| if True, c = 1 if False (default False, official).
        step_size_mult: η = 2ρ·step_size_mult (default 1, official).
        min_update_ratio: halve when fewer improvements (default 0.75, official).
        momentum: weight of the new point (default 0.75, official ``momentum=0.75``).
        restart: "best" (default) or "official" (see above).

    Returns:
        sharpness: ``ℓ_best − L(w)`` (0-d, w's dtype).
        delta: δ_best (P,), w's dtype (δ0 — or 0 — if no step improved on L(w + δ0)).
        losses: ``L(w + δ)`` after every step (n_iters,), w's dtype.
        step_sizes: the step η used at every step (n_iters,), w's dtype.

    Reference: Andriushchenko et al., arXiv:2302.07011, Section 3 and App. (Auto-PGD for
    sharpness). Official code: tml-epfl/sharpness-vs-generalization, ``sharpness.py``
    (``eval_APGD_sharpness``, ``weight_ascent_step_momentum``, ``random_init_lw``).

    >>> import numpy as np, refimpl
    >>> w = np.array([1.0, -2.0])
    >>> loss = lambda v: float(v @ v) / 2                 # L = ½‖v‖², ∇L = v
    >>> s, delta, _, _ = refimpl.other.adaptive_sharpness_apgd(
    ...     w, loss, lambda v: v, rho=0.1, n_iters=20, adaptive=True)
    >>> np.round(delta, 4), round(float(s), 4)   # δ* = ρ|w| ⊙ sign(w): L(1.1, −2.2) − L(w) = 0.525
    (array([ 0.1, -0.2]), 0.525)
    """
    w64 = w.astype(np.float64)
    c = _scales(w64, adaptive)
    loss_at_w = _call_loss("adaptive_sharpness_apgd", loss, w64, "at w")
    delta = np.zeros_like(w64) if delta0 is None else delta0.astype(np.float64)
    previous = delta.copy()
    point = w64 + delta
    best_loss, best_delta = loss_at_w, delta.copy()
    step = 2.0 * rho * step_size_mult
    previous_step, previous_best, previous_checkpoint, updates = step, best_loss, 0, 0
    checkpoints = set(apgd_checkpoints(n_iters))
    losses, step_sizes = [], []
    for i in range(n_iters):
        g = _call_grad(grad, point, i)
        if norm == "linf":
            z = np.clip(delta + step * c * np.sign(g), -rho * c, rho * c)
        else:
            z = delta + step / (np.sqrt(g @ g) + GRAD_NORM_EPS) * g * c
            if adaptive:
                z = _project_ellipsoid(z, c, rho, 1e-5, None)[0]
            else:
                z_norm = np.sqrt(z @ z)
                z = z * (rho / z_norm) if z_norm > rho else z
        delta, previous = momentum * z + (1.0 - momentum) * previous, delta
        point = w64 + delta
        current = _call_loss("adaptive_sharpness_apgd", loss, point, f"at iteration {i}")
        losses.append(current)
        step_sizes.append(step)
        if current > best_loss:
            best_loss, best_delta = current, delta.copy()
            updates += 1
        if i in checkpoints:
            too_few = updates < min_update_ratio * (i - previous_checkpoint)
            stalled = previous_step == step and previous_best == best_loss
            previous_step, previous_best, previous_checkpoint, updates = step, best_loss, i, 0
            if too_few or stalled:
                step *= STEP_SIZE_SCALER
                point = w64 + best_delta  # the next gradient is taken at the best point
                if restart == "best":
                    delta = best_delta.copy()
    dtype = w.dtype
    outputs = (
        np.asarray(best_loss - loss_at_w, dtype=dtype),
        best_delta.astype(dtype),
        np.asarray(losses, dtype=dtype),
        np.asarray(step_sizes, dtype=dtype),
    )
    return outputs, None


def _check_noise(arguments) -> None:
    noise = _host(arguments["noise"])
    if arguments["norm"] == "linf" and bool(np.any(np.abs(noise) > 1)):
        raise ArgumentError("noise", "uniform draws in [−1, 1] for norm='linf'", "a draw outside [−1, 1]")


@op(
    inputs={
        "w": FloatArray("P"),
        "loss": Function(),
        "noise": FloatArray("S", "P"),
        "rho": RealScalar(0),
        "norm": OneOf("l2", "linf"),
        "adaptive": Flag(),
    },
    outputs=("sharpness", "losses"),
    check=_check_noise,
)
def adaptive_sharpness_average(w, loss, noise, *, rho, norm="l2", adaptive=False):
    r"""Average-case (adaptive) sharpness: the mean loss increase under random weight noise.

    ``S_avg^ρ(w) = E_δ L(w + δ) − L(w)`` with ``δ ~ N(0, ρ² diag(c²))`` (l2) or
    ``δ ~ Uniform[−ρc, ρc]`` (linf), c = |w| (adaptive) or 1, estimated with S draws given
    by the caller.

    Forward (float64)::

        δ_s = ρ·c ⊙ ξ_s,   ξ_s = noise[s]  (standard normal for l2, uniform on [−1, 1] for linf)
        S   = (1/S) Σ_s L(w + δ_s) − L(w)

    Reference-only: a Monte-Carlo estimate around a user oracle (no gradient). The official
    code averages over batches: call once per batch and average.

    Args:
        w: the weights (P,).
        loss: callable ``L(v) -> scalar`` on a (P,) float64 array.
        noise: the draws ξ (S, P): N(0, 1) for l2, U(−1, 1) for linf (official
            ``random_init_lw``: ``randn`` or ``2·rand − 1``).
        rho: ρ ≥ 0 (required: the official function's default 1.0 is not a recommendation).
        norm: "l2" (default, official ``eval_average_sharpness``) or "linf".
        adaptive: c = |w| if True (default False, official).

    Returns:
        sharpness: the estimate (0-d, w's dtype).
        losses: ``L(w + δ_s)`` per draw (S,), w's dtype.

    Reference: Andriushchenko et al., arXiv:2302.07011, Section 3 (average-case sharpness).
    Official code: tml-epfl/sharpness-vs-generalization, ``sharpness.py``
    (``eval_average_sharpness``, ``random_init_lw``).

    >>> import numpy as np, refimpl
    >>> w = np.array([1.0, -2.0])
    >>> loss = lambda v: float(v @ v) / 2
    >>> noise = np.array([[1.0, 1.0], [-1.0, -1.0]])     # E‖δ‖²/2 with δ = ±ρ|w|
    >>> round(float(refimpl.other.adaptive_sharpness_average(w, loss, noise, rho=0.1, adaptive=True)[0]), 12)
    0.025
    """
    w64 = w.astype(np.float64)
    c = _scales(w64, adaptive)
    loss_at_w = _call_loss("adaptive_sharpness_average", loss, w64, "at w")
    deltas = rho * c * noise.astype(np.float64)
    losses = np.array(
        [
            _call_loss("adaptive_sharpness_average", loss, w64 + delta, f"at draw {s}")
            for s, delta in enumerate(deltas)
        ]
    )
    sharpness = losses.mean() - loss_at_w
    return (np.asarray(sharpness, dtype=w.dtype), losses.astype(w.dtype)), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
def _sine_loss(v):
    """L(v) = Σ sin(3v): a non-concave 1-D oracle on which the two restart rules part."""
    return float(np.sin(3.0 * v).sum())


def _sine_grad(v):
    """∇L(v) = 3 cos(3v)."""
    return 3.0 * np.cos(3.0 * v)


known_deviation(
    adaptive_sharpness_apgd,
    name="apgd-sharpness-restart-keeps-iterate",
    source="tml-epfl/sharpness-vs-generalization, sharpness.py, eval_APGD_sharpness "
    "(model.load_state_dict(worst_model_dict) at a step-size halving) with weight_ascent_step_momentum",
    official="at a halving the best weights are loaded into the model, so the next gradient is taken at "
    "w + δ_best, but delta_dict and prev_delta_dict are not reset: the next step starts from the current "
    "iterate δ, not from δ_best",
    paper="Auto-PGD (Croce and Hein 2020, Algorithm 1, used by the paper) restarts from the best point: "
    "δ ← δ_best, then the next step",
    example=Example(
        args=(np.array([0.0]), _sine_loss, _sine_grad),
        kwargs={"rho": 1.0, "n_iters": 5},
        official={"sharpness": 0.7780731968879212, "delta": [0.75]},
        reference={"sharpness": 0.9022675940990952, "delta": [0.375]},
    ),
    flag={"restart": "official"},
)

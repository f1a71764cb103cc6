"""DIFF2, differentially private optimization via gradient differences (Murata & Suzuki)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, IntScalar, Paper, RealScalar, op

__all__ = ["diff2_estimator_step"]

PAPER = Paper(
    "DIFF2: Differential Private Optimization via Gradient Differences for Nonconvex Distributed Learning",
    arxiv="2302.03884",
    year=2023,
)


def clip_factors(u64, radius):
    """``min(1, C/‖u_i‖)`` per row of a float64 (n, P) array; 1 for a zero row or ``C = None`` (∞)."""
    norms = np.sqrt(np.sum(u64 * u64, axis=1))
    if radius is None:
        return np.ones_like(norms)
    # where ‖u_i‖ ≤ C the factor is 1 (this covers u_i = 0 without dividing by 0)
    return np.where(norms > radius, radius / np.where(norms > radius, norms, 1.0), 1.0)


@op(
    inputs={
        "params": FloatArray("P"),
        "grads": FloatArray("N", "P"),
        "grads_previous": FloatArray("N", "P"),
        "estimator": FloatArray("P"),
        "noise": FloatArray("P"),
        "round_index": IntScalar(0),
        "period": IntScalar(1),
        "clip_restart": RealScalar(0, low_open=True, optional=True),
        "clip_difference": RealScalar(0, low_open=True, optional=True),
        "sigma_restart": RealScalar(0),
        "sigma_difference": RealScalar(0),
        "lr": RealScalar(0),
    },
    outputs=("params", "estimator"),
)
def diff2_estimator_step(
    params,
    grads,
    grads_previous,
    estimator,
    noise,
    *,
    round_index,
    period,
    clip_restart,
    clip_difference,
    sigma_restart,
    sigma_difference,
    lr,
):
    r"""One DIFF2 round: a private global-gradient estimator built from clipped gradient differences.

    DP-GD privatizes each round's average of clipped per-node gradients, so every round pays
    noise of the gradients' size. DIFF2 sends the full (clipped, noised) gradients only every
    T rounds; in between, nodes send the *differences* ``∇f_i(x_r) − ∇f_i(x_{r−1})``, which are
    small when the iterates move little, so they are clipped to a smaller radius C₂ and need
    less noise. The server accumulates them into a running estimator ``v_r`` of the full
    gradient (a SARAH/SPIDER-type recursion) and takes a gradient step with it (DIFF2 with the
    gradient-descent subroutine).

    Forward, for node gradients ``g_i = ∇f_i(x_r)``, ``g_i' = ∇f_i(x_{r−1})`` (rows of the
    (N, P) inputs) and one standard-normal draw ξ (P,)::

        clip_C(u) = u·min(1, C/‖u‖)              (factor 1 at u = 0; C = None means ∞)
        r mod T = 0 (restart):  v_r = (1/N) Σ_i clip_{C₁}(g_i) + σ₁ ξ
        otherwise:              v_r = v_{r−1} + (1/N) Σ_i clip_{C₂}(g_i − g_i') + σ₂ ξ
        x_{r+1} = x_r − η v_r

    The estimator is never renormalized: noise accumulates between restarts, by design. At a
    restart round ``grads_previous`` and ``estimator`` are not read (pass zeros). ``round_index``
    is 0-based and round 0 is a restart, so the first estimator is a full (DP-GD) gradient.

    Evaluation: the row norms, clip factors, node average and both updates are computed in
    float64 (float32 squares overflow at |u| ~ 1e19) and rounded once to the arrays' dtype;
    ``x_{r+1}`` uses the float64 ``v_r``. The node sum runs over rows in order.

    Not differentiable: an optimizer step on explicit state (the estimator) with explicit
    randomness (ξ).

    Not pinned by the paper for general use, so required arguments: the noise calibration (σ₁, σ₂
    from a privacy accountant for the target (ε, δ), T and the number of rounds) and the
    clipping radii are inputs, with no defaults; only the gradient-descent subroutine is
    implemented (the paper's cheaper subroutine is a different op, not written).

    Args:
        params: the iterate x_r, shape (P,), float32 or float64.
        grads: per-node gradients at x_r, shape (N, P).
        grads_previous: per-node gradients at x_{r−1}, shape (N, P) (unused at restarts).
        estimator: the previous estimator v_{r−1}, shape (P,) (unused at restarts).
        noise: standard-normal draw ξ, shape (P,).
        round_index: the round r ≥ 0 (0-based; r mod T = 0 is a restart).
        period: the restart period T ≥ 1 (T = 1 is DP-GD).
        clip_restart: C₁ > 0 for full gradients, or None for no clipping.
        clip_difference: C₂ > 0 for gradient differences, or None for no clipping.
        sigma_restart: σ₁ ≥ 0, the noise scale at restarts (an input: from the accountant).
        sigma_difference: σ₂ ≥ 0, the noise scale of difference rounds.
        lr: step size η ≥ 0.

    Returns:
        params: x_{r+1}, shape (P,).
        estimator: v_r, shape (P,). Both in the dtype of the inputs.

    Reference: Murata & Suzuki, *DIFF2: Differential Private Optimization via Gradient
    Differences for Nonconvex Distributed Learning*, ICML 2023, arXiv:2302.03884 (DIFF2 with
    the gradient-descent subroutine). No official code was checked.

    >>> import numpy as np, refimpl
    >>> x = np.array([1.0, 1.0])
    >>> g = np.array([[3.0, 4.0], [0.0, 1.0]])  # node 0 has norm 5: clipped to norm 1
    >>> x1, v = refimpl.optim.diff2_estimator_step(x, g, np.zeros((2, 2)), np.zeros(2), np.zeros(2),
    ...     round_index=0, period=3, clip_restart=1.0, clip_difference=0.1, sigma_restart=0.0,
    ...     sigma_difference=0.0, lr=0.5)
    >>> v  # ((0.6, 0.8) + (0, 1))/2
    array([0.3, 0.9])
    >>> x1
    array([0.85, 0.55])
    """
    dtype = params.dtype
    restart = round_index % period == 0
    if restart:  # a full (clipped) gradient, fresh noise: the accumulated error is dropped
        u64 = grads.astype(np.float64)
        radius, sigma, base = clip_restart, sigma_restart, 0.0
    else:  # clipped gradient differences added to the running estimator
        u64 = grads.astype(np.float64) - grads_previous.astype(np.float64)
        radius, sigma, base = clip_difference, sigma_difference, estimator.astype(np.float64)
    factors = clip_factors(u64, radius)
    node_average = np.sum(factors[:, None] * u64, axis=0) / grads.shape[0]
    new_estimator = base + node_average + sigma * noise.astype(np.float64)
    new_params = params.astype(np.float64) - lr * new_estimator
    return (new_params.astype(dtype), new_estimator.astype(dtype)), None

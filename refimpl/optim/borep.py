"""BO-REP's three update rules (Bilevel Optimization under Unbounded Smoothness, Hao, Gong, Liu)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "borep_hypergradient", "borep_linear_system_step", "normalized_momentum_step"]

PAPER = Paper(
    "Bilevel Optimization under Unbounded Smoothness: A New Algorithm and Convergence Analysis",
    arxiv="2401.09587",
    year=2024,
    code="MingruiLiu-ML-Lab/Bilevel-Optimization-under-Unbounded-Smoothness",
)

#: the official guard added to ‖m‖ (``hyperparam_opt/bo_rep.py``, ``Learner.forward``:
#: ``momentum_coeff = 1.0 / (1e-10 + self.hyper_momentum[0].norm())``)
NORM_GUARD = 1e-10
#: the official momentum parameter (``hyperparam_opt/main.py``: ``--beta``, default 0.90)
BETA = 0.9


def _l2_norm_float64(values: np.ndarray) -> float:
    """‖v‖₂ in float64, scaled by max|vᵢ| so that the squares can neither overflow nor underflow."""
    v = values.astype(np.float64).ravel()
    largest = float(np.max(np.abs(v), initial=0.0))
    if largest == 0.0 or not np.isfinite(largest):
        return largest
    return largest * float(np.sqrt(np.sum(np.square(v / largest))))


@op(
    inputs={
        "z": FloatArray("..."),
        "hvp_yy": FloatArray("..."),
        "grad_y_f": FloatArray("..."),
        "nu": RealScalar(0, low_open=True),
    },
    outputs=("z",),
    allow_empty=("...",),
)
def borep_linear_system_step(z, hvp_yy, grad_y_f, *, nu):
    r"""One BO-REP step on the linear system ``∇²_yy G · z = ∇_y F``: ``z ← z − ν(∇²_yy G z − ∇_y F)``.

    The hypergradient of a bilevel problem ``min_x Φ(x) = F(x, y*(x))``,
    ``y*(x) = argmin_y G(x, y)`` (G strongly convex in y), needs
    ``z* = (∇²_yy G)⁻¹ ∇_y F``. BO-REP never solves that system: it keeps z as state and
    takes one (stochastic) gradient step per iteration on the quadratic
    ``q(z) = ½ zᵀ ∇²_yy G z − zᵀ ∇_y F``, whose gradient is ``∇²_yy G z − ∇_y F``, warm
    started from the previous iteration's z. With a fixed Hessian H the iteration is
    ``z − z* ← (I − νH)(z − z*)``: it converges to z* when ``0 < ν < 2/λ_max(H)``.

    Update, elementwise, in the official code's order (the residual first, then the step)::

        r  = hvp_yy − grad_y_f            (∇_z q(z) = ∇²_yy G z − ∇_y F)
        z' = z − ν·r

    The Hessian-vector product ``∇²_yy G z`` is an input, computed by the caller at the
    *old* z (the official code differentiates ``⟨∇_y G, z⟩`` with ``grad_outputs=z``
    before the step). ν is rounded once to the arrays' dtype. Nothing is differentiable:
    this is a procedure on explicit state returning a new array.

    Args:
        z: the linear-system state z (any shape: the lower variable y's flattened size in
            the official code), float32 or float64.
        hvp_yy: the Hessian-vector product ``∇²_yy G(x, y) z`` at the current z, same shape.
        grad_y_f: the upper gradient ``∇_y F(x, y)``, same shape.
        nu: step size ν > 0 (required: tuned per problem, convergence needs ν < 2/λ_max;
            the official hyperparameter-optimization script's ``--nu`` is 1e-2).

    Returns:
        z: the updated state ``z − ν(∇²_yy G z − ∇_y F)``, same shape and dtype.

    Reference: Hao, Gong, Liu, *Bilevel Optimization under Unbounded Smoothness: A New
    Algorithm and Convergence Analysis*, arXiv:2401.09587 (Algorithm 1, the z update);
    official code ``hyperparam_opt/bo_rep.py``, ``hypergradient``:
    ``z_params -= args.nu * (jacob_flat - Fy_gradient_flat)``.

    >>> import numpy as np, refimpl
    >>> z = np.array([1.0, -2.0])
    >>> hvp = np.array([2.0, -1.0])  # H z with H = diag(2, 0.5)
    >>> refimpl.optim.borep_linear_system_step(z, hvp, np.array([1.0, 1.0]), nu=0.5)
    array([ 0.5, -1. ])
    """
    dtype = z.dtype.type
    residual = hvp_yy - grad_y_f
    return z - dtype(nu) * residual, None


@op(
    inputs={
        "grad_x_f": FloatArray("..."),
        "hvp_xy": FloatArray("..."),
    },
    outputs=("hypergradient",),
    allow_empty=("...",),
)
def borep_hypergradient(grad_x_f, hvp_xy):
    r"""BO-REP's hypergradient estimate ``∇̂Φ = ∇_x F − ∇²_xy G · z``.

    By the implicit function theorem, ``dy*/dx = −(∇²_yy G)⁻¹ ∇²_yx G``, so the gradient
    of ``Φ(x) = F(x, y*(x))`` is ``∇_x F − ∇²_xy G (∇²_yy G)⁻¹ ∇_y F``. BO-REP replaces the
    solve by the running state z of :func:`borep_linear_system_step`
    (``z ≈ (∇²_yy G)⁻¹ ∇_y F``), so the estimate is one mixed second-derivative product
    and a subtraction::

        ∇̂Φ = ∇_x F − ∇²_xy G z

    ``∇²_xy G z`` is an input (x's shape). The official code obtains it as the gradient
    with respect to x of ``−⟨∇_y G(x, y), sg[z]⟩`` (z detached), which *is*
    ``−∇²_xy G z``; its hyperparameter-optimization task has an upper loss without x, so
    ``∇_x F = 0`` there and the hypergradient is that gradient alone. The z used is the one
    *after* this iteration's linear-system step (the official code updates z in place
    first). Nothing is differentiable; the result feeds :func:`normalized_momentum_step`.

    Args:
        grad_x_f: the upper gradient ``∇_x F(x, y)``, any shape (x's), float32 or float64.
        hvp_xy: the mixed product ``∇²_xy G(x, y) z``, same shape and dtype.

    Returns:
        hypergradient: ``∇_x F − ∇²_xy G z``, same shape and dtype.

    Reference: Hao, Gong, Liu, arXiv:2401.09587 (Algorithm 1, the hypergradient estimator);
    official code ``hyperparam_opt/bo_rep.py``, ``hypergradient``:
    ``Gyxz_gradient = torch.autograd.grad(-torch.matmul(Gy_gradient_flat, z_params.detach()),
    hyperparameter)``.

    >>> import numpy as np, refimpl
    >>> refimpl.optim.borep_hypergradient(np.array([1.0, 0.5]), np.array([0.25, -0.5]))
    array([0.75, 1.  ])
    """
    return grad_x_f - hvp_xy, None


@op(
    inputs={
        "params": FloatArray("..."),
        "hypergradient": FloatArray("..."),
        "momentum": FloatArray("..."),
        "lr": RealScalar(0),
        "beta": RealScalar(0, 1, high_open=True),
        "eps": RealScalar(0),
    },
    outputs=("params", "momentum"),
    allow_empty=("...",),
)
def normalized_momentum_step(params, hypergradient, momentum, *, lr, beta=BETA, eps=NORM_GUARD):
    r"""One normalized-momentum step (BO-REP's upper update): move x by η along m/‖m‖.

    Under unbounded smoothness (the Lipschitz constant of ∇Φ grows with ‖∇Φ‖, as for RNNs
    and LSTMs) a plain gradient step can explode where the gradient is large. BO-REP keeps
    an exponential moving average of its hypergradient estimates and moves the upper
    variable by a step of *fixed length* η in the average's direction::

        m' = β·m + (1 − β)·∇̂Φ               (momentum first: the step uses the new m)
        s  = η/(‖m'‖₂ + ε)                   (ε = 1e-10: the official guard against m' = 0)
        x' = x − s·m'

    so ``‖x' − x‖ = η·‖m'‖/(‖m'‖ + ε)``, η up to the guard. The norm is taken over the whole
    tensor (the official code normalizes the single hyperparameter tensor; pass one
    parameter tensor, or all of x flattened, for the paper's ‖m‖ over x). The coefficients
    ``β`` and ``1 − β`` are rounded once to the arrays' dtype (as Lion's are), ``‖m'‖`` is
    computed in float64 (scaled by max|m'ᵢ|: its squares cannot overflow) and ``s`` is
    rounded once to the dtype, as the official code forms the learning rate
    ``η·(1/(1e-10 + ‖m‖))`` as a scalar and hands it to SGD. With m' = 0 the step is 0.
    Nothing is differentiable: a procedure on explicit state (m = 0 at the start, the
    official ``torch.zeros``), returning new arrays.

    Args:
        params: upper variable x, any shape, float32 or float64.
        hypergradient: the estimate ∇̂Φ (from :func:`borep_hypergradient`), same shape.
        momentum: momentum m (zeros at the start), same shape and dtype.
        lr: the step length η ≥ 0 (required: tuned per task; the official
            hyperparameter-optimization script's ``--outer_update_lr`` is 1e-4).
        beta: momentum parameter 0 ≤ β < 1 (default 0.9: official ``--beta``,
            ``hyperparam_opt/main.py``).
        eps: guard ε ≥ 0 added to ‖m'‖ (default 1e-10: official ``bo_rep.py``).

    Returns:
        params: the updated x'.
        momentum: the updated m'. Both in the dtype of the inputs.

    Reference: Hao, Gong, Liu, arXiv:2401.09587 (Algorithm 1, the x update
    ``x_{t+1} = x_t − η m_t/‖m_t‖``); official code ``hyperparam_opt/bo_rep.py``
    (``hypergradient``: ``args.beta * h + (1-args.beta) * Gyxz``; ``Learner.forward``:
    SGD with learning rate ``outer_update_lr / (1e-10 + ‖m‖)``).

    >>> import numpy as np, refimpl
    >>> x, g = np.array([1.0, 2.0]), np.array([3.0, -4.0])
    >>> new_x, m = refimpl.optim.normalized_momentum_step(x, g, np.zeros(2), lr=0.5, eps=0.0)
    >>> m.round(6)  # (1 − β)·g
    array([ 0.3, -0.4])
    >>> new_x.round(6)  # x − 0.5·m/‖m‖ = x − 0.5·(0.6, −0.8)
    array([0.7, 2.4])
    """
    dtype = params.dtype.type  # coefficients are rounded once to the arrays' dtype
    new_momentum = dtype(beta) * momentum + dtype(1 - beta) * hypergradient
    norm = _l2_norm_float64(new_momentum)
    denominator = norm + eps
    step = lr / denominator if denominator > 0 else 0.0  # m' = 0 with ε = 0: no direction, no step
    new_params = params - dtype(step) * new_momentum
    return (new_params, new_momentum), None

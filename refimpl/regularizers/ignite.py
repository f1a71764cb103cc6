"""IGNITE: the surrogate gradient-norm (sharpness) regularizer, its dual update and the
finite-difference Hessian-vector product (Incorporating Surrogate Gradient Norm to Improve
Offline Optimization Techniques)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Flag, FloatArray, Paper, RealScalar, op, row_norm

__all__ = ["PAPER", "finite_difference_hvp", "gradient_norm_penalty", "ignite_dual_update"]

PAPER = Paper(
    "Incorporating Surrogate Gradient Norm to Improve Offline Optimization Techniques",
    arxiv="2503.04242",
    year=2024,
    code="cuong-dm/IGNITE",
)


def _global_norm(g: np.ndarray) -> np.ndarray:
    """``‖g‖₂`` of the flattened parameter gradient as a 0-d array in g's dtype (TensorFlow's
    ``tf.linalg.global_norm`` over all parameter tensors), scaled where ``‖g‖²`` would
    overflow or underflow the dtype (``row_norm``)."""
    return row_norm(g.reshape(1, -1))[0, 0]


def _check_nonzero_gradient(arguments) -> None:
    g = arguments["g"]
    if not bool(np.any(g != 0)):
        raise ArgumentError(
            "g",
            "a nonzero gradient ∇G (the direction ĝ = g/‖g‖ and the gradient of ‖g‖ are undefined at g = 0)",
            "all entries 0",
        )


# -- gradient_norm_penalty ----------------------------------------------------------------------
@op(
    inputs={"g": FloatArray("P"), "hvp": FloatArray("P"), "rho": RealScalar(0, low_open=True)},
    outputs=("penalty", "param_grad"),
    differentiable=("g", "hvp"),
    check=_check_nonzero_gradient,
)
def gradient_norm_penalty(g, hvp, *, rho=0.05):
    r"""IGNITE's surrogate-sharpness penalty ``ρ‖∇_β G‖`` and its parameter gradient ``ρ·Hĝ``.

    In offline optimization a surrogate ``f_β`` of a black-box function is trained on a fixed
    dataset and then maximized; IGNITE regularizes its *sharpness*: how much its mean
    prediction ``G(β) = (1/|B|) Σ_{x∈B} f_β(x)`` can rise under a parameter perturbation of
    norm ρ, ``max_{‖δ‖≤ρ} G(β + δ) − G(β) ≈ ρ‖∇_β G(β)‖`` (first order). Training minimizes
    the loss L subject to ``ρ‖∇G‖ ≤ ε`` through the Lagrangian ``L + λ(ρ‖∇G‖ − ε)``, whose
    parameter gradient is ``∇L + λρ·H ĝ`` with ``H = ∇²_β G`` and ``ĝ = ∇G/‖∇G‖``. G is the
    surrogate's mean *prediction* on the minibatch (the predictive mean for probabilistic or
    ensemble surrogates), not the training loss.

    The op takes the gradient ``g = ∇_β G(β)`` (all parameter tensors flattened into one
    vector) and the output of a Hessian-vector-product oracle along ĝ, ``hvp = H ĝ`` (exact
    double backprop, or ``finite_difference_hvp`` as in the official code), and returns the
    penalty and the penalty's parameter gradient; ``λ`` multiplies the latter outside
    (``ignite_dual_update`` updates it).

    Forward::

        ‖g‖        = sqrt(Σ_i g_i²)                 (global norm over every parameter tensor)
        penalty    = ρ‖g‖                           (the norm, not its square)
        param_grad = ρ·hvp                          (= ρ·H ĝ = ∇_β (ρ‖∇_β G(β)‖))

    ``‖g‖`` is summed plainly, and redone scaled by the largest entry where ``‖g‖²`` would
    overflow or underflow the dtype (``row_norm``).

    Why ``param_grad`` is an output and not the VJP with respect to g. The penalty is a
    function of g, and g is itself a function of β. Pulling the penalty's cotangent back to β
    goes through ``∂g/∂β = H`` (symmetric)::

        ∂(ρ‖g‖)/∂g = ρ g/‖g‖ = ρ ĝ,       ∇_β (ρ‖g(β)‖) = Hᵀ(ρ ĝ) = ρ H ĝ

    The op receives g and H ĝ as numbers and cannot differentiate g(β) itself, so it returns
    that chain-rule result as a second output for the caller to add to the parameter gradient
    (the official trainer adds ``λ·ρ·Hĝ`` to ``∇L``), while its own backward stays the true
    derivative of its outputs with respect to its inputs.

    Backward (the op's VJP, exact; cotangents ``p̄`` of the penalty and ``Ḡ`` of param_grad).
    ``∂‖g‖/∂g_i = g_i/‖g‖``, and param_grad does not depend on g; param_grad is linear in
    hvp with slope ρ and the penalty does not depend on hvp::

        ḡ    = p̄ ρ · g/‖g‖                        (computed as ĝ first: |ĝ_i| ≤ 1, no overflow)
        hvp̄ = ρ Ḡ

    Args:
        g: ``∇_β G(β)`` (P,), the surrogate's mean-prediction gradient over all parameters,
            float32 or float64; must not be all zeros.
        hvp: ``H ĝ`` (P,), the Hessian of G applied to ``ĝ = g/‖g‖``, same dtype.
        rho: perturbation radius ρ > 0 (default 0.05: ``rho`` in every IGNITE script,
            ``scripts/IGNITE/*.py``, and the CLI default in ``design_baselines/*_IGNITE/
            experiments.py``; the fixed-λ variant IGNITE2 uses ρ = 0.2,
            ``scripts/IGNITE2/*.py``).

    Returns:
        penalty: ``ρ‖g‖``, a 0-d array in the dtype of g.
        param_grad: ``ρ·hvp`` (P,), the penalty's gradient with respect to the parameters β.

    Reference: Dao, Nguyen, Truong, Hoang, *Incorporating Surrogate Gradient Norm to Improve
    Offline Optimization Techniques*, NeurIPS 2024, arXiv:2503.04242; official code
    cuong-dm/IGNITE, ``design_baselines/gradient_ascent_IGNITE/trainers.py``
    (``MaximumLikelihood.train_step``: ``tf.linalg.global_norm`` of ``∇G``, and the update
    ``grads + lambda_*rho/r*(∇G(β + rĝ) − ∇G(β))``).

    >>> import numpy as np, refimpl
    >>> penalty, param_grad = refimpl.regularizers.gradient_norm_penalty(
    ...     np.array([3.0, 4.0]), np.array([1.0, -2.0]), rho=0.5)
    >>> float(penalty), param_grad  # 0.5·5, 0.5·hvp
    (2.5, array([ 0.5, -1. ]))
    """
    dtype = g.dtype.type
    rho_ = dtype(rho)
    norm = _global_norm(g)
    penalty = np.asarray(rho_ * norm, dtype=g.dtype)
    param_grad = rho_ * hvp
    return (penalty, param_grad), (g, norm, rho)


@gradient_norm_penalty.defvjp
def _gradient_norm_penalty_vjp(residuals, cotangents):
    g, norm, rho = residuals
    g_penalty, g_param_grad = cotangents
    dtype = g.dtype.type
    g_hat = g / norm  # the unit direction first: |ĝ_i| ≤ 1 even where 1/‖g‖ overflows
    g_g = (dtype(rho) * dtype(g_penalty)) * g_hat
    g_hvp = dtype(rho) * g_param_grad.astype(g.dtype, copy=False)
    return g_g.astype(g.dtype, copy=False), g_hvp


# -- finite_difference_hvp ----------------------------------------------------------------------
@op(
    inputs={"g_shifted": FloatArray("P"), "g": FloatArray("P"), "r": RealScalar(0, low_open=True)},
    outputs=("hvp",),
)
def finite_difference_hvp(g_shifted, g, *, r=0.05):
    r"""IGNITE's Hessian-vector product along the normalized gradient, by a forward difference
    of two gradient evaluations.

    ``gradient_norm_penalty`` needs ``H ĝ`` (H the Hessian of the surrogate's mean prediction
    G, ``ĝ = ∇G/‖∇G‖``). The official code avoids double backprop: it moves the parameters by
    r along ĝ, evaluates the gradient again, moves them back, and takes the difference
    quotient — one extra backward pass per step.

    Forward (the caller evaluates both gradients; ``‖∇G(β)‖`` as in ``_global_norm``)::

        β̂   = β + r ĝ,   ĝ = ∇G(β)/‖∇G(β)‖
        hvp = (∇G(β̂) − ∇G(β)) / r  =  H ĝ + O(r)         (Taylor: ∇G(β + rĝ) = ∇G + rHĝ + O(r²))

    The error is ``(r/2)·∇³G[ĝ, ĝ] + O(r²)``: zero for a quadratic G (exact up to rounding), and
    first order in r otherwise. The official update multiplies it by ``λρ``:
    ``grads + lambda_*rho/r*(∇G(β̂) − ∇G(β))``.

    A one-step estimate on given gradients: no VJP (it is linear, but it is not on a gradient
    path in IGNITE); the fast backends compute the same difference quotient.

    Args:
        g_shifted: ``∇G(β + r ĝ)`` (P,), the gradient at the shifted parameters, float32 or float64.
        g: ``∇G(β)`` (P,), the gradient at the current parameters, same dtype.
        r: the finite-difference step r > 0 along ĝ (default 0.05: ``r`` in every IGNITE
            script, ``scripts/IGNITE/*.py``, and the CLI default of ``--r``; IGNITE2 uses
            r = 0.2). It must be the step the caller used to build ``β̂``.

    Returns:
        hvp: ``(g_shifted − g)/r`` (P,), in the dtype of the inputs.

    Reference: arXiv:2503.04242; official code cuong-dm/IGNITE,
    ``design_baselines/gradient_ascent_IGNITE/trainers.py`` (``train_step``: ``assign_add(r*dG/
    norm)``, a second ``GradientTape``, ``assign_sub``, then ``rho/r*(dG_beta_hat − dG_beta)``).

    >>> import numpy as np, refimpl
    >>> refimpl.regularizers.finite_difference_hvp(np.array([1.5, 2.0]), np.array([1.0, 2.5]), r=0.5)
    array([ 1., -1.])
    """
    dtype = g.dtype.type
    return (g_shifted - g) / dtype(r), None


# -- ignite_dual_update -------------------------------------------------------------------------
@op(
    inputs={
        "g": FloatArray("P"),
        "lam": RealScalar(),
        "rho": RealScalar(0, low_open=True),
        "epsilon": RealScalar(0),
        "eta_lambda": RealScalar(0, low_open=True),
        "nonnegative": Flag(),
    },
    outputs=("lam_new",),
)
def ignite_dual_update(g, *, lam, rho=0.05, epsilon=0.1, eta_lambda=1e-3, nonnegative=False):
    r"""IGNITE's dual (Lagrange multiplier) step for the sharpness constraint ``ρ‖∇G‖ ≤ ε``.

    The constraint is enforced through the Lagrangian ``L + λ(ρ‖∇G‖ − ε)``: the parameters
    descend it (``gradient_norm_penalty`` gives the term ``λρHĝ``), and λ ascends it by one
    gradient step per minibatch, ``∂/∂λ = ρ‖∇G‖ − ε``: λ grows while the surrogate is sharper
    than allowed and shrinks once the constraint holds with slack.

    Forward, with ``‖∇G‖`` the global norm of the gradient measured *before* that minibatch's
    parameter update (the same g that ``gradient_norm_penalty`` received)::

        λ_new = λ + η_λ (ρ‖g‖ − ε)
        λ_new = max(0, λ + η_λ (ρ‖g‖ − ε))         (nonnegative=True: projected dual ascent)

    The official code does not clip: λ may become negative (the penalty then rewards
    sharpness), hence ``nonnegative=False`` by default. A one-step update of a scalar: no VJP,
    reference only.

    Args:
        g: ``∇_β G(β)`` (P,), float32 or float64 (g = 0 is allowed: λ decreases by ``η_λ ε``).
        lam: the current multiplier λ (required; the official scripts start from λ₀ = 0.001,
            ``scripts/IGNITE/*.py``).
        rho: perturbation radius ρ > 0 (default 0.05, ``scripts/IGNITE/*.py``).
        epsilon: the sharpness budget ε ≥ 0 (default 0.1, the value every IGNITE script passes;
            the CLI default of ``--epsilon`` is 1e-3, overridden by the scripts).
        eta_lambda: the dual step size η_λ > 0 (default 1e-3, ``--eta_lambda_`` in the scripts and the CLI).
        nonnegative: clip λ at 0 after the step (default False, as the official code).

    Returns:
        lam_new: the updated λ, a 0-d array in the dtype of g.

    Reference: arXiv:2503.04242; official code cuong-dm/IGNITE,
    ``design_baselines/gradient_ascent_IGNITE/trainers.py`` (``train_step``:
    ``new_lambda = lambda_ + eta_lambda_*(rho*norm_dG_beta_dbeta - epsilon)``, with the norm taken
    before ``apply_gradients``).

    >>> import numpy as np, refimpl
    >>> lam = refimpl.regularizers.ignite_dual_update(np.array([6.0, 8.0]), lam=0.001, rho=0.05)
    >>> round(float(lam), 10)  # 0.001 + 1e-3·(0.05·10 − 0.1) = 0.001 + 4e-4
    0.0014
    """
    dtype = g.dtype.type
    violation = dtype(rho) * _global_norm(g) - dtype(epsilon)  # ρ‖g‖ − ε, the constraint's value
    lam_new = dtype(lam) + dtype(eta_lambda) * violation
    if nonnegative:
        lam_new = np.maximum(lam_new, dtype(0))
    return np.asarray(lam_new, dtype=g.dtype), None

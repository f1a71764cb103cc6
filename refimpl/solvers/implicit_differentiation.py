"""Implicit differentiation of roots and fixed points (Efficient and Modular Implicit
Differentiation, Blondel et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, op

__all__ = ["PAPER", "implicit_fixed_point_vjp", "implicit_root_jvp", "implicit_root_vjp"]

PAPER = Paper(
    "Efficient and Modular Implicit Differentiation",
    arxiv="2105.15183",
    year=2022,
    code="google/jaxopt",
)


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _invertible(name: str, matrix: np.ndarray, what: str) -> None:
    """Refuse a matrix that is singular to working precision: σ_min <= n·eps·σ_max."""
    singular_values = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)
    largest, smallest = float(singular_values[0]), float(singular_values[-1])
    if not smallest > matrix.shape[0] * np.finfo(matrix.dtype).eps * largest:
        raise ArgumentError(
            name,
            f"{what} invertible beyond rounding (the root must be isolated: σ_min > n·eps·σ_max)",
            f"σ_min = {smallest:.3g}, σ_max = {largest:.3g}",
        )


def _check_root(arguments) -> None:
    _invertible("jac_x", _host(arguments["jac_x"]), "∂₁F(x*, θ)")


def _check_fixed_point(arguments) -> None:
    jac_x = _host(arguments["jac_x"])
    _invertible("jac_x", np.eye(jac_x.shape[0], dtype=jac_x.dtype) - jac_x, "I − ∂₁T(x*, θ)")


# -- the VJP of a root --------------------------------------------------------------------------------
@op(
    inputs={"jac_x": FloatArray("n", "n"), "jac_theta": FloatArray("n", "p"), "g_x": FloatArray("n")},
    outputs=("g_theta",),
    differentiable=("jac_x", "jac_theta", "g_x"),
    check=_check_root,
)
def implicit_root_vjp(jac_x, jac_theta, g_x):
    r"""The VJP of a root ``x*(θ)`` of ``F(x, θ) = 0`` by the implicit function theorem.

    A solver's output ``x*(θ)`` (an argmin, an equilibrium) is defined by an optimality
    condition ``F(x*, θ) = 0``, not by the solver's steps. Differentiating the condition gives
    ``∂₁F·∂x*/∂θ + ∂₂F = 0``, so ``∂x*/∂θ = −(∂₁F)⁻¹∂₂F`` at the solution, whatever solver
    found it: no unrolling, no storing of iterates. A cotangent ``x̄`` of x* pulls back through one
    linear solve with the transposed Jacobian.

    Forward (the rule), with ``A = ∂₁F(x*, θ)`` (n, n) and ``B = ∂₂F(x*, θ)`` (n, p)::

        Aᵀ u = −x̄          (a dense LU solve)
        θ̄    = Bᵀ u         = −Bᵀ A⁻ᵀ x̄  = (∂x*/∂θ)ᵀ x̄

    The Jacobians are taken as precomputed dense arrays (the conformance form). jaxopt's
    ``root_vjp`` takes ``F`` itself and needs only its VJPs in x (``u ↦ Aᵀu``) with an iterative
    solver; its default, CG on the normal equations, squares the condition number of A, while
    the LU solve here is backward stable. Both give θ̄ to the solver's accuracy. A fixed point
    ``T(x, θ) = x`` is the root of ``F = T − x`` (``implicit_fixed_point_vjp``); a KKT system is the
    root of (stationarity, primal feasibility, complementary slackness).

    Backward (the rule's own VJP, for second-order use). With ``c = θ̄̄`` the cotangent of θ̄:
    ``dθ̄ = dBᵀu + Bᵀdu`` and, from ``Aᵀu = −x̄``, ``Aᵀdu = −dx̄ − dAᵀu``. With ``w = A⁻¹Bc``,
    ``⟨c, Bᵀdu⟩ = ⟨w, Aᵀdu⟩ = −⟨w, dx̄⟩ − uᵀdA w``; so::

        Ā  = −u wᵀ,    B̄ = u cᵀ,    x̄̄ = −w,     w = A⁻¹ B c

    (one more solve, with A itself).

    Pitfalls: the rule holds where F is differentiable and A invertible (an isolated root);
    at a kink of a prox operator the result is valid only while the active set stays locally
    constant. The forward solver's tolerance bounds the accuracy of x*, hence of θ̄.

    Args:
        jac_x: ``∂₁F(x*, θ)``, (n, n), invertible (refused when singular to working
            precision), float32 or float64.
        jac_theta: ``∂₂F(x*, θ)``, (n, p), same dtype.
        g_x: the cotangent ``x̄`` of x*, (n,).

    Returns:
        g_theta: ``θ̄ = (∂x*/∂θ)ᵀ x̄``, (p,).

    Reference: Blondel, Berthet, Cuturi, Frostig, Hoyer, Llinares-López, Pedregosa, Vert,
    *Efficient and Modular Implicit Differentiation*, arXiv:2105.15183 (NeurIPS 2022),
    implicit differentiation of roots; official code google/jaxopt, ``jaxopt/_src/implicit_diff.py``
    (``root_vjp``).

    >>> import numpy as np, refimpl
    >>> # ridge: F(x, λ) = (AᵀA + λI)x − Aᵀy with AᵀA = 2I, Aᵀy = (2, 4), λ = 2: x* = (½, 1)
    >>> x_star = np.array([0.5, 1.0])
    >>> jac_x, jac_lam = 4.0 * np.eye(2), x_star[:, None]        # ∂₁F = AᵀA + λI, ∂F/∂λ = x*
    >>> refimpl.solvers.implicit_root_vjp(jac_x, jac_lam, np.array([1.0, 1.0]))  # −(½ + 1)/4
    array([-0.375])
    """
    u = np.linalg.solve(jac_x.T, -g_x)
    g_theta = jac_theta.T @ u
    return g_theta, (jac_x, jac_theta, u)


@implicit_root_vjp.defvjp
def implicit_root_vjp_backward(residuals, g_g_theta):
    jac_x, jac_theta, u = residuals
    w = np.linalg.solve(jac_x, jac_theta @ g_g_theta)
    return -np.outer(u, w), np.outer(u, g_g_theta), -w


# -- the JVP of a root --------------------------------------------------------------------------------
@op(
    inputs={"jac_x": FloatArray("n", "n"), "jac_theta": FloatArray("n", "p"), "theta_dot": FloatArray("p")},
    outputs=("x_dot",),
    differentiable=("jac_x", "jac_theta", "theta_dot"),
    check=_check_root,
)
def implicit_root_jvp(jac_x, jac_theta, theta_dot):
    r"""The JVP of a root ``x*(θ)`` of ``F(x, θ) = 0``: the tangent of x* along a tangent of θ.

    Forward-mode implicit differentiation: differentiating ``F(x*(θ), θ) = 0`` along θ̇ gives
    ``∂₁F·ẋ + ∂₂F·θ̇ = 0``, one linear solve with ∂₁F itself (the VJP solves with its transpose).

    Forward (the rule), with ``A = ∂₁F(x*, θ)`` (n, n) and ``B = ∂₂F(x*, θ)`` (n, p)::

        A ẋ = −B θ̇          (a dense LU solve),   ẋ = (∂x*/∂θ) θ̇

    Jacobians as precomputed dense arrays; jaxopt's ``root_jvp`` uses JVPs of F with an
    iterative solver (default: CG on the normal equations).

    Backward (the rule's own VJP). ``A ẋ = −Bθ̇`` gives ``dA ẋ + A dẋ = −dB θ̇ − B dθ̇``, so
    ``dẋ = −A⁻¹(dA ẋ + dB θ̇ + B dθ̇)``. For a cotangent c of ẋ, with ``w = A⁻ᵀc``::

        Ā = −w ẋᵀ,    B̄ = −w θ̇ᵀ,    θ̇̄ = −Bᵀ w

    Args:
        jac_x: ``∂₁F(x*, θ)``, (n, n), invertible, float32 or float64.
        jac_theta: ``∂₂F(x*, θ)``, (n, p), same dtype.
        theta_dot: the tangent θ̇ of θ, (p,).

    Returns:
        x_dot: ``ẋ = −(∂₁F)⁻¹∂₂F θ̇``, (n,).

    Reference: Blondel et al., arXiv:2105.15183 (forward-mode rule); official code google/jaxopt,
    ``jaxopt/_src/implicit_diff.py`` (``root_jvp``).

    >>> import numpy as np, refimpl
    >>> # the ridge of implicit_root_vjp's example: dx*/dλ = −(AᵀA + λI)⁻¹ x* = −x*/4
    >>> refimpl.solvers.implicit_root_jvp(4.0 * np.eye(2), np.array([[0.5], [1.0]]), np.array([1.0]))
    array([-0.125, -0.25 ])
    """
    x_dot = np.linalg.solve(jac_x, -(jac_theta @ theta_dot))
    return x_dot, (jac_x, jac_theta, theta_dot, x_dot)


@implicit_root_jvp.defvjp
def implicit_root_jvp_backward(residuals, g_x_dot):
    jac_x, jac_theta, theta_dot, x_dot = residuals
    w = np.linalg.solve(jac_x.T, g_x_dot)
    return -np.outer(w, x_dot), -np.outer(w, theta_dot), -(jac_theta.T @ w)


# -- the VJP of a fixed point -------------------------------------------------------------------------
@op(
    inputs={"jac_x": FloatArray("n", "n"), "jac_theta": FloatArray("n", "p"), "g_x": FloatArray("n")},
    outputs=("g_theta",),
    differentiable=("jac_x", "jac_theta", "g_x"),
    check=_check_fixed_point,
)
def implicit_fixed_point_vjp(jac_x, jac_theta, g_x):
    r"""The VJP of a fixed point ``x* = T(x*, θ)`` (a prox-gradient map, an equilibrium layer).

    A fixed point is a root of ``F(x, θ) = T(x, θ) − x``, so ``∂₁F = ∂₁T − I`` and ``∂₂F = ∂₂T``;
    the implicit function theorem gives ``∂x*/∂θ = (I − ∂₁T)⁻¹∂₂T``. The proximal-gradient map
    of the lasso, ``T(x, λ) = S_{ηλ}(x − ηAᵀ(Ax − b))``, is the classic case: on a locally constant
    support the rule reduces to a ridge-like system on the support.

    Forward (the rule), with ``J = ∂₁T(x*, θ)`` (n, n) and ``B = ∂₂T(x*, θ)`` (n, p)::

        (I − J)ᵀ u = x̄      (a dense LU solve; it is ``(∂₁F)ᵀu = −x̄``)
        θ̄ = Bᵀ u            = ((I − J)⁻¹B)ᵀ x̄ = (∂x*/∂θ)ᵀ x̄

    Backward (the rule's own VJP). With ``M = I − J``: ``dθ̄ = dBᵀu + Bᵀdu`` and
    ``Mᵀdu = dx̄ − dMᵀu = dx̄ + dJᵀu``. For a cotangent c of θ̄, with ``w = M⁻¹Bc``,
    ``⟨c, Bᵀdu⟩ = ⟨w, Mᵀdu⟩ = ⟨w, dx̄⟩ + uᵀdJ w``; so::

        J̄ = u wᵀ,    B̄ = u cᵀ,    x̄̄ = w

    Pitfalls: ``I − J`` must be invertible (a contraction T has ‖J‖ < 1 and always qualifies);
    at a kink of a prox the rule holds only on a locally constant active set.

    Args:
        jac_x: ``∂₁T(x*, θ)`` (n, n), with ``I − ∂₁T`` invertible (refused when singular to
            working precision), float32 or float64.
        jac_theta: ``∂₂T(x*, θ)`` (n, p), same dtype.
        g_x: the cotangent ``x̄`` of x*, (n,).

    Returns:
        g_theta: ``θ̄ = (∂x*/∂θ)ᵀ x̄``, (p,).

    Reference: Blondel et al., arXiv:2105.15183 (fixed points, the proximal-gradient fixed
    point); official code google/jaxopt,
    ``jaxopt/_src/implicit_diff.py`` (``custom_fixed_point``: ``T(x, θ) − x`` as the optimality
    function, then ``root_vjp``).

    >>> import numpy as np, refimpl
    >>> # T(x, θ) = x/2 + θ has x* = 2θ: ∂₁T = ½ I, ∂₂T = I, so θ̄ = 2 x̄
    >>> refimpl.solvers.implicit_fixed_point_vjp(0.5 * np.eye(2), np.eye(2), np.array([1.0, -3.0]))
    array([ 2., -6.])
    """
    identity = np.eye(jac_x.shape[0], dtype=jac_x.dtype)
    m = identity - jac_x
    u = np.linalg.solve(m.T, g_x)
    g_theta = jac_theta.T @ u
    return g_theta, (m, jac_theta, u)


@implicit_fixed_point_vjp.defvjp
def implicit_fixed_point_vjp_backward(residuals, g_g_theta):
    m, jac_theta, u = residuals
    w = np.linalg.solve(m, jac_theta @ g_g_theta)
    return np.outer(u, w), np.outer(u, g_g_theta), w

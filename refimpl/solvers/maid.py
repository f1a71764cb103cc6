"""MAID: the adaptively inexact hypergradient and its backtracking step (An adaptively inexact
first-order method for bilevel optimization with application to hyperparameter learning,
Salehi et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Function, InputError, IntScalar, Paper, RealScalar, op

__all__ = ["PAPER", "maid_backtracking_step", "maid_inexact_hypergradient"]

PAPER = Paper(
    "An adaptively inexact first-order method for bilevel optimization with application to "
    "hyperparameter learning",
    arxiv="2308.10098",
    year=2024,
    code="MohammadSadeghSalehi/MAID",
)

# official MAID.CG: at most 2000 iterations
CG_MAX_ITER = 2000


def _vector(name, value, like, iteration="", op_name="maid_inexact_hypergradient"):
    value = np.asarray(value.get() if hasattr(value, "get") else value, dtype=np.float64)
    if value.shape != like.shape or not np.all(np.isfinite(value)):
        raise InputError(
            f"{op_name}: argument {name!r}: expected a callable returning a finite real array of shape "
            f"{like.shape}, got shape {value.shape}{iteration}"
        )
    return value


def conjugate_gradient(hvp, rhs, tol, max_iter=CG_MAX_ITER):
    """CG for ``H q = rhs`` from q = 0 until ``‖r‖ ≤ tol`` (absolute) or ``max_iter`` steps, with
    float64 inner products (official ``MAID.CG``). Returns (q, iterations)."""
    q = np.zeros_like(rhs)
    r = rhs.copy()
    p = r.copy()
    rs_old = float(r @ r)
    iterations = 0
    while np.sqrt(rs_old) > tol and iterations < max_iter:
        iterations += 1
        h_p = hvp(p)
        curvature = float(p @ h_p)
        if not curvature > 0:
            raise InputError(
                f"maid_inexact_hypergradient: argument 'hessian_vector': expected a positive definite ∇²ₓₓh "
                f"(strong convexity), got pᵀHp = {curvature:.3g} at CG iteration {iterations}"
            )
        alpha = rs_old / curvature
        q = q + alpha * p
        r = r - alpha * h_p
        rs_new = float(r @ r)
        p = r + (rs_new / rs_old) * p
        rs_old = rs_new
    return q, iterations


@op(
    inputs={
        "theta": FloatArray("p"),
        "x": FloatArray("n"),
        "perturbations": FloatArray("R", 2, "n"),
        "lower_solver": Function(),
        "grad_upper": Function(),
        "hessian_vector": Function(),
        "cross_vector": Function(),
        "cross_transpose_vector": Function(),
        "epsilon": RealScalar(0, low_open=True),
        "delta": RealScalar(0, low_open=True),
        "mu": RealScalar(0, low_open=True),
        "lipschitz_b": RealScalar(0),
        "lipschitz_a_inv": RealScalar(0),
        "eta": RealScalar(0, 1, low_open=True, high_open=True),
        "tau": RealScalar(0, 1, low_open=True, high_open=True),
    },
    outputs=(
        "hypergradient",
        "x_tilde",
        "q",
        "epsilon",
        "delta",
        "error_bound",
        "lipschitz_b",
        "lipschitz_a_inv",
        "evaluations",
        "accepted",
    ),
)
def maid_inexact_hypergradient(
    theta,
    x,
    perturbations,
    lower_solver,
    grad_upper,
    hessian_vector,
    cross_vector,
    cross_transpose_vector,
    *,
    epsilon,
    delta,
    mu,
    lipschitz_b=0.0,
    lipschitz_a_inv=0.0,
    eta=1e-4,
    tau=0.5,
):
    r"""MAID's inexact hypergradient, with accuracies tightened until its error bound is small.

    Bilevel problem: ``min_θ f(θ) = g(x*(θ))``, ``x*(θ) = argmin_x h(x, θ)`` with h μ-strongly convex
    in x. The implicit function theorem gives ``∇f(θ) = −(∂²_{θx}h)ᵀ (∇²_{xx}h)⁻¹ ∇g(x*)``.
    MAID evaluates it inexactly — the lower level solved only to ``‖∇ₓh(x̃, θ)‖ ≤ ε``, the linear
    system by CG only to residual δ — and checks an a-posteriori bound ω on the error against
    the hypergradient's own size: a relative error below 1 − η keeps ``−ẑ`` a descent direction.
    Too large, and ε, δ shrink by τ and everything is recomputed.

    Computation, for each evaluation r = 0, 1, … (the official ``inexact_gradient`` loop)::

        x̃ = lower_solver(θ, x, ε)                        ‖∇ₓh(x̃, θ)‖ ≤ ε, warm start x
        q  = CG(∇²ₓₓh(x̃, θ), ∇g(x̃), δ)                   from 0, ‖r‖ ≤ δ or 2000 steps
        ẑ  = −(∂²_{θx}h(x̃, θ))ᵀ q                         (cross_vector: x-space → θ-space)
        B_x = max |∂²_{θx}h(x̃, θ) ẑ|                      (cross_transpose_vector: θ → x; a "power step")
        L_B    ← max(L_B, ‖−(∂²_{θx}h(ξ₁, θ))ᵀq − ẑ‖/‖q‖)            ξ₁ = perturbations[r, 0]
        L_A⁻¹  ← max(L_A⁻¹, ‖CG(∇²ₓₓh(ξ₂, θ), ∇g(x̃), δ) − q‖/‖∇g(x̃)‖)  ξ₂ = perturbations[r, 1]
        c = B_x/μ + L_A⁻¹·‖∇g(x̃)‖·B_x + L_B·‖∇g(x̃)‖/μ
        ω = c·ε + (B_x/μ)·δ + (L_B/μ)·ε²
        accept if ω/‖ẑ‖ ≤ 1 − η, else ε ← τε, δ ← τδ

    The Lipschitz constants of ∂²_{θx}h and of (∇²ₓₓh)⁻¹ are the official one-sample
    finite-difference estimates at a Gaussian point ξ (not divided by ‖ξ − x̃‖, as in the code),
    kept as running maxima across calls (pass the previous outputs back; initial 0). On a
    quadratic lower level both are exactly 0 and ``ω = (B_x/μ)(ε + δ)``.

    Randomness is an input: ``perturbations[r]`` holds the two N(0, I) draws of evaluation r;
    R bounds the evaluations (the official loop is unbounded and draws afresh each time). When
    the R-th evaluation still fails the test, its values come back with ``accepted = False``.

    Official-code difference (not reproduced): the official ``MAID.CG`` returns the point it
    is called at (x̃, or ξ in ``LA_inv_approx``) as q when ``‖∇g(x̃)‖ ≤ δ`` already, not a solution
    of ``∇²ₓₓh q = ∇g``. Here CG starts from q = 0, which then qualifies: ẑ = 0 fails the test
    and the accuracies are tightened. Example: h = ½x² − θx, g = ½(x − 3)², θ = 2.9, x = 0,
    ε = δ = 1, ξ = 0: the official code accepts ẑ = 2.9 (at ε = δ = 1/8, with L_A⁻¹ = 29); here
    ẑ = −0.1 = ∇f (at ε = δ = 1/16).

    Reference-only and not differentiable (a solver with callables; compared on outputs).

    Args:
        theta: (p,) upper-level parameters θ, float32 or float64 (computed in float64).
        x: (n,) the warm start of the lower-level solver (the last x̃).
        perturbations: (R, 2, n) the Gaussian draws ξ₁, ξ₂ of each evaluation.
        lower_solver: ``(θ, x, ε) -> x̃`` with ``‖∇ₓh(x̃, θ)‖ ≤ ε`` (official ``LL_solver``).
        grad_upper: ``x -> ∇g(x)`` (n,).
        hessian_vector: ``(x, θ, d) -> ∇²ₓₓh(x, θ) d`` (n,), positive definite.
        cross_vector: ``(x, θ, q) -> (∂²_{θx}h(x, θ))ᵀ q`` (p,) (official ``jacobian``).
        cross_transpose_vector: ``(x, θ, v) -> ∂²_{θx}h(x, θ) v`` (n,) (official ``jacobiantrans``).
        epsilon: the lower-level accuracy ε (official initial 0.1).
        delta: the CG accuracy δ (official initial 0.1).
        mu: the strong-convexity constant μ of h in x (a user input in the official code).
        lipschitz_b: the running L_B so far (official initial 0).
        lipschitz_a_inv: the running L_A⁻¹ so far (official initial 0).
        eta: η of the acceptance test (official 1e-4).
        tau: the accuracy shrink factor τ (official 0.5).

    Returns:
        hypergradient: (p,) ẑ. x_tilde: (n,) x̃. q: (n,) the CG solution.
        epsilon, delta: 0-d, the accuracies of the returned evaluation.
        error_bound: 0-d, ω. lipschitz_b, lipschitz_a_inv: 0-d, the updated running maxima.
        evaluations: int64 0-d, evaluations done. accepted: bool 0-d, whether ω/‖ẑ‖ ≤ 1 − η.

    Reference: Salehi, Mukherjee, Roberts, Ehrhardt, *An adaptively inexact first-order method
    for bilevel optimization with application to hyperparameter learning*, arXiv:2308.10098,
    Algorithm 2 (inexact hypergradient) and the a-posteriori bound; official code
    MohammadSadeghSalehi/MAID, ``MAID.py`` (``MAID.inexact_gradient``, ``bound``, ``LB_approx``,
    ``LA_inv_approx``, ``power_method_jac``, ``CG``; defaults in ``MAID.__init__``).

    >>> import numpy as np, refimpl
    >>> # h = ½x² − θx (μ = 1, x* = θ), g = ½(x − 3)²: ∇f(θ) = θ − 3
    >>> solver = lambda theta, x, eps: theta.copy()                         # exact
    >>> out = refimpl.solvers.maid_inexact_hypergradient(
    ...     np.array([1.0]), np.array([0.0]), np.zeros((3, 2, 1)), solver, lambda x: x - 3.0,
    ...     lambda x, t, d: d, lambda x, t, q: -q, lambda x, t, v: -v, epsilon=0.1, delta=0.1, mu=1.0)
    >>> out[0], float(out[5]), bool(out[9])     # ẑ = −2; ω = |ẑ|(ε + δ) = 0.4
    (array([-2.]), 0.4, True)
    """
    theta64, x64 = theta.astype(np.float64), x.astype(np.float64)
    dtype = theta.dtype
    epsilon, delta = float(epsilon), float(delta)
    lipschitz_b, lipschitz_a_inv = float(lipschitz_b), float(lipschitz_a_inv)
    evaluations = 0
    for r in range(perturbations.shape[0]):
        if r > 0:  # the last test failed: tighten both accuracies (official: ε ← τε, δ ← τδ)
            epsilon, delta = tau * epsilon, tau * delta
        evaluations = r + 1
        at = f" (evaluation {r})"
        x_tilde = _vector("lower_solver", lower_solver(theta64.copy(), x64.copy(), epsilon), x64, at)
        grad_g = _vector("grad_upper", grad_upper(x_tilde.copy()), x64, at)
        q, _ = conjugate_gradient(
            lambda d, point=x_tilde: _vector(
                "hessian_vector", hessian_vector(point.copy(), theta64.copy(), d), x64
            ),
            grad_g,
            delta,
        )
        z = -_vector("cross_vector", cross_vector(x_tilde.copy(), theta64.copy(), q), theta64, at)
        b_x = float(
            np.max(
                np.abs(_vector("cross_transpose_vector", cross_transpose_vector(x_tilde, theta64, z), x64))
            )
        )
        xi_b, xi_a = perturbations[r, 0].astype(np.float64), perturbations[r, 1].astype(np.float64)
        norm_q, norm_grad = float(np.linalg.norm(q)), float(np.linalg.norm(grad_g))
        if norm_q > 0:
            z_perturbed = -_vector("cross_vector", cross_vector(xi_b.copy(), theta64.copy(), q), theta64, at)
            lipschitz_b = max(lipschitz_b, float(np.linalg.norm(z_perturbed - z)) / norm_q)
        if norm_grad > 0:
            q_perturbed, _ = conjugate_gradient(
                lambda d, point=xi_a: _vector(
                    "hessian_vector", hessian_vector(point.copy(), theta64.copy(), d), x64
                ),
                grad_g,
                delta,
            )
            lipschitz_a_inv = max(lipschitz_a_inv, float(np.linalg.norm(q_perturbed - q)) / norm_grad)
        c = b_x / mu + lipschitz_a_inv * norm_grad * b_x + lipschitz_b * norm_grad / mu
        error_bound = c * epsilon + (b_x / mu) * delta + (lipschitz_b / mu) * epsilon**2
        norm_z = float(np.linalg.norm(z))
        accepted = bool(norm_z > 0 and error_bound / norm_z <= 1 - eta)
        if accepted:
            break
    outputs = (
        z.astype(dtype),
        x_tilde.astype(dtype),
        q.astype(dtype),
        *(np.asarray(v, dtype=dtype) for v in (epsilon, delta, error_bound, lipschitz_b, lipschitz_a_inv)),
        np.asarray(evaluations, dtype=np.int64),
        np.asarray(accepted),
    )
    return outputs, None


@op(
    inputs={
        "theta": FloatArray("p"),
        "x": FloatArray("n"),
        "hypergradient": FloatArray("p"),
        "lower_solver": Function(),
        "upper_objective": Function(),
        "grad_upper": Function(),
        "upper_value": RealScalar(),
        "epsilon": RealScalar(0, low_open=True),
        "delta": RealScalar(0, low_open=True),
        "beta": RealScalar(0, low_open=True),
        "lipschitz_g": RealScalar(0),
        "rho": RealScalar(0, 1, low_open=True, high_open=True),
        "eta": RealScalar(0, 1, low_open=True, high_open=True),
        "tau": RealScalar(0, 1, low_open=True, high_open=True),
        "nu": RealScalar(1),
        "max_trials": IntScalar(1),
    },
    outputs=("theta", "x", "upper_value", "step_size", "trials", "accepted", "beta", "epsilon", "delta"),
)
def maid_backtracking_step(
    theta,
    x,
    hypergradient,
    lower_solver,
    upper_objective,
    grad_upper,
    *,
    upper_value,
    epsilon,
    delta,
    beta,
    lipschitz_g,
    rho=0.9,
    eta=1e-4,
    tau=0.5,
    nu=1.05,
    max_trials=10,
):
    r"""MAID's inexact backtracking line search along ``−ẑ``, with the accuracy and step updates.

    The upper-level values are known only to the lower-level accuracy: with ``‖∇ₓh(x̃)‖ ≤ ε`` and
    μ-strong convexity, ``|g(x̃) − g(x*)|`` is bounded through ‖∇g‖ε and L_g ε²/2. The
    sufficient-decrease test is made safe by adding these errors to the new value and the old
    one: a step accepted on the inexact values also decreases the exact objective.

    Step (the official ``backtrack``, then ``main``'s updates), for i = 0, 1, …, max_trials − 1::

        θ_i = θ − βρ^i ẑ;   x_i = lower_solver(θ_i, x, ε)   (warm start x)
        accept the first i with
            g(x_i) + ‖∇g(x_i)‖ε + L_g ε²/2 − g_old + ‖∇g(x)‖ε ≤ −βρ^i · η² · ‖ẑ‖²
        (η², ``self.eta * (self.eta)`` in the code; g_old the last accepted upper value)

    on success: ``β ← (10/9)·βρ^i``, ``ε ← νε``, ``δ ← νδ`` (accuracies relaxed); on failure θ and
    x are kept, ``ε ← τε``, ``δ ← τδ`` and β is unchanged (the caller recomputes ẑ with
    ``maid_inexact_hypergradient``; the official ``main`` retries 3 times, with ``max_trials`` =
    10, 11, 12).

    Reference-only and not differentiable (a step with callables; compared on outputs).

    Args:
        theta: (p,) θ, float32 or float64 (computed in float64).
        x: (n,) the current lower-level approximation (x̃ of the hypergradient).
        hypergradient: (p,) ẑ.
        lower_solver: ``(θ, x, ε) -> x̃`` with ``‖∇ₓh(x̃, θ)‖ ≤ ε``.
        upper_objective: ``x -> g(x)``, a real number.
        grad_upper: ``x -> ∇g(x)`` (n,).
        upper_value: g_old, the last accepted (inexact) upper-level value.
        epsilon: the lower-level accuracy ε. delta: the CG accuracy δ (only updated here).
        beta: the step β (official initial 0.1).
        lipschitz_g: L_g, the Lipschitz constant of ∇g (a user input in the official code).
        rho: the step shrink ρ (official 0.9). eta: η (official 1e-4).
        tau: the accuracy shrink on failure (official 0.5). nu: the accuracy relaxation on
            success (official 1.05).
        max_trials: the most step sizes tried (official ``backtrack(..., max_iter=10)``).

    Returns:
        theta, x: the accepted point (or the inputs on failure). upper_value: g(x_i) (or g_old).
        step_size: βρ^i (0 on failure). trials: int64 0-d, step sizes tried. accepted: bool 0-d.
        beta, epsilon, delta: the updated step and accuracies.

    Reference: Salehi et al., arXiv:2308.10098, Algorithm 3 (inexact backtracking) and
    Algorithm 1 (MAID); official code MohammadSadeghSalehi/MAID, ``MAID.py`` (``MAID.backtrack``,
    ``MAID.main``; ``rho=0.9``, ``eta=1e-4``, ``tau=0.5``, ``nu=1.05``, ``beta=0.1``).

    >>> import numpy as np, refimpl
    >>> # h = ½x² − θx (x* = θ), g = ½(x − 3)²; at θ = 1 with ẑ = −2 and β = 0.1
    >>> out = refimpl.solvers.maid_backtracking_step(
    ...     np.array([1.0]), np.array([1.0]), np.array([-2.0]), lambda t, x, e: t.copy(),
    ...     lambda x: 0.5 * float((x[0] - 3.0) ** 2), lambda x: x - 3.0,
    ...     upper_value=2.0, epsilon=1e-3, delta=1e-3, beta=0.1, lipschitz_g=1.0)
    >>> out[0], float(out[2]), int(out[4]), bool(out[5])   # θ = 1.2, g = ½·1.8² = 1.62
    (array([1.2]), 1.62, 1, True)
    """
    dtype = theta.dtype
    theta64, x64, z = theta.astype(np.float64), x.astype(np.float64), hypergradient.astype(np.float64)
    norm_z_squared = float(z @ z)
    grad_old = float(
        np.linalg.norm(_vector("grad_upper", grad_upper(x64.copy()), x64, "", "maid_backtracking_step"))
    )
    for i in range(max_trials):
        step = beta * rho**i
        theta_i = theta64 - step * z
        x_i = _vector(
            "lower_solver",
            lower_solver(theta_i.copy(), x64.copy(), epsilon),
            x64,
            f" (trial {i})",
            "maid_backtracking_step",
        )
        value = float(upper_objective(x_i.copy()))
        if not np.isfinite(value):
            raise InputError(
                f"maid_backtracking_step: argument 'upper_objective': expected a finite value, got {value} "
                f"at trial {i}"
            )
        grad_new = float(
            np.linalg.norm(_vector("grad_upper", grad_upper(x_i.copy()), x64, "", "maid_backtracking_step"))
        )
        slack = value + grad_new * epsilon + lipschitz_g * epsilon**2 / 2 - upper_value + grad_old * epsilon
        if slack <= -step * eta * eta * norm_z_squared:
            outputs = (
                theta_i.astype(dtype),
                x_i.astype(dtype),
                np.asarray(value, dtype=dtype),
                np.asarray(step, dtype=dtype),
                np.asarray(i + 1, dtype=np.int64),
                np.asarray(True),
                *(np.asarray(v, dtype=dtype) for v in (step * 10 / 9, nu * epsilon, nu * delta)),
            )
            return outputs, None
    outputs = (
        theta.copy(),
        x.copy(),
        np.asarray(upper_value, dtype=dtype),
        np.asarray(0.0, dtype=dtype),
        np.asarray(max_trials, dtype=np.int64),
        np.asarray(False),
        *(np.asarray(v, dtype=dtype) for v in (beta, tau * epsilon, tau * delta)),
    )
    return outputs, None

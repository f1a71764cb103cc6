"""Convex two-layer ReLU networks: the gated-ReLU objective, FISTA on it, and the map from a convex
solution to a ReLU network (Efficient Global Optimization of Two-layer ReLU Networks, Bai et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, IntScalar, Paper, RealScalar, op, row_norm
from .prox import group_soft_threshold_values

__all__ = ["PAPER", "convex_to_relu_network", "fista_gated_relu", "gated_relu_objective"]

PAPER = Paper(
    "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and "
    "Adversarial Training",
    arxiv="2201.01965",
    year=2023,
)


def activation_patterns(X, gates):  # noqa: N803 - the paper's data matrix
    """The gate masks ``D_i = diag(1[X h_i ≥ 0])`` as an (n, P) array of 0/1 in the dtype of X."""
    return (X @ gates.T >= 0).astype(X.dtype)


def _objective_parts(X, y, U, masks, beta):  # noqa: N803
    """Residual ``r = Σ_i D_i X u_i − y``, the group norms ``‖u_i‖`` and the objective."""
    residual = ((X @ U.T) * masks).sum(axis=1) - y
    norms = row_norm(U)[:, 0]
    objective = 0.5 * (residual @ residual) + U.dtype.type(beta) * norms.sum()
    return residual, norms, objective


def _smooth_gradient(X, masks, residual):  # noqa: N803
    """``∂/∂u_i ½‖r‖² = Xᵀ D_i r``, all i at once: ``(masks ⊙ r)ᵀ X`` (P, d)."""
    return (masks * residual[:, None]).T @ X


@op(
    inputs={
        "X": FloatArray("n", "d"),
        "y": FloatArray("n"),
        "gates": FloatArray("P", "d"),
        "U": FloatArray("P", "d"),
        "beta": RealScalar(0),
    },
    outputs=("objective",),
    differentiable=("U",),
)
def gated_relu_objective(X, y, gates, U, *, beta):  # noqa: N803 - the paper's matrices
    r"""The gated-ReLU relaxation of the convex two-layer ReLU program: least squares plus group ℓ1.

    A two-layer ReLU network's training problem with weight decay equals a convex program over
    the activation patterns ``D_i = diag(1[X h ≥ 0])`` the data admits. Sampling P gate
    vectors h_i and dropping the cone constraints ``(2D_i − I) X u_i ≥ 0`` gives the gated-ReLU
    model ``Σ_i D_i X u_i`` (neuron i fires where gate i does, with its own weights u_i); its
    group-ℓ1 penalty switches whole neurons off. It is the unconstrained program that sampled
    convex programs and the quadratic-time ADMM of the paper solve.

    Forward::

        D_i  = diag(1[X h_i ≥ 0])                    (masks (n, P), computed from the gates)
        r    = Σ_i D_i X u_i − y = ((X Uᵀ) ⊙ masks)·1 − y
        L(U) = ½‖r‖² + β Σ_i ‖u_i‖₂                  (row_norm: no over/underflow of u²)

    Identical activation patterns may be passed (the objective is still a function of U; the
    optimum then splits a neuron's weight between the copies): deduplicate the gates first to
    avoid the redundancy the paper removes.

    Backward. ``∂(½‖r‖²)/∂u_i = (D_i X)ᵀ r = Xᵀ D_i r`` (the smooth part's gradient)
    and ``∂‖u_i‖/∂u_i = u_i/‖u_i‖`` for ``u_i ≠ 0``. The code computes, with ḡ the cotangent::

        Ū = ḡ · ((masks ⊙ r)ᵀ X + β U / ‖U‖_rows)

    At ``u_i = 0`` the norm has a kink; the code takes the minimum-norm subgradient 0 for the
    penalty term (the one FISTA's optimality test uses), which is why the op is differentiable
    in U almost everywhere. X, y and the gates are not differentiated (the masks are piecewise
    constant in the gates).

    Args:
        X: (n, d) data, float32 or float64.
        y: (n,) targets.
        gates: (P, d) the sampled gate vectors h_i (explicit: the sampling is the caller's).
        U: (P, d) the gated neurons u_i.
        beta: β ≥ 0, the regularization weight (required: tuned per task).

    Returns:
        objective: 0-d, ``½‖Σ_i D_i X u_i − y‖² + β Σ_i ‖u_i‖₂``, in the dtype of X.

    Reference: Bai, Gautam, Sojoudi, *Efficient Global Optimization of Two-layer ReLU Networks:
    Quadratic-time Algorithms and Adversarial Training*, arXiv:2201.01965 (SIAM J. Math. Data Sci.
    2023), Section 2 (the convex program and its gated-ReLU relaxation with sampled patterns).

    >>> import numpy as np, refimpl
    >>> X, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 2.0])
    >>> gates, U = np.array([[1.0, -1.0]]), np.array([[3.0, 4.0]])   # D = diag(1, 0): r = (3 − 1, −2)
    >>> float(refimpl.solvers.gated_relu_objective(X, y, gates, U, beta=0.5))  # ½·8 + 0.5·5
    6.5
    """
    masks = activation_patterns(X, gates)
    residual, norms, objective = _objective_parts(X, y, U, masks, beta)
    return np.asarray(objective, dtype=X.dtype), (X, U, masks, residual, norms, beta)


@gated_relu_objective.defvjp
def gated_relu_objective_backward(residuals, g_objective):
    X, U, masks, residual, norms, beta = residuals  # noqa: N806
    dtype = X.dtype
    g = dtype.type(np.asarray(g_objective))
    direction = np.where(norms[:, None] > 0, U / np.where(norms > 0, norms, 1)[:, None], 0)  # u_i/‖u_i‖
    g_u = g * (_smooth_gradient(X, masks, residual) + dtype.type(beta) * direction)
    return (g_u.astype(dtype, copy=False),)


@op(
    inputs={
        "X": FloatArray("n", "d"),
        "y": FloatArray("n"),
        "gates": FloatArray("P", "d"),
        "U0": FloatArray("P", "d"),
        "beta": RealScalar(0),
        "max_iter": IntScalar(0),
        "tol": RealScalar(0),
    },
    outputs=("U", "objectives", "gradient_mapping_norms", "iterations", "converged"),
)
def fista_gated_relu(X, y, gates, U0, *, beta, max_iter, tol):  # noqa: N803 - the paper's matrices
    r"""FISTA on the gated-ReLU objective: accelerated proximal gradient with group soft thresholding.

    The objective ``½‖Σ_i D_i X u_i − y‖² + β Σ_i ‖u_i‖`` (``gated_relu_objective``) is a
    group Lasso with design ``A = [D_1 X, …, D_P X]``: a smooth least-squares part with
    ``L``-Lipschitz gradient, ``L = ‖A‖₂²``, plus a group-ℓ1 penalty whose prox is the group soft
    threshold. FISTA (Beck & Teboulle 2009) takes gradient steps 1/L at an extrapolated point
    and converges in objective at rate O(1/k²).

    Iteration (constant step t = 1/L), from ``U_0 = Y_1 = U0``, ``θ_1 = 1``::

        G_k      = Xᵀ D_i (Σ_j D_j X y_j − y)  for each row i of Y_k     (the smooth gradient)
        U_k+1    = prox_{tβ‖·‖}(Y_k − t G_k)                             (group_soft_threshold rows)
        θ_k+1    = (1 + sqrt(1 + 4θ_k²))/2
        Y_k+1    = U_k+1 + ((θ_k − 1)/θ_k+1)(U_k+1 − U_k)
        stop when ‖U_k+1 − Y_k‖_F / t < tol                               (the gradient mapping)

    The gradient mapping ``(Y − prox(Y − t∇f(Y)))/t`` vanishes exactly at a minimizer, so its
    norm is the stopping test (the objective itself is not monotone under FISTA). The masks come
    from the inputs' dtype (as ``gated_relu_objective``); the iteration runs in float64 and the
    outputs are cast back (a float32 step 1/L over- or underflows for data scaled by 1e±20). ``L`` is the
    largest singular value of A squared, computed densely (reference-only: a whole solver on
    small problems; ``L = 0``, an all-zero design, makes U = prox of U0 with t = 1 and stops).

    Not pinned by the paper: the iteration budget and tolerance (it solves the relaxation with
    ADMM and sampled convex programs, whose solver settings are per experiment), so ``max_iter``
    and ``tol`` are required arguments. Reference-only: a whole solver, not differentiable.

    Args:
        X: (n, d) data, float32 or float64.
        y: (n,) targets.
        gates: (P, d) gate vectors h_i (masks ``1[X h_i ≥ 0]``).
        U0: (P, d) the starting point (zeros is the usual choice).
        beta: β ≥ 0, the group-ℓ1 weight (required).
        max_iter: the most iterations (required; 0 returns U0).
        tol: tolerance on the gradient-mapping norm (required).

    Returns:
        U: (P, d) the last iterate ``U_k``.
        objectives: (iterations + 1,) the objective at ``U_0, U_1, …``.
        gradient_mapping_norms: (iterations,) ``‖U_k+1 − Y_k‖_F / t`` per iteration.
        iterations: int64 0-d array, the iterations run.
        converged: bool 0-d array, whether the gradient-mapping norm fell below tol.

    Reference: Bai, Gautam, Sojoudi, arXiv:2201.01965, Section 2 (the gated-ReLU program); Beck,
    Teboulle, *A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse Problems*, SIAM
    J. Imaging Sci. 2009 (FISTA with constant step, Section 4).

    >>> import numpy as np, refimpl
    >>> X, y, gates = np.eye(2), np.array([3.0, 4.0]), np.array([[1.0, 1.0]])  # D = I: the group Lasso
    >>> U, _, _, k, ok = refimpl.solvers.fista_gated_relu(X, y, gates, np.zeros((1, 2)), beta=1.0,
    ...                                                   max_iter=100, tol=1e-12)
    >>> U.round(12), bool(ok)                               # (1 − 1/5)·(3, 4): the block shrinkage
    (array([[2.4, 3.2]]), True)
    """
    out_dtype = X.dtype
    # the solver iterates in float64 (float32 inputs are widened): a float32 step 1/L over- or
    # underflows for data scaled by 1e±20, and the gradient-mapping norm with it
    masks = activation_patterns(X, gates).astype(np.float64)
    X, y, U0 = (np.asarray(a, dtype=np.float64) for a in (X, y, U0))  # noqa: N806
    dtype = np.float64
    design = (masks[:, :, None] * X[:, None, :]).reshape(X.shape[0], -1)  # A = [D_1 X, …, D_P X]
    lipschitz = float(np.linalg.norm(design, 2) ** 2) if design.size else 0.0
    step = 1.0 / lipschitz if lipschitz > 0 else 1.0
    threshold = step * float(beta)
    u = U0.copy()
    extrapolated = U0.copy()
    theta = 1.0
    objectives = [_objective_parts(X, y, u, masks, beta)[2]]
    mapping_norms = []
    converged = False
    iterations = 0
    while iterations < max_iter:
        residual = ((X @ extrapolated.T) * masks).sum(axis=1) - y
        gradient = _smooth_gradient(X, masks, residual)
        u_next = group_soft_threshold_values(extrapolated - dtype(step) * gradient, threshold)[0]
        mapping_norm = float(np.sqrt(np.sum((u_next - extrapolated) ** 2))) / step
        theta_next = (1.0 + np.sqrt(1.0 + 4.0 * theta * theta)) / 2.0
        extrapolated = u_next + dtype((theta - 1.0) / theta_next) * (u_next - u)
        u, theta = u_next, theta_next
        iterations += 1
        objectives.append(_objective_parts(X, y, u, masks, beta)[2])
        mapping_norms.append(mapping_norm)
        if mapping_norm < tol or lipschitz == 0:
            converged = mapping_norm < tol
            break
    outputs = (
        u.astype(out_dtype),
        np.asarray(objectives, dtype=out_dtype),
        np.asarray(mapping_norms, dtype=out_dtype),
        np.asarray(iterations, dtype=np.int64),
        np.asarray(converged),
    )
    return outputs, None


@op(
    inputs={"V": FloatArray("P", "d"), "W": FloatArray("P", "d")},
    outputs=("first_layer", "second_layer"),
)
def convex_to_relu_network(V, W):  # noqa: N803 - the paper's matrices
    r"""The two-layer ReLU network of a solution (v_i, w_i) of the exact convex program.

    The convex program ``min ½‖Σ_i D_i X(v_i − w_i) − y‖² + β Σ_i (‖v_i‖ + ‖w_i‖)`` subject to
    ``(2D_i − I) X v_i ≥ 0`` and ``(2D_i − I) X w_i ≥ 0`` has, on its feasible set,
    ``D_i X v_i = relu(X v_i)``: each nonzero v_i is a ReLU neuron with a positive output weight,
    each w_i one with a negative weight. Splitting the norm evenly between the two layers,
    ``‖first‖² = ‖second‖² = ‖v_i‖``, makes the network's weight decay ``½Σ(‖w₁‖² + w₂²)`` equal
    the convex penalty ``Σ(‖v_i‖ + ‖w_i‖)`` (by AM–GM the optimal rescaling of a ReLU neuron).

    Construction (2P neurons, v-branch first)::

        first_layer[i]     = v_i / sqrt(‖v_i‖),   second_layer[i]     =  sqrt(‖v_i‖)
        first_layer[P + i] = w_i / sqrt(‖w_i‖),   second_layer[P + i] = −sqrt(‖w_i‖)
        f(x) = Σ_j second_layer[j] · relu(first_layer[j] · x)

    A zero v_i (or w_i) gives a zero neuron with weight 0 (no division by ‖0‖). Then
    ``f(X) = Σ_i relu(X v_i) − relu(X w_i)``, which equals the convex model's prediction
    ``Σ_i D_i X(v_i − w_i)`` when the cone constraints hold (tests/test_convex_to_relu_network.py).
    For a gated-ReLU solution U (no constraints) the network reproduces the convex model only
    where ``D_i X u_i = relu(X u_i)``; pass ``V = U`` and ``W = 0`` to read U as v-branch
    neurons. Reference-only: a construction, not differentiated.

    Args:
        V: (P, d) the v-branch neurons (positive output weights), float32 or float64.
        W: (P, d) the w-branch neurons (negative output weights).

    Returns:
        first_layer: (2P, d) the hidden neurons' input weights.
        second_layer: (2P,) the output weights.

    Reference: Bai, Gautam, Sojoudi, arXiv:2201.01965, Section 2 (the convex program and the
    recovery of the network from its solution, after Pilanci & Ergen 2020, Theorem 1).

    >>> import numpy as np, refimpl
    >>> first, second = refimpl.solvers.convex_to_relu_network(np.array([[3.0, 4.0]]), np.zeros((1, 2)))
    >>> first.round(6), second.round(6)                     # (3, 4)/√5 and √5; the zero neuron stays 0
    (array([[1.341641, 1.788854],
           [0.      , 0.      ]]), array([ 2.236068, -0.      ]))
    """
    neurons = np.concatenate([V, W], axis=0)
    signs = np.concatenate([np.ones(V.shape[0]), -np.ones(W.shape[0])]).astype(V.dtype)
    norms = row_norm(neurons)[:, 0]
    root = np.sqrt(norms)
    safe_root = np.where(root > 0, root, 1)
    first_layer = np.where(root[:, None] > 0, neurons / safe_root[:, None], 0).astype(V.dtype, copy=False)
    second_layer = (signs * root).astype(V.dtype, copy=False)
    return (first_layer, second_layer), None

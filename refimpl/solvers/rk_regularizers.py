"""Embedded Runge–Kutta steps and the solver-heuristic regularizers ERNODE/SRNODE (Opening the
Blackbox: Accelerating Neural Differential Equations by Regularizing Internal Solver Heuristics,
Pal et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    FloatArray,
    Function,
    OneOf,
    Paper,
    RealScalar,
    known_deviation,
    op,
)

__all__ = [
    "PAPER",
    "STABILITY_SIZE",
    "TABLEAUS",
    "rk_embedded_step",
    "solver_error_regularizer",
    "solver_stiffness_regularizer",
]

PAPER = Paper(
    "Opening the Blackbox: Accelerating Neural Differential Equations by Regularizing Internal "
    "Solver Heuristics",
    arxiv="2105.03918",
    year=2021,
    code="avik-pal/RegNeuralDE.jl",
)


def _tableau(c, a_rows, error):
    """Seven stages, FSAL (row 7 of A is b, c_7 = 1); ``error`` = b − b̂ (the embedded weights)."""
    a = np.zeros((7, 7))
    for i, row in enumerate(a_rows, start=1):
        a[i, : len(row)] = row
    return {"c": np.asarray(c, dtype=np.float64), "a": a, "error": np.asarray(error, dtype=np.float64)}


#: Butcher tableaus of the two 5(4) FSAL pairs. ``error`` holds b − b̂, the weights of the local
#: error estimate ``h Σ_i (b_i − b̂_i) k_i`` (OrdinaryDiffEq's ``btilde``).
TABLEAUS = {
    # Tsitouras, "Runge–Kutta pairs of order 5(4) satisfying only the first column simplifying
    # assumption", Comput. Math. Appl. 62 (2011) 770–775, Table 1; the digits of OrdinaryDiffEq
    # ``src/tableaus/low_order_rk_tableaus.jl`` (``Tsit5ConstantCache``: c, a, btilde)
    "tsit5": _tableau(
        [0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0],
        [
            [0.161],
            [-0.008480655492356989, 0.335480655492357],
            [2.8971530571054935, -6.359448489975075, 4.3622954328695815],
            [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
            [
                5.86145544294642,
                -12.92096931784711,
                8.159367898576159,
                -0.071584973281401,
                -0.028269050394068383,
            ],
            [
                0.09646076681806523,
                0.01,
                0.4798896504144996,
                1.379008574103742,
                -3.290069515436081,
                2.324710524099774,
            ],
        ],
        [
            -0.00178001105222577714,
            -0.0008164344596567469,
            0.007880878010261995,
            -0.1447110071732629,
            0.5823571654525552,
            -0.45808210592918697,
            1.0 / 66.0,
        ],
    ),
    # Dormand & Prince, "A family of embedded Runge–Kutta formulae", J. Comput. Appl. Math. 6
    # (1980) 19–26, Table 2 (RK5(4)7M); Hairer–Nørsett–Wanner I, Table II.5.2
    "dopri5": _tableau(
        [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0],
        [
            [1 / 5],
            [3 / 40, 9 / 40],
            [44 / 45, -56 / 15, 32 / 9],
            [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
            [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
            [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
        ],
        [
            35 / 384 - 5179 / 57600,
            0.0,
            500 / 1113 - 7571 / 16695,
            125 / 192 - 393 / 640,
            -2187 / 6784 + 92097 / 339200,
            11 / 84 - 187 / 2100,
            -1 / 40,
        ],
    ),
}

#: ``alg_stability_size`` of OrdinaryDiffEq (``src/alg_utils.jl``): the real-axis extent of the
#: stability region, the divisor of the official ``stiff_est`` regularizer.
STABILITY_SIZE = {"tsit5": 3.5068, "dopri5": 3.3066}

# paper §5 (Experiments): atol = rtol = 1.4e-8 with Tsit5 (every official ODE config)
ATOL = 1.4e-8
RTOL = 1.4e-8


def _rms(v):
    return float(np.sqrt(np.mean(np.square(v, dtype=np.float64))))


def _stiffness(difference_k, difference_u, stiffness_norm):
    """``S`` and its gradients (∂S/∂(k_7 − k_6), ∂S/∂(u − g_6)) for one step, float64."""
    a = np.asarray(difference_k, dtype=np.float64)
    b = np.asarray(difference_u, dtype=np.float64)
    if stiffness_norm == "ratio_of_norms":
        norm_a, norm_b = _rms(a), _rms(b)
        if norm_b == 0 or norm_a == 0:  # official: a zero (or NaN) estimate counts as 0
            return 0.0, np.zeros_like(a), np.zeros_like(b)
        s = norm_a / norm_b
        return s, a / (a.size * norm_a * norm_b), -s * b / (a.size * norm_b * norm_b)
    if not np.any(b):
        return 0.0, np.zeros_like(a), np.zeros_like(b)
    ratios = np.abs(a) / np.abs(b)
    top = int(np.argmax(ratios))  # ties: the first index (a subgradient)
    g_a, g_b = np.zeros_like(a), np.zeros_like(b)
    g_a.flat[top] = np.sign(a.flat[top]) / abs(b.flat[top])
    g_b.flat[top] = -ratios.flat[top] * np.sign(b.flat[top]) / abs(b.flat[top])
    return float(ratios.flat[top]), g_a, g_b


def _check_elementwise(difference_u, stiffness_norm, name):
    """``inf_elementwise`` divides by each ``(u − g_6)_i``: a zero among nonzeros is refused."""
    if stiffness_norm != "inf_elementwise":
        return
    b = np.asarray(difference_u)
    rows = b.reshape(b.shape[0], -1) if name != "y" else b.reshape(1, -1)
    for j, row in enumerate(rows):
        if np.any(row) and not np.all(row):
            raise ArgumentError(
                name,
                "u_{n+1} − g_6 with no zero entry (or all zero) for stiffness_norm='inf_elementwise'",
                f"a zero entry at step {j}",
            )


def _stages(f, y, theta, t, h, tableau):
    """Y_i = y + h Σ_{l<i} a_il k_l, k_i = f(t + c_i h, Y_i, θ), i = 1..7."""
    dtype = y.dtype.type
    c, a = tableau["c"], tableau["a"]
    arguments, slopes = [], []
    for i in range(7):
        stage = y.copy()
        for j in range(i):
            if a[i, j] != 0:
                stage = stage + dtype(h * a[i, j]) * slopes[j]
        arguments.append(stage)
        slopes.append(np.asarray(f(t + c[i] * h, stage, theta), dtype=y.dtype))
    return arguments, slopes


def _check_step(arguments) -> None:
    y = np.asarray(arguments["y"])
    try:
        k = np.asarray(arguments["f"](float(arguments["t"]), y, np.asarray(arguments["theta"])))
    except Exception as error:  # noqa: BLE001 - report what the callable raised
        raise ArgumentError("f", "f(t, y, theta) -> an array shaped like y", repr(error)) from None
    if k.shape != y.shape:
        raise ArgumentError("f", "f(t, y, theta) -> an array shaped like y", f"shape {k.shape}")


@op(
    inputs={
        "f": Function(),
        "f_vjp": Function(),
        "y": FloatArray("B", "D"),
        "theta": FloatArray("P"),
        "t": RealScalar(),
        "h": RealScalar(),
        "tableau": OneOf("tsit5", "dopri5"),
        "stiffness_norm": OneOf("ratio_of_norms", "inf_elementwise"),
    },
    outputs=("y_next", "y_hat", "error", "stiffness"),
    differentiable=("y", "theta"),
    check=_check_step,
)
def rk_embedded_step(f, f_vjp, y, theta, *, t, h, tableau="tsit5", stiffness_norm="ratio_of_norms"):
    r"""One step of an embedded explicit Runge–Kutta 5(4) pair (Tsit5 or Dormand–Prince), with
    the local error estimate and the stiffness estimate that adaptive solvers compute.

    An embedded pair evaluates seven stages and combines them twice: with weights b (order 5,
    the solution kept) and b̂ (order 4); their difference estimates the local error, which the
    step-size controller drives to the tolerance — and which ERNODE adds to the training loss,
    so that the learned dynamics are cheap to integrate (``solver_error_regularizer``). The
    stages 6 and 7 share the node c = 1, so ``‖k_7 − k_6‖/‖u_{n+1} − g_6‖`` estimates the
    dominant eigenvalue's modulus |λ| (Shampine 1977; Hairer–Wanner II, §IV.2), SRNODE's
    stiffness term (``solver_stiffness_regularizer``).

    Forward (t, h constants; the ODE state is the whole (B, D) array)::

        Y_1 = y,  Y_i = y + h Σ_{l<i} a_il k_l,  k_i = f(t + c_i h, Y_i, θ),   i = 1, …, 7
        y_next = Y_7 = y + h Σ_{i≤6} b_i k_i             (FSAL: row 7 of A is b; k_7 = f(t + h, y_next))
        error  = h Σ_{i≤7} (b_i − b̂_i) k_i               (OrdinaryDiffEq's btilde, no cancellation)
        y_hat  = y_next − error = y + h Σ b̂_i k_i          (the embedded order-4 solution)
        S      = ‖k_7 − k_6‖/‖Y_7 − Y_6‖                  (RMS norms; ``ratio_of_norms``)
              or max_i |(k_7 − k_6)_i/(Y_7 − Y_6)_i|      (``inf_elementwise``)

    S = 0 when ``Y_7 = Y_6`` (official: the estimate is then 0, not an error). The tableaus
    (``TABLEAUS``): Tsit5, Tsitouras 2011 Table 1 (OrdinaryDiffEq's digits, c_2 = 0.161, …);
    Dormand–Prince RK5(4)7M, Dormand & Prince 1980 Table 2.

    Backward: the discrete adjoint — reverse through the stages, one ``f_vjp`` per stage; the
    step size is a constant (the controller is not differentiated). With output cotangents
    ``ȳ_next, ȳ_hat, ē, S̄``: since ``y_hat = y_next − error``, ``ȳ_next ← ȳ_next + ȳ_hat`` and
    ``ē ← ē − ȳ_hat``. Then

    * error: ``k̄_i = h (b_i − b̂_i) ē``;
    * S (ratio_of_norms, ``A = k_7 − k_6``, ``U = Y_7 − Y_6``, n elements, N the RMS norm):
      ``∂S/∂A = A/(n N(A) N(U))`` and ``∂S/∂U = −S U/(n N(U)²)`` (from ∂N(v)/∂v = v/(n N(v)));
      so ``k̄_7 += S̄ ∂S/∂A``, ``k̄_6 −= S̄ ∂S/∂A``, ``Ȳ_7 += S̄ ∂S/∂U``, ``Ȳ_6 −= S̄ ∂S/∂U``
      (inf_elementwise: the same at the maximizing element i*, ``∂S/∂A_i* = sign(A_i*)/|U_i*|``,
      ``∂S/∂U_i* = −S sign(U_i*)/|U_i*|``); S = 0 gives 0;
    * ``Ȳ_7 += ȳ_next``;
    * for i = 7, …, 1 (k̄_i is complete: only later stages and the outputs read k_i):
      ``(g_Y, g_θ) = f_vjp(t + c_i h, Y_i, θ, k̄_i)``, ``Ȳ_i += g_Y``, ``θ̄ += g_θ``; then
      ``Y_i = y + h Σ_{l<i} a_il k_l`` gives ``ȳ += Ȳ_i`` and ``k̄_l += h a_il Ȳ_i``.

    Args:
        f: the right-hand side ``f(t, y, theta) -> dy/dt`` (an array shaped like y).
        f_vjp: its VJP ``f_vjp(t, y, theta, g) -> (gᵀ∂f/∂y, gᵀ∂f/∂θ)``, shaped like y and θ.
        y: (B, D) the state u_n (a batch of states is one ODE state, as OrdinaryDiffEq norms it).
        theta: (P,) the parameters of f.
        t: the time t_n.
        h: the step size (a constant; negative integrates backwards).
        tableau: "tsit5" (default: the paper's solver) or "dopri5".
        stiffness_norm: "ratio_of_norms" (default; OrdinaryDiffEq's Tsit5 ``eigen_est`` of the
            paper's time) or "inf_elementwise" (later OrdinaryDiffEq releases).

    Returns:
        y_next: (B, D) the order-5 solution u_{n+1}.
        y_hat: (B, D) the embedded order-4 solution.
        error: (B, D) the local error estimate ``y_next − y_hat`` (unscaled).
        stiffness: 0-d, the stiffness estimate S.

    Reference: Pal, Ma, Shah, Rackauckas, *Opening the Blackbox: Accelerating Neural
    Differential Equations by Regularizing Internal Solver Heuristics*, arXiv:2105.03918 (ICML
    2021), §3 (Eq. 3–5); official code avik-pal/RegNeuralDE.jl (``src/models/neural_ode.jl``:
    EEst·dt and the stiffness estimate from OrdinaryDiffEq's Tsit5). Tableaus: Tsitouras 2011;
    Dormand & Prince 1980. Stiffness estimator: Hairer & Wanner, *Solving ODEs II*, §IV.2.

    >>> import numpy as np, refimpl
    >>> f = lambda t, y, theta: theta[0] * y           # y' = θ y: exact step e^{θh} y
    >>> f_vjp = lambda t, y, theta, g: (theta[0] * g, np.array([np.sum(g * y)]))
    >>> y_next, y_hat, error, s = refimpl.solvers.rk_embedded_step(
    ...     f, f_vjp, np.ones((1, 1)), np.array([-1.0]), t=0.0, h=0.1)
    >>> bool(abs(y_next[0, 0] - np.exp(-0.1)) < 1e-8), round(float(s), 6)   # S = |λ| = 1
    (True, 1.0)
    """
    table = TABLEAUS[tableau]
    arguments, slopes = _stages(f, y, theta, t, h, table)
    dtype = y.dtype.type
    error = np.zeros_like(y)
    for i in range(7):
        if table["error"][i] != 0:
            error = error + dtype(h * table["error"][i]) * slopes[i]
    y_next = arguments[6]
    y_hat = y_next - error
    stiffness, g_a, g_b = _stiffness(slopes[6] - slopes[5], y_next - arguments[5], stiffness_norm)
    outputs = (y_next.copy(), y_hat, error, np.asarray(stiffness, dtype=y.dtype))
    return outputs, (f_vjp, theta, t, h, table, arguments, g_a, g_b)


@rk_embedded_step.defvjp
def rk_embedded_step_backward(residuals, cotangents):
    g_y_next, g_y_hat, g_error, g_stiffness = cotangents
    f_vjp, theta, t, h, table, arguments, g_a, g_b = residuals
    dtype = arguments[0].dtype
    c, a, weights = table["c"], table["a"], table["error"]
    g_y_next = np.asarray(g_y_next, dtype=np.float64) + g_y_hat
    g_error = np.asarray(g_error, dtype=np.float64) - g_y_hat
    s_bar = float(g_stiffness)
    g_slopes = [h * weights[i] * g_error for i in range(7)]
    g_stages = [np.zeros(arguments[0].shape) for _ in range(7)]
    g_slopes[6] = g_slopes[6] + s_bar * g_a
    g_slopes[5] = g_slopes[5] - s_bar * g_a
    g_stages[6] = g_stages[6] + s_bar * g_b + g_y_next
    g_stages[5] = g_stages[5] - s_bar * g_b
    g_y = np.zeros(arguments[0].shape)
    g_theta = np.zeros(theta.shape)
    for i in range(6, -1, -1):
        g_stage_y, g_stage_theta = f_vjp(t + c[i] * h, arguments[i], theta, g_slopes[i].astype(dtype))
        g_stages[i] = g_stages[i] + g_stage_y
        g_theta = g_theta + g_stage_theta
        g_y = g_y + g_stages[i]
        for j in range(i):
            if a[i, j] != 0:
                g_slopes[j] = g_slopes[j] + h * a[i, j] * g_stages[i]
    return g_y.astype(dtype), g_theta.astype(dtype)


def _check_error(arguments) -> None:
    if arguments.get("atol", ATOL) == 0 and arguments.get("rtol", RTOL) == 0:
        raise ArgumentError(
            "atol", "atol > 0 or rtol > 0 (the error is divided by atol + rtol·|u|)", "both 0"
        )
    if arguments.get("atol", ATOL) == 0:
        scale = np.maximum(np.abs(np.asarray(arguments["y"])), np.abs(np.asarray(arguments["y_next"])))
        if np.any(scale == 0):
            raise ArgumentError("y", "u_j ≠ 0 or u_{j+1} ≠ 0 everywhere when atol = 0", "both 0 at an entry")


@op(
    inputs={
        "y": FloatArray("J", "N"),
        "y_next": FloatArray("J", "N"),
        "y_hat": FloatArray("J", "N"),
        "h": FloatArray("J"),
        "atol": RealScalar(0),
        "rtol": RealScalar(0),
        "aggregate": OneOf("sum", "mean"),
    },
    outputs=("regularizer", "errors"),
    differentiable=("y", "y_next", "y_hat"),
    check=_check_error,
)
def solver_error_regularizer(y, y_next, y_hat, h, *, atol=ATOL, rtol=RTOL, aggregate="sum"):
    r"""ERNODE: the solver's scaled local error estimates, weighted by the step sizes and summed
    over the accepted steps.

    An adaptive solver accepts a step when its scaled error estimate E_j ≤ 1 and sizes the next
    step from it; dynamics with small E_j·h_j let it take few, long steps. ERNODE adds
    ``λ_E Σ_j E_j |h_j|`` to the training loss (the integral of the error-per-unit-step over the
    trajectory), which makes the learned ODE cheaper to solve.

    Forward, per accepted step j (rows; N state elements; rejected steps are not passed in)::

        e_j = u_{j+1} − û_{j+1}                                (``rk_embedded_step``'s error)
        s_j = atol + rtol·max(|u_j|, |u_{j+1}|)                (elementwise)
        E_j = ‖e_j/s_j‖_RMS = sqrt(Σ_i (e_ji/s_ji)²/N)         (OrdinaryDiffEq's EEst)
        R_E = Σ_j E_j |h_j|          (aggregate="sum": the paper, Eq. 4)
            = (1/J) Σ_j E_j |h_j|    (aggregate="mean": the official code averages the saved
                                      ``EEst * dt`` over the steps)

    Backward. ``Ē_j = ḡ_R w_j |h_j| + ḡ_{E_j}`` (w_j = 1 or 1/J). With ``q = e/s``:
    ``∂E_j/∂q_ji = q_ji/(N E_j)`` (0 when E_j = 0), so ``q̄ = Ē_j q/(N E_j)``; then
    ``ē = q̄/s`` gives ``ū_{j+1} += ē`` and ``û̄ = −ē``; ``s̄ = −q̄ q/s`` and ``m = max(|u_j|, |u_{j+1}|)``
    gives ``m̄ = rtol s̄``, sent to the larger of the two (u_j on a tie) times its sign. h is a
    constant (the controller is not differentiated).

    Args:
        y: (J, N) u_j, the state at the start of each accepted step.
        y_next: (J, N) u_{j+1}, the order-5 solution.
        y_hat: (J, N) û_{j+1}, the embedded solution.
        h: (J,) the accepted step sizes (|h_j| is used).
        atol, rtol: the tolerances (paper §5 and every official ODE experiment: 1.4e-8).
        aggregate: "sum" (the paper, default) or "mean" (official: the mean of EEst·dt).

    Returns:
        regularizer: 0-d, R_E.
        errors: (J,) E_j.

    Reference: Pal et al., arXiv:2105.03918 (ICML 2021), §3.1 Eq. (4), §5 (tolerances);
    official code avik-pal/RegNeuralDE.jl ``src/models/neural_ode.jl`` (a ``SavingCallback`` of
    ``integrator.EEst * integrator.dt``, averaged); EEst: OrdinaryDiffEq ``calculate_residuals``
    with the RMS ``internalnorm``.

    >>> import numpy as np, refimpl
    >>> y, y_next = np.ones((2, 1)), np.ones((2, 1))
    >>> y_hat = y_next - np.array([[0.5], [1.0]])       # errors 1/2, 1
    >>> r, e = refimpl.solvers.solver_error_regularizer(y, y_next, y_hat, np.array([0.5, 0.25]),
    ...                                                 atol=0.5, rtol=0.0)
    >>> float(r), e.tolist()                               # E = 1, 2: 1·0.5 + 2·0.25
    (1.0, [1.0, 2.0])
    """
    n = y.shape[1]
    larger = np.maximum(np.abs(y), np.abs(y_next))
    scale = atol + rtol * larger.astype(np.float64)
    scaled = (y_next - y_hat).astype(np.float64) / scale  # q = e/s
    errors = np.sqrt(np.sum(scaled * scaled, axis=1) / n)
    weights = np.abs(h.astype(np.float64)) / (h.shape[0] if aggregate == "mean" else 1)
    regularizer = np.sum(errors * weights)
    outputs = (np.asarray(regularizer, dtype=y.dtype), errors.astype(y.dtype))
    return outputs, (y, y_next, scale, scaled, errors, weights, rtol)


@solver_error_regularizer.defvjp
def solver_error_regularizer_backward(residuals, cotangents):
    g_regularizer, g_errors = cotangents
    y, y_next, scale, scaled, errors, weights, rtol = residuals
    n = y.shape[1]
    g_e_rows = float(g_regularizer) * weights + np.asarray(g_errors, dtype=np.float64)
    safe = np.where(errors > 0, errors, 1.0)
    g_scaled = np.where(errors > 0, g_e_rows / (n * safe), 0.0)[:, None] * scaled
    g_difference = g_scaled / scale
    g_larger = -rtol * g_scaled * scaled / scale
    first = np.abs(y) >= np.abs(y_next)  # max(|u_j|, |u_{j+1}|): u_j on a tie
    g_y = np.where(first, g_larger * np.sign(y), 0.0)
    g_y_next = g_difference + np.where(first, 0.0, g_larger * np.sign(y_next))
    dtype = y.dtype
    return g_y.astype(dtype), g_y_next.astype(dtype), (-g_difference).astype(dtype)


def _check_stiffness(arguments) -> None:
    difference = np.asarray(arguments["y_next"]) - np.asarray(arguments["g6"])
    _check_elementwise(difference, arguments.get("stiffness_norm", "ratio_of_norms"), "g6")


@op(
    inputs={
        "k6": FloatArray("J", "N"),
        "k7": FloatArray("J", "N"),
        "y_next": FloatArray("J", "N"),
        "g6": FloatArray("J", "N"),
        "h": FloatArray("J"),
        "stiffness_norm": OneOf("ratio_of_norms", "inf_elementwise"),
        "aggregate": OneOf("sum_dt", "official_max"),
        "tableau": OneOf("tsit5", "dopri5"),
    },
    outputs=("regularizer", "stiffness"),
    differentiable=("k6", "k7", "y_next", "g6"),
    check=_check_stiffness,
)
def solver_stiffness_regularizer(
    k6, k7, y_next, g6, h, *, stiffness_norm="ratio_of_norms", aggregate="sum_dt", tableau="tsit5"
):
    r"""SRNODE: the solver's stiffness estimates over the accepted steps, as a regularizer.

    Stiff dynamics force an explicit solver to tiny steps whatever the accuracy asked; the two
    last stages of an FSAL 5(4) pair share the node c = 1, so ``‖k_7 − k_6‖/‖u_{n+1} − g_6‖``
    (a difference quotient of f between two points of one time) estimates the dominant
    eigenvalue modulus |λ| of ∂f/∂u at no extra cost. SRNODE penalizes it.

    Forward, per accepted step j (``rk_embedded_step`` gives k_6 = f(g_6), k_7 = f(u_{j+1}))::

        S_j = ‖k_7 − k_6‖_RMS/‖u_{j+1} − g_6‖_RMS          (stiffness_norm="ratio_of_norms")
            = max_i |(k_7 − k_6)_i/(u_{j+1} − g_6)_i|       ("inf_elementwise")
        S_j = 0 where u_{j+1} = g_6 (official: a NaN or zero estimate counts as 0)
        R_S = Σ_j S_j |h_j|                                (aggregate="sum_dt": the paper, Eq. 5)
            = max_j S_j / s_stab                           ("official_max": ``stiff_est``)

    with ``s_stab`` = OrdinaryDiffEq's ``alg_stability_size`` (Tsit5 3.5068, DP5 3.3066;
    ``STABILITY_SIZE``), no h factor.

    Backward (rows independent). ratio_of_norms with ``A = k_7 − k_6``, ``U = u_{j+1} − g_6``, n
    elements: ``∂S/∂A = A/(n N(A) N(U))`` and ``∂S/∂U = −S U/(n N(U)²)`` (∂N(v)/∂v = v/(n N(v)));
    inf_elementwise: only the maximizing element i*, ``∂S/∂A_i* = sign(A_i*)/|U_i*|``,
    ``∂S/∂U_i* = −S sign(U_i*)/|U_i*|``; S = 0 rows give 0. ``S̄_j = ḡ_R |h_j| + ḡ_{S_j}``
    (sum_dt) or ``ḡ_R/s_stab`` at the first maximizing j only (official_max). Then
    ``k̄_7 = S̄ ∂S/∂A = −k̄_6`` and ``ū_{j+1} = S̄ ∂S/∂U = −ḡ_6``.

    Args:
        k6: (J, N) stage-6 slopes f(t + h, g_6).
        k7: (J, N) stage-7 slopes f(t + h, u_{j+1}) (FSAL).
        y_next: (J, N) u_{j+1}.
        g6: (J, N) the stage-6 arguments.
        h: (J,) the accepted step sizes (|h_j| is used).
        stiffness_norm: "ratio_of_norms" (default) or "inf_elementwise" (refuses a zero entry of
            u_{j+1} − g_6 among nonzero ones).
        aggregate: "sum_dt" (the paper, default) or "official_max".
        tableau: which pair's stability size divides in "official_max" (default "tsit5").

    Returns:
        regularizer: 0-d, R_S.
        stiffness: (J,) S_j.

    Reference: Pal et al., arXiv:2105.03918 (ICML 2021), §3.2 Eq. (5); official code
    avik-pal/RegNeuralDE.jl (``stiff_est`` experiments: ``max |eigen_est|/alg_stability_size``);
    OrdinaryDiffEq Tsit5 ``eigen_est`` and ``src/alg_utils.jl`` ``alg_stability_size``;
    Hairer & Wanner, *Solving ODEs II*, §IV.2.

    >>> import numpy as np, refimpl
    >>> u, g = np.array([[1.0, 1.0]]), np.array([[0.5, 0.5]])
    >>> r, s = refimpl.solvers.solver_stiffness_regularizer(-2 * g, -2 * u, u, g, np.array([0.1]))
    >>> round(float(r), 12), s.tolist()          # f = −2u: S = |λ| = 2, times h
    (0.2, [2.0])
    """
    difference_k = (k7 - k6).astype(np.float64)
    difference_u = (y_next - g6).astype(np.float64)
    rows = [_stiffness(a, b, stiffness_norm) for a, b in zip(difference_k, difference_u, strict=True)]
    stiffness = np.array([row[0] for row in rows])
    if aggregate == "sum_dt":
        weights = np.abs(h.astype(np.float64))
    else:
        weights = np.zeros(h.shape[0])
        weights[int(np.argmax(stiffness))] = 1.0 / STABILITY_SIZE[tableau]
    regularizer = np.sum(stiffness * weights)
    g_a = np.array([row[1] for row in rows])
    g_b = np.array([row[2] for row in rows])
    outputs = (np.asarray(regularizer, dtype=k6.dtype), stiffness.astype(k6.dtype))
    return outputs, (weights, g_a, g_b, k6.dtype)


@solver_stiffness_regularizer.defvjp
def solver_stiffness_regularizer_backward(residuals, cotangents):
    g_regularizer, g_stiffness = cotangents
    weights, g_a, g_b, dtype = residuals
    s_bar = (float(g_regularizer) * weights + np.asarray(g_stiffness, dtype=np.float64))[:, None]
    g_k7, g_y_next = s_bar * g_a, s_bar * g_b
    return (-g_k7).astype(dtype), g_k7.astype(dtype), g_y_next.astype(dtype), (-g_y_next).astype(dtype)


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    solver_error_regularizer,
    name="ernode-mean-of-eest-dt",
    source="avik-pal/RegNeuralDE.jl, src/models/neural_ode.jl (a SavingCallback of "
    "`integrator.EEst * integrator.dt` at every accepted step, then the mean of the saved values)",
    official="R_E = mean_j E_j·h_j: the per-step values are averaged over the accepted steps",
    paper="R_E = Σ_j E_j·|h_j| (Eq. 4): the sum over the accepted steps, so more steps cost more",
    example=Example(
        args=(np.ones((2, 1)), np.ones((2, 1)), np.array([[0.5], [0.0]]), np.array([0.5, 0.25])),
        kwargs={"atol": 0.5, "rtol": 0.0},
        official={"regularizer": 0.5},
        reference={"regularizer": 1.0},
        note="E = [1, 2]: the sum 1·0.5 + 2·0.25 = 1, the mean 0.5",
    ),
    flag={"aggregate": "mean"},
)

known_deviation(
    solver_stiffness_regularizer,
    name="srnode-max-over-stability-size",
    source="avik-pal/RegNeuralDE.jl, experiments (`stiff_est`: "
    "`max |eigen_est| / alg_stability_size(Tsit5())`, NaN or 0 replaced by 0)",
    official="R_S = max_j S_j / s_stab (s_stab = 3.5068 for Tsit5), no step-size factor",
    paper="R_S = Σ_j S_j·|h_j| (Eq. 5)",
    example=Example(
        args=(
            np.array([[-1.0, -1.0]]),
            np.array([[-2.0, -2.0]]),
            np.array([[1.0, 1.0]]),
            np.array([[0.5, 0.5]]),
            np.array([0.1]),
        ),
        official={"regularizer": 2.0 / 3.5068},
        reference={"regularizer": 0.2},
        note="f = −2u: S = 2; the paper weights it by h = 0.1, the official code divides by 3.5068",
    ),
    flag={"aggregate": "official_max"},
)

"""Conformance cases for `rk_embedded_step`, `solver_error_regularizer` and
`solver_stiffness_regularizer` (ERNODE / SRNODE)."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "LINEAR": "y' = A y: the step is a degree-5 polynomial of hA (checks the tableau)",
    "NEURAL": "y' = tanh(y W + b) + 0.1 sin t: a small neural ODE, θ = (W, b)",
    "DOPRI5": "the Dormand–Prince tableau",
    "NEGATIVE_STEP": "h < 0: integrating backwards",
    "ZERO_STEP": "h = 0: y_next = y_hat = y, S = 0 (u_{n+1} = g_6)",
    "INF_NORM": "stiffness_norm='inf_elementwise'",
    "MEAN": "aggregate='mean' (official ERNODE)",
    "OFFICIAL_MAX": "aggregate='official_max' (official SRNODE): only the largest S_j, / s_stab",
    "ZERO_ERROR": "E_j = 0 for a step (e = 0): no division by E_j in the backward",
    "ZERO_DENOMINATOR": "u_{j+1} = g_6 on one step: S_j = 0 (official), not NaN",
}


# ---------------------------------------------------------------- right-hand sides (callables)


def neural_field(t, y, theta):
    """y' = tanh(y W + b) + 0.1 sin t, θ = (vec W, b) with W (D, D)."""
    d = y.shape[1]
    w, b = theta[: d * d].reshape(d, d), theta[d * d :]
    return np.tanh(y @ w + b) + y.dtype.type(0.1 * math.sin(t))


def neural_field_vjp(t, y, theta, g):
    d = y.shape[1]
    w, b = theta[: d * d].reshape(d, d), theta[d * d :]
    z = np.tanh(y @ w + b)
    u = g * (1 - z * z)
    return u @ w.T, np.concatenate([(y.T @ u).ravel(), u.sum(axis=0)])


def linear_field(t, y, theta):
    """y' = y A, A = θ reshaped (D, D) (a linear ODE y' = A_θ y, row-vector form)."""
    d = y.shape[1]
    return y @ theta.reshape(d, d)


def linear_field_vjp(t, y, theta, g):
    d = y.shape[1]
    return g @ theta.reshape(d, d).T, (y.T @ g).ravel()


def _neural_theta(rng, d, scale=0.7):
    return np.concatenate(
        [(rng.standard_normal((d, d)) * scale / math.sqrt(d)).ravel(), rng.standard_normal(d) * 0.3]
    )


# ---------------------------------------------------------------- rk_embedded_step


# The stiffness estimate divides differences of nearly equal stage values: central differences
# with the default step 1e-6 lose ~1e-6 of it to rounding, and a step of 1e-4 ~1e-5 to truncation
# (its second derivatives reach ~1e2); 1e-5 keeps both below the 1e-6 tolerance.
STEP = 1e-5


def _step_random(rng, B, D):  # noqa: N803
    y = rng.standard_normal((B, D))
    kwargs = {
        "t": float(rng.uniform(0, 2)),
        "h": float(rng.choice([0.2, 0.5, 0.8, -0.3])),
        "tableau": str(rng.choice(["tsit5", "dopri5"])),
        "stiffness_norm": str(rng.choice(["ratio_of_norms", "inf_elementwise"])),
    }
    if rng.integers(0, 2):
        return Sample(
            "random",
            (neural_field, neural_field_vjp, y, _neural_theta(rng, D)),
            kwargs,
            fd_step=STEP,
            fd_rtol=_fd_rtol(kwargs),
        )
    theta = (rng.standard_normal((D, D)) - 1.5 * np.eye(D)).ravel()
    return Sample(
        "random", (linear_field, linear_field_vjp, y, theta), kwargs, fd_step=STEP, fd_rtol=_fd_rtol(kwargs)
    )


def _fd_rtol(kwargs) -> float:
    """The elementwise stiffness ratio divides by single entries of u − g₆, some of them small:
    its derivatives reach ~1e4 and central differences keep ~1e-5 of them, so those samples
    are checked to 1e-4 (the ratio of norms to the default 1e-6)."""
    return 1e-4 if kwargs["stiffness_norm"] == "inf_elementwise" else 1e-6


def _step_edges():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((2, 3))
    theta = _neural_theta(rng, 3)
    a = np.array([[-1.0, 0.5], [0.0, -3.0]])
    return [
        Sample(
            "neural ODE, Tsit5",
            (neural_field, neural_field_vjp, y, theta),
            {"t": 0.3, "h": 0.25},
            flags=("NEURAL",),
        ),
        Sample(
            "neural ODE, Dormand–Prince",
            (neural_field, neural_field_vjp, y, theta),
            {"t": 0.3, "h": 0.25, "tableau": "dopri5"},
            flags=("DOPRI5",),
        ),
        Sample(
            "linear ODE, h < 0",
            (linear_field, linear_field_vjp, y[:, :2], a.ravel()),
            {"t": 1.0, "h": -0.3},
            flags=("LINEAR", "NEGATIVE_STEP"),
        ),
        Sample(
            "linear ODE, inf_elementwise",
            (linear_field, linear_field_vjp, y[:, :2], a.ravel()),
            {"t": 0.0, "h": 0.2, "stiffness_norm": "inf_elementwise"},
            flags=("LINEAR", "INF_NORM"),
        ),
        Sample(
            "h = 0",
            (neural_field, neural_field_vjp, y, theta),
            {"t": 0.0, "h": 0.0},
            flags=("ZERO_STEP",),
            fd=False,
            comment="S jumps to 0 at h = 0 (u_{n+1} = g_6): a difference step is not smooth there",
        ),
    ]


def _step_errors():
    y = np.ones((2, 3))
    return [
        ErrorCase(
            "f returns a wrong shape",
            (lambda t, y, th: y[:, :1], linear_field_vjp, y, np.ones(9)),
            {"t": 0.0, "h": 0.1},
            match=r"'f'.*shaped like y",
        ),
    ]


def _step_known():
    f = lambda t, y, th: th[0] * y  # noqa: E731
    f_vjp = lambda t, y, th, g: (th[0] * g, np.array([np.sum(g * y)]))  # noqa: E731
    # y' = λ y with λ = −1, z = λh: y_next = R(z), the pair's stability polynomial
    z = -0.1
    taylor5 = sum(z**k / math.factorial(k) for k in range(6))
    return [
        Known(
            "y' = −y, Dormand–Prince: y_next = R(z) = Σ_{k≤5} z^k/k! + z⁶/600",
            (f, f_vjp, np.ones((1, 1)), np.array([-1.0])),
            {"t": 0.0, "h": 0.1, "tableau": "dopri5"},
            values={"y_next": [[taylor5 + z**6 / 600]], "stiffness": 1.0},
            source="by hand: DOPRI5 stability polynomial 1 + z + … + z⁵/120 + z⁶/600 "
            "(Hairer–Wanner I, IV.2); k_7 − k_6 = λ(u − g_6) gives S = |λ|",
            rtol=1e-13,
        ),
    ]


def _step_torch(torch, args, kwargs, cotangent):
    """The same stages in PyTorch for the neural field; autograd backward (the discrete adjoint)."""
    from refimpl.solvers.rk_regularizers import TABLEAUS

    _, _, y_np, theta_np = args
    table = TABLEAUS[kwargs.get("tableau", "tsit5")]
    c, a, e = table["c"], table["a"], table["error"]
    t, h = kwargs["t"], kwargs["h"]
    d = y_np.shape[1]
    y = torch.from_numpy(y_np).requires_grad_()
    theta = torch.from_numpy(theta_np).requires_grad_()
    g_y_next, g_y_hat, g_error, g_s = (torch.as_tensor(np.asarray(x)) for x in cotangent)

    def field(time, state):
        return torch.tanh(state @ theta[: d * d].reshape(d, d) + theta[d * d :]) + 0.1 * math.sin(time)

    def step():
        y.grad = theta.grad = None
        stages, slopes = [], []
        for i in range(7):
            stage = y
            for j in range(i):
                if a[i, j] != 0:
                    stage = stage + h * a[i, j] * slopes[j]
            stages.append(stage)
            slopes.append(field(t + c[i] * h, stage))
        error = sum(h * e[i] * slopes[i] for i in range(7) if e[i] != 0)
        y_next = stages[6]
        y_hat = y_next - error
        s = torch.sqrt(((slopes[6] - slopes[5]) ** 2).mean()) / torch.sqrt(((y_next - stages[5]) ** 2).mean())
        total = (y_next * g_y_next).sum() + (y_hat * g_y_hat).sum() + (error * g_error).sum() + s * g_s
        total.backward()
        return y_next, y_hat, error, s

    return step


def _step_bench(rng, rows, cols):
    d = min(cols, 64)  # W is (D, D): keep f's products moderate
    y = rng.standard_normal((rows, d))
    return Sample("bench", (neural_field, neural_field_vjp, y, _neural_theta(rng, d)), {"t": 0.1, "h": 0.1})


def _step_blas(args, kwargs):
    y, theta = args[2], args[3]
    d = y.shape[1]
    w = theta[: d * d].reshape(d, d)

    def step():  # 7 forward products y W, 7 backward u Wᵀ and yᵀ u
        out = None
        for _ in range(7):
            out = y @ w
            out = out @ w.T
            out = y.T @ out
        return out

    return step


# ---------------------------------------------------------------- solver_error_regularizer


def _trajectory(rng, J, N):  # noqa: N803
    y = rng.standard_normal((J, N))
    y_next = y + 0.1 * rng.standard_normal((J, N))
    y_hat = y_next + rng.standard_normal((J, N)) * 0.1  # e on the scale of u: differences stay accurate
    h = rng.uniform(0.05, 0.3, size=J)
    return y, y_next, y_hat, h


def _error_random(rng, J, N):  # noqa: N803
    y, y_next, y_hat, h = _trajectory(rng, J, N)
    kwargs = {
        "atol": float(rng.choice([0.1, 0.3])),
        "rtol": float(rng.choice([0.0, 1e-3, 1e-2])),
        "aggregate": str(rng.choice(["sum", "mean"])),
    }
    return Sample("random", (y, y_next, y_hat, h), kwargs)


def _error_edges():
    rng = np.random.default_rng(7)
    y, y_next, y_hat, h = _trajectory(rng, 3, 4)
    zero_error = y_hat.copy()
    zero_error[1] = y_next[1]
    return [
        Sample(
            "official defaults atol = rtol = 1.4e-8, errors ~1e-8",
            (y, y_next, y_next + rng.standard_normal((3, 4)) * 1e-8, h),
            flags=("MEAN",),
            dtypes=("float64",),
            fd=False,
            comment="u − û ~ 1e-8 is below float32's resolution of u, and below a difference step",
        ),
        Sample(
            "aggregate mean",
            (y, y_next, y_hat, h),
            {"atol": 1e-3, "rtol": 1e-3, "aggregate": "mean"},
            flags=("MEAN",),
        ),
        Sample(
            "one step with e = 0",
            (y, y_next, zero_error, h),
            {"atol": 1e-3, "rtol": 1e-3},
            flags=("ZERO_ERROR",),
            fd=False,
            comment="E_j = ‖q‖ has a kink at q = 0 (subgradient 0 taken)",
        ),
        Sample("negative steps", (y, y_next, y_hat, -h), {"atol": 1e-3, "rtol": 0.0}),
    ]


def _error_errors():
    y = np.ones((2, 2))
    zeros = np.zeros((2, 2))
    return [
        ErrorCase(
            "atol = rtol = 0", (y, y, y, np.ones(2)), {"atol": 0.0, "rtol": 0.0}, match=r"'atol'.*rtol > 0"
        ),
        ErrorCase(
            "atol = 0 and u = 0",
            (zeros, zeros, y, np.ones(2)),
            {"atol": 0.0, "rtol": 1e-3},
            match=r"'y'.*atol = 0",
        ),
    ]


def _error_known():
    y = np.array([[1.0, -2.0]])
    y_next = np.array([[3.0, -1.0]])
    y_hat = np.array([[2.0, -1.5]])
    # s = 0.5 + 0.5·[3, 2] = [2, 1.5]; q = [1/2, 1/3]; E = sqrt((1/4 + 1/9)/2) = sqrt(13/72)
    e = math.sqrt(13 / 72)
    return [
        Known(
            "one step, atol = rtol = 0.5, h = −0.2",
            (y, y_next, y_hat, np.array([-0.2])),
            {"atol": 0.5, "rtol": 0.5},
            values={"regularizer": 0.2 * e, "errors": [e]},
            source="by hand: s = atol + rtol·max(|u_j|, |u_{j+1}|), E = RMS(e/s), R = E·|h|",
            rtol=1e-13,
        ),
    ]


def _error_torch(torch, args, kwargs, cotangent):
    y, y_next, y_hat = (torch.from_numpy(a).requires_grad_() for a in args[:3])
    h = torch.from_numpy(args[3])
    atol, rtol = kwargs.get("atol", 1.4e-8), kwargs.get("rtol", 1.4e-8)
    divide = h.shape[0] if kwargs.get("aggregate", "sum") == "mean" else 1
    g_r, g_e = (torch.as_tensor(np.asarray(x)) for x in cotangent)

    def step():
        for tensor in (y, y_next, y_hat):
            tensor.grad = None
        scale = atol + rtol * torch.maximum(y.abs(), y_next.abs())
        errors = torch.sqrt((((y_next - y_hat) / scale) ** 2).mean(dim=1))
        r = (errors * h.abs()).sum() / divide
        (r * g_r + (errors * g_e).sum()).backward()
        return r, errors

    return step


def _error_bench(rng, rows, cols):
    y, y_next, y_hat, h = _trajectory(rng, rows, cols)
    return Sample("bench", (y, y_next, y_hat, h), {"atol": 1e-3, "rtol": 1e-3})


# ---------------------------------------------------------------- solver_stiffness_regularizer


def _stiff_inputs(rng, J, N):  # noqa: N803
    y_next = rng.standard_normal((J, N))
    # |u − g_6| in [0.05, 0.15]: no near-zero denominator (S would have a huge curvature there)
    g6 = y_next + 0.1 * rng.uniform(0.5, 1.5, (J, N)) * rng.choice([-1.0, 1.0], (J, N))
    k6 = rng.standard_normal((J, N))
    k7 = k6 + rng.standard_normal((J, N))
    h = rng.uniform(0.05, 0.3, size=J)
    return k6, k7, y_next, g6, h


def _stiff_random(rng, J, N):  # noqa: N803
    kwargs = {
        "stiffness_norm": str(rng.choice(["ratio_of_norms", "inf_elementwise"])),
        "aggregate": str(rng.choice(["sum_dt", "official_max"])),
        "tableau": str(rng.choice(["tsit5", "dopri5"])),
    }
    return Sample("random", _stiff_inputs(rng, J, N), kwargs)


def _stiff_edges():
    rng = np.random.default_rng(9)
    k6, k7, y_next, g6, h = _stiff_inputs(rng, 3, 4)
    equal = g6.copy()
    equal[2] = y_next[2]
    return [
        Sample(
            "official max, Tsit5",
            (k6, k7, y_next, g6, h),
            {"aggregate": "official_max"},
            flags=("OFFICIAL_MAX",),
        ),
        Sample(
            "inf_elementwise",
            (k6, k7, y_next, g6, h),
            {"stiffness_norm": "inf_elementwise"},
            flags=("INF_NORM",),
        ),
        Sample(
            "u_{j+1} = g_6 on step 3",
            (k6, k7, y_next, equal, h),
            flags=("ZERO_DENOMINATOR",),
            fd=False,
            comment="S_3 = 0 by convention: a difference step off u = g_6 jumps to ‖k_7 − k_6‖/‖δ‖",
        ),
        Sample(
            "u_{j+1} = g_6, inf_elementwise",
            (k6, k7, y_next, equal, h),
            {"stiffness_norm": "inf_elementwise"},
            flags=("ZERO_DENOMINATOR", "INF_NORM"),
            fd=False,
        ),
    ]


def _stiff_errors():
    k = np.ones((1, 2))
    return [
        ErrorCase(
            "inf_elementwise with a zero entry of u − g_6",
            (k, 2 * k, np.array([[1.0, 1.0]]), np.array([[0.5, 1.0]]), np.ones(1)),
            {"stiffness_norm": "inf_elementwise"},
            match=r"'g6'.*no zero entry",
        ),
    ]


def _stiff_known():
    k6, k7 = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[3.0, 4.0], [1.0, 3.0]])
    y_next, g6 = np.array([[1.0, 1.0], [2.0, 2.0]]), np.array([[0.0, 0.0], [1.0, 3.0]])
    h = np.array([0.5, -0.1])
    # step 1: RMS(3, 4) / RMS(1, 1) = sqrt(12.5); inf: max(3, 4) = 4
    # step 2: RMS(0, 2) / RMS(1, −1) = sqrt(2); inf: max(0, 2) = 2
    s1, s2 = math.sqrt(12.5), math.sqrt(2.0)
    args = (k6, k7, y_next, g6, h)
    return [
        Known(
            "two steps, sum_dt",
            args,
            values={"regularizer": 0.5 * s1 + 0.1 * s2, "stiffness": [s1, s2]},
            source="by hand",
            rtol=1e-13,
        ),
        Known(
            "two steps, inf_elementwise, official_max (Tsit5 3.5068)",
            args,
            {"stiffness_norm": "inf_elementwise", "aggregate": "official_max"},
            values={"regularizer": 4.0 / 3.5068, "stiffness": [4.0, 2.0]},
            source="by hand; alg_stability_size(Tsit5()) = 3.5068 (OrdinaryDiffEq alg_utils.jl)",
            rtol=1e-13,
        ),
    ]


def _stiff_torch(torch, args, kwargs, cotangent):
    k6, k7, y_next, g6 = (torch.from_numpy(a).requires_grad_() for a in args[:4])
    h = torch.from_numpy(args[4])
    g_r, g_s = (torch.as_tensor(np.asarray(x)) for x in cotangent)

    def step():
        for tensor in (k6, k7, y_next, g6):
            tensor.grad = None
        s = torch.sqrt(((k7 - k6) ** 2).mean(dim=1)) / torch.sqrt(((y_next - g6) ** 2).mean(dim=1))
        r = (s * h.abs()).sum()
        (r * g_r + (s * g_s).sum()).backward()
        return r, s

    return step


def _stiff_bench(rng, rows, cols):
    return Sample("bench", _stiff_inputs(rng, rows, cols))


register(
    OpCases(
        "rk_embedded_step",
        dims={"B": (1, 3), "D": (1, 4)},
        random=_step_random,
        edges=_step_edges,
        errors=_step_errors,
        known=_step_known,
        notes=NOTES,
        defaults={"tableau": "tsit5", "stiffness_norm": "ratio_of_norms"},
        bench=Bench(
            make=_step_bench,
            torch=_step_torch,
            torch_label="the seven stages of the neural field in PyTorch; autograd backward",
            transcendentals=lambda args, kwargs: 2 * 7 * args[2].size,  # tanh per stage, forward + VJP reuse
            blas=_step_blas,
        ),
    )
)

register(
    OpCases(
        "solver_error_regularizer",
        dims={"J": (1, 5), "N": (1, 6)},
        random=_error_random,
        edges=_error_edges,
        errors=_error_errors,
        known=_error_known,
        notes=NOTES,
        defaults={"atol": 1.4e-8, "rtol": 1.4e-8, "aggregate": "sum"},
        bench=Bench(
            make=_error_bench,
            torch=_error_torch,
            torch_label="RMS of (u − û)/(atol + rtol·max|u|) per step, Σ E_j|h_j|; autograd backward",
        ),
    )
)

register(
    OpCases(
        "solver_stiffness_regularizer",
        dims={"J": (1, 5), "N": (1, 6)},
        random=_stiff_random,
        edges=_stiff_edges,
        errors=_stiff_errors,
        known=_stiff_known,
        notes=NOTES,
        defaults={"stiffness_norm": "ratio_of_norms", "aggregate": "sum_dt", "tableau": "tsit5"},
        bench=Bench(
            make=_stiff_bench,
            torch=_stiff_torch,
            torch_label="RMS(k_7 − k_6)/RMS(u − g_6) per step, Σ S_j|h_j|; autograd backward",
        ),
    )
)

"""Conformance cases for `robust_matrix_sensing_l1_loss` and `subgm_step`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "EXACT_FIT": "some r_i = 0 exactly (integer data): sign(0) = 0, the term drops out of the sub-gradient",
    "OUTLIERS": "some measurements grossly corrupted (±1e3): the ℓ1 loss counts them, not their size",
    "NONSYMMETRIC_A": "non-symmetric A_i: the sub-gradient needs A_i + A_iᵀ, not 2A_i",
    "SMALL_INIT": "U = αB with α = 1e-4: the SubGM start",
    "ZERO_SUBGRADIENT": "every residual 0: G = 0; the normalized step takes no step (no 0/0)",
}


def _problem(rng, m, d, r, outliers=0.0, scale=1.0):
    u_star = rng.standard_normal((d, 1))
    A = rng.standard_normal((m, d, d))
    y = A.reshape(m, d * d) @ (u_star @ u_star.T).ravel()
    corrupt = rng.random(m) < outliers
    y[corrupt] += rng.choice([-1e3, 1e3], size=int(corrupt.sum()))
    U = scale * rng.standard_normal((d, r))
    return U, A, y


def _random_loss(rng, m, d, r):
    U, A, y = _problem(
        rng, m, d, r, outliers=float(rng.choice([0.0, 0.2])), scale=float(rng.choice([0.1, 1.0, 3.0]))
    )
    return Sample("random", (U, A, y))


def _exact_fit():
    # integer data: r_0 = r_2 = 0 exactly in both dtypes, r_1 = 3
    U = np.array([[1.0, 0.0], [2.0, 1.0]])
    A = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 0.0]], [[2.0, -1.0], [1.0, 0.0]]])
    X = U @ U.T
    y = np.array([(a * X).sum() for a in A]) + np.array([0.0, -3.0, 0.0])
    return U, A, y


def _edges_loss():
    rng = np.random.default_rng(5)
    return [
        Sample("exactly fitted measurements", _exact_fit(), flags=("EXACT_FIT",), fd=False),
        Sample("30% outliers ±1e3", _problem(rng, 12, 3, 2, outliers=0.3), flags=("OUTLIERS",)),
        Sample("non-symmetric A, r' > d", _problem(rng, 6, 2, 4), flags=("NONSYMMETRIC_A",)),
        Sample(
            "small initialization",
            _problem(rng, 10, 4, 3, scale=1e-4),
            flags=("SMALL_INIT",),
            fd_step=1e-6,
            comment="U ~ 1e-4 moves f = O(1) by ~1e-8: a relative step of 1e-10 drowns in rounding; f is "
            "a quadratic in U away from the kinks (every |r_i| = O(1)), so a step of 1e-6 is exact",
        ),
    ]


def _known_loss():
    U, A, y = (
        np.array([[1.0], [2.0]]),
        np.stack([np.eye(2), np.array([[0.0, 1.0], [0.0, 0.0]])]),
        np.array([4.0, 0.0]),
    )
    return [
        Known(
            "documented example",
            (U, A, y),
            values={"loss": 1.5, "cotangent of 'U'": [[2.0], [2.5]]},
            source="by hand: r = (1, 2); G = ½[(I + I)U + (A₂ + A₂ᵀ)U] = ½[(2, 4) + (2, 1)] = (2, 2.5)",
        ),
    ]


def _errors_loss():
    return [
        ErrorCase(
            "A not square",
            (np.ones((2, 1)), np.ones((3, 2, 1)), np.ones(3)),
            match="'A'",
        ),
    ]


def _bench_problem(rng, rows, cols):
    U, A, y = _problem(rng, 4096, 64, 8, outliers=0.1)
    return Sample("bench", (U, A, y))


def _loss_torch(torch, args, kwargs, cotangent):
    """r = A_flat @ vec(UUᵀ) − y, mean |r|; autograd backward (|·|' = sign, 0 at 0)."""
    U = torch.from_numpy(args[0]).requires_grad_()
    A, y = torch.from_numpy(args[1]), torch.from_numpy(args[2])
    m, d, _ = A.shape
    a_flat = A.reshape(m, d * d)
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        U.grad = None
        loss = (a_flat @ (U @ U.T).reshape(d * d) - y).abs().mean()
        loss.backward(g)
        return loss

    return step


def _blas(args, kwargs):
    U, A, y = args[:3]
    m, d, _ = A.shape
    a_flat = A.reshape(m, d * d)

    def products():
        r = a_flat @ (U @ U.T).reshape(d * d) - y
        s = (np.sign(r) @ a_flat).reshape(d, d)
        return (s + s.T) @ U

    return products


register(
    OpCases(
        "robust_matrix_sensing_l1_loss",
        dims={"m": (1, 12), "d": (1, 4), "r": (1, 3)},
        random=_random_loss,
        edges=_edges_loss,
        errors=_errors_loss,
        known=_known_loss,
        notes=NOTES,
        bench=Bench(
            make=_bench_problem,
            torch=_loss_torch,
            torch_label="A_flat @ vec(UUᵀ) − y, .abs().mean(); autograd backward",
            blas=_blas,
        ),
    )
)


def _random_step(rng, m, d, r):
    U, A, y = _problem(
        rng, m, d, r, outliers=float(rng.choice([0.0, 0.2])), scale=float(rng.choice([1e-3, 1.0]))
    )
    kwargs = {
        "eta0": float(rng.choice([0.01, 0.1, 1.0])),
        "rho": float(rng.choice([0.9, 0.99, 1.0])),
        "t": int(rng.integers(0, 50)),
        "normalization": str(rng.choice(["none", "frobenius"])),
    }
    return Sample("random", (U, A, y), kwargs)


def _edges_step():
    rng = np.random.default_rng(6)
    U, A, y = _exact_fit()
    X = U @ U.T
    fitted = np.array([(a * X).sum() for a in A])
    step = {"eta0": 0.5, "rho": 0.5, "t": 2}
    return [
        Sample("exact fit, plain step", (U, A, y), {**step, "normalization": "none"}, flags=("EXACT_FIT",)),
        Sample(
            "exact fit, normalized step",
            (U, A, y),
            {**step, "normalization": "frobenius"},
            flags=("EXACT_FIT",),
        ),
        Sample(
            "all residuals zero, normalized",
            (U, A, fitted),
            {**step, "normalization": "frobenius"},
            flags=("ZERO_SUBGRADIENT",),
        ),
        Sample(
            "small initialization, outliers",
            _problem(rng, 20, 4, 3, outliers=0.2, scale=1e-4),
            {"eta0": 0.1, "rho": 0.95, "t": 0, "normalization": "none"},
            flags=("SMALL_INIT", "OUTLIERS"),
        ),
    ]


def _known_step():
    return [
        Known(
            "documented example",
            (np.array([[1.0]]), np.ones((1, 1, 1)), np.array([4.0])),
            {"eta0": 0.5, "rho": 0.5, "t": 1, "normalization": "none"},
            values={"U_new": [[1.5]], "loss": 3.0},
            source="by hand: r = −3, G = −2, η = 0.25",
        ),
        Known(
            "normalized step",
            (np.array([[1.0]]), np.ones((1, 1, 1)), np.array([4.0])),
            {"eta0": 0.5, "rho": 0.5, "t": 1, "normalization": "frobenius"},
            values={"U_new": [[1.25]], "loss": 3.0},
            source="by hand: η = 0.25/‖G‖ = 0.125, U + 0.125·2",
        ),
    ]


def _errors_step():
    U, A, y = np.ones((2, 1)), np.ones((3, 2, 2)), np.ones(3)
    return [
        ErrorCase(
            "ρ = 0", (U, A, y), {"eta0": 1.0, "rho": 0.0, "t": 0, "normalization": "none"}, match="'rho'"
        ),
        ErrorCase(
            "no normalization given (PENDING: required)",
            (U, A, y),
            {"eta0": 1.0, "rho": 0.5, "t": 0},
            match="normalization",
        ),
    ]


def _step_torch(torch, args, kwargs, cotangent):
    """One step with autograd's sub-gradient of mean |r| (no backward of the step itself)."""
    U0 = torch.from_numpy(args[0])
    A, y = torch.from_numpy(args[1]), torch.from_numpy(args[2])
    m, d, _ = A.shape
    a_flat = A.reshape(m, d * d)
    eta = kwargs["eta0"] * kwargs["rho"] ** kwargs["t"]

    def step():
        U = U0.clone().requires_grad_()
        loss = (a_flat @ (U @ U.T).reshape(d * d) - y).abs().mean()
        (g,) = torch.autograd.grad(loss, U)
        with torch.no_grad():
            scale = eta / g.norm() if kwargs["normalization"] == "frobenius" else eta
            return U0 - scale * g, loss.detach()

    return step


register(
    OpCases(
        "subgm_step",
        dims={"m": (1, 12), "d": (1, 4), "r": (1, 3)},
        random=_random_step,
        edges=_edges_step,
        errors=_errors_step,
        known=_known_step,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench_problem,
            kwargs={"eta0": 0.1, "rho": 0.99, "t": 10, "normalization": "none"},
            torch=_step_torch,
            torch_label="autograd.grad of (A_flat @ vec(UUᵀ) − y).abs().mean(), U − η g",
            blas=_blas,
        ),
    )
)

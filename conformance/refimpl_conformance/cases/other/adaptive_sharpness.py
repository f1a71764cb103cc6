"""Conformance cases for `ellipsoid_projection`, `adaptive_sharpness_apgd` and
`adaptive_sharpness_average`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

PROJECTION_NOTES = {
    "INSIDE": "δ already inside: returned unchanged, λ = 0, no iteration",
    "BALL": "c = 1: the radial projection ρδ/‖δ‖ (up to tol)",
    "ZERO_SCALE": "c_i = 0 (a zero weight): δ_i is set to 0 and left out of the norm (no 0/0)",
    "FAR": "‖δ/c‖ = 1e6·ρ: the bracket must double many times before the bisection",
    "CAPPED": "max_iter below what tol needs: the record says not converged",
}

APGD_NOTES = {
    "QUADRATIC": "L = ½ vᵀAv + bᵀv: gradient known in closed form",
    "ZERO_GRADIENT": "w = 0 under L = ½‖v‖², δ0 = 0: g = 0, sign 0 and ‖g‖ + 1e-12: no step",
    "RANDOM_START": "a random start δ0 (the official L2 start lies outside the ball, used as given)",
    "RESTART": "restart='official': the next gradient at the best point while δ continues",
    "ADAPTIVE_L2": "adaptive L2: every step projects on the ellipsoid by bisection",
}

AVERAGE_NOTES = {
    "LINEAR": "a linear loss: S = ρ·⟨c ⊙ mean ξ, b⟩ exactly",
    "RHO_ZERO": "ρ = 0: S = 0 exactly",
}


def _ellipsoid_random(rng, P):  # noqa: N803
    c = np.abs(rng.standard_normal(P)) * float(rng.choice([0.1, 1.0, 5.0])) + 0.05
    if P > 1 and rng.integers(0, 3) == 0:
        c[int(rng.integers(0, P))] = 0.0
    delta = rng.standard_normal(P) * float(rng.choice([0.1, 1.0, 10.0]))
    rho = float(rng.choice([0.05, 0.5, 2.0]))
    return Sample(
        "random",
        (delta, c),
        {"rho": rho, "tol": float(rng.choice([1e-5, 1e-3])), "max_iter": [None, 500][int(rng.integers(2))]},
    )


def _ellipsoid_edges():
    rng = np.random.default_rng(206)
    c = np.abs(rng.standard_normal(5)) + 0.1
    return [
        Sample("inside", (0.01 * c, c), {"rho": 1.0}, flags=("INSIDE",)),
        Sample("ball", (rng.standard_normal(4) * 3, np.ones(4)), {"rho": 0.5}, flags=("BALL",)),
        Sample(
            "zero scales",
            (rng.standard_normal(5), np.array([1.0, 0.0, 2.0, 0.0, 0.5])),
            {"rho": 0.3},
            flags=("ZERO_SCALE",),
        ),
        Sample(
            "far outside",
            (1e6 * c, c),
            {"rho": 1.0},
            flags=("FAR",),
            dtypes=("float64",),
            comment="float32 cannot resolve tol = 1e-5 against norms of 1e6",
        ),
        Sample("capped", (rng.standard_normal(5) * 5, c), {"rho": 0.2, "max_iter": 3}, flags=("CAPPED",)),
    ]


def _ellipsoid_errors():
    return [
        ErrorCase(
            "negative scale", (np.ones(3), np.array([1.0, -1.0, 1.0])), {"rho": 1.0}, match="scales c_i >= 0"
        )
    ]


def _ellipsoid_known():
    return [
        Known(
            "ball of radius 1, δ = (3, 4)",
            (np.array([3.0, 4.0]), np.array([1.0, 1.0])),
            {"rho": 1.0},
            values={"projected": [0.6, 0.8]},
            source="by hand: the radial projection δ/‖δ‖ (the bisection stops within tol = 1e-5)",
            rtol=0.0,
            atol=1e-5,
        ),
        Known(
            "inside: unchanged",
            (np.array([0.1, 0.2]), np.array([1.0, 2.0])),
            {"rho": 1.0},
            values={"projected": [0.1, 0.2], "multiplier": 0.0, "iterations": 0, "converged": True},
            source="by hand: ‖δ/c‖ = √0.02 < 1",
        ),
    ]


class Quadratic:
    """L(v) = ½ vᵀAv + bᵀv and its gradient Av + b (a picklable oracle pair)."""

    def __init__(self, a, b):
        self.a, self.b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)

    def loss(self, v):
        return 0.5 * v @ self.a @ v + self.b @ v

    def grad(self, v):
        return self.a @ v + self.b


def _quadratic(rng, P):  # noqa: N803
    m = rng.standard_normal((P, P))
    return Quadratic((m + m.T) / 2 + float(rng.choice([0.0, 2.0])) * np.eye(P), rng.standard_normal(P))


def _apgd_random(rng, P):  # noqa: N803
    oracle = _quadratic(rng, P)
    w = rng.standard_normal(P)
    norm = str(rng.choice(["linf", "l2"]))
    adaptive = bool(rng.integers(0, 2))
    rho = float(rng.choice([0.01, 0.1, 0.5]))
    c = np.abs(w) if adaptive else np.ones(P)
    delta0 = None
    if rng.integers(0, 2):
        delta0 = rho * c * (rng.standard_normal(P) if norm == "l2" else rng.uniform(-1, 1, P))
    kwargs = {
        "rho": rho,
        "n_iters": int(rng.choice([5, 20, 40])),
        "norm": norm,
        "adaptive": adaptive,
        "restart": str(rng.choice(["best", "official"])),
        "step_size_mult": float(rng.choice([1.0, 0.5])),
        "min_update_ratio": float(rng.choice([0.75, 0.5])),
        "momentum": float(rng.choice([0.75, 0.5])),
    }
    return Sample("random", (w, oracle.loss, oracle.grad, delta0), kwargs)


def _apgd_edges():
    rng = np.random.default_rng(2023)
    oracle = _quadratic(rng, 4)
    w = rng.standard_normal(4)
    half_squared = Quadratic(np.eye(3), np.zeros(3))
    return [
        Sample(
            "zero gradient",
            (np.zeros(3), half_squared.loss, half_squared.grad, None),
            {"rho": 0.1, "n_iters": 10},
            flags=("ZERO_GRADIENT",),
        ),
        Sample(
            "L2 random start outside the ball",
            (w, oracle.loss, oracle.grad, 0.1 * rng.standard_normal(4)),
            {"rho": 0.1, "n_iters": 30, "norm": "l2"},
            flags=("RANDOM_START", "QUADRATIC"),
        ),
        Sample(
            "official restart",
            (w, oracle.loss, oracle.grad, None),
            {"rho": 0.3, "n_iters": 40, "norm": "linf", "restart": "official"},
            flags=("RESTART",),
        ),
        Sample(
            "adaptive L2",
            (w, oracle.loss, oracle.grad, None),
            {"rho": 0.2, "n_iters": 25, "norm": "l2", "adaptive": True},
            flags=("ADAPTIVE_L2",),
        ),
    ]


def _bad_loss(v):
    return np.ones(2)


def _apgd_errors():
    half_squared = Quadratic(np.eye(2), np.zeros(2))
    return [
        ErrorCase(
            "a loss that is not a scalar",
            (np.ones(2), _bad_loss, half_squared.grad),
            {"rho": 0.1},
            match="finite real scalar",
        ),
        ErrorCase(
            "a gradient of the wrong shape",
            (np.ones(2), half_squared.loss, _bad_loss_grad),
            {"rho": 0.1},
            match="of shape",
        ),
    ]


def _bad_loss_grad(v):
    return np.ones(3)


def _apgd_known():
    half_squared = Quadratic(np.eye(2), np.zeros(2))
    return [
        Known(
            "½‖v‖², adaptive L∞, one step",
            (np.array([1.0, -2.0]), half_squared.loss, half_squared.grad),
            {"rho": 0.1, "n_iters": 1, "adaptive": True},
            values={
                "delta": [0.075, -0.15],
                "sharpness": 0.3890625,
                "losses": [2.8890625],
                "step_sizes": [0.2],
            },
            source="by hand: η = 2ρ = 0.2, g = w, z = clip(0.2·|w| ⊙ sign(w), ±0.1|w|) = (0.1, −0.2), "
            "δ = 0.75 z + 0.25·0 = (0.075, −0.15), L = ½(1.075² + 2.15²) = 2.8890625, minus L(w) = 2.5",
            rtol=1e-14,
        ),
    ]


def _average_random(rng, P, S):  # noqa: N803
    oracle = _quadratic(rng, P)
    norm = str(rng.choice(["l2", "linf"]))
    noise = rng.standard_normal((S, P)) if norm == "l2" else rng.uniform(-1, 1, (S, P))
    kwargs = {"rho": float(rng.choice([0.0, 0.01, 0.3])), "norm": norm, "adaptive": bool(rng.integers(0, 2))}
    return Sample("random", (rng.standard_normal(P), oracle.loss, noise), kwargs)


def _average_edges():
    rng = np.random.default_rng(7)
    linear = Quadratic(np.zeros((3, 3)), np.array([1.0, -2.0, 0.5]))
    return [
        Sample(
            "linear loss",
            (rng.standard_normal(3), linear.loss, rng.standard_normal((4, 3))),
            {"rho": 0.2, "adaptive": True},
            flags=("LINEAR",),
        ),
        Sample(
            "ρ = 0",
            (rng.standard_normal(3), linear.loss, rng.standard_normal((4, 3))),
            {"rho": 0.0},
            flags=("RHO_ZERO",),
        ),
    ]


def _average_errors():
    linear = Quadratic(np.zeros((2, 2)), np.ones(2))
    return [
        ErrorCase(
            "linf draws outside [−1, 1]",
            (np.ones(2), linear.loss, np.full((3, 2), 1.5)),
            {"rho": 0.1, "norm": "linf"},
            match=r"uniform draws in \[−1, 1\]",
        ),
        ErrorCase(
            "a loss that is not a scalar",
            (np.ones(2), _bad_loss, np.zeros((3, 2))),
            {"rho": 0.1},
            match="finite real scalar",
        ),
    ]


def _average_known():
    half_squared = Quadratic(np.eye(2), np.zeros(2))
    return [
        Known(
            "½‖v‖², adaptive, δ = ±ρ|w|",
            (np.array([1.0, -2.0]), half_squared.loss, np.array([[1.0, 1.0], [-1.0, -1.0]])),
            {"rho": 0.1, "adaptive": True},
            values={"sharpness": 0.025, "losses": [2.225, 2.825]},
            source="by hand: w + ρ|w| ⊙ ξ = (1.1, −1.8) and (0.9, −2.2), L = 2.225 and 2.825, "
            "mean 2.525 − L(w) = 2.5",
            rtol=1e-12,
            atol=1e-14,
        )
    ]


register(
    OpCases(
        "ellipsoid_projection",
        dims={"P": (1, 8)},
        random=_ellipsoid_random,
        edges=_ellipsoid_edges,
        errors=_ellipsoid_errors,
        notes=PROJECTION_NOTES,
        known=_ellipsoid_known,
        defaults={"tol": 1e-5, "max_iter": None},
    )
)

register(
    OpCases(
        "adaptive_sharpness_apgd",
        dims={"P": (1, 6)},
        random=_apgd_random,
        edges=_apgd_edges,
        errors=_apgd_errors,
        notes=APGD_NOTES,
        known=_apgd_known,
        defaults={
            "delta0": None,
            "n_iters": 200,
            "norm": "linf",
            "adaptive": False,
            "step_size_mult": 1.0,
            "min_update_ratio": 0.75,
            "momentum": 0.75,
            "restart": "best",
        },
    )
)

register(
    OpCases(
        "adaptive_sharpness_average",
        dims={"P": (1, 6), "S": (1, 5)},
        random=_average_random,
        edges=_average_edges,
        errors=_average_errors,
        notes=AVERAGE_NOTES,
        known=_average_known,
        defaults={"norm": "l2", "adaptive": False},
    )
)

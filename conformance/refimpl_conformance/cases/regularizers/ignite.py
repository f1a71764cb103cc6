"""Conformance cases for `gradient_norm_penalty`, `finite_difference_hvp` and `ignite_dual_update`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "NORM_OVERFLOW": "g ~ 1e20 in float32: Σg² overflows (3.4e38), ‖g‖ = 2e20 does not",
    "NORM_UNDERFLOW": "g ~ 1e-25 in float32: Σg² underflows to 0, ‖g‖ must not be 0 (no division by 0)",
    "ONE_PARAMETER": "P = 1: ĝ = sign(g), ‖g‖ = |g|",
    "AXIS_GRADIENT": "one nonzero entry: ĝ is a unit vector, the other entries of ḡ are exactly 0",
    "QUADRATIC": "G quadratic: the forward difference is the exact HVP (no O(r) term)",
    "CANCELLATION": "g_shifted ≈ g ≈ 1e3, r = 1e-4: the difference cancels 7 digits",
    "ON_BOUNDARY": "ρ‖g‖ = ε: the constraint is tight, λ is unchanged",
    "CLIPPED": "the step drives λ below 0: official keeps it, nonnegative=True returns 0",
    "ZERO_GRADIENT": "g = 0 in the dual update: λ decreases by η_λ ε",
}


# -- gradient_norm_penalty ----------------------------------------------------------------------
def _nonzero(rng, P, scale):
    g = rng.standard_normal(P) * scale
    while not np.any(g != 0):
        g = rng.standard_normal(P) * scale
    return g


def _penalty_random(rng, P):
    g = _nonzero(rng, P, float(10 ** rng.uniform(-3, 2)))
    hvp = rng.standard_normal(P) * float(10 ** rng.uniform(-2, 1))
    return Sample("random", (g, hvp), {"rho": float(rng.choice([0.05, 0.2, 1.0, 3.0]))})


def _penalty_edges():
    rng = np.random.default_rng(230)
    g = rng.standard_normal(6)
    hvp = rng.standard_normal(6)
    return [
        Sample(
            "known value: g = (3, 4), ρ = 0.5",
            (np.array([3.0, 4.0]), np.array([1.0, -2.0])),
            {"rho": 0.5},
            comment="penalty 0.5·5 = 2.5, param_grad 0.5·hvp",
        ),
        Sample("g ~ 1e20", (g * 1e20, hvp), {"rho": 0.05}, flags=("NORM_OVERFLOW",)),
        Sample(
            "g ~ 1e-25",
            (g * 1e-25, hvp * 1e-25),
            {"rho": 0.2},
            flags=("NORM_UNDERFLOW",),
            fd_step=1e-31,
            comment="the FD step must be small beside g (ĝ turns on the scale of g); hvp at the same scale",
        ),
        Sample("P = 1, g < 0", (np.array([-2.5]), np.array([0.7])), {"rho": 0.05}, flags=("ONE_PARAMETER",)),
        Sample(
            "one nonzero entry",
            (np.array([0.0, 0.0, -3.0, 0.0]), hvp[:4]),
            {"rho": 1.0},
            flags=("AXIS_GRADIENT",),
        ),
    ]


def _penalty_errors():
    return [
        ErrorCase(
            "g = 0", (np.zeros(4), np.ones(4)), {"rho": 0.05}, match=r"'g'.*nonzero gradient.*all entries 0"
        ),
    ]


def _penalty_known():
    return [
        Known(
            "g = (3, 4), hvp = (1, −2), ρ = 0.5",
            (np.array([3.0, 4.0]), np.array([1.0, -2.0])),
            {"rho": 0.5},
            values={
                "penalty": 2.5,
                "param_grad": [0.5, -1.0],
                "cotangent of 'g'": [0.3, 0.4],
                "cotangent of 'hvp'": [0.5, 0.5],
            },
            source="by hand: ‖g‖ = 5; ḡ = ρ·g/‖g‖ = 0.5·(0.6, 0.8); hvp̄ = ρ·1",
            rtol=1e-15,
        ),
    ]


def _vector_pair(rng, rows, cols):
    """Two parameter-sized vectors (P = rows·cols: a model flattened), the sampler draws small P."""
    size = rows * cols
    return rng.standard_normal(size), rng.standard_normal(size)


def _penalty_bench_sample(rng, rows, cols):
    g, hvp = _vector_pair(rng, rows, cols)
    return Sample("bench", (g, hvp), {"rho": 0.05})


def _penalty_torch(torch, args, kwargs, cotangent):
    """ρ·torch.linalg.vector_norm(g) and ρ·hvp; autograd backward with both cotangents."""
    g = torch.from_numpy(args[0]).requires_grad_()
    hvp = torch.from_numpy(args[1]).requires_grad_()
    rho = kwargs.get("rho", 0.05)
    g_penalty, g_param_grad = (torch.as_tensor(c) for c in cotangent)

    def step():
        g.grad = hvp.grad = None
        penalty = rho * torch.linalg.vector_norm(g)
        param_grad = rho * hvp
        torch.autograd.backward([penalty, param_grad], [g_penalty, g_param_grad])
        return penalty, param_grad

    return step


register(
    OpCases(
        "gradient_norm_penalty",
        dims={"P": (1, 9)},
        random=_penalty_random,
        edges=_penalty_edges,
        errors=_penalty_errors,
        known=_penalty_known,
        notes=NOTES,
        defaults={"rho": 0.05},
        bench=Bench(
            make=_penalty_bench_sample,
            torch=_penalty_torch,
            torch_label="ρ·torch.linalg.vector_norm(g), ρ·hvp; autograd backward",
        ),
    )
)


# -- finite_difference_hvp ----------------------------------------------------------------------
def _hvp_random(rng, P):
    r = float(rng.choice([0.05, 0.2, 1e-2, 1.0]))
    g = rng.standard_normal(P) * float(10 ** rng.uniform(-2, 2))
    H = rng.standard_normal((P, P))
    g_hat = g / max(float(np.linalg.norm(g)), 1e-300)
    # ∇G(β + rĝ) for a smooth G: the linear term r·Hĝ plus a second-order remainder
    g_shifted = g + r * ((H + H.T) / 2) @ g_hat + r * r * rng.standard_normal(P)
    return Sample("random", (g_shifted, g), {"r": r})


def _hvp_edges():
    H = np.array([[2.0, -1.0, 0.0], [-1.0, 3.0, 0.5], [0.0, 0.5, 1.0]])
    beta = np.array([0.3, -1.2, 0.8])
    g = H @ beta  # G(β) = ½ βᵀHβ
    r = 0.05
    g_hat = g / np.linalg.norm(g)
    g_big = np.array([1000.0, -1000.0, 250.0])
    return [
        Sample(
            "known value: r = 0.5",
            (np.array([1.5, 2.0]), np.array([1.0, 2.5])),
            {"r": 0.5},
            comment="(0.5, −0.5)/0.5 = (1, −1)",
        ),
        Sample("quadratic G, r = 0.05", (H @ (beta + r * g_hat), g), {"r": r}, flags=("QUADRATIC",)),
        Sample(
            "g ≈ 1e3, r = 1e-4",
            (g_big + 1e-4 * np.array([0.5, 0.25, -1.0]), g_big),
            {"r": 1e-4},
            flags=("CANCELLATION",),
            dtypes=("float64",),
            comment="float32 cannot represent the 1e-4·O(1) shift of 1e3 (spacing 6e-5)",
        ),
    ]


def _hvp_known():
    return [
        Known(
            "quadratic G = ½βᵀHβ, H = diag(2, 4), β = (1, 0), r = 0.05",
            (np.array([2.1, 0.0]), np.array([2.0, 0.0])),
            {"r": 0.05},
            values={"hvp": [2.0, 0.0]},
            source="by hand: ĝ = e1, ∇G(β + 0.05·e1) = (2.1, 0): (0.1, 0)/0.05 = H e1 = (2, 0)",
            rtol=1e-14,
        ),
    ]


def _hvp_bench_sample(rng, rows, cols):
    g_shifted, g = _vector_pair(rng, rows, cols)
    return Sample("bench", (g_shifted, g), {"r": 0.05})


def _hvp_torch(torch, args, kwargs, cotangent):
    """(g_shifted − g)/r with torch tensors; forward only (no VJP)."""
    g_shifted, g = (torch.from_numpy(a) for a in args)
    r = kwargs.get("r", 0.05)

    def step():
        with torch.no_grad():
            return (g_shifted - g) / r

    return step


register(
    OpCases(
        "finite_difference_hvp",
        dims={"P": (1, 9)},
        random=_hvp_random,
        edges=_hvp_edges,
        known=_hvp_known,
        notes=NOTES,
        defaults={"r": 0.05},
        bench=Bench(
            make=_hvp_bench_sample,
            torch=_hvp_torch,
            torch_label="(g_shifted − g)/r on torch tensors, no_grad",
        ),
    )
)


# -- ignite_dual_update -------------------------------------------------------------------------
def _dual_random(rng, P):
    g = rng.standard_normal(P) * float(10 ** rng.uniform(-2, 2))
    kwargs = {
        "lam": float(rng.choice([0.001, 0.01, 0.5, -0.2])),
        "rho": float(rng.choice([0.05, 0.2])),
        "epsilon": float(rng.choice([0.1, 1e-3, 0.0])),
        "eta_lambda": float(rng.choice([1e-3, 0.1, 1.0])),
        "nonnegative": bool(rng.integers(0, 2)),
    }
    return Sample("random", (g,), kwargs)


def _dual_edges():
    return [
        Sample(
            "known value: ‖g‖ = 10, official defaults",
            (np.array([6.0, 8.0]),),
            {"lam": 0.001},
            comment="0.001 + 1e-3·(0.05·10 − 0.1) = 0.0014",
        ),
        Sample(
            "ρ‖g‖ = ε",
            (np.array([1.5, 2.0]),),
            {"lam": 0.25, "rho": 0.5, "epsilon": 1.25, "eta_lambda": 0.5},
            flags=("ON_BOUNDARY",),
            comment="0.5·2.5 − 1.25 = 0 exactly: λ stays 0.25",
        ),
        Sample(
            "λ driven negative, official",
            (np.array([0.0, 0.1]),),
            {"lam": 0.001, "eta_lambda": 0.1},
            flags=("CLIPPED",),
            comment="0.001 + 0.1·(0.005 − 0.1) = −0.0085",
        ),
        Sample(
            "λ driven negative, nonnegative=True",
            (np.array([0.0, 0.1]),),
            {"lam": 0.001, "eta_lambda": 0.1, "nonnegative": True},
            flags=("CLIPPED",),
        ),
        Sample("g = 0", (np.zeros(3),), {"lam": 0.5, "eta_lambda": 1.0}, flags=("ZERO_GRADIENT",)),
    ]


def _dual_errors():
    g = np.array([1.0, 2.0])
    return [
        ErrorCase("η_λ = 0", (g,), {"lam": 0.1, "eta_lambda": 0.0}, match=r"'eta_lambda'.*> 0"),
        ErrorCase("ε < 0", (g,), {"lam": 0.1, "epsilon": -0.1}, match=r"'epsilon'.*>= 0"),
    ]


def _dual_known():
    return [
        Known(
            "official defaults, ‖g‖ = 10, λ₀ = 0.001",
            (np.array([6.0, 8.0]),),
            {"lam": 0.001},
            values={"lam_new": 0.0014},
            source="by hand: 0.001 + 1e-3·(0.05·10 − 0.1)",
            rtol=1e-14,
        ),
        Known(
            "clipped: 0.001 + 0.1·(0.05·0.1 − 0.1) < 0",
            (np.array([0.0, 0.1]),),
            {"lam": 0.001, "eta_lambda": 0.1, "nonnegative": True},
            values={"lam_new": 0.0},
            source="by hand: max(0, −0.0085)",
        ),
    ]


register(
    OpCases(
        "ignite_dual_update",
        dims={"P": (1, 9)},
        random=_dual_random,
        edges=_dual_edges,
        errors=_dual_errors,
        known=_dual_known,
        notes=NOTES,
        defaults={"rho": 0.05, "epsilon": 0.1, "eta_lambda": 1e-3, "nonnegative": False},
    )
)

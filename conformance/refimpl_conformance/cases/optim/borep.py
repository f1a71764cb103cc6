"""Conformance cases for `borep_linear_system_step`, `borep_hypergradient` and `normalized_momentum_step`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "FIXED_POINT": "∇²_yy G z = ∇_y F: z is the solution already and must not move",
    "OLD_Z": "the HVP is an input taken at the old z: z' = z − ν(Hz − b), not z − ν(Hz') ",
    "FIRST_STEP": "m = 0: m' = (1 − β)·∇̂Φ and x moves by exactly η along ∇̂Φ/‖∇̂Φ‖ (up to ε)",
    "NEW_MOMENTUM": "the step uses the updated m' (momentum first), not the old m",
    "ZERO_MOMENTUM": "m' = 0: no direction; with ε > 0 the step is 0·(η/ε) = 0, "
    "with ε = 0 it is 0 too (not 0/0)",
    "HUGE": "|m'| ~ 1e200: ‖m'‖² overflows float64 unless the norm is scaled",
    "TINY": "|m'| ~ 1e-200: ‖m'‖² underflows to 0 unless the norm is scaled (then the step is η/ε·m')",
    "WHOLE_TENSOR_NORM": "the norm is over the whole tensor, not per row: each row moves by less than η",
    "EMPTY": "a tensor with no elements: nothing to update, no crash",
}


def _shape(rng, rank, size):
    return tuple(int(d) for d in rng.integers(1, size + 1, size=rank))


# -- the linear-system step ------------------------------------------------------------------
def _linear_random(rng, rank, size):
    shape = _shape(rng, rank, size)
    scale = float(10 ** rng.uniform(-2, 2))
    z = np.asarray(rng.standard_normal(shape) * scale)
    hvp = np.asarray(rng.standard_normal(shape) * scale)
    grad_y = np.asarray(rng.standard_normal(shape) * float(rng.choice([0.0, 1.0, scale])))
    nu = float(rng.choice([1e-2, 0.5, 10 ** rng.uniform(-4, 0)]))
    return Sample("random", (z, hvp, grad_y), {"nu": nu})


def _quadratic_step(rng, dim, nu):
    """z, Hz and b for a random SPD H (eigenvalues in [0.5, 4])."""
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    hessian = (q * rng.uniform(0.5, 4.0, size=dim)) @ q.T
    z = rng.standard_normal(dim)
    return (z, hessian @ z, rng.standard_normal(dim)), {"nu": nu}


def _linear_edges():
    rng = np.random.default_rng(124)
    z = rng.standard_normal(5)
    quadratic_args, quadratic_kwargs = _quadratic_step(rng, 6, 0.4)
    return [
        Sample(
            "fixed point: Hz = b",
            (z, z * 3.0, z * 3.0),
            {"nu": 0.1},
            flags=("FIXED_POINT",),
            comment="r = 0 exactly: z' = z",
        ),
        Sample(
            "known value",
            (np.array([1.0, -2.0]), np.array([2.0, -1.0]), np.array([1.0, 1.0])),
            {"nu": 0.5},
            flags=("OLD_Z",),
            comment="H = diag(2, 0.5): z' = [1 − 0.5·1, −2 − 0.5·(−2)] = [0.5, −1]",
        ),
        Sample("SPD quadratic, 6 dims", quadratic_args, quadratic_kwargs, flags=("OLD_Z",)),
        Sample("scalar state", (np.array(0.75), np.array(1.5), np.array(-0.25)), {"nu": 0.2}),
        Sample(
            "empty state",
            (np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2))),
            {"nu": 0.1},
            flags=("EMPTY",),
        ),
    ]


def _linear_bench_sample(rng, rows, cols):
    shape = (rows, cols)
    return Sample("bench", tuple(rng.standard_normal(shape) for _ in range(3)), {"nu": 1e-2})


def _linear_torch(torch, args, kwargs, cotangent):
    """The official in-place update written functionally: z − ν(Hz − ∇_y F)."""
    z, hvp, grad_y = (torch.from_numpy(a) for a in args)
    nu = kwargs["nu"]

    def step():
        with torch.no_grad():
            return z - nu * (hvp - grad_y)

    return step


register(
    OpCases(
        "borep_linear_system_step",
        dims={"rank": (0, 3), "size": (1, 6)},
        random=_linear_random,
        edges=_linear_edges,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_linear_bench_sample,
            torch=_linear_torch,
            torch_label="z − ν·(hvp − ∇_y F) with torch ops "
            "(the official z_params -= nu·(jacob − Fy), no in-place)",
        ),
    )
)


# -- the hypergradient -----------------------------------------------------------------------
def _hyper_random(rng, rank, size):
    shape = _shape(rng, rank, size)
    scale = float(10 ** rng.uniform(-2, 2))
    grad_x = np.asarray(rng.standard_normal(shape) * float(rng.choice([0.0, 1.0, scale])))
    return Sample("random", (grad_x, np.asarray(rng.standard_normal(shape) * scale)))


def _hyper_edges():
    return [
        Sample(
            "known value",
            (np.array([1.0, 0.5]), np.array([0.25, -0.5])),
            comment="[1 − 0.25, 0.5 + 0.5] = [0.75, 1]",
        ),
        Sample(
            "∇_x F = 0 (the official hyperparameter task)",
            (np.zeros(3), np.array([0.5, -2.0, 3.0])),
            comment="∇̂Φ = −∇²_xy G z",
        ),
        Sample("scalar hyperparameter", (np.array(0.0), np.array(-1.25)), comment="official x: one number"),
        Sample("empty", (np.zeros((2, 0)), np.zeros((2, 0))), flags=("EMPTY",)),
    ]


def _hyper_torch(torch, args, kwargs, cotangent):
    """∇_x F − ∇²_xy G z with torch ops (the official code gets −∇²_xy G z from autograd)."""
    grad_x, hvp_xy = (torch.from_numpy(a) for a in args)

    def step():
        with torch.no_grad():
            return grad_x - hvp_xy

    return step


register(
    OpCases(
        "borep_hypergradient",
        dims={"rank": (0, 3), "size": (1, 6)},
        random=_hyper_random,
        edges=_hyper_edges,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=lambda rng, rows, cols: Sample(
                "bench", (rng.standard_normal((rows, cols)), rng.standard_normal((rows, cols)))
            ),
            torch=_hyper_torch,
            torch_label="grad_x_f − hvp_xy (torch subtraction)",
        ),
    )
)


# -- the normalized momentum step ------------------------------------------------------------
def _normalized_random(rng, rank, size):
    shape = _shape(rng, rank, size)
    scale = float(10 ** rng.uniform(-3, 2))
    params = np.asarray(rng.standard_normal(shape) * float(rng.choice([0.02, 1.0, 5.0])))
    hyper = np.asarray(rng.standard_normal(shape) * scale)
    momentum = np.asarray(rng.standard_normal(shape) * scale * float(rng.choice([0.0, 1.0])))
    kwargs = {
        "lr": float(rng.choice([1e-4, 1e-2, 10 ** rng.uniform(-5, 0)])),
        "beta": float(rng.choice([0.9, 0.0, 0.99, rng.uniform(0, 0.999)])),
        "eps": float(rng.choice([1e-10, 0.0, 1e-3])),
    }
    return Sample("random", (params, hyper, momentum), kwargs)


def _normalized_edges():
    rng = np.random.default_rng(7)
    big = rng.standard_normal((3, 4))
    return [
        Sample(
            "first step from m = 0",
            (np.array([1.0, 2.0]), np.array([3.0, -4.0]), np.zeros(2)),
            {"lr": 0.5, "eps": 0.0},
            flags=("FIRST_STEP",),
            comment="m' = [0.3, −0.4], ‖m'‖ = 0.5: x' = [1 − 0.3, 2 + 0.4] = [0.7, 2.4]",
        ),
        Sample(
            "the step uses the new momentum",
            (np.zeros(2), np.array([0.0, 10.0]), np.array([1.0, 0.0])),
            {"lr": 1.0, "beta": 0.5, "eps": 0.0},
            flags=("NEW_MOMENTUM",),
            comment="m' = [0.5, 5]: x' = −m'/‖m'‖, not −[1, 0]",
        ),
        Sample(
            "m' = 0 with the guard",
            (np.array([1.0, -1.0, 2.0]), np.zeros(3), np.zeros(3)),
            {"lr": 0.1},
            flags=("ZERO_MOMENTUM",),
        ),
        Sample(
            "m' = 0 without the guard",
            (np.array([1.0, -1.0]), np.zeros(2), np.zeros(2)),
            {"lr": 0.1, "eps": 0.0},
            flags=("ZERO_MOMENTUM",),
        ),
        Sample(
            "huge momentum",
            (rng.standard_normal(5), rng.standard_normal(5) * 1e200, rng.standard_normal(5) * 1e200),
            {"lr": 0.01},
            flags=("HUGE",),
            dtypes=("float64",),
        ),
        Sample(
            "tiny momentum",
            (rng.standard_normal(5), rng.standard_normal(5) * 1e-200, rng.standard_normal(5) * 1e-200),
            {"lr": 0.01, "eps": 0.0},
            flags=("TINY",),
            dtypes=("float64",),
        ),
        Sample(
            "matrix: one norm over the tensor",
            (big, rng.standard_normal((3, 4)), rng.standard_normal((3, 4))),
            {"lr": 0.2, "beta": 0.9},
            flags=("WHOLE_TENSOR_NORM",),
        ),
        Sample("scalar parameter", (np.array(0.5), np.array(-2.0), np.array(0.1)), {"lr": 0.03}),
        Sample(
            "empty parameter tensor",
            (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3))),
            {"lr": 0.1},
            flags=("EMPTY",),
        ),
    ]


def _normalized_bench_sample(rng, rows, cols):
    shape = (rows, cols)
    return Sample("bench", tuple(rng.standard_normal(shape) for _ in range(3)), {"lr": 1e-4})


def _normalized_torch(torch, args, kwargs, cotangent):
    """The official update written functionally: EMA, then an SGD step with lr = η/(ε + ‖m'‖)."""
    params, hyper, momentum = (torch.from_numpy(a) for a in args)
    lr, beta, eps = kwargs["lr"], kwargs.get("beta", 0.9), kwargs.get("eps", 1e-10)

    def step():
        with torch.no_grad():
            new_momentum = beta * momentum + (1 - beta) * hyper
            scale = lr / (eps + torch.linalg.vector_norm(new_momentum, dtype=torch.float64).item())
            return params - scale * new_momentum, new_momentum

    return step


register(
    OpCases(
        "normalized_momentum_step",
        dims={"rank": (0, 3), "size": (1, 6)},
        random=_normalized_random,
        edges=_normalized_edges,
        notes=NOTES,
        defaults={"beta": 0.9, "eps": 1e-10},
        bench=Bench(
            make=_normalized_bench_sample,
            torch=_normalized_torch,
            torch_label="m' = β·m + (1 − β)·g; x − η/(ε + torch.linalg.vector_norm(m'))·m' (no in-place)",
        ),
    )
)

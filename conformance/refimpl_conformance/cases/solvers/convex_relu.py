"""Conformance cases for the convex two-layer ReLU ops: `gated_relu_objective`, `fista_gated_relu` and
`convex_to_relu_network`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "ZERO_NEURON": "u_i = 0: the penalty's kink; the code's subgradient 0 equals the central difference",
    "NO_PENALTY": "β = 0: plain gated least squares",
    "ALL_OFF": "no sample activates any gate (X h_i < 0 everywhere): predictions 0, gradient β u/‖u‖ only",
    "DUPLICATE_GATES": "two gates with the same pattern: the objective is still a function of U",
    "SCALE": "data ×1e3: the residual and the norms scale, the masks do not",
    "GROUP_LASSO": "every gate on (D_i = I): the objective is a plain group Lasso with a closed form",
    "CAPPED": "max_iter below what convergence needs: the record says not converged",
    "NO_ITERATIONS": "max_iter = 0: U0 comes back",
    "ZERO_SOLUTION": "β ≥ max_i ‖Xᵀ D_i y‖: the minimizer is U = 0",
    "ZERO_BRANCH": "a zero neuron: a zero hidden unit with output weight 0, no division by ‖0‖",
}


def _gates_with_margin(rng, X, P, margin=1e-3):  # noqa: N803
    """Gates whose scores X h stay ``margin``·scale from 0 (a mask cannot flip by rounding)."""
    for _ in range(50):
        gates = rng.standard_normal((P, X.shape[1]))
        scores = X @ gates.T
        if np.all(np.abs(scores) > margin * np.abs(scores).max()):
            return gates
    return gates


def _problem(rng, n, d, P):
    scale = float(rng.choice([0.1, 1.0, 30.0]))
    X = rng.standard_normal((n, d)) * scale  # noqa: N806
    y = rng.standard_normal(n) * scale
    return X, y, _gates_with_margin(rng, X, P)


# -- gated_relu_objective ----------------------------------------------------------------------
def _objective_random(rng, n, d, P):
    X, y, gates = _problem(rng, n, d, P)  # noqa: N806
    U = rng.standard_normal((P, d)) * float(rng.choice([0.1, 1.0]))  # noqa: N806
    beta = float(rng.choice([0.0, 0.1, 1.0, 10.0]))
    return Sample("random", (X, y, gates, U), {"beta": beta})


def _objective_edges():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 3))  # noqa: N806
    y = rng.standard_normal(6)
    gates = _gates_with_margin(rng, X, 4)
    U = rng.standard_normal((4, 3))  # noqa: N806
    U_zero = U.copy()  # noqa: N806
    U_zero[1] = 0.0
    X_pos = np.abs(X) + 0.1  # noqa: N806
    gates_off = -np.ones((2, 3))
    return [
        Sample(
            "documented example",
            (np.eye(2), np.array([1.0, 2.0]), np.array([[1.0, -1.0]]), np.array([[3.0, 4.0]])),
            {"beta": 0.5},
        ),
        Sample("a zero neuron", (X, y, gates, U_zero), {"beta": 1.0}, flags=("ZERO_NEURON",)),
        Sample("β = 0", (X, y, gates, U), {"beta": 0.0}, flags=("NO_PENALTY",)),
        Sample(
            "every gate off",
            (X_pos, y, gates_off, U[:2]),
            {"beta": 0.5},
            flags=("ALL_OFF",),
            comment="X > 0 entrywise and h = −1: every score x_k · h is negative",
        ),
        Sample(
            "duplicate gates",
            (X, y, np.concatenate([gates[:2], 2 * gates[:2]]), U),
            {"beta": 0.3},
            flags=("DUPLICATE_GATES",),
        ),
        Sample("data ×1e3", (X * 1e3, y * 1e3, gates, U), {"beta": 1e3}, flags=("SCALE",)),
    ]


def _objective_known():
    return [
        Known(
            "hand: one gate, D = diag(1, 0)",
            (np.eye(2), np.array([1.0, 2.0]), np.array([[1.0, -1.0]]), np.array([[3.0, 4.0]])),
            {"beta": 0.5},
            values={"objective": 6.5, "cotangent of 'U'": [[2.0 + 0.3, 0.0 + 0.4]]},
            source="hand: r = (3 − 1, 0 − 2); ½‖r‖² = 4, β‖u‖ = 2.5; Xᵀ D r = (2, 0), β u/‖u‖ = (0.3, 0.4)",
        )
    ]


def _objective_torch(torch, args, kwargs, cotangent):
    """Masks from X Hᵀ ≥ 0, ((X Uᵀ)·masks).sum(1) − y, ½‖r‖² + β Σ vector_norm(u_i); autograd backward."""
    X, y, gates = (torch.from_numpy(a) for a in args[:3])  # noqa: N806
    U = torch.from_numpy(args[3]).requires_grad_()  # noqa: N806
    g = torch.from_numpy(np.asarray(cotangent))
    beta = kwargs["beta"]

    def step():
        U.grad = None
        masks = (X @ gates.T >= 0).to(X.dtype)
        residual = ((X @ U.T) * masks).sum(1) - y
        objective = 0.5 * (residual @ residual) + beta * torch.linalg.vector_norm(U, dim=1).sum()
        objective.backward(g)
        return objective

    return step


def _objective_blas(args, kwargs):
    """The gate scores X Hᵀ, the predictions X Uᵀ and the backward's ((masks ⊙ r)ᵀ X)ᵀ = Xᵀ(masks ⊙ r)."""
    X, _, gates, U = args  # noqa: N806
    weighted = np.ones((X.shape[0], U.shape[0]), dtype=X.dtype)

    def step():
        return X @ gates.T, X @ U.T, X.T @ weighted  # the backward's product, as (Xᵀ W)ᵀ

    return step


register(
    OpCases(
        "gated_relu_objective",
        dims={"n": (1, 8), "d": (1, 5), "P": (1, 5)},
        random=_objective_random,
        edges=_objective_edges,
        known=_objective_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"n": "rows", "d": "cols", "P": 64},
            torch=_objective_torch,
            torch_label="masks X Hᵀ ≥ 0, ((X Uᵀ)·masks).sum(1) − y, ½‖r‖² + β Σ‖u_i‖; autograd backward",
            blas=_objective_blas,
        ),
    )
)


# -- fista_gated_relu --------------------------------------------------------------------------
def _fista_random(rng, n, d, P):
    X, y, gates = _problem(rng, n, d, P)  # noqa: N806
    scale = float(np.abs(X).max() * np.abs(y).max())
    U0 = rng.standard_normal((P, d)) * float(rng.choice([0.0, 1.0]))  # noqa: N806
    kwargs = {
        "beta": float(rng.choice([0.0, 0.1, 1.0])) * scale,
        "max_iter": int(rng.choice([50, 500])),
        "tol": float(rng.choice([1e-6, 1e-3])) * scale,
    }
    return Sample("random", (X, y, gates, U0), kwargs)


def _fista_edges():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 3))  # noqa: N806
    y = rng.standard_normal(6)
    gates = _gates_with_margin(rng, X, 3)
    orthonormal = np.linalg.qr(rng.standard_normal((5, 3)))[0]  # |Q| > 0 entrywise: the gate 1 is on
    beta_max = float(np.abs(np.linalg.norm((X.T @ ((X @ gates.T >= 0) * y[:, None])).T, axis=1)).max())
    return [
        Sample(
            "documented example: group Lasso with X = I",
            (np.eye(2), np.array([3.0, 4.0]), np.array([[1.0, 1.0]]), np.zeros((1, 2))),
            {"beta": 1.0, "max_iter": 100, "tol": 1e-12},
            flags=("GROUP_LASSO",),
            dtypes=("float64",),
            comment="tol 1e-12 is below float32's resolution",
        ),
        Sample(
            "positive X, every gate on",
            (np.abs(orthonormal), rng.standard_normal(5), np.ones((1, 3)), np.zeros((1, 3))),
            {"beta": 0.2, "max_iter": 200, "tol": 1e-4},
            flags=("GROUP_LASSO",),
        ),
        Sample(
            "max_iter = 0",
            (X, y, gates, np.ones((3, 3))),
            {"beta": 0.5, "max_iter": 0, "tol": 1e-6},
            flags=("NO_ITERATIONS",),
        ),
        Sample(
            "capped at 3 iterations",
            (X, y, gates, np.zeros((3, 3))),
            {"beta": 0.1, "max_iter": 3, "tol": 0.0},
            flags=("CAPPED",),
        ),
        Sample(
            "β above the zero-solution threshold",
            (X, y, gates, np.ones((3, 3))),
            {"beta": 1.5 * beta_max, "max_iter": 500, "tol": 1e-5},
            flags=("ZERO_SOLUTION",),
        ),
    ]


register(
    OpCases(
        "fista_gated_relu",
        dims={"n": (1, 8), "d": (1, 4), "P": (1, 4)},
        random=_fista_random,
        edges=_fista_edges,
        notes=NOTES,
        defaults={},
    )
)


# -- convex_to_relu_network --------------------------------------------------------------------
def _network_random(rng, P, d):
    V, W = rng.standard_normal((2, P, d)) * float(rng.choice([0.01, 1.0, 100.0]))  # noqa: N806
    W[rng.random(P) < 0.3] = 0.0  # some unused w-branches
    return Sample("random", (V, W))


def _network_edges():
    return [
        Sample("documented example", (np.array([[3.0, 4.0]]), np.zeros((1, 2))), flags=("ZERO_BRANCH",)),
        Sample("all zero", (np.zeros((2, 3)), np.zeros((2, 3))), flags=("ZERO_BRANCH",)),
        Sample(
            "huge neurons",
            (np.array([[3e30, 4e30]]), np.array([[1e-30, 0.0]])),
            dtypes=("float64",),
            comment="1e30 squared overflows nothing in float64 with row_norm",
        ),
    ]


def _network_known():
    return [
        Known(
            "hand: (3, 4) → (3, 4)/√5 with weight √5; (0, 1) in the w-branch → (0, 1) with −1",
            (np.array([[3.0, 4.0]]), np.array([[0.0, 1.0]])),
            values={"first_layer": [[3 / 5**0.5, 4 / 5**0.5], [0.0, 1.0]], "second_layer": [5**0.5, -1.0]},
            source="hand: u/√‖u‖ and ±√‖u‖",
        )
    ]


register(
    OpCases(
        "convex_to_relu_network",
        dims={"P": (1, 5), "d": (1, 5)},
        random=_network_random,
        edges=_network_edges,
        known=_network_known,
        notes=NOTES,
        defaults={},
    )
)

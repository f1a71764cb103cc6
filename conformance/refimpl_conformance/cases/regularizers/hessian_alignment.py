"""Conformance cases for Hessian alignment: softmax-head gradient, HVP and diagonal, Hutchinson, penalty."""

from __future__ import annotations

import itertools

import numpy as np

from ..._cases import OpCases, Sample, register

HEAD_NOTES = {
    "SATURATED": "logits ~±40: p is one-hot in floating point; 1 − p of the dominant class = Σ of the others",
    "ONE_CLASS": "K = 1: p = 1, the Hessian is 0",
    "ZERO_HEAD": "W = 0: p uniform, hand-computable values",
}


def _head(rng, K, D, n):
    scale = float(rng.choice([0.3, 1.0, 3.0]))
    return rng.standard_normal((K, D)) * scale, rng.standard_normal((n, D))


def _saturated_head():
    W = np.array([[20.0, 0.0], [-20.0, 0.0], [0.0, 1.0]])
    h = np.array([[2.0, 0.5], [-2.0, 0.1], [1.5, -0.3]])
    return W, h


# -- softmax_head_gradient ----------------------------------------------------------------------
def _gradient_random(rng, K, D, n):
    W, h = _head(rng, K, D, n)
    return Sample("random", (W, h, rng.integers(0, K, size=n)))


def _gradient_edges():
    W, h = _saturated_head()
    return [
        Sample(
            "zero head",
            (np.zeros((2, 1)), np.array([[1.0], [2.0]]), np.array([0, 1])),
            flags=("ZERO_HEAD",),
            comment="g = [[1/4], [−1/4]]",
        ),
        Sample("saturated logits", (W, h, np.array([0, 1, 2])), flags=("SATURATED",)),
        Sample("one class", (np.array([[0.4, -1.0]]), h, np.zeros(3, dtype=np.int64)), flags=("ONE_CLASS",)),
    ]


register(
    OpCases(
        "softmax_head_gradient",
        dims={"K": (1, 4), "D": (1, 3), "n": (1, 5)},
        random=_gradient_random,
        edges=_gradient_edges,
        notes=HEAD_NOTES,
    )
)


# -- softmax_head_hvp ---------------------------------------------------------------------------
def _hvp_random(rng, K, D, n):
    W, h = _head(rng, K, D, n)
    return Sample("random", (W, h, rng.standard_normal((K, D))))


def _hvp_edges():
    W, h = _saturated_head()
    rng = np.random.default_rng(41)
    return [
        Sample(
            "zero head",
            (np.zeros((2, 1)), np.array([[2.0]]), np.array([[1.0], [0.0]])),
            flags=("ZERO_HEAD",),
            comment="H[V] = [[1], [−1]]",
        ),
        Sample("saturated logits", (W, h, rng.standard_normal((3, 2))), flags=("SATURATED",)),
        Sample(
            "Rademacher probe",
            (rng.standard_normal((3, 4)), rng.standard_normal((6, 4)), rng.choice([-1.0, 1.0], size=(3, 4))),
        ),
        Sample("one class", (np.array([[0.4, -1.0]]), h, np.array([[1.0, 2.0]])), flags=("ONE_CLASS",)),
    ]


register(
    OpCases(
        "softmax_head_hvp",
        dims={"K": (1, 4), "D": (1, 3), "n": (1, 5)},
        random=_hvp_random,
        edges=_hvp_edges,
        notes=HEAD_NOTES,
    )
)


# -- softmax_head_hessian_diag ------------------------------------------------------------------
def _diag_random(rng, K, D, n):
    return Sample("random", _head(rng, K, D, n))


def _diag_edges():
    W, h = _saturated_head()
    return [
        Sample(
            "zero head",
            (np.zeros((2, 1)), np.array([[2.0]])),
            flags=("ZERO_HEAD",),
            comment="diag = [[1], [1]]",
        ),
        Sample(
            "saturated logits",
            (W, h),
            flags=("SATURATED",),
            comment="p(1 − p) ~ e^-40 ≈ 4e-18: a subtraction 1 − p gives 0 in float64",
        ),
        Sample("one class", (np.array([[0.4, -1.0]]), h), flags=("ONE_CLASS",)),
    ]


register(
    OpCases(
        "softmax_head_hessian_diag",
        dims={"K": (1, 4), "D": (1, 3), "n": (1, 5)},
        random=_diag_random,
        edges=_diag_edges,
        notes=HEAD_NOTES,
    )
)


# -- hutchinson_hessian_diag --------------------------------------------------------------------
HUTCHINSON_NOTES = {
    "ALL_SIGNS": "all 2^P sign probes: the estimate equals diag(H) exactly",
    "ONE_PROBE": "S = 1: the estimate is z ⊙ Hz itself",
}


def _hutchinson_random(rng, S, P):
    probes = rng.choice([-1.0, 1.0], size=(S, P))
    A = rng.standard_normal((P, P))
    return Sample("random", (probes, probes @ (A + A.T)))


def _hutchinson_edges():
    rng = np.random.default_rng(42)
    A = rng.standard_normal((3, 3))
    H = A + A.T
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=3)))
    z = rng.choice([-1.0, 1.0], size=(1, 3))
    return [
        Sample("all sign probes", (signs, signs @ H), flags=("ALL_SIGNS",), comment="= diag(H)"),
        Sample("one probe", (z, z @ H), flags=("ONE_PROBE",)),
    ]


register(
    OpCases(
        "hutchinson_hessian_diag",
        dims={"S": (1, 8), "P": (1, 6)},
        random=_hutchinson_random,
        edges=_hutchinson_edges,
        notes=HUTCHINSON_NOTES,
    )
)


# -- hessian_alignment_penalty ------------------------------------------------------------------
PENALTY_NOTES = {
    "COINCIDE": "every environment equal to the mean: penalty 0, zero gradient on g and A",
    "ONE_ENV": "E = 1 with the mean equal to the environment: the objective is the loss",
    "NO_PENALTY": "α = β = 0: the objective is the mean loss",
}


def _penalty_random(rng, E, P):
    grads = rng.standard_normal((E, P))
    curvatures = rng.standard_normal((E, P)) * float(rng.choice([0.1, 1.0, 10.0]))
    args = (
        rng.standard_normal(E),
        grads,
        curvatures,
        grads.mean(axis=0) + 0.1 * rng.standard_normal(P),
        curvatures.mean(axis=0) + 0.1 * rng.standard_normal(P),
    )
    kwargs = {"alpha": float(rng.choice([1e-4, 1e-3, 1.0])), "beta": float(rng.choice([5e-3, 1.0]))}
    return Sample("random", args, kwargs)


def _penalty_edges():
    rng = np.random.default_rng(43)
    g, A = rng.standard_normal(4), rng.standard_normal(4)
    grads, curvatures = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    hand_g = np.array([[1.0, 0.0], [0.0, 1.0]])
    hand_A = np.array([[2.0, 0.0], [0.0, 0.0]])
    return [
        Sample(
            "hand example",
            (np.array([1.0, 3.0]), hand_g, hand_A, hand_g.mean(axis=0), hand_A.mean(axis=0)),
            {"alpha": 1.0, "beta": 1.0},
            comment="loss 3.5, penalty 1.5",
        ),
        Sample(
            "environments coincide",
            (np.array([0.7, 0.7, 0.7]), np.tile(g, (3, 1)), np.tile(A, (3, 1)), g, A),
            {"alpha": 1.0, "beta": 1.0},
            flags=("COINCIDE",),
        ),
        Sample(
            "one environment",
            (np.array([0.4]), g[None], A[None], g, A),
            {"alpha": 0.5, "beta": 2.0},
            flags=("ONE_ENV", "COINCIDE"),
        ),
        Sample(
            "official HGP weights",
            (rng.standard_normal(3), grads, curvatures, grads.mean(axis=0), rng.standard_normal(4)),
            {"alpha": 1e-4, "beta": 5e-3},
        ),
        Sample(
            "no penalty",
            (rng.standard_normal(3), grads, curvatures, g, A),
            {"alpha": 0.0, "beta": 0.0},
            flags=("NO_PENALTY",),
        ),
    ]


register(
    OpCases(
        "hessian_alignment_penalty",
        dims={"E": (1, 4), "P": (1, 6)},
        random=_penalty_random,
        edges=_penalty_edges,
        notes=PENALTY_NOTES,
    )
)

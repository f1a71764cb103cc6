"""Conformance cases for `dcdm_loss`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "EXACT_DIRECTION": "q ∝ A⁻¹b: the loss is 0 and so is its gradient",
    "SCALE": "q multiplied by 1e3: the loss does not depend on the scale of q",
    "SINGULAR": "a PSD matrix with the constant vector in its null space (a pure-Neumann Laplacian)",
}


def _spd(rng, n):
    m = rng.standard_normal((n, n))
    a = m @ m.T + n * np.eye(n)
    return (a + a.T) / 2  # exactly symmetric


def _random(rng, B, n):  # noqa: N803
    return Sample("random", (_spd(rng, n), rng.standard_normal((B, n)), rng.standard_normal((B, n))))


def _laplacian(n):
    a = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    a[0, 0] = a[-1, -1] = 1.0  # Neumann ends: rows sum to 0, the constant vector is in the null space
    return a


def _edges():
    rng = np.random.default_rng(11)
    a = _spd(rng, 4)
    b = rng.standard_normal((2, 4))
    exact = np.linalg.solve(a, b.T).T
    return [
        Sample(
            "known value: A = diag(2, 1), b = (1, 1), q = e1",
            (np.diag([2.0, 1.0]), np.array([[1.0, 1.0]]), np.array([[1.0, 0.0]])),
            comment="α = ½, r = (0, 1), L = 1; gradient (0, −2)",
        ),
        Sample(
            "q ∝ A⁻¹b",
            (a, b, exact * np.array([[2.0], [-0.5]])),
            flags=("EXACT_DIRECTION",),
            comment="L is 0 up to rounding; float32 leaves a residual ~ cond(A)·eps",
        ),
        Sample("q scaled by 1e3", (a, b, rng.standard_normal((2, 4)) * 1e3), flags=("SCALE",)),
        Sample(
            "singular Neumann Laplacian",
            (_laplacian(5), rng.standard_normal((3, 5)), rng.standard_normal((3, 5))),
            flags=("SINGULAR",),
        ),
        Sample("n = 1", (np.array([[3.0]]), np.array([[2.0], [-1.0]]), np.array([[0.5], [4.0]]))),
    ]


def _errors():
    a = np.diag([2.0, 1.0, 3.0])
    b = np.ones((2, 3))
    return [
        ErrorCase("zero output", (a, b, np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])), match="qᵀAq > 0"),
        ErrorCase("null-space direction", (_laplacian(3), b, np.ones((2, 3))), match="row 0"),
        ErrorCase(
            "asymmetric matrix",
            (np.array([[2.0, 1.0], [0.0, 1.0]]), np.ones((1, 2)), np.ones((1, 2))),
            match="symmetric",
        ),
    ]


def _dcdm_torch(torch, args, kwargs, cotangent):
    """α = qᵀb/qᵀAq, r = b − α A q, mean ‖r‖² in torch ops; autograd backward."""
    A, b = torch.from_numpy(args[0]), torch.from_numpy(args[1])  # noqa: N806
    q = torch.from_numpy(args[2]).requires_grad_()
    g = torch.from_numpy(cotangent)

    def step():
        q.grad = None
        a_q = q @ A  # rows (A q_i)ᵀ; A is symmetric
        alpha = (q * b).sum(1) / (q * a_q).sum(1)
        r = b - alpha[:, None] * a_q
        loss = (r * r).sum(1).mean()
        loss.backward(g)
        return loss

    return step


def _dcdm_blas(args, kwargs):
    """q A (forward) and the backward's product of A with a (B, n) cotangent (r A, or ḡ Aᵀ)."""
    A, b, q = args  # noqa: N806

    def step():
        return q @ A, b @ A

    return step


register(
    OpCases(
        "dcdm_loss",
        dims={"B": (1, 4), "n": (1, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": 64, "n": "cols"},
            torch=_dcdm_torch,
            torch_label="q @ A, row dots, residual, mean ‖r‖²; autograd backward",
            blas=_dcdm_blas,
        ),
    )
)

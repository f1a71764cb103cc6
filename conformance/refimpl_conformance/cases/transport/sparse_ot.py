"""Conformance cases for sparsity-constrained optimal transport (the projection, the dual and
semi-dual objectives, the plan).

Every op selects the k largest entries of a row or column. The tie rule is stated (the lowest
index first) and every implementation must follow it, so exact ties are edge cases, compared
on their outputs; at a tie on the k-th value the objectives are not differentiable (the
selection switches), so those samples skip finite differences, and the random samples are
continuous draws (no ties).
"""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "TIES": "equal values at the k-th place: the lowest index is kept (not differentiable there: no FD)",
    "DENSE": "k >= m: no sparsity, the plain simplex projection / squared-L2-regularized OT "
    "(POT's dual raises there)",
    "ONE_NONZERO": "k = 1: one non-zero per column (the semi-dual is the unregularized OT semi-dual + const)",
    "SMALL_SUPPORT": "fewer than k positive entries: the support is smaller than k",
    "OFFSET": "inputs 1e6 + O(1): the projection is shift invariant; the threshold must not lose the spread",
    "STIFF": "γ = 0.01: the objectives are 1/γ-smooth, large gradients",
}


def _marginal(rng, size):
    weights = rng.random(size) + 0.1
    return weights / weights.sum()


# -- sparse_simplex_projection --------------------------------------------------------------------------
def _projection_random(rng, B, m):
    shape = [(m,), (B, m), (2, B, m)][int(rng.integers(0, 3))]
    x = rng.standard_normal(shape) * float(rng.choice([0.1, 1.0, 5.0])) + float(rng.choice([0.0, 3.0]))
    return Sample("random", (x,), {"max_nz": int(rng.integers(1, m + 2))})


def _projection_edges():
    rng = np.random.default_rng(21)
    return [
        Sample(
            "known value: k = 2 of 3",
            (np.array([0.5, 0.2, 0.4]),),
            {"max_nz": 2},
            comment="θ = −0.05: [0.55, 0, 0.45]",
        ),
        Sample(
            "tie at the k-th value",
            (np.array([0.5, 0.3, 0.3, 0.1]),),
            {"max_nz": 2},
            flags=("TIES",),
            fd=False,
            comment="keeps indices 0 and 1: [0.6, 0.4, 0, 0]",
        ),
        Sample(
            "all equal",
            (np.ones((2, 4)),),
            {"max_nz": 2},
            flags=("TIES",),
            fd=False,
            comment="[0.5, 0.5, 0, 0] in each row",
        ),
        Sample(
            "k >= m: the simplex projection",
            (rng.standard_normal((3, 5)),),
            {"max_nz": 9},
            flags=("DENSE",),
        ),
        Sample("k = 1: the argmax", (rng.standard_normal((3, 5)),), {"max_nz": 1}, flags=("ONE_NONZERO",)),
        Sample(
            "support smaller than k",
            (np.array([2.0, 0.0, -1.0, 0.5]),),
            {"max_nz": 3},
            flags=("SMALL_SUPPORT",),
            comment="θ = 1: [1, 0, 0, 0]",
        ),
        Sample(
            "offset 1e6",
            (rng.standard_normal((2, 6)) * 0.3 + 1e6,),
            {"max_nz": 3},
            flags=("OFFSET",),
            dtypes=("float64",),
            fd_step=1e-9,
            comment="float32 cannot hold 1e6 + O(0.1) to the digits that matter",
        ),
    ]


def _projection_torch(torch, args, kwargs, cotangent):
    """The same algorithm in PyTorch (topk, cumsum threshold, scatter); autograd backward."""
    x = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    k = min(kwargs["max_nz"], x.shape[-1])

    def step():
        u, order = torch.topk(x, k, dim=-1)
        cumulative = torch.cumsum(u, dim=-1) - 1
        ranks = torch.arange(1, k + 1, dtype=x.dtype)
        rho = (u - cumulative / ranks > 0).sum(dim=-1, keepdim=True)
        theta = torch.gather(cumulative, -1, rho - 1) / rho
        y = torch.zeros_like(x).scatter(-1, order, torch.clamp(u - theta, min=0))
        x.grad = None
        y.backward(g)
        return y

    return step


register(
    OpCases(
        "sparse_simplex_projection",
        dims={"B": (1, 4), "m": (1, 9)},
        random=_projection_random,
        edges=_projection_edges,
        notes=NOTES,
        defaults={},
        bench=Bench(
            kwargs={"max_nz": 8},
            make=lambda rng, rows, cols: Sample("bench", (rng.standard_normal((rows, cols)),), {"max_nz": 8}),
            torch=_projection_torch,
            torch_label="torch.topk, cumsum threshold, scatter; autograd",
        ),
    )
)


# -- sparsity_constrained_ot_dual --------------------------------------------------------------------------
def _hyperparameters(rng, m):
    return {"gamma": float(rng.choice([0.1, 1.0, 10.0])), "max_nz": int(rng.integers(1, m + 2))}


def _dual_random(rng, m, n):
    scale = float(rng.choice([0.3, 1.0, 3.0]))
    alpha, beta = rng.standard_normal(m) * scale, rng.standard_normal(n) * scale
    C = rng.random((m, n)) * scale
    return Sample("random", (alpha, beta, _marginal(rng, m), _marginal(rng, n), C), _hyperparameters(rng, m))


def _dual_edges():
    rng = np.random.default_rng(22)
    C2 = np.array([[0.0, 1.0], [1.0, 0.0]])
    half = np.array([0.5, 0.5])
    small_support = np.array([[1.0, 2.0, -0.5], [-0.3, 1.5, 2.0], [2.0, -0.7, 1.0], [1.2, 1.1, 3.0]])
    return [
        Sample(
            "known value: k = 1",
            (np.array([0.25, 0.25]), np.array([0.25, 0.25]), half, half, C2),
            {"gamma": 1.0, "max_nz": 1},
            flags=("ONE_NONZERO",),
            comment="X = [[0.5, −0.5], [−0.5, 0.5]]: D = 0.25 + 0.25 − 2·0.125",
        ),
        Sample(
            "k >= m",
            (
                rng.standard_normal(4),
                rng.standard_normal(3),
                _marginal(rng, 4),
                _marginal(rng, 3),
                rng.random((4, 3)),
            ),
            {"gamma": 1.0, "max_nz": 4},
            flags=("DENSE",),
        ),
        Sample(
            "fewer than k positive entries per column",
            (np.zeros(4), np.zeros(3), _marginal(rng, 4), _marginal(rng, 3), small_support),
            {"gamma": 0.5, "max_nz": 3},
            flags=("SMALL_SUPPORT",),
            comment="X = −C: one positive entry per column",
        ),
        Sample(
            "tie at the k-th value",
            (
                np.zeros(3),
                np.zeros(2),
                _marginal(rng, 3),
                half,
                np.array([[-1.0, -0.2], [-1.0, -0.5], [-0.5, -0.5]]),
            ),
            {"gamma": 1.0, "max_nz": 1},
            flags=("TIES",),
            fd=False,
            comment="column 0: X = [1, 1, 0.5] keeps row 0; column 1: [0.2, 0.5, 0.5] keeps row 1",
        ),
        Sample(
            "γ = 0.01",
            (
                rng.standard_normal(5) * 0.1,
                rng.standard_normal(4) * 0.1,
                _marginal(rng, 5),
                _marginal(rng, 4),
                rng.random((5, 4)) * 0.1,
            ),
            {"gamma": 0.01, "max_nz": 2},
            flags=("STIFF",),
        ),
    ]


def _marginal_errors(args_before, args_after, kwargs):
    """A zero entry in a, then in b (the marginals must be positive)."""
    a, b = np.array([0.5, 0.5, 0.0]), np.array([0.0, 1.0])
    good_a, good_b = np.full(3, 1 / 3), np.array([0.5, 0.5])
    return [
        ErrorCase(
            "a zero weight in a",
            (*args_before, a, good_b, *args_after),
            kwargs,
            match=r"'a'.*positive.*index 2",
        ),
        ErrorCase(
            "a zero weight in b",
            (*args_before, good_a, b, *args_after),
            kwargs,
            match=r"'b'.*positive.*index 0",
        ),
    ]


def _dual_errors():
    return _marginal_errors((np.zeros(3), np.zeros(2)), (np.ones((3, 2)),), {"gamma": 1.0, "max_nz": 1})


register(
    OpCases(
        "sparsity_constrained_ot_dual",
        dims={"m": (1, 7), "n": (1, 5)},
        random=_dual_random,
        edges=_dual_edges,
        errors=_dual_errors,
        notes=NOTES,
        defaults={},
    )
)


# -- sparsity_constrained_ot_semi_dual ---------------------------------------------------------------------
def _semi_dual_random(rng, m, n):
    scale = float(rng.choice([0.3, 1.0, 3.0]))
    alpha = rng.standard_normal(m) * scale
    C = rng.random((m, n)) * scale
    return Sample("random", (alpha, _marginal(rng, m), _marginal(rng, n), C), _hyperparameters(rng, m))


def _semi_dual_edges():
    rng = np.random.default_rng(23)
    C2 = np.array([[0.0, 1.0], [1.0, 0.0]])
    half = np.array([0.5, 0.5])
    return [
        Sample(
            "known value: k = 1, α = 0",
            (np.zeros(2), half, half, C2),
            {"gamma": 1.0, "max_nz": 1},
            flags=("ONE_NONZERO",),
            comment="g_j = e_j, max_Ω = −γ b_j/2: S = 0.25",
        ),
        Sample(
            "k = 1",
            (rng.standard_normal(5), _marginal(rng, 5), _marginal(rng, 3), rng.random((5, 3))),
            {"gamma": 0.3, "max_nz": 1},
            flags=("ONE_NONZERO",),
        ),
        Sample(
            "k >= m",
            (rng.standard_normal(4), _marginal(rng, 4), _marginal(rng, 3), rng.random((4, 3))),
            {"gamma": 1.0, "max_nz": 6},
            flags=("DENSE",),
        ),
        Sample(
            "tie at the k-th value",
            (np.zeros(3), _marginal(rng, 3), half, np.array([[0.0, 0.5], [0.0, 0.2], [0.5, 0.2]])),
            {"gamma": 1.0, "max_nz": 1},
            flags=("TIES",),
            fd=False,
            comment="column 0 keeps row 0 of the tied rows 0 and 1; column 1 keeps row 1",
        ),
        Sample(
            "γ = 0.01",
            (rng.standard_normal(5) * 0.1, _marginal(rng, 5), _marginal(rng, 4), rng.random((5, 4)) * 0.1),
            {"gamma": 0.01, "max_nz": 2},
            flags=("STIFF",),
        ),
    ]


def _semi_dual_errors():
    return _marginal_errors((np.zeros(3),), (np.ones((3, 2)),), {"gamma": 1.0, "max_nz": 1})


register(
    OpCases(
        "sparsity_constrained_ot_semi_dual",
        dims={"m": (1, 7), "n": (1, 5)},
        random=_semi_dual_random,
        edges=_semi_dual_edges,
        errors=_semi_dual_errors,
        notes=NOTES,
        defaults={},
    )
)


# -- sparsity_constrained_ot_plan ----------------------------------------------------------------------------
def _plan_random(rng, m, n):
    scale = float(rng.choice([0.3, 1.0, 3.0]))
    alpha = rng.standard_normal(m) * scale
    C = rng.random((m, n)) * scale
    if rng.random() < 0.5:
        kwargs = {"beta": rng.standard_normal(n) * scale}
    else:
        kwargs = {"b": _marginal(rng, n)}
    return Sample("random", (alpha, C), {**kwargs, **_hyperparameters(rng, m)})


def _plan_edges():
    C2 = np.array([[0.0, 1.0], [1.0, 0.0]])
    tied = np.array([[-1.0, -0.2], [-1.0, -0.5], [-0.5, -0.5]])
    return [
        Sample(
            "known value: semi-dual, k = 1",
            (np.zeros(2), C2),
            {"b": np.array([0.5, 0.5]), "gamma": 1.0, "max_nz": 1},
            comment="T = diag(0.5, 0.5)",
        ),
        Sample(
            "dual, tie at the k-th value",
            (np.zeros(3), tied),
            {"beta": np.zeros(2), "gamma": 2.0, "max_nz": 1},
            flags=("TIES",),
            comment="T[:, 0] = [0.5, 0, 0], T[:, 1] = [0, 0.25, 0]",
        ),
        Sample(
            "semi-dual, k >= m",
            (np.array([0.3, -0.2, 0.1]), np.array([[0.1, 0.5], [0.4, 0.0], [0.2, 0.3]])),
            {"b": np.array([0.25, 0.75]), "gamma": 1.0, "max_nz": 3},
            flags=("DENSE",),
        ),
    ]


def _plan_errors():
    alpha, C = np.zeros(3), np.ones((3, 2))
    kwargs = {"gamma": 1.0, "max_nz": 1}
    return [
        ErrorCase("neither beta nor b", (alpha, C), kwargs, match=r"'beta'.*exactly one.*neither"),
        ErrorCase(
            "both beta and b", (alpha, C), {**kwargs, "beta": np.zeros(2), "b": np.full(2, 0.5)}, match="both"
        ),
        ErrorCase(
            "a zero weight in b", (alpha, C), {**kwargs, "b": np.array([1.0, 0.0])}, match=r"'b'.*positive"
        ),
    ]


register(
    OpCases(
        "sparsity_constrained_ot_plan",
        dims={"m": (1, 7), "n": (1, 5)},
        random=_plan_random,
        edges=_plan_edges,
        errors=_plan_errors,
        notes=NOTES,
        defaults={"beta": None, "b": None},
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------------
@transcribes("pot-sparsity-dual-max-nz-at-least-m", outputs=("value",))
def _official_sparsity_dual(alpha, beta, a, b, C, *, gamma, max_nz, dtype):
    """POT's ``dual_obj_grad`` with ``SparsityConstrained.delta_Omega``, as it behaves."""
    X = alpha[:, np.newaxis] + beta - C
    non_top_indices = np.argpartition(-X, max_nz, axis=0)[max_nz:]  # ValueError for max_nz >= m
    X[non_top_indices, np.arange(X.shape[1])] = 0.0
    max_X = np.maximum(X, 0)
    value = np.dot(alpha, a) + np.dot(beta, b) - np.sum(max_X**2, axis=0).sum() / (2 * gamma)
    return {"value": value}

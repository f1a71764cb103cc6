"""Conformance cases for greedy block coordinate descent: `bcd_block_selection`,
`variable_block_selection`, `bcd_prox_block_update` and `tree_block_newton_solve`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register

NOTES = {
    "L1_VS_L2": "the paper's Euclidean block norm and the official ℓ1 sum pick different blocks",
    "ONE_COORDINATE_BLOCKS": "k = 1: the ℓ1 and ℓ2 scores coincide",
    "ZERO_LIPSCHITZ": "a block (coordinate) with L = 0 (an all-zero column) is excluded: score −inf, "
    "no division by zero",
    "TIE": "exactly equal scores: the lowest index wins",
    "GSQ_LAMBDA_ZERO": "GS-q with λ = 0 scores ‖g_b‖²/(2L_b): the block GSL picks",
    "ALL_ZERO_PROGRESS": "λ above every |g_i| at x = 0: no block promises progress, every score is 0",
    "THRESHOLD": "coordinates landing inside the soft-threshold dead zone become exactly 0",
    "FOREST": "a forest of several trees, roots at their lowest index, nodes out of order",
    "DIAGONAL": "no edges: the solve is a division by the diagonal",
    "PATH": "a long path: the leaf-to-root sweep carries the elimination along the whole chain",
}


def _least_squares(rng, n):
    """A least-squares problem f = ½‖Ax − y‖² at a point x: (A, x, ∇f)."""
    a = rng.standard_normal((n + 2, n)) * rng.uniform(0.3, 3.0, size=n)  # columns of varied scales
    x = rng.standard_normal(n) * float(rng.choice([0.1, 1.0]))
    y = rng.standard_normal(n + 2)
    return a, x, a.T @ (a @ x - y)


def _partition(rng, B, k):  # noqa: N803
    return rng.permutation(B * k).reshape(B, k).astype(np.int64)


def _block_lipschitz(a, blocks):
    return np.array([np.linalg.eigvalsh(a[:, b].T @ a[:, b])[-1] for b in blocks])


def _separated(scores, margin=1e-3):
    """Whether the best finite score beats the runner-up by a relative margin (no near-tie that
    float32 rounding could flip)."""
    finite = np.sort(scores[np.isfinite(scores)])[::-1]
    if finite.size < 2:
        return True
    return finite[0] - finite[1] > margin * max(abs(finite[0]), 1e-300)


# -- bcd_block_selection ---------------------------------------------------------------------------
def _selection_random(rng, B, k):  # noqa: N803
    import refimpl

    n = B * k
    for _ in range(100):
        a, x, grad = _least_squares(rng, n)
        blocks = _partition(rng, B, k)
        rule = str(rng.choice(["GS", "GSL", "GSQ", "GS-q"]))
        kwargs = {
            "rule": rule,
            "block_lipschitz": _block_lipschitz(a, blocks),
            "hessian_bound": a.T @ a,
            "x": x,
            "lam": float(rng.choice([0.0, 0.3, 2.0])),
            "block_score_norm": str(rng.choice(["l2", "l1"])) if rule in ("GS", "GSL") else "l2",
        }
        _, scores = refimpl.solvers.bcd_block_selection(grad, blocks, **kwargs)
        if _separated(scores):
            return Sample("random", (grad, blocks), kwargs)
    raise RuntimeError("could not draw scores without a near-tie")


def _selection_edges():
    rng = np.random.default_rng(31)
    a, x, grad = _least_squares(rng, 6)
    blocks = np.arange(6).reshape(3, 2)
    lipschitz = _block_lipschitz(a, blocks)
    zero_column = a.copy()
    zero_column[:, 2:4] = 0.0
    grad_zero = zero_column.T @ (zero_column @ x - rng.standard_normal(8))
    deviation = (np.array([3.0, 0.0, 2.0, 2.0]), np.array([[0, 1], [2, 3]]))
    return [
        Sample("ℓ2 block norm (paper)", deviation, {"rule": "GS"}, flags=("L1_VS_L2",)),
        Sample(
            "ℓ1 block sum (official)",
            deviation,
            {"rule": "GS", "block_score_norm": "l1"},
            flags=("L1_VS_L2",),
        ),
        Sample(
            "GSL, ℓ1 against ℓ2",
            (np.array([3.0, 0.0, 2.0, 2.0]), np.array([[0, 1], [2, 3]])),
            {"rule": "GSL", "block_lipschitz": np.array([1.0, 1.5]), "block_score_norm": "l1"},
            flags=("L1_VS_L2",),
            comment="ℓ1: 3 < 4/√1.5 = 3.27 picks block 1; ℓ2: 9 > 8/1.5 = 5.33 would pick block 0",
        ),
        Sample(
            "one-coordinate blocks, GSL",
            (grad, np.arange(6).reshape(6, 1)),
            {"rule": "GSL", "block_lipschitz": (a * a).sum(axis=0), "block_score_norm": "l1"},
            flags=("ONE_COORDINATE_BLOCKS",),
        ),
        Sample(
            "an all-zero column block is excluded",
            (grad_zero, blocks),
            {"rule": "GSL", "block_lipschitz": _block_lipschitz(zero_column, blocks)},
            flags=("ZERO_LIPSCHITZ",),
        ),
        Sample(
            "an all-zero column block is excluded, GS-q",
            (grad_zero, blocks),
            {"rule": "GS-q", "block_lipschitz": _block_lipschitz(zero_column, blocks), "x": x, "lam": 0.5},
            flags=("ZERO_LIPSCHITZ",),
        ),
        Sample(
            "exact tie: block 0",
            (np.array([1.0, 0.0, 0.0, -1.0]), np.array([[0, 1], [2, 3]])),
            {"rule": "GS"},
            flags=("TIE",),
        ),
        Sample(
            "GS-q with λ = 0",
            (grad, blocks),
            {"rule": "GS-q", "block_lipschitz": lipschitz, "x": x, "lam": 0.0},
            flags=("GSQ_LAMBDA_ZERO",),
        ),
        Sample(
            "GS-q, λ above every |g_i| at x = 0",
            (grad, blocks),
            {
                "rule": "GS-q",
                "block_lipschitz": lipschitz,
                "x": np.zeros(6),
                "lam": 2 * float(np.abs(grad).max()),
            },
            flags=("ALL_ZERO_PROGRESS", "TIE"),
        ),
        Sample("GSQ", (grad, blocks), {"rule": "GSQ", "hessian_bound": a.T @ a}),
    ]


def _selection_errors():
    grad, blocks = np.array([1.0, 2.0, 3.0, 4.0]), np.array([[0, 1], [2, 3]])
    return [
        ErrorCase(
            "blocks repeat an index", (grad, np.array([[0, 1], [1, 3]])), {"rule": "GS"}, match="partition"
        ),
        ErrorCase("blocks miss coordinates", (grad, np.array([[0, 1]])), {"rule": "GS"}, match="partition"),
        ErrorCase("GSL without L_b", (grad, blocks), {"rule": "GSL"}, match="block Lipschitz"),
        ErrorCase(
            "negative L_b",
            (grad, blocks),
            {"rule": "GSL", "block_lipschitz": np.array([1.0, -1.0])},
            match="L_b >= 0",
        ),
        ErrorCase(
            "every L_b = 0",
            (grad, blocks),
            {"rule": "GS-q", "block_lipschitz": np.zeros(2), "x": grad, "lam": 0.1},
            match="at least one block",
        ),
        ErrorCase("GSQ without H", (grad, blocks), {"rule": "GSQ"}, match="matrix upper bound"),
        ErrorCase(
            "GSQ with a singular block",
            (grad, blocks),
            {"rule": "GSQ", "hessian_bound": np.diag([1.0, 1.0, 0.0, 1.0])},
            match="positive definite",
        ),
        ErrorCase(
            "GSQ with an asymmetric H",
            (grad, blocks),
            {"rule": "GSQ", "hessian_bound": np.eye(4) + np.triu(np.ones((4, 4)), 1)},
            match="symmetric",
        ),
        ErrorCase(
            "GS-q without x",
            (grad, blocks),
            {"rule": "GS-q", "block_lipschitz": np.ones(2), "lam": 0.1},
            match="current iterate",
        ),
        ErrorCase(
            "GS-q without λ",
            (grad, blocks),
            {"rule": "GS-q", "block_lipschitz": np.ones(2), "x": grad},
            match="ℓ1 weight",
        ),
        ErrorCase(
            "ℓ1 scores with GSQ",
            (grad, blocks),
            {"rule": "GSQ", "hessian_bound": np.eye(4), "block_score_norm": "l1"},
            match="official code's for GS and GSL",
        ),
    ]


register(
    OpCases(
        "bcd_block_selection",
        dims={"B": (1, 5), "k": (1, 4)},
        random=_selection_random,
        edges=_selection_edges,
        errors=_selection_errors,
        notes=NOTES,
        defaults={
            "block_lipschitz": None,
            "hessian_bound": None,
            "x": None,
            "lam": None,
            "block_score_norm": "l2",
        },
    )
)


# -- variable_block_selection ----------------------------------------------------------------------
def _variable_random(rng, n):
    for _ in range(100):
        a, _, grad = _least_squares(rng, n)
        lipschitz = (a * a).sum(axis=0)
        size = int(rng.integers(1, n + 1))
        scores = np.sort(np.abs(grad) / np.sqrt(lipschitz))[::-1]
        # the τ-th and (τ+1)-th scores apart: no near-tie that rounding could flip
        if size == n or scores[size - 1] - scores[size] > 1e-3 * scores[size - 1]:
            return Sample("random", (grad, lipschitz), {"block_size": size})
    raise RuntimeError("could not draw scores without a near-tie")


def _variable_edges():
    rng = np.random.default_rng(32)
    grad = rng.standard_normal(7)
    return [
        Sample(
            "documented example: a tie goes to the lower index",
            (np.array([2.0, -3.0, 1.0, 4.0]), np.array([1.0, 9.0, 0.25, 4.0])),
            {"block_size": 2},
            flags=("TIE",),
        ),
        Sample(
            "zero Lipschitz coordinates are excluded",
            (grad, np.array([1.0, 0.0, 2.0, 0.0, 0.5, 3.0, 1.0])),
            {"block_size": 5},
            flags=("ZERO_LIPSCHITZ",),
        ),
        Sample("τ = n: every coordinate", (grad, np.full(7, 2.0)), {"block_size": 7}),
        Sample("τ = 1: the GSL coordinate", (grad, rng.uniform(0.5, 2.0, 7)), {"block_size": 1}),
    ]


def _variable_errors():
    return [
        ErrorCase(
            "negative L_i", (np.ones(3), np.array([1.0, -1.0, 1.0])), {"block_size": 1}, match="L_i >= 0"
        ),
        ErrorCase(
            "τ above the coordinates with L_i > 0",
            (np.ones(3), np.array([1.0, 0.0, 1.0])),
            {"block_size": 3},
            match="at most the number of coordinates",
        ),
    ]


register(
    OpCases(
        "variable_block_selection",
        dims={"n": (1, 10)},
        random=_variable_random,
        edges=_variable_edges,
        errors=_variable_errors,
        notes=NOTES,
        defaults={},
    )
)


# -- bcd_prox_block_update -------------------------------------------------------------------------
def _update_random(rng, n):
    a, x, grad = _least_squares(rng, n)
    size = int(rng.integers(1, n + 1))
    block = rng.choice(n, size=size, replace=False).astype(np.int64)
    lipschitz = float(np.linalg.eigvalsh(a[:, block].T @ a[:, block])[-1])
    lam = float(rng.choice([0.0, 0.1, 1.0, 10.0]))
    # keep |z| away from the threshold λ/L: a coordinate just inside or outside the dead zone
    # would become 0 in one dtype and a tiny number in the other
    z = x[block] - grad[block] / lipschitz
    near = np.abs(np.abs(z) - lam / lipschitz) < 1e-3 * max(lam / lipschitz, 1e-3)
    x[block[near]] += 0.5
    return Sample("random", (x, grad, block), {"lipschitz": lipschitz, "lam": lam})


def _update_edges():
    x, grad = np.array([1.0, 0.5, -2.0]), np.array([2.0, 1.0, -1.0])
    return [
        Sample(
            "documented example",
            (x, grad, np.array([0, 1])),
            {"lipschitz": 4.0, "lam": 1.0},
            flags=("THRESHOLD",),
            comment="z = (0.5, 0.25), threshold 0.25: (0.25, 0) — the second lands in the dead zone",
        ),
        Sample("λ = 0: the block gradient step", (x, grad, np.array([2, 0])), {"lipschitz": 2.0, "lam": 0.0}),
        Sample(
            "every coordinate thresholded to 0",
            (x, grad, np.array([0, 1, 2])),
            {"lipschitz": 1.0, "lam": 10.0},
            flags=("THRESHOLD",),
        ),
    ]


def _update_errors():
    return [
        ErrorCase(
            "a repeated index",
            (np.ones(3), np.ones(3), np.array([0, 2, 0])),
            {"lipschitz": 1.0, "lam": 0.1},
            match="distinct",
        )
    ]


register(
    OpCases(
        "bcd_prox_block_update",
        dims={"n": (1, 8)},
        random=_update_random,
        edges=_update_edges,
        errors=_update_errors,
        notes=NOTES,
        defaults={},
    )
)


# -- tree_block_newton_solve -----------------------------------------------------------------------
def random_forest_spd(rng, k, trees=1):
    """A symmetric positive definite (k, k) matrix whose off-diagonal pattern is a random forest
    (``trees`` trees, nodes in random order), diagonally dominant by a random margin."""
    order = rng.permutation(k)
    h = np.zeros((k, k))
    for position in range(1, k):
        if position < trees:
            continue  # the first `trees` nodes of the order are roots
        child, parent = order[position], order[int(rng.integers(0, position))]
        h[child, parent] = h[parent, child] = rng.standard_normal() * float(rng.choice([0.1, 1.0, 3.0]))
    diagonal = np.abs(h).sum(axis=1) + rng.uniform(0.1, 2.0, size=k)
    return h + np.diag(diagonal)


def _tree_random(rng, k):
    trees = int(rng.integers(1, min(k, 3) + 1))
    return Sample("random", (random_forest_spd(rng, k, trees), rng.standard_normal(k)))


def _tree_edges():
    rng = np.random.default_rng(33)
    path = 2 * np.eye(12) - np.eye(12, k=1) - np.eye(12, k=-1)
    path[0, 0] = path[-1, -1] = 1.01  # nearly singular: the Neumann path plus a small shift
    return [
        Sample(
            "documented example: a path",
            (np.array([[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]]), np.array([-1.0, 0.0, -1.0])),
            flags=("PATH",),
        ),
        Sample(
            "a forest of three trees",
            (random_forest_spd(rng, 9, 3), rng.standard_normal(9)),
            flags=("FOREST",),
        ),
        Sample(
            "no edges: diagonal", (np.diag([2.0, 0.5, 4.0]), np.array([1.0, -1.0, 2.0])), flags=("DIAGONAL",)
        ),
        Sample("a path of 12, nearly singular", (path, rng.standard_normal(12)), flags=("PATH",)),
        Sample(
            "a star",
            (
                np.array([[4.0, 1.0, 1.0, 1.0], [1.0, 2.0, 0, 0], [1.0, 0, 2.0, 0], [1.0, 0, 0, 2.0]]),
                np.array([1.0, 2.0, 3.0, 4.0]),
            ),
        ),
        Sample("one coordinate", (np.array([[3.0]]), np.array([6.0]))),
    ]


def _tree_errors():
    cycle = np.array([[3.0, 1.0, 1.0], [1.0, 3.0, 1.0], [1.0, 1.0, 3.0]])
    return [
        ErrorCase("a cycle in the sparsity graph", (cycle, np.ones(3)), match="forest"),
        ErrorCase(
            "an asymmetric matrix", (np.array([[2.0, 1.0], [0.0, 2.0]]), np.ones(2)), match="symmetric"
        ),
        ErrorCase(
            "an indefinite tree", (np.array([[1.0, 2.0], [2.0, 1.0]]), np.ones(2)), match="positive definite"
        ),
    ]


register(
    OpCases(
        "tree_block_newton_solve",
        dims={"k": (1, 10)},
        random=_tree_random,
        edges=_tree_edges,
        errors=_tree_errors,
        notes=NOTES,
        defaults={},
    )
)

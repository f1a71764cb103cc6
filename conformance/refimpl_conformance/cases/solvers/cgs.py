"""Conformance cases for the Convergent Graph Solvers ops: `cgs_transition_matrix` and
`cgs_fixed_point` (custom VJP: the implicit gradient, checked against the stated formula)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

MATRIX_NOTES = {
    "CLIP": "logits below 0 and above 1: clipped to 0 and 1, gradient 0 there",
    "SINK": "a node without outgoing edges: its row of A is 0 (no division by a zero degree)",
    "SELF_LOOP": "an edge s → s lands on the diagonal",
    "UNSORTED_EDGES": "edges not sorted by (src, dst): each value goes to its own edge's entry",
    "SOFTMAX_OVERFLOW": "softmax logits ±1e3: exp overflows without the segment max subtracted",
    "KINK": "logits exactly 0 and 1: the clip's derivative is taken as 1 (torch.clamp); not FD-checked",
}


def _random_graph(rng, n, max_edges=None):
    """Distinct (src, dst) pairs (self-loops allowed), in random order, at least one edge."""
    count = int(rng.integers(1, n * n + 1)) if max_edges is None else max_edges
    pairs = rng.choice(n * n, size=count, replace=False)
    return pairs // n, pairs % n


def _away_from_kinks(logits):
    """Move logits within 0.02 of the clip's kinks 0 and 1 away (finite differences straddle them)."""
    for kink in (0.0, 1.0):
        near = np.abs(logits - kink) < 0.02
        logits[near] = kink + 0.05 * np.sign(logits[near] - kink + 1e-12)
    return logits


def _matrix_random(rng, n, H):  # noqa: N803
    src, dst = _random_graph(rng, n)
    normalization = str(rng.choice(["degree", "softmax"]))
    if normalization == "degree":
        logits = _away_from_kinks(rng.uniform(-0.5, 1.5, size=(src.size, H)))
    else:
        logits = rng.standard_normal((src.size, H)) * float(rng.choice([0.5, 2.0]))
    return Sample("random", (logits, src, dst), {"num_nodes": n, "normalization": normalization})


def _matrix_edges():
    src, dst = np.array([2, 0, 1, 0, 2]), np.array([2, 1, 0, 2, 0])  # unsorted, a self-loop at 2
    logits = np.array([[0.3, 0.8], [-0.4, 0.6], [1.7, 0.2], [0.7, 1.3], [0.45, 0.55]])
    return [
        Sample(
            "clip below 0 and above 1", (logits, src, dst), {"num_nodes": 3}, flags=("CLIP", "UNSORTED_EDGES")
        ),
        Sample(
            "unsorted edges, softmax",
            (logits, src, dst),
            {"num_nodes": 3, "normalization": "softmax"},
            flags=("UNSORTED_EDGES",),
        ),
        Sample(
            "sink node 3 and a self-loop",
            (np.array([[0.5], [0.25], [0.9]]), np.array([0, 1, 1]), np.array([0, 2, 3])),
            {"num_nodes": 4},
            flags=("SINK", "SELF_LOOP"),
        ),
        Sample(
            "sink node, softmax",
            (np.array([[0.5], [0.25], [0.9]]), np.array([0, 1, 1]), np.array([0, 2, 3])),
            {"num_nodes": 4, "normalization": "softmax"},
            flags=("SINK",),
        ),
        Sample(
            "softmax logits ±1e3",
            (np.array([[1000.0], [999.0], [-1000.0]]), np.array([0, 0, 1]), np.array([1, 2, 0])),
            {"num_nodes": 3, "normalization": "softmax"},
            flags=("SOFTMAX_OVERFLOW",),
        ),
        Sample(
            "logits exactly at the kinks",
            (np.array([[0.0], [1.0], [0.5]]), np.array([0, 1, 2]), np.array([1, 2, 0])),
            {"num_nodes": 3},
            flags=("KINK",),
            fd=False,
        ),
    ]


def _matrix_errors():
    logits = np.ones((2, 1)) * 0.5
    return [
        ErrorCase(
            "duplicate edge",
            (logits, np.array([0, 0]), np.array([1, 1])),
            {"num_nodes": 2},
            match="duplicate",
        ),
        ErrorCase(
            "src out of range", (logits, np.array([0, 2]), np.array([1, 0])), {"num_nodes": 2}, match="src"
        ),
        ErrorCase(
            "dst out of range", (logits, np.array([0, 1]), np.array([5, 0])), {"num_nodes": 2}, match="dst"
        ),
    ]


def _matrix_known():
    return [
        Known(
            "clip then divide by the out-degree",
            (np.array([[0.5], [1.7], [-0.3]]), np.array([0, 0, 1]), np.array([1, 2, 0])),
            {"num_nodes": 3},
            values={"A": [[[0.0, 0.25, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]},
            source="by hand",
            rtol=1e-15,
        ),
        Known(
            "softmax over the two edges of node 0",
            (np.array([[0.0], [np.log(3.0)], [5.0]]), np.array([0, 0, 1]), np.array([1, 2, 0])),
            {"num_nodes": 3, "normalization": "softmax"},
            values={"A": [[[0.0, 0.25, 0.75], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]},
            source="by hand: e⁰/(e⁰ + 3), 3/(1 + 3); a single edge gets 1",
            rtol=1e-14,
        ),
    ]


def _matrix_torch(torch, args, kwargs, cotangent):
    """clamp(ℓ, 0, 1)/deg scattered into zeros (degree) or a −inf-masked dense row softmax;
    autograd backward."""
    logits = torch.from_numpy(args[0]).requires_grad_()
    src, dst = torch.from_numpy(args[1]), torch.from_numpy(args[2])
    n = kwargs["num_nodes"]
    g = torch.from_numpy(np.asarray(cotangent))
    degree = torch.bincount(src, minlength=n).to(logits.dtype)
    softmax = kwargs.get("normalization", "degree") == "softmax"

    def step():
        logits.grad = None
        if softmax:
            dense = torch.full((logits.shape[1], n, n), -torch.inf, dtype=logits.dtype)
            dense[:, src, dst] = logits.T
            a = torch.nan_to_num(torch.softmax(dense, dim=2), nan=0.0)
        else:
            a = torch.zeros((logits.shape[1], n, n), dtype=logits.dtype)
            a[:, src, dst] = (logits.clamp(0, 1) / degree[src][:, None]).T
        a.backward(g)
        return a

    return step


def _matrix_bench(rng, rows, cols):
    n, heads = cols, 16
    src, dst = _random_graph(rng, n, max_edges=min(rows, n * n))
    logits = rng.uniform(-0.5, 1.5, size=(src.size, heads))
    return Sample("bench", (logits, src, dst), {"num_nodes": n})


def _matrix_transcendentals(args, kwargs):
    return args[0].size if kwargs.get("normalization", "degree") == "softmax" else 0


register(
    OpCases(
        "cgs_transition_matrix",
        dims={"n": (1, 5), "H": (1, 3)},
        random=_matrix_random,
        edges=_matrix_edges,
        errors=_matrix_errors,
        known=_matrix_known,
        notes=MATRIX_NOTES,
        defaults={"normalization": "degree"},
        bench=Bench(
            make=_matrix_bench,
            torch=_matrix_torch,
            torch_label="clamp(ℓ, 0, 1)/deg(src) scattered into zeros (H, n, n); autograd backward",
            transcendentals=_matrix_transcendentals,
        ),
    )
)


# -- the fixed point ----------------------------------------------------------------------------------
FIXED_POINT_NOTES = {
    "DENSE_SOLVE": "identity φ, tight tol: z equals (I − γA)⁻¹b per head",
    "TANH": "φ = tanh: D = diag(1 − tanh²(y)) in the implicit VJP",
    "NO_ITERATIONS": "max_iter = 0: z = φ(b), the map applied once to x = 0",
    "CAPPED": "max_iter below what the tolerance needs: not converged",
    "JOINT_NORM": "two heads converging at different rates: one norm over all heads stops both",
    "ZERO_B": "b = 0: the fixed point is 0, reached at once (r_0 = 0 < tol)",
    "FROM_TRANSITION": "A built by cgs_transition_matrix: the contraction CGS guarantees",
    "FLOAT32": "float32 with a tolerance it can reach, clear of rounding",
}

FLOAT64_ONLY = (
    "the stopping iteration is compared exactly: float32 rounding may move a residual across a "
    "tight tolerance (the float32 cases use tol = 1e-3, clear of it)"
)


def official_loop(A, b, gamma, activation, tol, max_iter):  # noqa: N803
    """The official ``solve_fp_eq`` then one more map, written independently in NumPy (float64)."""
    phi = np.tanh if activation == "tanh" else (lambda y: y)
    x = np.zeros_like(b)
    itr = 0
    norms = []
    while itr < max_iter:
        x_next = phi(gamma * np.matmul(A, x[:, :, None])[:, :, 0] + b)
        norms.append(np.linalg.norm(x - x_next))
        if norms[-1] < tol:
            break
        x = x_next
        itr += 1
    return phi(gamma * np.matmul(A, x[:, :, None])[:, :, 0] + b), np.asarray(norms), itr


def stated_implicit_vjp(args, kwargs, cotangents):
    """The implicit rule evaluated independently in float64: z from the official loop, then the
    Jacobian ``dz/db = (I − DγA)⁻¹D`` per head by an explicit inverse; b̄ = (dz/db)ᵀz̄, Ā = γ b̄ zᵀ.
    The record's cotangents are ignored (it carries no gradient)."""
    A, b = (np.asarray(a, dtype=np.float64) for a in args)  # noqa: N806
    gamma = float(kwargs.get("gamma", 0.5))
    activation = kwargs.get("activation", "identity")
    z, _, _ = official_loop(
        A, b, gamma, activation, float(kwargs.get("tol", 1e-6)), int(kwargs.get("max_iter", 50))
    )
    g_z = np.asarray(cotangents[0], dtype=np.float64)
    y = gamma * np.matmul(A, z[:, :, None])[:, :, 0] + b
    d = 1 - np.tanh(y) ** 2 if activation == "tanh" else np.ones_like(y)
    g_b = np.empty_like(b)
    for h in range(A.shape[0]):
        jacobian = np.linalg.inv(np.eye(A.shape[1]) - d[h][:, None] * gamma * A[h]) * d[h][None, :]
        g_b[h] = jacobian.T @ g_z[h]
    return [gamma * g_b[:, :, None] * z[:, None, :], g_b]


def contraction(rng, heads, n, row_sum=1.0, signed=False):
    """(H, n, n) matrices whose rows of |A| sum to at most ``row_sum``."""
    a = rng.uniform(0, 1, size=(heads, n, n)) * (rng.uniform(size=(heads, n, n)) < 0.7)
    if signed:
        a *= rng.choice([-1.0, 1.0], size=a.shape)
    sums = np.abs(a).sum(axis=2, keepdims=True)
    return a / np.where(sums > 0, sums, 1) * row_sum * rng.uniform(0.5, 1.0, size=(heads, n, 1))


def _clear(norms, tol, margin=1.5):
    """No residual within a factor ``margin`` of tol: rounding cannot move the stop."""
    return not np.any((norms > tol / margin) & (norms < tol * margin))


def _fixed_point_random(rng, H, n):  # noqa: N803
    for _ in range(100):
        a = contraction(rng, H, n, signed=bool(rng.random() < 0.3))
        b = rng.standard_normal((H, n)) * float(rng.choice([0.5, 2.0]))
        kwargs = {
            "gamma": float(rng.choice([0.3, 0.5, 0.9])),
            "activation": str(rng.choice(["identity", "tanh"])),
            "tol": float(rng.choice([1e-6, 1e-10, 1e-12])),
            "max_iter": int(rng.choice([50, 400])),
        }
        _, norms, _ = official_loop(
            a, b, kwargs["gamma"], kwargs["activation"], kwargs["tol"], kwargs["max_iter"]
        )
        _, default_norms, _ = official_loop(a, b, 0.5, "identity", 1e-6, 50)
        if _clear(norms, kwargs["tol"]) and _clear(default_norms, 1e-6):
            return Sample("random", (a, b), kwargs, dtypes=("float64",), comment=FLOAT64_ONLY)
    raise RuntimeError("could not draw a system whose residuals stay clear of the tolerance")


def _fixed_point_edges():
    rng = np.random.default_rng(11)
    a3 = contraction(rng, 2, 3)
    b3 = rng.standard_normal((2, 3))
    logits = np.array([[0.5, 0.9], [0.8, 0.1], [0.3, 0.6], [1.0, 0.4]])
    src, dst = np.array([0, 0, 1, 2]), np.array([1, 2, 2, 0])
    import refimpl

    a_graph = refimpl.solvers.cgs_transition_matrix(logits, src, dst, num_nodes=3)
    two_rates = np.stack([0.1 * np.eye(3)[[1, 2, 0]], 0.95 * np.eye(3)[[1, 2, 0]]])
    return [
        Sample(
            "dense solve, tight tol",
            (a3, b3),
            {"tol": 1e-13, "max_iter": 200},
            flags=("DENSE_SOLVE",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample(
            "tanh",
            (a3, b3),
            {"activation": "tanh", "tol": 1e-12, "max_iter": 200},
            flags=("TANH",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample("max_iter = 0", (a3, b3), {"max_iter": 0}, flags=("NO_ITERATIONS",)),
        Sample("capped at 3 iterations", (a3, b3), {"max_iter": 3}, flags=("CAPPED",)),
        Sample(
            "two heads, one joint norm",
            (two_rates, np.ones((2, 3))),
            {"gamma": 0.9, "tol": 1e-8, "max_iter": 400},
            flags=("JOINT_NORM",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample("b = 0", (a3, np.zeros((2, 3))), flags=("ZERO_B",)),
        Sample(
            "A from cgs_transition_matrix, official defaults",
            (a_graph, b3),
            flags=("FROM_TRANSITION",),
            dtypes=("float64",),
            comment=FLOAT64_ONLY,
        ),
        Sample("float32-reachable tolerance", (a3, b3), {"tol": 1e-3}, flags=("FLOAT32",)),
        Sample("1 node", (np.array([[[0.5]]]), np.array([[2.0]])), {"tol": 1e-3}, flags=("FLOAT32",)),
    ]


def _fixed_point_errors():
    return [
        ErrorCase(
            "not a contraction",
            (np.array([[[0.0, 1.5], [1.0, 0.0]]]), np.ones((1, 2))),
            {"gamma": 0.9},
            match="contraction",
        ),
    ]


def _fixed_point_known():
    return [
        Known(
            "scalar: z = b/(1 − γa)",
            (np.array([[[0.5]]]), np.array([[3.0]])),
            {"tol": 1e-14, "max_iter": 100},
            values={"z": [[3.0 / 0.75]], "converged": True},
            source="by hand",
            rtol=1e-13,
        ),
        Known(
            "swap matrix: z = (2, 2)",
            (np.array([[[0.0, 1.0], [1.0, 0.0]]]), np.array([[1.0, 1.0]])),
            {"tol": 1e-14, "max_iter": 100},
            values={"z": [[2.0, 2.0]]},
            source="by hand: z = ½·(z₂, z₁) + 1",
            rtol=1e-13,
        ),
        Known(
            "max_iter = 0: z = φ(b)",
            (np.array([[[0.5]]]), np.array([[0.3]])),
            {"activation": "tanh", "max_iter": 0},
            values={"z": [[np.tanh(0.3)]], "iterations": 0, "converged": False},
            source="by hand",
            rtol=1e-15,
        ),
    ]


register(
    OpCases(
        "cgs_fixed_point",
        dims={"H": (1, 3), "n": (1, 5)},
        random=_fixed_point_random,
        edges=_fixed_point_edges,
        errors=_fixed_point_errors,
        known=_fixed_point_known,
        notes=FIXED_POINT_NOTES,
        defaults={"gamma": 0.5, "activation": "identity", "tol": 1e-6, "max_iter": 50},
        stated_vjp=stated_implicit_vjp,
    )
)

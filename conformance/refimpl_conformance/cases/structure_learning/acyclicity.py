"""Conformance cases for the acyclicity functions, the least-squares SEM score, NOTEARS and
TOPO's swap candidates (`notears_acyclicity_exp`, `dagma_acyclicity_logdet`,
`topo_acyclicity_logdet_abs`, `poly_acyclicity`, `least_squares_sem_score`,
`notears_augmented_lagrangian`, `topo_swap_candidates`)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "DAG": "a DAG: h is exactly 0 (every closed walk is absent); a formula tr(E) − d cancels to ulps",
    "CYCLE": "a graph with a cycle: h > 0",
    "SELF_LOOP": "a diagonal entry: a cycle of length one",
    "TINY_CYCLE": "a cycle of weight 1e-6: h ≈ 1e-12, kept to full relative accuracy only without "
    "cancellation",
    "KNOWN": "the 2-node cycle W = [[0, a], [b, 0]]: closed forms",
    "SQUARINGS": "‖W∘W‖ ≫ 1: the exponential needs several squarings",
    "NEAR_BOUNDARY": "ρ close to s: the log-det's gradient grows like 1/(s − ρ)",
    "ONE_NODE": "d = 1: h is a function of the one diagonal entry",
    "ZERO": "W = 0",
    "NEGATIVE_WEIGHTS": "negative weights: |W| and W∘W lose the sign, sign(W) restores it in the gradient",
    "OUTSIDE_DOMAIN": "official TOPO (check_domain=False) past the M-matrix domain: log|det| of a "
    "negative determinant",
    "TIES": "many forbidden pairs with G_h = 0 (no path back): ties broken by the flat index, or all kept",
    "SIZES": "explicit search-space sizes, 0 and beyond the number of forbidden pairs",
    "TRUE_DAG": "data from a linear SEM on a known DAG: NOTEARS recovers it",
    "BUDGET": "iteration limits reached before convergence: the record stops there",
}


# -- weighted adjacencies ----------------------------------------------------------------------------
def dag_weights(rng, d, scale=1.0, density=0.6):
    """A random DAG on d nodes: a permuted strictly upper-triangular W, weights ±[0.5, 2]·scale."""
    upper = np.triu(rng.random((d, d)) < density, k=1)
    weights = rng.uniform(0.5, 2.0, size=(d, d)) * rng.choice([-1.0, 1.0], size=(d, d)) * scale
    perm = rng.permutation(d)
    W = np.where(upper, weights, 0.0)
    return W[np.ix_(perm, perm)]


def spectral_radius(A):
    return float(np.max(np.abs(np.linalg.eigvals(A)))) if A.size else 0.0


def in_domain(W, s, target, squared=True):
    """W rescaled so that ρ(W∘W) (or ρ(|W|)) = target·s; a DAG (ρ = 0) is left as it is."""
    A = W * W if squared else np.abs(W)
    rho = spectral_radius(A)
    if rho < 1e-12:
        return W
    factor = target * s / rho
    return W * (np.sqrt(factor) if squared else factor)


def _graph(rng, d):
    kind = str(rng.choice(["dag", "cyclic", "cyclic", "dense"]))
    if kind == "dag":
        return dag_weights(rng, d), kind
    W = dag_weights(rng, d, density=0.5)
    if kind == "dense":
        W = rng.standard_normal((d, d))
    else:  # a DAG plus back edges (and maybe a self-loop)
        i, j = rng.integers(0, d, size=2)
        W[max(i, j), min(i, j)] += rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.5)
    return W, kind


def _bench_graph(squared):
    """A dense d = 128 weighted adjacency with ρ(W∘W) (or ρ(|W|)) = 0.8: inside every domain,
    no overflow, no subnormal powers (which a DAG's vanishing powers would time instead)."""

    def make(rng, rows, cols):
        W = in_domain(rng.standard_normal((128, 128)), 1.0, 0.8, squared=squared)
        return Sample("bench", (W,))

    return make


# -- notears_acyclicity_exp and poly_acyclicity ----------------------------------------------------
def _exp_random(rng, d):
    W, _ = _graph(rng, d)
    W = W * float(rng.choice([0.3, 0.7, 1.2]))
    return Sample("random", (W,))


def _acyclicity_edges(op_name):
    rng = np.random.default_rng(31)
    a, b = 0.9, -0.7
    two_cycle = np.array([[0.0, a], [b, 0.0]])
    chain = np.diag([0.8, -1.5, 2.0, 0.6], k=1)
    dag = dag_weights(rng, 6, scale=1.5)
    tiny = dag.copy()
    i, j = np.argwhere(dag != 0)[0]
    tiny[j, i] = 1e-6
    loop = dag.copy()
    loop[2, 2] = 0.4
    samples = [
        Sample("2-cycle [[0, 0.9], [−0.7, 0]]", (two_cycle,), flags=("KNOWN", "CYCLE", "NEGATIVE_WEIGHTS")),
        Sample("chain 0 → 1 → 2 → 3 → 4", (chain,), flags=("DAG",)),
        Sample("random DAG on 6 nodes, weights up to 3", (dag,), flags=("DAG",)),
        Sample("DAG plus a back edge of weight 1e-6", (tiny,), flags=("TINY_CYCLE", "CYCLE"), fd_step=1e-9),
        Sample("DAG plus a self-loop", (loop,), flags=("SELF_LOOP", "CYCLE")),
        Sample("d = 1, a self-loop", (np.array([[0.7]]),), flags=("ONE_NODE", "SELF_LOOP")),
        Sample("W = 0", (np.zeros((3, 3)),), flags=("ZERO", "DAG")),
    ]
    if op_name == "notears_acyclicity_exp":
        samples.append(
            Sample("dense W, ‖W∘W‖ ≈ 40", (rng.standard_normal((4, 4)) * 2.0,), flags=("SQUARINGS", "CYCLE"))
        )
    else:
        samples.append(Sample("dense W ×3", (rng.standard_normal((4, 4)) * 3.0,), flags=("CYCLE",)))
    return samples


def _torch_baseline(h):
    """The PyTorch baseline of an acyclicity function: ``h(torch, W, s, identity)`` (the same
    function in torch ops), its value and autograd backward for the given cotangent."""

    def baseline(torch, args, kwargs, cotangent):
        W = torch.from_numpy(args[0]).requires_grad_()
        s = kwargs.get("s", 1.0)
        identity = torch.eye(W.shape[0], dtype=W.dtype)
        g_h = torch.tensor(float(np.asarray(cotangent)), dtype=W.dtype)

        def step():
            W.grad = None
            value = h(torch, W, s, identity)
            value.backward(g_h)
            return value

        return step

    return baseline


def _exp_blas(args, kwargs):
    """The reference's products for exp(W∘W) − I: with B = A/2^k (‖B‖_∞ ≤ ½), the Taylor
    terms B², …, B¹⁸ (17 products) and k squarings F·F; the backward is elementwise."""
    A = np.square(args[0])
    norm = float(A.sum(axis=1).max()) if A.size else 0.0
    squarings = 0 if norm <= 0.5 else int(np.ceil(np.log2(norm / 0.5)))
    B = A / 2.0**squarings

    def step():
        term = F = B
        for _ in range(17):
            term = term @ B
        for _ in range(squarings):
            F = F @ F
        return term, F

    return step


def _poly_blas(args, kwargs):
    """The reference's products for (I + B)^d − I, B = W∘W/d: binary powering to the power
    d − 1 (one product per set bit, one squaring per further bit), then one more by B; the
    backward is elementwise."""
    d = args[0].shape[0]
    B = np.square(args[0]) / d

    def step():
        result, base, k = np.zeros_like(B), B, d - 1
        while k:
            if k & 1:
                result = result @ base
            k >>= 1
            if k:
                base = base @ base
        return result @ B

    return step


def _lu_blas(squared):
    """The factorization and the inverse of M = sI − W∘W (or sI − |W|): LU (LAPACK getrf)
    for log det M in the forward, the inverse from those factors (getri) for M^{−T} in the
    backward."""

    def blas(args, kwargs):
        from scipy.linalg import get_lapack_funcs, lu_factor

        W = args[0]
        M = kwargs.get("s", 1.0) * np.eye(W.shape[0], dtype=W.dtype) - (W * W if squared else np.abs(W))
        (getri,) = get_lapack_funcs(("getri",), (M,))

        def step():
            lu, piv = lu_factor(M)
            return getri(lu, piv)[0]

        return step

    return blas


# tr(exp(W ∘ W)) − d
_exp_torch = _torch_baseline(lambda torch, W, s, eye: torch.linalg.matrix_exp(W * W).trace() - W.shape[0])


register(
    OpCases(
        "notears_acyclicity_exp",
        dims={"d": (1, 6)},
        random=_exp_random,
        edges=lambda: _acyclicity_edges("notears_acyclicity_exp"),
        errors=lambda: [],
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench_graph(True),
            torch=_exp_torch,
            torch_label="torch.linalg.matrix_exp(W*W).trace() − d, autograd",
            blas=_exp_blas,
        ),
    )
)


# tr((I + W ∘ W/d)^d) − d
_poly_torch = _torch_baseline(
    lambda torch, W, s, eye: (
        torch.linalg.matrix_power(eye + W * W / W.shape[0], W.shape[0]).trace() - W.shape[0]
    )
)


register(
    OpCases(
        "poly_acyclicity",
        dims={"d": (1, 6)},
        random=_exp_random,
        edges=lambda: _acyclicity_edges("poly_acyclicity"),
        errors=lambda: [],
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench_graph(True),
            torch=_poly_torch,
            torch_label="torch.linalg.matrix_power(I + W*W/d, d).trace() − d, autograd",
            blas=_poly_blas,
        ),
    )
)


# -- dagma_acyclicity_logdet ----------------------------------------------------------------------------
def _logdet_random(rng, d):
    W, _ = _graph(rng, d)
    s = float(rng.choice([1.0, 1.0, 0.5, 2.0]))
    # ρ/s never 1/2: with s = 2 dropped for the default s = 1, that W would sit on the boundary
    W = in_domain(W, s, float(rng.choice([0.1, 0.45, 0.8])))
    kwargs = {} if s == 1.0 and rng.random() < 0.5 else {"s": s}
    return Sample("random", (W,), kwargs)


def _logdet_edges():
    rng = np.random.default_rng(32)
    two_cycle = np.array([[0.0, 0.9], [-0.7, 0.0]])  # a²b² = 0.3969
    dag = dag_weights(rng, 6, scale=3.0)
    tiny = dag.copy()
    i, j = np.argwhere(dag != 0)[0]
    tiny[j, i] = 1e-6
    near = in_domain(rng.standard_normal((4, 4)), 1.0, 0.99)
    return [
        Sample("2-cycle, s = 1", (two_cycle,), flags=("KNOWN", "CYCLE", "NEGATIVE_WEIGHTS")),
        Sample("2-cycle, s = 0.5", (two_cycle * 0.6,), {"s": 0.5}, flags=("KNOWN", "CYCLE")),
        Sample(
            "random DAG, weights up to 6",
            (dag,),
            flags=("DAG",),
            fd_step=1e-8,
            comment="h and its gradient are 0: the differences carry only the cubic term, kept small",
        ),
        Sample("DAG plus a back edge of weight 1e-6", (tiny,), flags=("TINY_CYCLE", "CYCLE"), fd_step=1e-9),
        Sample("ρ(W∘W) = 0.99 s", (near,), flags=("NEAR_BOUNDARY",)),
        Sample("d = 1, W = 0.5", (np.array([[0.5]]),), {"s": 0.3}, flags=("ONE_NODE", "SELF_LOOP")),
        Sample("W = 0, s = 2", (np.zeros((3, 3)),), {"s": 2.0}, flags=("ZERO", "DAG")),
    ]


def _logdet_errors():
    return [
        ErrorCase(
            "2-cycle with a²b² = 4 > s",
            (np.array([[0.0, 2.0], [1.0, 0.0]]),),
            match="leading principal minor 2",
        ),
        ErrorCase(
            "a self-loop W_00² = 1.21 > s", (np.array([[1.1, 0.0], [0.0, 0.0]]),), match="ρ\\(W∘W\\) ≥ s"
        ),
        ErrorCase(
            "in the domain for s = 1, not for s = 0.1",
            (np.array([[0.0, 0.5], [0.5, 0.0]]),),
            {"s": 0.1},
            match="M-matrix domain",
        ),
    ]


# −log det(sI − W ∘ W) + d log s
_logdet_torch = _torch_baseline(
    lambda torch, W, s, eye: -torch.linalg.slogdet(s * eye - W * W).logabsdet + W.shape[0] * float(np.log(s))
)


register(
    OpCases(
        "dagma_acyclicity_logdet",
        dims={"d": (1, 6)},
        random=_logdet_random,
        edges=_logdet_edges,
        errors=_logdet_errors,
        notes=NOTES,
        defaults={"s": 1.0},
        bench=Bench(
            make=_bench_graph(True),
            torch=_logdet_torch,
            torch_label="−torch.linalg.slogdet(sI − W*W).logabsdet, autograd",
            blas=_lu_blas(True),
        ),
    )
)


# -- topo_acyclicity_logdet_abs ---------------------------------------------------------------------------
KINK = (
    "|W| has a kink at every zero entry: central differences there are only first-order accurate "
    "(their limit, the average of the one-sided slopes ±G_h, is the 0 the backward gives)"
)


def _abs_random(rng, d):
    W, _ = _graph(rng, d)
    W = W + 0.05 * rng.standard_normal((d, d))  # no zero entry: |W| is smooth at the sample
    s = float(rng.choice([1.0, 1.0, 0.5, 2.0]))
    check_domain = bool(rng.random() < 0.7)
    # ρ/s never 1/2: with s = 2 dropped for the default s = 1, that W would sit on the boundary
    target = float(rng.choice([0.1, 0.45, 0.8])) if check_domain else float(rng.choice([0.45, 1.5, 3.0]))
    W = in_domain(W, s, target, squared=False)
    # the sign of |W| is lost: |W| has a kink at 0, where sign(0) = 0 is the average of ±G_h
    kwargs = {"s": s} if s != 1.0 or rng.random() < 0.5 else {}
    if not check_domain:
        kwargs["check_domain"] = False
    return Sample("random", (W,), kwargs)


def _abs_edges():
    rng = np.random.default_rng(33)
    dag = dag_weights(rng, 6, scale=3.0)
    tiny = dag.copy()
    i, j = np.argwhere(dag != 0)[0]
    tiny[j, i] = -1e-6
    outside = np.array([[0.0, 2.0], [-2.0, 0.0]])  # det(I − |W|) = 1 − 4 = −3
    return [
        Sample(
            "2-cycle |ab| = 0.63",
            (np.array([[0.0, 0.9], [-0.7, 0.0]]),),
            flags=("KNOWN", "CYCLE", "NEGATIVE_WEIGHTS"),
            fd=False,
            comment=KINK,
        ),
        Sample(
            "random DAG, weights up to 6", (dag,), flags=("DAG", "NEGATIVE_WEIGHTS"), fd=False, comment=KINK
        ),
        Sample(
            "DAG plus a back edge of weight −1e-6",
            (tiny,),
            flags=("TINY_CYCLE", "CYCLE"),
            fd=False,
            comment=KINK,
        ),
        Sample(
            "ρ(|W|) = 0.99",
            (in_domain(rng.standard_normal((4, 4)), 1.0, 0.99, squared=False),),
            flags=("NEAR_BOUNDARY",),
        ),
        Sample(
            "official: outside the domain, det = −3",
            (outside,),
            {"check_domain": False},
            flags=("OUTSIDE_DOMAIN",),
            fd=False,
            comment=KINK,
        ),
        Sample(
            "official: a DAG",
            (dag,),
            {"check_domain": False, "s": 2.0},
            flags=("DAG",),
            fd=False,
            comment=KINK,
        ),
        Sample(
            "d = 1, W = −0.5, s = 0.7", (np.array([[-0.5]]),), {"s": 0.7}, flags=("ONE_NODE", "SELF_LOOP")
        ),
    ]


def _abs_errors():
    return [
        ErrorCase(
            "2-cycle with |ab| = 4 > s",
            (np.array([[0.0, -2.0], [2.0, 0.0]]),),
            match="leading principal minor 2 of sI − \\|W\\|",
        ),
        ErrorCase(
            "a self-loop |W_11| = 2 > s = 1.5",
            (np.diag([0.0, -2.0]),),
            {"s": 1.5},
            match="ρ\\(\\|W\\|\\) ≥ s",
        ),
    ]


# −log det(sI − |W|) + d log s (d|w|/dw = sign w)
_abs_torch = _torch_baseline(
    lambda torch, W, s, eye: (
        -torch.linalg.slogdet(s * eye - W.abs()).logabsdet + W.shape[0] * float(np.log(s))
    )
)


register(
    OpCases(
        "topo_acyclicity_logdet_abs",
        dims={"d": (1, 6)},
        random=_abs_random,
        edges=_abs_edges,
        errors=_abs_errors,
        notes=NOTES,
        defaults={"s": 1.0, "check_domain": True},
        bench=Bench(
            make=_bench_graph(False),
            torch=_abs_torch,
            torch_label="−torch.linalg.slogdet(sI − |W|).logabsdet, autograd",
            blas=_lu_blas(False),
        ),
    )
)


# -- least_squares_sem_score ---------------------------------------------------------------------------
def _centred(rng, n, d, scale=1.0):
    X = rng.standard_normal((n, d)) * scale
    return X - X.mean(axis=0)


def _score_random(rng, n, d):
    X = _centred(rng, n, d, float(rng.choice([0.1, 1.0, 10.0])))
    W, _ = _graph(rng, d)
    return Sample("random", (X, W * 0.5))


def _score_edges():
    rng = np.random.default_rng(34)
    X = np.array([[1.0, 2.0], [-1.0, -2.0]])
    W_true = dag_weights(rng, 4)
    noise = rng.standard_normal((50, 4))
    X_sem = noise @ np.linalg.inv(np.eye(4) - W_true)  # X = XW + Z
    return [
        Sample("perfect fit: x₁ = 2x₀", (X, np.array([[0.0, 2.0], [0.0, 0.0]])), comment="L = ‖x₀‖²/4 = 0.5"),
        Sample("W = 0: L = ‖X‖²/(2n)", (X, np.zeros((2, 2))), flags=("ZERO",)),
        Sample("linear SEM data at its true W", (X_sem - X_sem.mean(axis=0), W_true), flags=("TRUE_DAG",)),
        Sample("one sample", (rng.standard_normal((1, 3)), rng.standard_normal((3, 3)))),
        Sample("d = 1", (_centred(rng, 5, 1), np.array([[0.3]])), flags=("ONE_NODE",)),
    ]


register(
    OpCases(
        "least_squares_sem_score",
        dims={"n": (1, 12), "d": (1, 5)},
        random=_score_random,
        edges=_score_edges,
        errors=lambda: [],
        notes=NOTES,
        defaults={},
    )
)


# -- notears_augmented_lagrangian --------------------------------------------------------------------
def sem_data(rng, W, n, noise_scale=1.0):
    """n samples of the linear SEM x = Wᵀx + z (rows: X = XW + Z), centred."""
    d = W.shape[0]
    Z = rng.standard_normal((n, d)) * noise_scale
    X = Z @ np.linalg.inv(np.eye(d) - W)
    return X - X.mean(axis=0)


def _notears_random(rng, n, d):
    W = dag_weights(rng, d)
    X = sem_data(rng, W, n)
    kwargs = {
        "lambda1": float(rng.choice([0.0, 0.05, 0.1])),
        "max_iter": int(rng.choice([100, 100, 2])),
        "h_tol": float(rng.choice([1e-8, 1e-6])),
        "rho_max": float(rng.choice([1e16, 1e16, 1e5])),
        "w_threshold": float(rng.choice([0.3, 0.1])),
        "inner_max_iter": int(rng.choice([15000, 15000, 30])),
        "inner_ftol": float(rng.choice([2.220446049250313e-09, 1e-7])),
        "inner_gtol": float(rng.choice([1e-5, 1e-4])),
    }
    return Sample("random", (X,), kwargs)


def _notears_edges():
    rng = np.random.default_rng(35)
    chain = np.array([[0.0, 1.5, 0.0], [0.0, 0.0, -1.2], [0.0, 0.0, 0.0]])
    return [
        Sample(
            "chain 0 → 1 → 2, 200 samples",
            (sem_data(rng, chain, 200),),
            {"lambda1": 0.1},
            flags=("TRUE_DAG",),
        ),
        Sample(
            "two independent variables",
            (sem_data(rng, np.zeros((2, 2)), 100),),
            {"lambda1": 0.1},
            flags=("ZERO",),
        ),
        Sample(
            "one dual step, ρ_max = 100",
            (sem_data(rng, chain, 60),),
            {"lambda1": 0.0, "max_iter": 1, "rho_max": 100.0},
            flags=("BUDGET",),
        ),
    ]


def _notears_errors():
    return [ErrorCase("d = 1", (np.zeros((5, 1)),), {"lambda1": 0.1}, match="d >= 2")]


register(
    OpCases(
        "notears_augmented_lagrangian",
        dims={"n": (20, 30), "d": (2, 3)},
        random=_notears_random,
        edges=_notears_edges,
        errors=_notears_errors,
        notes=NOTES,
        defaults={
            "max_iter": 100,
            "h_tol": 1e-8,
            "rho_max": 1e16,
            "w_threshold": 0.3,
            "inner_max_iter": 15000,
            "inner_ftol": 2.220446049250313e-09,
            "inner_gtol": 1e-05,
        },
    )
)


# -- topo_swap_candidates ------------------------------------------------------------------------------
def _swap_random(rng, d):
    order = rng.permutation(d)
    W = dag_weights(rng, d)
    if rng.random() < 0.7:  # W_π: supported on the edges the order allows
        position = np.empty(d, dtype=int)
        position[order] = np.arange(d)
        W = np.where(position[:, None] < position[None, :], rng.standard_normal((d, d)), 0.0)
        W = np.where(rng.random((d, d)) < 0.6, W, 0.0)
    else:
        W = in_domain(W + 0.3 * rng.standard_normal((d, d)), 1.0, 0.7, squared=False)
    kwargs = {}
    if rng.random() < 0.5:
        kwargs["size_small"] = int(rng.integers(0, d * d))
    if rng.random() < 0.5:
        kwargs["size_large"] = int(rng.integers(0, d * d))
    if rng.random() < 0.4:
        kwargs["official_ties"] = True
    if rng.random() < 0.3:
        kwargs["s"] = 2.0
    return Sample("random", (W, order), kwargs)


def _swap_edges():
    rng = np.random.default_rng(36)
    single = np.zeros((3, 3))
    single[0, 1] = 0.8
    W8 = dag_weights(rng, 8)
    order8 = np.arange(8)
    return [
        Sample("edge 0 → 1, order (0, 1, 2)", (single, np.array([0, 1, 2])), flags=("TIES",)),
        Sample(
            "edge 0 → 1, official ties",
            (single, np.array([0, 1, 2])),
            {"official_ties": True},
            flags=("TIES",),
        ),
        Sample(
            "W = 0, sizes 0 and 100",
            (np.zeros((4, 4)), np.array([3, 1, 0, 2])),
            {"size_small": 0, "size_large": 100},
            flags=("SIZES", "TIES", "ZERO"),
        ),
        Sample("a DAG whose order is not π", (W8, order8[::-1].copy()), flags=("DAG",)),
        Sample(
            "d = 2",
            (np.array([[0.0, 0.5], [0.0, 0.0]]), np.array([1, 0])),
            {"size_small": 1},
            flags=("SIZES",),
        ),
    ]


def _swap_errors():
    return [
        ErrorCase("order repeats a node", (np.zeros((3, 3)), np.array([0, 0, 2])), match="permutation"),
        ErrorCase(
            "W outside ρ(|W|) < s",
            (np.array([[0.0, 2.0], [2.0, 0.0]]), np.array([0, 1])),
            match="M-matrix domain",
        ),
    ]


register(
    OpCases(
        "topo_swap_candidates",
        dims={"d": (2, 7)},
        random=_swap_random,
        edges=_swap_edges,
        errors=_swap_errors,
        notes=NOTES,
        defaults={"s": 1.0, "size_small": None, "size_large": None, "official_ties": False},
    )
)

"""Conformance cases for Expert Merging: `task_vector`, `expert_merging`,
`expert_merging_coefficient_regularizer`, `hidden_state_mse` and
`expert_merging_pp_chunk_allocation`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

LOGIT_0_1 = float(np.log(0.1 / 0.9))  # the official initialization a = logit(0.1)

NOTES = {
    "FEWER_CHUNKS": "official chunks of ⌈n/C⌉ give fewer than C chunks: the extra coefficients "
    "must be ignored (zero gradient), not wrapped around or given the remainder",
    "EVEN_SPLIT": "exactly C chunks, the first n mod C one element larger (numpy.array_split)",
    "EMPTY_CHUNKS": "C > n: some chunks are empty; their coefficients get exactly zero gradient",
    "LAYER_WISE": "C = 1: one coefficient per expert for the whole tensor",
    "SATURATED": "a = ±40: sigmoid(a) must not overflow and α(1 − α) must not cancel to 0 for a > 0",
    "SCALAR_PARAMETER": "a 0-d parameter tensor (n = 1)",
    "KINK": "α = 0.1 exactly is the kink of |α − 0.1|: the subgradient sign(0) = 0",
    "UNIFORM_KAPPA": "κ = 0: every layer gets ⌊B/L⌋ chunks (0^0 = 1 for a zero-importance layer)",
    "ZERO_IMPORTANCE": "a layer with α = 0 or τ = 0: importance 0, no chunks for κ > 0",
    "EQUAL_IMPORTANCE": "layers of equal importance get equal counts (no order-dependent tie-break)",
    "NEGATIVE_ALPHA": "the importance uses |α|",
    "ZERO_BUDGET": "B = 0: no chunks anywhere",
}


def _shape_with(rng, n):
    """A random shape holding n elements: (n,), (n//d, d) or (d, 1, n//d) for a divisor d."""
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    d = int(rng.choice(divisors))
    return [(n,), (n // d, d), (d, 1, n // d)][int(rng.integers(0, 3))]


# -- task_vector ----------------------------------------------------------------------------
def _task_vector_random(rng, n):
    shape = _shape_with(rng, n)
    return Sample("random", (rng.standard_normal(shape), rng.standard_normal(shape)))


register(
    OpCases(
        "task_vector",
        dims={"n": (1, 12)},
        random=_task_vector_random,
        edges=lambda: [
            Sample("0-d parameter", (np.array(1.5), np.array(-0.25)), flags=("SCALAR_PARAMETER",)),
            Sample("expert equals base: τ = 0", (np.ones((2, 3)), np.ones((2, 3)))),
        ],
        errors=lambda: [],
        notes=NOTES,
    )
)


# -- expert_merging -----------------------------------------------------------------------------
def _merge_sample(name, theta, taus, a, official=True, **extra):
    return Sample(name, (theta, np.stack(taus, axis=-1), a), {"official_chunking": official}, **extra)


def _merge_random(rng, n, K, C):  # noqa: N803 - dimension names as in the specs
    shape = _shape_with(rng, n)
    theta = rng.standard_normal(shape)
    taus = [rng.standard_normal(shape) * rng.choice([0.1, 1.0]) for _ in range(K)]
    a = rng.standard_normal((K, C)) * 2 + LOGIT_0_1 * rng.choice([0.0, 1.0])
    return _merge_sample("random", theta, taus, a, bool(rng.integers(0, 2)))


def _merge_edges():
    rng = np.random.default_rng(11)

    def draw(n, K, C):  # noqa: N803
        return rng.standard_normal(n), [rng.standard_normal(n) for _ in range(K)], rng.standard_normal((K, C))

    theta5, taus5, a5 = draw(5, 2, 4)
    theta3, taus3, a3 = draw(3, 2, 5)
    theta12 = rng.standard_normal((3, 4))
    taus12 = [rng.standard_normal((3, 4)) for _ in range(3)]
    return [
        _merge_sample(
            "n = 5, C = 4, official: 3 chunks of 2, 2, 1",
            theta5,
            taus5,
            a5,
            flags=("FEWER_CHUNKS",),
            comment="the 4th coefficient of each expert is unused: its gradient is exactly 0",
        ),
        _merge_sample(
            "n = 5, C = 4, even split: 2, 1, 1, 1", theta5, taus5, a5, False, flags=("EVEN_SPLIT",)
        ),
        _merge_sample("n = 3, C = 5, official: 3 chunks of 1", theta3, taus3, a3, flags=("EMPTY_CHUNKS",)),
        _merge_sample(
            "n = 3, C = 5, even split: 1, 1, 1, 0, 0", theta3, taus3, a3, False, flags=("EMPTY_CHUNKS",)
        ),
        _merge_sample(
            "one chunk (layer-wise), (3, 4) parameter, K = 3",
            theta12,
            taus12,
            rng.standard_normal((3, 1)),
            flags=("LAYER_WISE",),
        ),
        _merge_sample(
            "official initialization a = logit(0.1)",
            theta12,
            taus12,
            np.full((3, 2), LOGIT_0_1),
        ),
        _merge_sample(
            "saturated coefficients a = ±40",
            theta12,
            taus12,
            np.array([[40.0, -40.0, 0.0], [-40.0, 40.0, 2.0], [35.0, -35.0, -2.0]]),
            flags=("SATURATED",),
            fd=False,
            comment="α(1 − α) ≈ 4e-18: central differences cannot resolve it; values must stay finite",
        ),
        _merge_sample(
            "0-d parameter, K = 2",
            np.array(0.5),
            [np.array(1.0), np.array(-2.0)],
            np.array([[0.3], [-1.2]]),
            flags=("SCALAR_PARAMETER",),
        ),
    ]


def _merge_torch(torch, args, kwargs, cotangent):
    """σ(a); each run of equal-sized chunks viewed as (chunks, size, K) times its α (a batched
    matvec), concatenated, then θ₀ + Σ; autograd for ā."""
    theta0, taus = torch.from_numpy(args[0]), torch.from_numpy(args[1])
    a = torch.from_numpy(args[2]).requires_grad_()
    g_theta = torch.from_numpy(cotangent)
    n, (num_experts, num_chunks) = args[0].size, args[2].shape
    if kwargs.get("official_chunking", True):  # torch.chunk: chunks of ⌈n/C⌉, possibly fewer than C
        size = -(-n // num_chunks)
        sizes = [min((c + 1) * size, n) - min(c * size, n) for c in range(num_chunks)]
    else:  # torch.tensor_split: C chunks, the first n mod C one element larger
        small, larger = divmod(n, num_chunks)
        sizes = [small + (c < larger) for c in range(num_chunks)]
    runs, start = [], 0  # (first chunk, last chunk + 1, first element, chunk size), non-empty only
    for c, size in enumerate(sizes):
        if size and runs and runs[-1][3] == size:
            runs[-1][1] = c + 1
        elif size:
            runs.append([c, c + 1, start, size])
        start += size
    tau = taus.reshape(n, num_experts)

    def step():
        a.grad = None
        alpha = torch.sigmoid(a)  # (K, C)
        parts = [
            torch.matmul(
                tau[first : first + (end - c) * size].reshape(end - c, size, num_experts),
                alpha[:, c:end].T.unsqueeze(-1),
            ).reshape(-1)
            for c, end, first, size in runs
        ]
        combined = torch.cat(parts) if len(parts) > 1 else parts[0]
        theta = theta0 + combined.reshape(theta0.shape)
        theta.backward(g_theta)
        return theta

    return step


register(
    OpCases(
        "expert_merging",
        dims={"n": (1, 12), "K": (1, 3), "C": (1, 5)},
        random=_merge_random,
        edges=_merge_edges,
        notes=NOTES,
        bench=Bench(
            sizes={"n": 2**21, "K": 4, "C": 64},
            torch=_merge_torch,
            torch_label="torch.sigmoid; per run of equal chunks (chunks, size, K) @ α; θ₀ + Σ; autograd",
        ),
    )
)


# -- expert_merging_coefficient_regularizer ---------------------------------------------------------
def _regularizer_random(rng, K, M):  # noqa: N803
    a = rng.standard_normal((K, M)) * 2 + LOGIT_0_1
    weight = float(rng.choice([0.1, 1.0, 0.0]))
    target = float(rng.choice([0.1, 0.3, 0.02]))
    return Sample("random", (a,), {"weight": weight, "num_experts": K, "target": target})


def _regularizer_edges():
    return [
        Sample(
            "published example: α = 0.5, 0.5, 0.5, ≈0",
            (np.array([[0.0, 0.0], [0.0, -40.0]]),),
            {"num_experts": 2},
            comment="loss 0.1·(3·0.4 + 0.1)/2 = 0.065",
        ),
        Sample(
            "a = logit(0.1) exactly (the kink)",
            (np.full((2, 3), LOGIT_0_1),),
            {"num_experts": 2},
            flags=("KINK",),
            fd=False,
            dtypes=("float64",),
            comment="α rounds to within an ulp of 0.1; |·| has no derivative there",
        ),
        Sample(
            "saturated a = ±40, flat (K·M,) layout",
            (np.array([40.0, -40.0, 1.0, -3.0, 38.0, -0.5]),),
            {"num_experts": 3, "weight": 1.0},
            flags=("SATURATED",),
            fd=False,
        ),
        Sample("target 0.5, one coefficient", (np.array([[0.7]]),), {"num_experts": 1, "target": 0.5}),
    ]


def _regularizer_torch(torch, args, kwargs, cotangent):
    """λ·Σ|σ(a) − t| / (N/K) with torch.sigmoid and Tensor.abs; autograd (sign(0) = 0 as here)."""
    a = torch.from_numpy(args[0]).requires_grad_()
    g_loss = torch.from_numpy(np.asarray(cotangent))
    weight, target = kwargs.get("weight", 0.1), kwargs.get("target", 0.1)
    per_expert = a.numel() // kwargs["num_experts"]

    def step():
        a.grad = None
        loss = weight * (torch.sigmoid(a) - target).abs().sum() / per_expert
        loss.backward(g_loss)
        return loss

    return step


register(
    OpCases(
        "expert_merging_coefficient_regularizer",
        dims={"K": (1, 3), "M": (1, 5)},
        random=_regularizer_random,
        edges=_regularizer_edges,
        errors=lambda: [
            ErrorCase("K does not divide a.size", (np.zeros((2, 3)),), {"num_experts": 4}, match="divisor"),
        ],
        notes=NOTES,
        bench=Bench(
            sizes={"K": 8, "M": 4096},
            torch=_regularizer_torch,
            torch_label="weight·|torch.sigmoid(a) − target|.sum()/(N/K); autograd",
            # one exp per coefficient (sigmoid); the backward reuses α(1 − α)
            transcendentals=lambda args, kwargs: args[0].size,
        ),
    )
)


# -- hidden_state_mse -------------------------------------------------------------------------------
def _mse_random(rng, L, B, D):  # noqa: N803
    h_expert = rng.standard_normal((L, B, D))
    return Sample("random", (h_expert + 0.3 * rng.standard_normal((L, B, D)), h_expert))


def _mse_torch(torch, args, kwargs, cotangent):
    """F.mse_loss (mean over every element); autograd for both inputs."""
    h_merged, h_expert = (torch.from_numpy(a).requires_grad_() for a in args)
    g_loss = torch.from_numpy(np.asarray(cotangent))

    def step():
        h_merged.grad = h_expert.grad = None
        loss = torch.nn.functional.mse_loss(h_merged, h_expert)
        loss.backward(g_loss)
        return loss

    return step


register(
    OpCases(
        "hidden_state_mse",
        dims={"L": (1, 3), "B": (1, 3), "D": (1, 5)},
        random=_mse_random,
        edges=lambda: [
            Sample("equal hidden states: loss 0", (np.ones((2, 3)), np.ones((2, 3)))),
            Sample("known value 2.5", (np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))),
            Sample("0-d", (np.array(3.0), np.array(1.0))),
        ],
        errors=lambda: [],
        notes=NOTES,
        bench=Bench(
            sizes={"L": 4, "B": "rows", "D": "cols"},
            torch=_mse_torch,
            torch_label="F.mse_loss; autograd",
        ),
    )
)


# -- expert_merging_pp_chunk_allocation -------------------------------------------------------------
def _allocation_random(rng, L, K):  # noqa: N803
    alpha = rng.uniform(0.0, 1.0, size=(L, K))
    magnitudes = rng.uniform(0.0, 1e-3, size=(L, K)) * rng.choice([1.0, 10.0], size=(L, 1))
    counts = rng.choice([4096, 16384, 65536, 1024], size=L)
    kwargs = {"budget": int(rng.integers(0, 4 * L + 1)), "kappa": float(rng.choice([0.0, 0.5, 1.0, 2.0]))}
    return Sample("random", (alpha, magnitudes, counts), kwargs)


def _allocation_edges():
    alpha = np.array([[0.5, 0.1], [0.2, 0.3], [0.0, 0.0], [0.9, 0.4]])
    magnitudes = np.array([[1.0, 2.0], [1.0, 1.0], [3.0, 3.0], [0.5, 0.5]])
    counts = np.array([8, 8, 8, 16])
    return [
        Sample(
            "κ = 0: uniform",
            (alpha, magnitudes, counts),
            {"budget": 9, "kappa": 0.0},
            flags=("UNIFORM_KAPPA",),
        ),
        Sample(
            "a zero-importance layer, κ = 2",
            (alpha, magnitudes, counts),
            {"budget": 12, "kappa": 2.0},
            flags=("ZERO_IMPORTANCE",),
        ),
        Sample(
            "four equal layers, B = 6",
            (np.full((4, 1), 0.3), np.full((4, 1), 0.01), np.full(4, 100)),
            {"budget": 6, "kappa": 1.0},
            flags=("EQUAL_IMPORTANCE",),
        ),
        Sample(
            "negative α",
            (-alpha, magnitudes, counts),
            {"budget": 12, "kappa": 1.0},
            flags=("NEGATIVE_ALPHA",),
        ),
        Sample("B = 0", (alpha, magnitudes, counts), {"budget": 0, "kappa": 1.0}, flags=("ZERO_BUDGET",)),
        Sample("one layer", (alpha[:1], magnitudes[:1], counts[:1]), {"budget": 5, "kappa": 1.5}),
    ]


def _allocation_errors():
    alpha, magnitudes, counts = np.ones((2, 2)), np.ones((2, 2)), np.array([4, 4])
    return [
        ErrorCase(
            "negative magnitude",
            (alpha, -magnitudes, counts),
            {"budget": 4, "kappa": 1.0},
            match="s >= 0",
        ),
        ErrorCase(
            "every importance 0",
            (np.zeros((2, 2)), magnitudes, counts),
            {"budget": 4, "kappa": 1.0},
            match="importance",
        ),
    ]


def _allocation_known():
    return [
        Known(
            "hand value: w = (5, 5, 5), B = 8",
            (np.array([[0.5], [0.25], [0.25]]), np.array([[1.0], [1.0], [2.0]]), np.array([10, 20, 10])),
            {"budget": 8, "kappa": 1.0},
            {"importance": [1 / 3, 1 / 3, 1 / 3], "chunks": [2, 2, 2]},
            source="by hand: w_ℓ = |α| s n, ⌊8/3⌋ = 2",
        ),
        Known(
            "hand value: w = (3, 1), κ = 2, B = 10",
            (np.array([[0.5, 0.25], [0.25, 0.0]]), np.array([[1.0, 2.0], [1.0, 1.0]]), np.array([3, 4])),
            {"budget": 10, "kappa": 2.0},
            {"importance": [0.75, 0.25], "chunks": [9, 1]},
            source="by hand: w = (0.5·1 + 0.25·2)·3 = 3 and 0.25·4 = 1; I² = (9, 1)/16; ⌊10·0.9⌋, ⌊10·0.1⌋",
        ),
    ]


register(
    OpCases(
        "expert_merging_pp_chunk_allocation",
        dims={"L": (1, 8), "K": (1, 4)},
        random=_allocation_random,
        edges=_allocation_edges,
        errors=_allocation_errors,
        known=_allocation_known,
        notes=NOTES,
        defaults={},
    )
)

"""Conformance cases for `maxmin_activation`, `groupsort_activation` and `householder_activation`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TIES": "equal values: the first member keeps the max position (a swap on a tie misroutes ȳ)",
    "PAIRING": "'halves' pairs x_i with x_{i+D/2}: an adjacent-only kernel fails it",
    "BATCH_DIMS": "x with several leading dimensions: pairs and groups are along the last axis only",
    "FULL_SORT": "group_size = D: one group per row",
    "IDENTITY_GROUP": "group_size = 1: the identity",
    "BOUNDARY": "vᵀz = 0: both branches give z (the reflected branch is taken)",
    "ONE_SIDE": "every row on one side of the hyperplane: v̄ = 0 or every row reflected",
    "LARGE": "values 1e30: no squares are formed, nothing overflows",
}


def _separated_rows(rng, rows, d):
    """Rows whose entries are a shuffled grid with jitter: any two differ by ≥ 0.4·scale,
    so no sort or max flips under a finite-difference step."""
    scale = rng.uniform(0.1, 10)
    grid = np.stack([rng.permutation(d) for _ in range(rows)]) + rng.uniform(-0.3, 0.3, (rows, d))
    return (grid - d / 2) * scale + rng.uniform(-3, 3)


# -- MaxMin ----------------------------------------------------------------------------------


def _maxmin_random(rng, B, H):
    x = _separated_rows(rng, B, 2 * H)
    return Sample("random", (x,), {"pairing": str(rng.choice(["adjacent", "halves"]))})


def _maxmin_edges():
    rng = np.random.default_rng(11)
    ties = np.array([[2.0, 2.0, -1.0, 3.0], [0.0, -0.0, 5.0, 5.0]])
    return [
        Sample("ties, adjacent", (ties,), {"pairing": "adjacent"}, flags=("TIES",), fd=False),
        Sample("ties, halves", (ties,), {"pairing": "halves"}, flags=("TIES", "PAIRING"), fd=False),
        Sample("halves", (_separated_rows(rng, 3, 8),), {"pairing": "halves"}, flags=("PAIRING",)),
        Sample("batch dims (2, 3, D)", (_separated_rows(rng, 6, 6).reshape(2, 3, 6),), flags=("BATCH_DIMS",)),
        Sample("single row vector", (_separated_rows(rng, 1, 4)[0],), {"pairing": "halves"}),
        Sample("values 1e30", (1e30 * _separated_rows(rng, 2, 6),), flags=("LARGE",), dtypes=("float64",)),
    ]


def _maxmin_errors():
    return [ErrorCase("odd D", (np.ones((2, 3)),), match=r"'x'.*even")]


def _maxmin_known():
    x = np.array([[1.0, 3.0, 2.0, -1.0]])
    cotangent = np.array([[10.0, 20.0, 30.0, 40.0]])
    return [
        Known(
            "adjacent pairs (1, 3), (2, −1)",
            (x,),
            {"pairing": "adjacent"},
            values={"y": [[3.0, 1.0, 2.0, -1.0]], "cotangent of 'x'": [[20.0, 10.0, 30.0, 40.0]]},
            cotangent=cotangent,
            source="by hand: the first pair swaps, the second does not",
            rtol=0.0,
        ),
        Known(
            "halves pairs (1, 2), (3, −1)",
            (x,),
            {"pairing": "halves"},
            values={"y": [[2.0, 3.0, 1.0, -1.0]], "cotangent of 'x'": [[30.0, 20.0, 10.0, 40.0]]},
            cotangent=cotangent,
            source="by hand: (1, 2) swaps, (3, −1) does not",
            rtol=0.0,
        ),
        Known(
            "tie (2, 2)",
            (np.array([[2.0, 2.0]]),),
            values={"y": [[2.0, 2.0]], "cotangent of 'x'": [[1.0, -1.0]]},
            cotangent=np.array([[1.0, -1.0]]),
            source="the tie rule: no swap, ȳ passes straight through",
            rtol=0.0,
        ),
    ]


def _maxmin_torch(torch, args, kwargs, cotangent):
    """torch.maximum/torch.minimum of the pairs, laid back out (forward equal to the reference;
    PyTorch splits the gradient of a tie evenly, which the benchmark's data never has)."""
    x = torch.from_numpy(args[0]).requires_grad_()
    g_y = torch.from_numpy(cotangent)
    pairing = kwargs.get("pairing", "adjacent")

    def step():
        if pairing == "adjacent":
            pairs = x.unflatten(-1, (-1, 2))
            a, b = pairs[..., 0], pairs[..., 1]
            y = torch.stack([torch.maximum(a, b), torch.minimum(a, b)], dim=-1).flatten(-2)
        else:
            a, b = x.chunk(2, dim=-1)
            y = torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=-1)
        x.grad = None
        y.backward(g_y)
        return y

    return step


register(
    OpCases(
        "maxmin_activation",
        dims={"B": (1, 6), "H": (1, 6)},
        random=_maxmin_random,
        edges=_maxmin_edges,
        errors=_maxmin_errors,
        known=_maxmin_known,
        notes=NOTES,
        defaults={"pairing": "adjacent"},
        bench=Bench(
            make=lambda rng, rows, cols: Sample("bench", (rng.standard_normal((rows, 2 * (cols // 2))),)),
            torch=_maxmin_torch,
            torch_label="torch.maximum / torch.minimum over the pairs (adjacent)",
            # no transcendentals, no products: the roofline is the bytes
        ),
    )
)


# -- GroupSort -------------------------------------------------------------------------------


def _groupsort_random(rng, B, G, S):
    return Sample("random", (_separated_rows(rng, B, G * S),), {"group_size": S})


def _groupsort_edges():
    rng = np.random.default_rng(12)
    ties = np.array([[1.0, 2.0, 2.0, 0.0, 2.0, 1.0], [3.0, 3.0, 3.0, -1.0, -1.0, 4.0]])
    return [
        Sample("ties, g = 3", (ties,), {"group_size": 3}, flags=("TIES",), fd=False),
        Sample("ties, full sort", (ties,), {"group_size": 6}, flags=("TIES", "FULL_SORT"), fd=False),
        Sample(
            "full sort g = D = 16", (_separated_rows(rng, 3, 16),), {"group_size": 16}, flags=("FULL_SORT",)
        ),
        Sample("g = 1", (_separated_rows(rng, 2, 5),), {"group_size": 1}, flags=("IDENTITY_GROUP",)),
        Sample("g = 2 (MaxMin)", (_separated_rows(rng, 2, 8),), {"group_size": 2}),
        Sample(
            "batch dims (2, 3, D)",
            (_separated_rows(rng, 6, 8).reshape(2, 3, 8),),
            {"group_size": 4},
            flags=("BATCH_DIMS",),
        ),
        Sample("single row vector", (_separated_rows(rng, 1, 6)[0],), {"group_size": 3}),
        Sample("g = 40 (merge-sort path)", (_separated_rows(rng, 2, 80),), {"group_size": 40}),
        Sample(
            "values 1e30",
            (1e30 * _separated_rows(rng, 2, 6),),
            {"group_size": 3},
            flags=("LARGE",),
            dtypes=("float64",),
        ),
    ]


def _groupsort_errors():
    return [
        ErrorCase(
            "g does not divide D", (np.ones((2, 6)),), {"group_size": 4}, match=r"'group_size'.*divisor"
        )
    ]


def _groupsort_known():
    return [
        Known(
            "groups (1, 3, 2), (5, 4, 0)",
            (np.array([[1.0, 3.0, 2.0, 5.0, 4.0, 0.0]]),),
            {"group_size": 3},
            values={
                "y": [[3.0, 2.0, 1.0, 5.0, 4.0, 0.0]],
                "cotangent of 'x'": [[3.0, 1.0, 2.0, 4.0, 5.0, 6.0]],
            },
            cotangent=np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]),
            source="by hand: π = (1, 2, 0), (0, 1, 2); x̄_{π(r)} = ȳ_r",
            rtol=0.0,
        ),
        Known(
            "ties (2, 1, 2): stable order",
            (np.array([[2.0, 1.0, 2.0]]),),
            {"group_size": 3},
            values={"y": [[2.0, 2.0, 1.0]], "cotangent of 'x'": [[10.0, 30.0, 20.0]]},
            cotangent=np.array([[10.0, 20.0, 30.0]]),
            source="the tie rule: π = (0, 2, 1), the first 2 stays first",
            rtol=0.0,
        ),
    ]


def _groupsort_torch(torch, args, kwargs, cotangent):
    """torch.sort(descending=True, stable=True) over each group; autograd scatters back."""
    x = torch.from_numpy(args[0]).requires_grad_()
    g_y = torch.from_numpy(cotangent)
    group_size = kwargs["group_size"]

    def step():
        y = torch.sort(x.unflatten(-1, (-1, group_size)), dim=-1, descending=True, stable=True)[0].flatten(-2)
        x.grad = None
        y.backward(g_y)
        return y

    return step


register(
    OpCases(
        "groupsort_activation",
        dims={"B": (1, 5), "G": (1, 4), "S": (1, 5)},
        random=_groupsort_random,
        edges=_groupsort_edges,
        errors=_groupsort_errors,
        known=_groupsort_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"B": "rows", "G": 256, "S": 4},
            torch=_groupsort_torch,
            torch_label="torch.sort(descending=True, stable=True) per group of 4",
        ),
    )
)


# -- Householder -----------------------------------------------------------------------------


def _unit(rng, d):
    v = rng.standard_normal(d)
    return v / np.linalg.norm(v)


def _away_from_hyperplane(rng, z, v):
    """Push every row to |vᵀz| ≥ 0.2·(1 + |z|): no branch flips under a difference step."""
    s = z @ v
    side = np.where(rng.random(s.shape) < 0.5, -1.0, 1.0)
    margin = 0.2 * (1 + np.abs(z).max(axis=-1))
    return z + ((side * margin - s) * (np.abs(s) < margin))[..., None] * v


def _householder_random(rng, B, D):
    v = _unit(rng, D)
    z = rng.standard_normal((B, D)) * rng.uniform(0.1, 10)
    return Sample("random", (_away_from_hyperplane(rng, z, v), v))


def _householder_edges():
    rng = np.random.default_rng(13)
    v = _unit(rng, 5)
    z = _away_from_hyperplane(rng, rng.standard_normal((4, 5)), v)
    positive = z * np.sign(z @ v)[:, None]
    on_plane = rng.standard_normal((3, 5))
    on_plane -= (on_plane @ v)[:, None] * v
    theta = 1.1
    return [
        Sample("all rows on the identity side", (positive, v), flags=("ONE_SIDE",)),
        Sample("all rows reflected", (-positive, v), flags=("ONE_SIDE",)),
        Sample("rows on the hyperplane vᵀz = 0", (on_plane, v), flags=("BOUNDARY",), fd=False),
        Sample(
            "batch dims (2, 3, D)",
            (_away_from_hyperplane(rng, rng.standard_normal((2, 3, 5)), v), v),
            flags=("BATCH_DIMS",),
        ),
        Sample("single row vector", (_away_from_hyperplane(rng, rng.standard_normal(5), v), v)),
        Sample("D = 1 (v = −1: y = |z|)", (np.array([[2.0], [-3.0], [0.5]]), np.array([-1.0]))),
        Sample(
            "D = 2, SOC angle θ = 1.1",
            (
                _away_from_hyperplane(
                    rng, rng.standard_normal((6, 2)), np.array([np.sin(theta / 2), -np.cos(theta / 2)])
                ),
                np.array([np.sin(theta / 2), -np.cos(theta / 2)]),
            ),
        ),
    ]


def _householder_errors():
    return [
        ErrorCase("v not a unit vector", (np.ones((2, 3)), np.ones(3)), match=r"'v'.*unit vector"),
        ErrorCase("v = 0", (np.ones((2, 3)), np.zeros(3)), match=r"'v'.*unit vector"),
    ]


def _householder_known():
    v = np.array([0.6, 0.8])
    return [
        Known(
            "v = (0.6, 0.8): z = (1, 1) kept, z = (−1, 0.5) reflected",
            (np.array([[1.0, 1.0], [-1.0, 0.5]]), v),
            # s = −0.2: y = z + 0.4 v = (−0.76, 0.82); vᵀȳ = 1.4 on row 2: z̄ = ȳ − 2.8 v
            # v̄ = −2 (s ȳ + (vᵀȳ) z) = −2 (−0.2 (1, 1) + 1.4 (−1, 0.5)) = (3.2, −1.0)
            values={
                "y": [[1.0, 1.0], [-0.76, 0.82]],
                "cotangent of 'z'": [[1.0, 1.0], [1.0 - 2.8 * 0.6, 1.0 - 2.8 * 0.8]],
                "cotangent of 'v'": [3.2, -1.0],
            },
            source="by hand",
            rtol=1e-14,
            atol=1e-15,
        ),
    ]


def _householder_torch(torch, args, kwargs, cotangent):
    """s = z @ v; y = where(s > 0, z, z − 2 s v); autograd for z̄ and v̄."""
    z, v = (torch.from_numpy(a).requires_grad_() for a in args)
    g_y = torch.from_numpy(cotangent)

    def step():
        s = (z @ v).unsqueeze(-1)
        y = torch.where(s > 0, z, z - 2 * s * v)
        z.grad = v.grad = None
        y.backward(g_y)
        return y

    return step


def _householder_products(args, kwargs):
    """The four matrix-vector products: s = z v, vᵀȳ per row, and v̄'s Σ s ȳ + Σ (vᵀȳ) z."""
    z, v = args
    weights = z @ v

    def step():
        return z @ v, z @ v, weights @ z, weights @ z

    return step


register(
    OpCases(
        "householder_activation",
        dims={"B": (1, 6), "D": (1, 8)},
        random=_householder_random,
        edges=_householder_edges,
        errors=_householder_errors,
        known=_householder_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=lambda rng, rows, cols: Sample(
                "bench", (rng.standard_normal((rows, cols)), _unit(rng, cols))
            ),
            torch=_householder_torch,
            torch_label="torch.where(z @ v > 0, z, z − 2 (z @ v) v)",
            blas=_householder_products,
        ),
    )
)

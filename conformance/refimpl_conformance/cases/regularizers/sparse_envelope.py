"""Conformance cases for the sparse envelope family: `sparse_envelope_function`,
`k_support_squared_prox`, `wgsef_penalty`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register


def _vectors(rng, B, n):  # noqa: N803
    shape = [(n,), (B, n), (2, B, n)][int(rng.integers(0, 3))]
    return rng.standard_normal(shape) * float(rng.choice([0.01, 1.0, 30.0]))


def _torch_envelope(torch, a, k):
    """θ, r and s_k of descending magnitudes ``a`` (…, n) in PyTorch, as the reference."""
    splits = torch.arange(k)
    tail_start = k - splits - 1
    suffix = torch.flip(torch.cumsum(torch.flip(a, (-1,)), -1), (-1,))
    level = suffix[..., tail_start] / (splits + 1).to(a.dtype)
    before = torch.where(tail_start >= 1, a[..., (tail_start - 1).clamp(min=0)], torch.inf)
    found = (before > level).to(torch.int8)
    found[..., k - 1] = 1
    r = found.argmax(-1)  # the first r whose inequality holds
    theta = level.gather(-1, r[..., None])[..., 0]
    head_mask = torch.arange(a.shape[-1]) < (k - r - 1)[..., None]
    value = 0.5 * ((a * a * head_mask).sum(-1) + (r + 1).to(a.dtype) * theta * theta)
    return theta, r, value


# -- sparse_envelope_function ----------------------------------------------------------------------
ENVELOPE_NOTES = {
    "K_ONE": "k = 1: s_1 = ½‖x‖₁² (the whole vector is the tail, r = 0)",
    "K_N": "k = n: s_n = ½‖x‖₂² (only the smallest entry is the tail, alone)",
    "K_SPARSE": "x with k nonzeros: s_k = ½‖x‖² (the tail is a_k and zeros; kink at the zeros)",
    "TIES": "equal magnitudes: the first r with a_{k−r−1} > θ_r is the split; no tie-breaking",
    "ZERO": "x = 0: s_k = 0 and the gradient 0 (sign(0) = 0)",
    "SCALE": "x ×1e-8 or ×1e8: s_k is homogeneous of degree 2",
}


def _envelope_random(rng, B, n):  # noqa: N803
    x = _vectors(rng, B, n)
    return Sample("random", (x,), {"k": int(rng.integers(1, n + 1))})


def _envelope_edges():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 6))
    sparse = np.array([[0.0, 2.0, 0.0, -1.5, 0.0, 0.5]])
    return [
        Sample(
            "known value: [3, −1, 1], k = 2", (np.array([3.0, -1.0, 1.0]),), {"k": 2}, comment="½(9 + 2²)"
        ),
        Sample("k = 1: ½‖x‖₁²", (x,), {"k": 1}, flags=("K_ONE",)),
        Sample("k = n: ½‖x‖₂²", (x,), {"k": 6}, flags=("K_N",)),
        Sample("3-sparse x, k = 3", (sparse,), {"k": 3}, flags=("K_SPARSE",), fd=False),
        Sample(
            "all magnitudes equal", (np.array([[1.0, -1.0, 1.0, -1.0]]),), {"k": 2}, flags=("TIES",), fd=False
        ),
        Sample("x = 0", (np.zeros((2, 4)),), {"k": 2}, flags=("ZERO",), fd=False),
        Sample("scale 1e-8", (x * 1e-8,), {"k": 3}, flags=("SCALE",)),
        Sample("scale 1e8", (x * 1e8,), {"k": 2}, flags=("SCALE",)),
    ]


def _envelope_errors():
    return [ErrorCase("k > n", (np.ones((2, 3)),), {"k": 4}, match="k <= n = 3")]


def _envelope_known():
    return [
        Known(
            "x = [3, −1, 1], k = 2: r = 0, θ = 2",
            (np.array([3.0, -1.0, 1.0]),),
            {"k": 2},
            values={"value": 6.5, "cotangent of 'x'": [3.0, -2.0, 2.0]},
            source="by hand: a = [3, 1, 1]; r = 0: a_1 = 3 > θ_0 = 2 ≥ a_2 = 1; s = ½(9 + 2²); "
            "gradient: head x, tail sign(x)·θ",
            rtol=1e-14,
        ),
        Known(
            "x = [1, 1, 1], k = 2: r = 1 (a_1 = 1 > θ_0 = 2 fails)",
            (np.array([1.0, 1.0, 1.0]),),
            {"k": 2},
            values={"value": 2.25, "cotangent of 'x'": [1.5, 1.5, 1.5]},
            source="by hand: θ_1 = 3/2, s = ½(Σa)²/(r + 1) = 9/4; every entry is tail: sign(x)·θ",
            rtol=1e-14,
        ),
    ]


def _envelope_torch(torch, args, kwargs, cotangent):
    """Sort |x| descending, suffix sums, first split r, ½(Σ_head a² + (r + 1)θ²); autograd backward."""
    x = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    k = kwargs["k"]

    def step():
        x.grad = None
        a = x.abs().sort(dim=-1, descending=True).values
        value = _torch_envelope(torch, a, k)[2]
        value.backward(g)
        return value

    return step


def _envelope_bench(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((rows, cols)),), {"k": max(1, cols // 4)})


register(
    OpCases(
        "sparse_envelope_function",
        dims={"B": (1, 4), "n": (1, 8)},
        random=_envelope_random,
        edges=_envelope_edges,
        errors=_envelope_errors,
        known=_envelope_known,
        notes=ENVELOPE_NOTES,
        defaults={},
        bench=Bench(
            make=_envelope_bench,
            torch=_envelope_torch,
            torch_label="sort |x| descending, flipped cumsum, first split r by argmax, "
            "½(Σ_head a² + (r + 1)θ²); autograd backward through sort/gather",
        ),
    )
)


# -- k_support_squared_prox ------------------------------------------------------------------------
PROX_NOTES = {
    "K_N": "k = n: s_n = ½‖x‖², so the prox is x/(1 + γ)",
    "K_ONE": "k = 1: the prox of (γ/2)‖x‖₁², a soft threshold at γ‖w‖₁ (no head)",
    "ZEROS": "zero entries: they stay 0 (sign(0) = 0); a zero tail gives θ = 0",
    "TIES": "equal magnitudes: the first split whose head condition holds; no tie-breaking",
    "GAMMA_EXTREME": "γ = 1e-8 (prox ≈ x) and γ = 1e6 (prox ≈ 0): the levels stay finite",
}


def _prox_random(rng, B, n):  # noqa: N803
    kwargs = {"k": int(rng.integers(1, n + 1)), "gamma": float(rng.choice([0.1, 1.0, 5.0]))}
    return Sample("random", (_vectors(rng, B, n),), kwargs)


def _prox_edges():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 6)) * 2
    return [
        Sample("known value: [4, 1], k = 2, γ = 1", (np.array([4.0, 1.0]),), {"k": 2, "gamma": 1.0}),
        Sample("k = n: x/(1 + γ)", (x,), {"k": 6, "gamma": 0.5}, flags=("K_N",)),
        Sample("k = 1", (x,), {"k": 1, "gamma": 2.0}, flags=("K_ONE",)),
        Sample(
            "zero entries",
            (np.array([[0.0, 3.0, 0.0, -1.0, 0.5]]),),
            {"k": 2, "gamma": 1.0},
            flags=("ZEROS",),
        ),
        Sample("x = 0", (np.zeros((2, 4)),), {"k": 2, "gamma": 1.0}, flags=("ZEROS",)),
        Sample(
            "equal magnitudes", (np.array([[1.0, -1.0, 1.0, -1.0]]),), {"k": 2, "gamma": 1.0}, flags=("TIES",)
        ),
        Sample("γ = 1e-8", (x,), {"k": 2, "gamma": 1e-8}, flags=("GAMMA_EXTREME",)),
        Sample("γ = 1e6", (x,), {"k": 3, "gamma": 1e6}, flags=("GAMMA_EXTREME",)),
    ]


def _prox_errors():
    return [ErrorCase("k > n", (np.ones(3),), {"k": 5, "gamma": 1.0}, match="k <= n = 3")]


def _prox_known():
    return [
        Known(
            "k = n = 2: x/(1 + γ)",
            (np.array([4.0, 1.0]),),
            {"k": 2, "gamma": 1.0},
            values={"prox": [2.0, 0.5]},
            source="by hand: s_2 = ½‖x‖² on R², prox = x/(1 + γ)",
            rtol=1e-15,
        ),
        Known(
            "k = 1, x = [3, −1], γ = 1: [1.5, 0]",
            (np.array([3.0, -1.0]),),
            {"k": 1, "gamma": 1.0},
            values={"prox": [1.5, 0.0]},
            source="by hand: x − w = γ‖w‖₁ sign(w) on the support; w_2 = 0 (|x_2| = 1 ≤ γ‖w‖₁ = 1.5), "
            "w_1 = 3 − w_1",
            rtol=1e-15,
        ),
    ]


def _prox_torch(torch, args, kwargs, cotangent):
    """The same two-index search in PyTorch: sort, cumsum per split, first index by argmax."""
    x = torch.from_numpy(args[0])
    k, gamma = kwargs["k"], kwargs["gamma"]

    def step():
        z = x.abs().sort(dim=-1, descending=True).values
        n, rows = z.shape[-1], z.shape[:-1]
        theta = torch.zeros(rows, dtype=z.dtype)
        settled = torch.zeros(rows, dtype=torch.bool)
        for r in range(k):
            start = k - r - 1
            tail = z[..., start:]
            count = torch.arange(1, n - start + 1, dtype=z.dtype)
            level = torch.cumsum(tail, -1) / (r + 1 + gamma * count)
            after = torch.cat([tail[..., 1:], torch.full(rows + (1,), -torch.inf, dtype=z.dtype)], -1)
            last = (after <= gamma * level).to(torch.int8).argmax(-1)
            level_r = level.gather(-1, last[..., None])[..., 0]
            before = (
                z[..., start - 1] / (1 + gamma) if start >= 1 else torch.full(rows, torch.inf, dtype=z.dtype)
            )
            take = ~settled & ((before > level_r) | (r == k - 1))
            theta = torch.where(take, level_r, theta)
            settled |= take
        magnitude, level = x.abs(), theta[..., None]
        shrunk = torch.where(
            magnitude > (1 + gamma) * level, magnitude / (1 + gamma), (magnitude - gamma * level).clamp(min=0)
        )
        return torch.sign(x) * shrunk

    return step


def _prox_bench(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((rows, cols)),), {"k": max(1, cols // 16), "gamma": 0.5})


register(
    OpCases(
        "k_support_squared_prox",
        dims={"B": (1, 4), "n": (1, 8)},
        random=_prox_random,
        edges=_prox_edges,
        errors=_prox_errors,
        known=_prox_known,
        notes=PROX_NOTES,
        defaults={},
        bench=Bench(
            make=_prox_bench,
            torch=_prox_torch,
            torch_label="sort |x| descending, per split r a cumsum and the first valid l (argmax), "
            "then the elementwise shrink (forward only: a proximal map)",
        ),
    )
)


# -- wgsef_penalty ---------------------------------------------------------------------------------
WGSEF_NOTES = {
    "SINGLETONS": "m = 1 groups with unit weights: WGSEF = s_k(|x|) = sparse_envelope_function(x)",
    "ZERO_GROUP": "a zero group: u_g = 0 and its gradient 0 (no x/‖x‖ = 0/0)",
    "K_G": "k = G: s_G(u) = ½‖u‖², so envelope_minus_half_norm is 0 with gradient 0",
    "ZERO_WEIGHT": "ω_g = 0: the group is free (u_g = 0, gradient 0)",
}


def _wgsef_random(rng, G, m):  # noqa: N803
    x = rng.standard_normal((G, m)) * float(rng.choice([0.05, 1.0, 20.0]))
    weights = rng.uniform(0.5, 2.0, G) if rng.integers(0, 2) else np.ones(G)
    kwargs = {
        "k": int(rng.integers(1, G + 1)),
        "composition": str(rng.choice(["envelope", "envelope_minus_half_norm"])),
    }
    return Sample("random", (x, weights), kwargs)


def _wgsef_edges():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((5, 3))
    with_zero = x.copy()
    with_zero[2] = 0.0
    zero_weight = rng.uniform(0.5, 2.0, 5)
    zero_weight[1] = 0.0
    return [
        Sample(
            "known value: norms [5, 1, 1], k = 2",
            (np.array([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]]), np.ones(3)),
            {"k": 2, "composition": "envelope"},
            comment="½(25 + (1 + 1)²) = 14.5",
        ),
        Sample(
            "singleton groups, unit weights",
            (x[:, :1], np.ones(5)),
            {"k": 2, "composition": "envelope"},
            flags=("SINGLETONS",),
        ),
        Sample(
            "a zero group",
            (with_zero, np.ones(5)),
            {"k": 2, "composition": "envelope"},
            flags=("ZERO_GROUP",),
            fd=False,
        ),
        Sample(
            "k = G, minus ½‖u‖²",
            (x, np.full(5, 1.5)),
            {"k": 5, "composition": "envelope_minus_half_norm"},
            flags=("K_G",),
        ),
        Sample(
            "a zero weight",
            (x, zero_weight),
            {"k": 3, "composition": "envelope_minus_half_norm"},
            flags=("ZERO_WEIGHT",),
            fd=False,
        ),
    ]


def _wgsef_errors():
    x = np.ones((3, 2))
    return [
        ErrorCase("k > G", (x, np.ones(3)), {"k": 4, "composition": "envelope"}, match="k <= G = 3"),
        ErrorCase(
            "negative weight",
            (x, np.array([1.0, -0.5, 1.0])),
            {"k": 2, "composition": "envelope"},
            match="ω_g >= 0",
        ),
        ErrorCase("composition not given", (x, np.ones(3)), {"k": 2}, match="composition"),
    ]


def _wgsef_known():
    return [
        Known(
            "norms [5, 1, 1], k = 2, envelope and minus ½‖u‖²",
            (np.array([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]]), np.ones(3)),
            {"k": 2, "composition": "envelope_minus_half_norm"},
            values={"penalty": 14.5 - 13.5, "cotangent of 'x'": [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]},
            source="by hand: θ = 2; s = ½(25 + 4) = 14.5, ½‖u‖² = 13.5; ∂/∂u = max(θ − u, 0) = [0, 1, 1], "
            "times x_g/‖x_g‖",
            rtol=1e-14,
        ),
    ]


def _wgsef_torch(torch, args, kwargs, cotangent):
    """Row norms (torch.linalg.vector_norm), s_k of ω·norms by sort and suffix sums; autograd backward."""
    x = torch.from_numpy(args[0]).requires_grad_()
    weights = torch.from_numpy(args[1])
    g = torch.from_numpy(np.asarray(cotangent))
    k, composition = kwargs["k"], kwargs["composition"]

    def step():
        x.grad = None
        u = weights * torch.linalg.vector_norm(x, dim=1)
        value = _torch_envelope(torch, u.sort(descending=True).values, k)[2]
        if composition == "envelope_minus_half_norm":
            value = value - 0.5 * (u * u).sum()
        value.backward(g)
        return value

    return step


def _wgsef_bench(rng, rows, cols):
    x, weights = rng.standard_normal((rows, cols)), np.ones(rows)
    return Sample("bench", (x, weights), {"k": max(1, rows // 8), "composition": "envelope"})


register(
    OpCases(
        "wgsef_penalty",
        dims={"G": (1, 7), "m": (1, 5)},
        random=_wgsef_random,
        edges=_wgsef_edges,
        errors=_wgsef_errors,
        known=_wgsef_known,
        notes=WGSEF_NOTES,
        defaults={},
        bench=Bench(
            make=_wgsef_bench,
            torch=_wgsef_torch,
            torch_label="ω·vector_norm(x, dim=1), sort, flipped cumsum, first split r, "
            "½(Σ_head u² + (r + 1)θ²); autograd backward",
        ),
    )
)

"""Conformance cases for ViR retention: `retention_parallel`, `retention_recurrent`,
`retention_chunkwise` and `multiscale_retention`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "UNDERFLOW": "γ^(n−m) underflows to 0 for long distances: exp((n − m) log γ) under a select stays "
    "finite, where masking the exponent with inf gives 0·inf = NaN",
    "NO_DECAY": "γ = 1: log γ = 0 and every past token counts fully (cumulative linear attention)",
    "DEFAULT_DECAY": "gamma None: RetNet's γ_h = 1 − 2^(−5−h) computed from the number of heads",
    "SINGLE_TOKEN": "N = 1: no past, O = (Q·K) V",
    "CHUNK_ONE": "chunk length 1: the chunkwise form degenerates to the recurrent one",
    "CHUNK_ALL": "chunk length ≥ N: one chunk, the parallel form",
    "RAGGED_CHUNK": "the chunk length does not divide N: the last chunk is shorter (its γ^L differs)",
    "SMALL_DECAY": "γ = 1e-3: only the diagonal survives after a few steps",
    "NORMALIZED": "torchscale's two row normalizations (decay-mask rows, clamped score rows)",
    "SCORE_CLAMP": "score rows with Σ|A| < 1: the clamp max(·, 1) is active, no gradient through s",
    "ONE_CHANNEL": "d_v = 1: GroupNorm of one channel is 0, the retention path gets no gradient",
}


def _gamma(rng, H):  # noqa: N803 - dimension names as in the op's specs
    """None (the default decays) or drawn decays in (0, 1], sometimes exactly 1."""
    if rng.random() < 0.4:
        return None
    gamma = 1 - rng.uniform(0.0, 0.6, size=H) ** 2
    gamma[rng.random(H) < 0.2] = 1.0
    return gamma


def _qkv(rng, B, H, N, Dk, Dv):  # noqa: N803
    return (
        rng.standard_normal((B, H, N, Dk)),
        rng.standard_normal((B, H, N, Dk)),
        rng.standard_normal((B, H, N, Dv)),
    )


def _args(rng, B, H, N, Dk, Dv):  # noqa: N803
    gamma = _gamma(rng, H)
    q, k, v = _qkv(rng, B, H, N, Dk, Dv)
    return (q, k, v) if gamma is None else (q, k, v, gamma)


def _random(rng, B, H, N, Dk, Dv):  # noqa: N803
    return Sample("random", _args(rng, B, H, N, Dk, Dv))


def _random_chunkwise(rng, B, H, N, Dk, Dv):  # noqa: N803
    args = _args(rng, B, H, N, Dk, Dv)
    return Sample("random", args, {"chunk_size": int(rng.integers(1, N + 3))})


def _retention_edges(chunked: bool):
    def edges():
        rng = np.random.default_rng(17)

        def sample(name, args, flags, chunk_size=3, **extra):
            kwargs = {"chunk_size": chunk_size} if chunked else {}
            return Sample(name, args, kwargs, flags=flags, **extra)

        q, k, v = _qkv(rng, 1, 2, 200, 2, 2)
        long_gamma = np.array([0.01, 0.9])
        found = [
            sample(
                "γ^n underflows: γ = 0.01 over N = 200 (and γ = 0.9)",
                (q, k, v, long_gamma),
                ("UNDERFLOW",),
                chunk_size=16,
                comment="0.01^200 = 1e-400 is 0 in float64 (0.01^23 in float32): the far-past weights are 0",
            ),
            sample("γ = 1 on every head", (*_qkv(rng, 2, 2, 6, 3, 2), np.ones(2)), ("NO_DECAY",)),
            sample("default decays, H = 4", _qkv(rng, 1, 4, 7, 2, 3), ("DEFAULT_DECAY",)),
            sample("N = 1", (*_qkv(rng, 2, 2, 1, 3, 2), np.array([0.5, 0.97])), ("SINGLE_TOKEN",)),
            sample("γ = 1e-3", (*_qkv(rng, 1, 1, 5, 2, 2), np.array([1e-3])), ("SMALL_DECAY",)),
        ]
        if chunked:
            args = (*_qkv(rng, 2, 3, 10, 3, 2), np.array([0.5, 0.9, 1.0]))
            found += [
                sample("chunk length 1", args, ("CHUNK_ONE",), chunk_size=1),
                sample("chunk length N = 10", args, ("CHUNK_ALL",), chunk_size=10),
                sample("chunk length 25 > N = 10", args, ("CHUNK_ALL",), chunk_size=25),
                sample("chunk length 4 with N = 10 (chunks 4, 4, 2)", args, ("RAGGED_CHUNK",), chunk_size=4),
                sample("chunk length 3 with N = 10 (last chunk 1)", args, ("RAGGED_CHUNK",), chunk_size=3),
            ]
        return found

    return edges


def _retention_errors(chunked: bool):
    def errors():
        q, k, v = _qkv(np.random.default_rng(0), 1, 2, 3, 2, 2)
        kwargs = {"chunk_size": 2} if chunked else {}
        return [
            ErrorCase("γ = 0", (q, k, v, np.array([0.0, 0.5])), kwargs, match="0 < γ ≤ 1"),
            ErrorCase("γ > 1", (q, k, v, np.array([0.5, 1.25])), kwargs, match="head 1"),
            ErrorCase("γ < 0", (q, k, v, np.array([-0.5, 0.5])), kwargs, match="γ = -0.5 for head 0"),
        ]

    return errors


def _retention_known(chunked: bool):
    def known():
        # one head, γ = 1/2, N = 2: Q Kᵀ = [[1, 1], [1, 2]], D = [[1, 0], [1/2, 1]], M = [[1, 0], [1/2, 2]]
        Q = np.array([[[[1.0, 2.0], [1.0, 1.0]]]])
        K = np.array([[[[1.0, 0.0], [3.0, -1.0]]]])
        V = np.array([[[[2.0], [-1.0]]]])
        return [
            Known(
                "by hand: N = 2, γ = 1/2",
                (Q, K, V, np.array([0.5])),
                {"chunk_size": 1} if chunked else {},
                values={
                    "O": [[[[2.0], [-1.0]]]],  # M V
                    # G = 1: V̄ = Mᵀ G, S̄ = (G Vᵀ) ⊙ D = [[2, 0], [1, −1]], Q̄ = S̄ K, K̄ = S̄ᵀ Q
                    "cotangent of 'V'": [[[[1.5], [2.0]]]],
                    "cotangent of 'Q'": [[[[2.0, 0.0], [-2.0, 1.0]]]],
                    "cotangent of 'K'": [[[[3.0, 5.0], [-1.0, -1.0]]]],
                },
                source="computed by hand (the forms' common value)",
                rtol=1e-15,
            )
        ]

    return known


# -- the torch baseline: the parallel form with its decay mask, autograd backward ----------
def _retention_torch(torch, args, kwargs, cotangent):
    """The same retention in torch: (Q Kᵀ ⊙ D) V with the decay mask, autograd for the backward."""
    q, k, v = (torch.from_numpy(a).requires_grad_() for a in args[:3])
    heads, length = q.shape[1], q.shape[2]
    if len(args) > 3 and args[3] is not None:
        log_gamma = torch.log(torch.from_numpy(args[3]).double())
    else:
        log_gamma = torch.log1p(-(2.0 ** (-5.0 - torch.arange(heads, dtype=torch.float64))))
    index = torch.arange(length, dtype=torch.float64)
    distance = index[:, None] - index[None, :]
    causal = distance >= 0
    mask = torch.where(causal, torch.exp(distance.clamp(min=0) * log_gamma[:, None, None]), 0.0)
    mask = mask.to(q.dtype)
    g = torch.from_numpy(cotangent)

    def step():
        out = ((q @ k.transpose(-1, -2)) * mask) @ v
        q.grad = k.grad = v.grad = None
        out.backward(g)
        return out

    return step


# -- the rooflines' matrix products (NumPy's BLAS, operands of the bench's shapes and dtype) -------
def _swap(a):
    return np.swapaxes(a, -1, -2)


def _retention_parallel_blas(args, kwargs):
    """The parallel form's six (N × N)-sized products per head: forward S = Q Kᵀ and O = M V;
    backward V̄ = Mᵀ Ō, S̄ = Ō Vᵀ, Q̄ = S̄ K, K̄ = S̄ᵀ Q (the mask products are elementwise)."""
    Q, K, V = args[:3]
    G = np.ones_like(V)  # Ō

    def step():
        S = Q @ _swap(K)
        g_S = G @ _swap(V)
        return S @ V, _swap(S) @ G, g_S @ K, _swap(g_S) @ Q

    return step


def _retention_recurrent_blas(args, kwargs):
    """The recurrent form's products per step n and head: S_n += k_nᵀ v_n, o_n = q_n S_n;
    backward Q̄_n = ō_n S_nᵀ, Ā_n += q_nᵀ ō_n, K̄_n = v_n Ā_nᵀ, V̄_n = k_n Ā_n. Six
    (d_k × d_v)·N products per head, timed as batched GEMMs of the same sizes (Kᵀ V, Q S,
    Ō Sᵀ, Qᵀ Ō, V Āᵀ, K Ā with one (d_k, d_v) state per head): a lower bound on the scans."""
    Q, K, V = args[:3]
    G = np.ones_like(V)  # Ō

    def step():
        S = _swap(K) @ V
        A = _swap(Q) @ G
        return Q @ S, G @ _swap(S), V @ _swap(A), K @ A

    return step


def _retention_chunkwise_blas(args, kwargs):
    """The chunkwise form's products, batched over the C = ⌈N/L⌉ chunks (zero-padded, as the Numba
    backend does): inside a chunk the parallel form's six (L × L) products (Q Kᵀ, M V; Mᵀ Ō,
    Ō Vᵀ, S̄ K, S̄ᵀ Q); across chunks the cross term Q R, the chunk summary Kᵀ V, and backward
    Ō Rᵀ (Q̄), Qᵀ Ō (R̄), V R̄ᵀ (K̄), K R̄ (V̄); the decays and the state scan are elementwise."""
    Q, K, V = args[:3]
    batch, heads, length, d_k = Q.shape
    d_v = V.shape[-1]
    chunk = min(int(kwargs["chunk_size"]), length)
    chunks = -(-length // chunk)

    def blocks(width):
        return np.ones((batch, heads, chunks, chunk, width), dtype=Q.dtype)

    q, k, v, g = blocks(d_k), blocks(d_k), blocks(d_v), blocks(d_v)
    R = np.ones((batch, heads, chunks, d_k, d_v), dtype=Q.dtype)  # the state entering each chunk

    def step():
        S = q @ _swap(k)
        g_S = g @ _swap(v)
        inner = (S @ v, _swap(S) @ g, g_S @ k, _swap(g_S) @ q)
        g_R = _swap(q) @ g
        cross = (q @ R, _swap(k) @ v, g @ _swap(R), v @ _swap(g_R), k @ g_R)
        return inner + cross

    return step


def _bench_sample(rng, rows, cols):
    """B = 4, H = 8, N = 512, d_k = d_v = 64 (the shape flags are ignored: N × N scores)."""
    return Sample("bench", _qkv(rng, 4, 8, 512, 64, 64))


def _bench_chunkwise_sample(rng, rows, cols):
    return Sample("bench", _qkv(rng, 4, 8, 512, 64, 64), {"chunk_size": 64})


_TORCH_LABEL = "torch: (Q Kᵀ ⊙ D) V with the decay mask, autograd backward (the parallel form)"
_DIMS = {"B": (1, 2), "H": (1, 3), "N": (1, 9), "Dk": (1, 4), "Dv": (1, 4)}

for _name, _chunked in (
    ("retention_parallel", False),
    ("retention_recurrent", False),
    ("retention_chunkwise", True),
):  # the three forms compute one function: the same cases, the chunk length added where taken
    register(
        OpCases(
            _name,
            dims=_DIMS,
            random=_random_chunkwise if _chunked else _random,
            edges=_retention_edges(_chunked),
            errors=_retention_errors(_chunked),
            known=_retention_known(_chunked),
            notes=NOTES,
            defaults={"gamma": None},
            bench=Bench(
                make=_bench_chunkwise_sample if _chunked else _bench_sample,
                torch=_retention_torch,
                torch_label=_TORCH_LABEL,
                # no transcendentals declared: the only exps are the H·N decay powers γ_h^k, a table
                blas={
                    "retention_parallel": _retention_parallel_blas,
                    "retention_recurrent": _retention_recurrent_blas,
                    "retention_chunkwise": _retention_chunkwise_blas,
                }[_name],
            ),
        )
    )


# -- multiscale_retention -------------------------------------------------------------------
def _layer(rng, B, N, M, H, Dk, Dv, gamma=None):  # noqa: N803
    x = rng.standard_normal((B, N, M))
    scale = 1 / np.sqrt(M)
    weights = [
        rng.standard_normal((H * Dk, M)) * scale,
        rng.standard_normal((H * Dk, M)) * scale,
        rng.standard_normal((H * Dv, M)) * scale,
        rng.standard_normal((H * Dv, M)) * scale,
        rng.standard_normal((M, H * Dv)) / np.sqrt(H * Dv),
    ]
    return (x, *weights) if gamma is None else (x, *weights, gamma)


def _random_layer(rng, B, N, M, H, Dk, Dv):  # noqa: N803
    args = _layer(rng, B, N, M, H, Dk, Dv, _gamma(rng, H))
    kwargs = {
        "num_heads": H,
        "eps": float(rng.choice([1e-5, 1e-2])),
        "normalize_decay": bool(rng.random() < 0.5),
        "normalize_scores": bool(rng.random() < 0.5),
    }
    return Sample("random", args, kwargs)


def _layer_edges():
    rng = np.random.default_rng(23)
    both = {"num_heads": 2, "eps": 1e-5, "normalize_decay": True, "normalize_scores": True}
    none = {**both, "normalize_decay": False, "normalize_scores": False}
    args = _layer(rng, 2, 6, 4, 2, 2, 3)
    x, W_Q, W_K, W_V, W_G, W_O = args
    return [
        Sample("both normalizations, default decays", args, both, flags=("NORMALIZED", "DEFAULT_DECAY")),
        Sample("no normalization", args, none, flags=("DEFAULT_DECAY",)),
        Sample(
            "score rows below 1 (clamp active)",
            (0.05 * x, W_Q, W_K, W_V, W_G, W_O),
            both,
            flags=("SCORE_CLAMP",),
            comment="|x| ~ 0.05: Σ_m |A_nm| ~ 1e-2 < 1, so s = 1 and the division is the identity",
        ),
        Sample(
            "γ = 1 on one head",
            (*args, np.array([1.0, 0.5])),
            {**both, "normalize_scores": False},
            flags=("NO_DECAY", "NORMALIZED"),
        ),
        Sample(
            "d_v = 1",
            _layer(rng, 1, 4, 3, 2, 2, 1),
            {**none, "eps": 1e-3},
            flags=("ONE_CHANNEL",),
        ),
        Sample(
            "N = 1, one head (eps = 0.5)",
            _layer(rng, 2, 1, 3, 1, 2, 4),
            {**both, "num_heads": 1, "eps": 0.5},
            flags=("SINGLE_TOKEN",),
            comment="one token: O = (q·k) v and GroupNorm removes the scale q·k up to eps, so the "
            "cotangents of W_Q and W_K are an O(eps) remainder; a large eps keeps it well above rounding",
        ),
    ]


def _layer_errors():
    x, W_Q, W_K, W_V, W_G, W_O = _layer(np.random.default_rng(1), 1, 3, 4, 2, 2, 2)
    kwargs = {"num_heads": 3, "eps": 1e-5, "normalize_decay": False, "normalize_scores": False}
    ok = {**kwargs, "num_heads": 2}
    return [
        ErrorCase("H·d_k not divisible by num_heads", (x, W_Q, W_K, W_V, W_G, W_O), kwargs, match="W_Q"),
        ErrorCase(
            "H·d_v not divisible by num_heads",
            (x, W_Q[:3], W_K[:3], W_V, W_G, W_O),
            kwargs,
            match="W_V",
        ),
        ErrorCase(
            "gamma of the wrong length", (x, W_Q, W_K, W_V, W_G, W_O, np.array([0.5])), ok, match="gamma"
        ),
        ErrorCase("γ > 1", (x, W_Q, W_K, W_V, W_G, W_O, np.array([0.5, 2.0])), ok, match="0 < γ ≤ 1"),
    ]


def _layer_torch(torch, args, kwargs, cotangent):
    """The same layer in torch (parallel form, both normalizations differentiated, per-head
    layer_norm without affine = GroupNorm with H groups per token), autograd backward."""
    x, W_Q, W_K, W_V, W_G, W_O = (torch.from_numpy(a).requires_grad_() for a in args[:6])
    heads, eps = kwargs["num_heads"], kwargs["eps"]
    batch, length, _ = x.shape
    if len(args) > 6 and args[6] is not None:
        log_gamma = torch.log(torch.from_numpy(np.asarray(args[6])).double())
    else:
        log_gamma = torch.log1p(-(2.0 ** (-5.0 - torch.arange(heads, dtype=torch.float64))))
    index = torch.arange(length, dtype=torch.float64)
    distance = index[:, None] - index[None, :]
    mask = torch.where(distance >= 0, torch.exp(distance.clamp(min=0) * log_gamma[:, None, None]), 0.0)
    if kwargs["normalize_decay"]:
        mask = mask / mask.sum(dim=-1, keepdim=True).sqrt()
    mask = mask.to(x.dtype)
    g = torch.from_numpy(cotangent)
    linear, layer_norm, silu = (
        torch.nn.functional.linear,
        torch.nn.functional.layer_norm,
        torch.nn.functional.silu,
    )

    def heads_of(a):
        return a.view(batch, length, heads, -1).transpose(1, 2)

    def step():
        q, k, v = (heads_of(linear(x, W)) for W in (W_Q, W_K, W_V))
        scores = (q @ k.transpose(-1, -2)) * mask
        out = scores @ v
        if kwargs["normalize_scores"]:
            out = out / scores.abs().sum(dim=-1, keepdim=True).clamp(min=1)
        out = layer_norm(out, (out.shape[-1],), eps=eps).transpose(1, 2).reshape(batch, length, -1)
        y = linear(silu(linear(x, W_G)) * out, W_O)
        for a in (x, W_Q, W_K, W_V, W_G, W_O):
            a.grad = None
        y.backward(g)
        return y

    return step


def _layer_blas(args, kwargs):
    """The layer's 21 products. Forward: the projections x W_Qᵀ, x W_Kᵀ, x W_Vᵀ, x W_Gᵀ, per head
    A = Q Kᵀ and P = A V, then y = Z W_Oᵀ. Backward: W̄_O = Ȳᵀ Z, Z̄ = Ȳ W_O, per head
    V̄ = Aᵀ P̄, Ā = P̄ Vᵀ, Q̄ = S̄ K, K̄ = S̄ᵀ Q, and x̄ += R̄ W, W̄ = R̄ᵀ x for each of Q, K, V, G."""
    x, W_Q, W_K, W_V, W_G, W_O = args[:6]
    heads = kwargs["num_heads"]
    batch, length, width = x.shape
    rows = x.reshape(-1, width)
    d_k, d_v = W_Q.shape[0] // heads, W_V.shape[0] // heads

    def per_head(d):
        return np.ones((batch, heads, length, d), dtype=x.dtype)

    q, k, v, g_p = per_head(d_k), per_head(d_k), per_head(d_v), per_head(d_v)
    Z = np.ones((batch * length, W_O.shape[1]), dtype=x.dtype)
    g_y = np.ones((batch * length, width), dtype=x.dtype)
    weights = dict(zip("QKVG", args[1:5], strict=True))
    g_rows = {name: np.ones((batch * length, W.shape[0]), dtype=x.dtype) for name, W in weights.items()}

    def step():
        projections = [rows @ W.T for W in weights.values()]
        A = q @ _swap(k)
        g_A = g_p @ _swap(v)
        head_products = (A @ v, _swap(A) @ g_p, g_A @ k, _swap(g_A) @ q)
        out = (Z @ W_O.T, g_y.T @ Z, g_y @ W_O)
        g_x = [g_rows[name] @ weights[name] for name in "QKVG"]
        g_W = [g_rows[name].T @ rows for name in "QKVG"]
        return projections, head_products, out, g_x, g_W

    return step


def _layer_bench_sample(rng, rows, cols):
    """B = 4, N = 256, d_model = 512, H = 8, d_k = d_v = 64 (the shape flags are ignored)."""
    kwargs = {"num_heads": 8, "eps": 1e-6, "normalize_decay": True, "normalize_scores": True}
    return Sample("bench", _layer(rng, 4, 256, 512, 8, 64, 64), kwargs)


register(
    OpCases(
        "multiscale_retention",
        # N = 1, d_model = 1 or d_k = 1 make q·k a per-row scale, d_v = 2 makes Ô = ±1: GroupNorm removes
        # those up to eps and the weights' cotangents are O(eps) remainders (edges "d_v = 1", "N = 1")
        dims={"B": (1, 2), "N": (2, 6), "M": (2, 5), "H": (1, 3), "Dk": (2, 3), "Dv": (3, 4)},
        random=_random_layer,
        edges=_layer_edges,
        errors=_layer_errors,
        notes=NOTES,
        defaults={"gamma": None},
        bench=Bench(
            make=_layer_bench_sample,
            torch=_layer_torch,
            torch_label="torch: the same layer (parallel form, normalizations differentiated, "
            "per-head layer_norm), autograd backward",
            # one exp per gate pre-activation, σ(U) for U = x W_Gᵀ (B·N·H·d_v, reused by swish'), and
            # the H·N decay powers γ_h^k (the GroupNorm and decay-row normalizations take sqrt only)
            transcendentals=lambda args, kwargs: (
                args[0].shape[1] * (args[0].shape[0] * args[4].shape[0] + kwargs["num_heads"])
            ),
            blas=_layer_blas,
        ),
    )
)

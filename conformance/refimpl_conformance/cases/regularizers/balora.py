"""Conformance cases for BA-LoRA's regularizers: `balora_consistency_loss`, `balora_diversity_loss`,
`balora_svd_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register
from ...deviations import transcribes


def _nlg_shape(rng, B, T, V):  # noqa: N803
    return (B, V) if rng.integers(0, 3) == 0 else (B, T, V)


# -- balora_consistency_loss --------------------------------------------------------------------------
CONSISTENCY_NOTES = {
    "EQUAL": "z_ft = z_pre: the loss is exactly 0 and so is the gradient",
    "SCALE": "NLU logits ×1e3 or ×1e-3: only the directions matter (row L2 normalization)",
    "ZERO_ROW": "a zero row: F.normalize's clamp max(‖z‖, 1e-12) makes ẑ = 0, not NaN",
    "UNDERFLOW": "p_ft underflows to 0: log_softmax stays finite where softmax(z).log() is −inf",
    "OFFSET": "NLG logits + 1e3: the max shift keeps the softmax exact",
}


def _consistency_random(rng, B, T, V):  # noqa: N803
    variant = str(rng.choice(["nlu", "nlg"]))
    shape = (B, V) if variant == "nlu" else _nlg_shape(rng, B, T, V)
    scale = float(rng.choice([0.3, 1.0, 4.0]))
    z_ft = rng.standard_normal(shape) * scale
    z_pre = z_ft + rng.standard_normal(shape) * float(rng.choice([0.1, 1.0]))
    kwargs = {"variant": variant}
    if rng.integers(0, 3) == 0:  # a larger normalization guard (below every row norm drawn here)
        kwargs["eps"] = 1e-8
    return Sample("random", (z_ft, z_pre), kwargs)


def _consistency_edges():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((3, 5))
    tokens = rng.standard_normal((2, 3, 6)) * 2
    zero_pre = z.copy()
    zero_pre[1] = 0.0
    return [
        Sample("nlu: z_ft = z_pre", (z, z.copy()), {"variant": "nlu"}, flags=("EQUAL",)),
        Sample("nlg: z_ft = z_pre", (tokens, tokens.copy()), {"variant": "nlg"}, flags=("EQUAL",)),
        Sample("nlu: logits ×1e3", (1e3 * z, 1e3 * (z + 0.5)), {"variant": "nlu"}, flags=("SCALE",)),
        Sample(
            "nlu: logits ×1e-3",
            (1e-3 * z, 1e-3 * (z - 0.5)),
            {"variant": "nlu"},
            flags=("SCALE",),
            fd_step=1e-9,
        ),
        Sample("nlu: a zero row in z_pre", (z, zero_pre), {"variant": "nlu"}, flags=("ZERO_ROW",)),
        Sample(
            "nlg: p_ft underflows",
            (np.array([[0.0, -800.0, 1.0]]), np.array([[0.0, 0.0, 1.0]])),
            {"variant": "nlg"},
            flags=("UNDERFLOW",),
            dtypes=("float64",),
        ),
        Sample(
            "nlg: logits + 1e3", (tokens + 1e3, tokens[::-1] + 1e3), {"variant": "nlg"}, flags=("OFFSET",)
        ),
    ]


def _consistency_errors():
    return [
        ErrorCase(
            "nlu on 3-D logits",
            (np.ones((2, 3, 4)), np.ones((2, 3, 4))),
            {"variant": "nlu"},
            match="'z_ft'.*nlu",
        ),
        ErrorCase("nlg on 1-D logits", (np.ones(4), np.ones(4)), {"variant": "nlg"}, match="'z_ft'.*nlg"),
    ]


def _consistency_known():
    log3 = math.log(3.0)
    return [
        Known(
            "nlu: (3, 4) against (4, 3)",
            (np.array([[3.0, 4.0]]), np.array([[4.0, 3.0]])),
            {"variant": "nlu"},
            values={
                "loss": 0.04,  # ẑ = (0.6, 0.8), (0.8, 0.6): ½(0.2² + 0.2²)
                # ā = (−0.2, 0.2); (ā − ẑ⟨ẑ, ā⟩)/5 with ⟨ẑ, ā⟩ = 0.04
                "cotangent of 'z_ft'": [[(-0.2 - 0.6 * 0.04) / 5, (0.2 - 0.8 * 0.04) / 5]],
            },
            source="by hand",
            rtol=1e-12,
        ),
        Known(
            "nlg: KL((¾, ¼)‖(½, ½))",
            (np.array([[0.0, 0.0]]), np.array([[log3, 0.0]])),
            {"variant": "nlg"},
            values={
                "loss": 0.75 * math.log(1.5) + 0.25 * math.log(0.5),
                "cotangent of 'z_ft'": [[-0.25, 0.25]],  # q − r
            },
            source="by hand",
            rtol=1e-12,
        ),
    ]


def _consistency_torch(torch, args, kwargs, cotangent):
    """The official formulas: F.normalize + F.mse_loss (nlu), F.kl_div(log_softmax, softmax,
    reduction='batchmean') (nlg, with log_softmax for the official softmax().log())."""
    F = torch.nn.functional  # noqa: N806
    z_ft = torch.from_numpy(args[0]).requires_grad_()
    z_pre = torch.from_numpy(args[1])
    g = torch.tensor(float(np.asarray(cotangent)), dtype=z_ft.dtype)
    variant = kwargs["variant"]

    def step():
        z_ft.grad = None
        if variant == "nlu":
            loss = F.mse_loss(F.normalize(z_ft, p=2, dim=-1), F.normalize(z_pre, p=2, dim=-1))
        else:
            loss = F.kl_div(F.log_softmax(z_ft, dim=-1), F.softmax(z_pre, dim=-1), reduction="batchmean")
        loss.backward(g)
        return loss

    return step


def _bench_logits(rng, rows, cols):
    z = rng.standard_normal((rows, cols)) * 2
    return Sample("bench", (z, z + rng.standard_normal((rows, cols)) * 0.5), {"variant": "nlg"})


register(
    OpCases(
        "balora_consistency_loss",
        dims={"B": (1, 5), "T": (1, 3), "V": (2, 7)},
        random=_consistency_random,
        edges=_consistency_edges,
        errors=_consistency_errors,
        known=_consistency_known,
        notes=CONSISTENCY_NOTES,
        defaults={"eps": 1e-12},
        bench=Bench(
            make=_bench_logits,
            kwargs={"variant": "nlg"},
            torch=_consistency_torch,
            torch_label="F.kl_div(log_softmax(z_ft), softmax(z_pre), 'batchmean'); autograd backward",
            transcendentals=lambda args, kwargs: 2 * args[0].size,  # exp of each log-softmax
        ),
    )
)


@transcribes("balora-nlg-kl-log-of-softmax", outputs=("loss",))
def _official_consistency(z_ft, z_pre, *, variant, eps, dtype):
    """cyp-jlu-ai/BA-LoRA train.py, task_type 'nlg': ``kl_div(softmax(z_ft).log(), softmax(z_pre),
    reduction='batchmean')``, kl_div's pointwise ``xlogy(r, r) − r·log q``, in the input dtype."""
    z_ft, z_pre = z_ft.astype(dtype), z_pre.astype(dtype)

    def softmax(z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    q, r = softmax(z_ft), softmax(z_pre)
    with np.errstate(divide="ignore", invalid="ignore"):
        pointwise = np.where(r > 0, r * np.log(np.where(r > 0, r, 1)), 0) - r * np.log(q)
    return {"loss": pointwise.sum() / z_ft.shape[0]}


# -- balora_diversity_loss ----------------------------------------------------------------------------
DIVERSITY_NOTES = {
    "DECORRELATED": "NLU columns orthogonal after centring: C is diagonal, L = 0 and the gradient 0",
    "CONSTANT_ROWS": "NLU: identical rows give Z_c = 0: L = 0",
    "UNIFORM": "NLG uniform p: the entropy is maximal, log V, and the gradient 0",
    "PEAKED": "NLG logits ±40: p log p of the underflowing classes is 0, not NaN",
    "TWO_ROWS": "NLU B = 2: the smallest batch, divide by B − 1 = 1",
}


def _diversity_random(rng, B, T, V):  # noqa: N803
    variant = str(rng.choice(["nlu", "nlg"]))
    if variant == "nlu":
        z = rng.standard_normal((max(B, 2), V)) * float(rng.choice([0.3, 1.0, 3.0]))
        return Sample("random", (z,), {"variant": variant})
    z = rng.standard_normal(_nlg_shape(rng, B, T, V)) * float(rng.choice([0.3, 1.0, 4.0]))
    kwargs = {"variant": variant}
    if rng.integers(0, 3) == 0:
        kwargs["log_eps"] = float(rng.choice([1e-10, 1e-3]))
    return Sample("random", (z,), kwargs)


def _diversity_edges():
    rng = np.random.default_rng(4)
    orthogonal = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # centred, orthogonal columns
    return [
        Sample("nlu: decorrelated columns", (orthogonal,), {"variant": "nlu"}, flags=("DECORRELATED",)),
        Sample(
            "nlu: identical rows",
            (np.tile(rng.standard_normal(4), (3, 1)),),
            {"variant": "nlu"},
            flags=("CONSTANT_ROWS",),
        ),
        Sample("nlu: B = 2", (rng.standard_normal((2, 5)),), {"variant": "nlu"}, flags=("TWO_ROWS",)),
        Sample("nlg: uniform", (np.full((2, 3, 5), 0.7),), {"variant": "nlg"}, flags=("UNIFORM",)),
        Sample(
            "nlg: logits ±40",
            (np.array([[40.0, -40.0, 0.0, 39.0], [-40.0, 40.0, 40.0, 0.0]]),),
            {"variant": "nlg"},
            flags=("PEAKED",),
        ),
        Sample(
            "nlg: logits ±40, official log(p + 1e-10)",
            (np.array([[40.0, -40.0, 0.0, 39.0]]),),
            {"variant": "nlg", "log_eps": 1e-10},
            flags=("PEAKED",),
            dtypes=("float64",),
        ),
    ]


def _diversity_errors():
    return [
        ErrorCase("nlu with B = 1", (np.ones((1, 3)),), {"variant": "nlu"}, match=r"'z'.*B >= 2"),
        ErrorCase("nlu on 3-D logits", (np.ones((2, 3, 4)),), {"variant": "nlu"}, match="'z'.*nlu"),
        ErrorCase("nlg on 1-D logits", (np.ones(4),), {"variant": "nlg"}, match="'z'.*nlg"),
    ]


def _diversity_known():
    return [
        Known(
            "nlu: rows (1, 1), (−1, −1)",
            (np.array([[1.0, 1.0], [-1.0, -1.0]]),),
            {"variant": "nlu"},
            values={
                "loss": 4.0,  # C = [[2, 2], [2, 2]]: (2² + 2²)/2
                # (4/(d(B − 1)))·Z_c C_off = 2·[[2, 2], [−2, −2]]
                "cotangent of 'z'": [[4.0, 4.0], [-4.0, -4.0]],
            },
            source="by hand",
            rtol=1e-12,
        ),
        Known(
            "nlg: p = (¾, ¼)",
            (np.array([[math.log(3.0), 0.0]]),),
            {"variant": "nlg"},
            values={
                "loss": 0.75 * math.log(0.75) + 0.25 * math.log(0.25),
                # p ⊙ (log p + H), H = −(¾ log ¾ + ¼ log ¼)
                "cotangent of 'z'": [
                    [
                        0.75 * (math.log(0.75) - 0.75 * math.log(0.75) - 0.25 * math.log(0.25)),
                        0.25 * (math.log(0.25) - 0.75 * math.log(0.75) - 0.25 * math.log(0.25)),
                    ]
                ],
            },
            source="by hand",
            rtol=1e-12,
        ),
    ]


def _diversity_torch(torch, args, kwargs, cotangent):
    """The official NLG term with the exact log-softmax: −entropy = mean over positions of Σ p log p."""
    F = torch.nn.functional  # noqa: N806
    z = torch.from_numpy(args[0]).requires_grad_()
    g = torch.tensor(float(np.asarray(cotangent)), dtype=z.dtype)
    variant = kwargs["variant"]

    def step():
        z.grad = None
        if variant == "nlu":
            centered = z - z.mean(dim=0)
            covariance = centered.T @ centered / (z.shape[0] - 1)
            off_diagonal = covariance - torch.diag(torch.diag(covariance))
            loss = (off_diagonal**2).sum() / z.shape[1]
        else:
            log_p = F.log_softmax(z, dim=-1)
            loss = (torch.exp(log_p) * log_p).sum(dim=-1).mean()
        loss.backward(g)
        return loss

    return step


def _bench_diversity(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((rows, cols)) * 2,), {"variant": "nlg"})


register(
    OpCases(
        "balora_diversity_loss",
        dims={"B": (1, 5), "T": (1, 3), "V": (2, 7)},
        random=_diversity_random,
        edges=_diversity_edges,
        errors=_diversity_errors,
        known=_diversity_known,
        notes=DIVERSITY_NOTES,
        defaults={"log_eps": 0.0},
        bench=Bench(
            make=_bench_diversity,
            kwargs={"variant": "nlg"},
            torch=_diversity_torch,
            torch_label="(exp(log_softmax(z))·log_softmax(z)).sum(-1).mean(); autograd backward",
            transcendentals=lambda args, kwargs: args[0].size,  # exp of the log-softmax
        ),
    )
)


# -- balora_svd_loss ----------------------------------------------------------------------------------
SVD_NOTES = {
    "K_AT_LEAST_RANK": "k ≥ min(m, n): T = Σ, L = −1 exactly and the gradient 0",
    "RANK_ONE_DOMINANT": "σ_1 ≫ σ_2: L ≈ −1 with k = 1",
    "WIDE_3D": "(B, T, V) logits reshaped to (B, T·V), the official view(B, -1)",
    "SCALE": "L is scale-invariant: Z ×1e4 gives the same loss, the gradient ×1e-4",
}


def _with_spectrum(rng, rows, cols, sigma):
    """U diag(σ) Vᵀ with random orthonormal U (rows × r), V (cols × r): σ chosen with gaps."""
    r = min(rows, cols)
    u, _ = np.linalg.qr(rng.standard_normal((rows, r)))
    v, _ = np.linalg.qr(rng.standard_normal((cols, r)))
    return (u * sigma) @ v.T


def _gapped_spectrum(rng, r):
    """Distinct singular values in [0.5, ~1 + r], at least 0.25 apart (the VJP needs gaps)."""
    return np.sort(0.5 + np.cumsum(0.25 + rng.random(r)))[::-1]


def _svd_random(rng, B, T, V):  # noqa: N803
    shape = (B + 1, V) if rng.integers(0, 3) else (B + 1, T, V)
    rows, cols = shape[0], int(np.prod(shape[1:]))
    sigma = _gapped_spectrum(rng, min(rows, cols)) * float(rng.choice([0.1, 1.0, 10.0]))
    z = _with_spectrum(rng, rows, cols, sigma).reshape(shape)
    return Sample("random", (z,), {"k": int(rng.integers(1, 5))})


def _svd_edges():
    rng = np.random.default_rng(5)
    base = _with_spectrum(rng, 4, 6, np.array([4.0, 2.5, 1.5, 0.5]))
    return [
        Sample("k = 4 = min(m, n)", (base,), {"k": 4}, flags=("K_AT_LEAST_RANK",)),
        Sample("k = 9 > min(m, n)", (base,), {"k": 9}, flags=("K_AT_LEAST_RANK",)),
        Sample(
            "σ_1 = 100 σ_2",
            (_with_spectrum(rng, 3, 5, np.array([100.0, 1.0, 0.5])),),
            {"k": 1},
            flags=("RANK_ONE_DOMINANT",),
        ),
        Sample(
            "(B, T, V) = (3, 2, 4)",
            (_with_spectrum(rng, 3, 8, np.array([3.0, 2.0, 1.0])).reshape(3, 2, 4),),
            {"k": 2},
            flags=("WIDE_3D",),
        ),
        Sample("Z ×1e4", (1e4 * base,), {"k": 2}, flags=("SCALE",)),
        Sample(
            "tall 6 × 3, default k = 3",
            (_with_spectrum(rng, 6, 3, np.array([3.0, 2.0, 1.0])),),
            flags=("K_AT_LEAST_RANK",),
        ),
    ]


def _svd_errors():
    return [
        ErrorCase("all-zero logits", (np.zeros((3, 4)),), match=r"'z'.*nonzero"),
        ErrorCase("1-D logits", (np.ones(4),), match=r"'z'.*at least 2 dimensions"),
    ]


def _svd_known():
    return [
        Known(
            "diag(3, 1), k = 1",
            (np.diag([3.0, 1.0]),),
            {"k": 1},
            values={"loss": -0.75, "cotangent of 'z'": [[-1 / 16, 0.0], [0.0, 3 / 16]]},
            source="by hand: T = 3, S = 4, −[diag(1, 0)·4 − 3I]/16",
            rtol=1e-12,
        ),
        Known(
            "diag(4, 3, 2, 1) (4 × 5), default k = 3",
            (np.hstack([np.diag([4.0, 3.0, 2.0, 1.0]), np.zeros((4, 1))]),),
            values={
                "loss": -0.9,
                # c_i = T/S² − 1[i ≤ 3]/S = 0.09 − 0.1 on the top 3, 0.09 on the 4th
                "cotangent of 'z'": np.hstack(
                    [np.diag([-0.01, -0.01, -0.01, 0.09]), np.zeros((4, 1))]
                ).tolist(),
            },
            source="by hand: T = 9, S = 10",
            rtol=1e-12,
        ),
    ]


def _svd_torch(torch, args, kwargs, cotangent):
    """The paper's formula with a differentiable torch.linalg.svdvals (the official code's SVD
    runs under no_grad: deviation balora-svd-no-gradient)."""
    z = torch.from_numpy(args[0]).requires_grad_()
    g = torch.tensor(float(np.asarray(cotangent)), dtype=z.dtype)
    k = kwargs.get("k", 3)

    def step():
        z.grad = None
        sigma = torch.linalg.svdvals(z.reshape(z.shape[0], -1))
        loss = -sigma[:k].sum() / sigma.sum()
        loss.backward(g)
        return loss

    return step


def _bench_svd(rng, rows, cols):
    rows, cols = min(rows, 512), min(cols, 1024)  # an SVD per step: a batch of logits, not a weight
    z = _with_spectrum(rng, rows, cols, _gapped_spectrum(rng, min(rows, cols)))
    return Sample("bench", (z,))


def _svd_blas(args, kwargs):
    """The backward's product U diag(c) Vᵀ (the SVD itself is the library's)."""
    z = args[0].reshape(args[0].shape[0], -1)
    r = min(z.shape)
    u, vt = z[:, :r].copy(), z[:r].copy()

    def step():
        return u @ vt

    return step


register(
    OpCases(
        "balora_svd_loss",
        dims={"B": (1, 5), "T": (1, 3), "V": (2, 7)},
        random=_svd_random,
        edges=_svd_edges,
        errors=_svd_errors,
        known=_svd_known,
        notes=SVD_NOTES,
        defaults={"k": 3},
        bench=Bench(
            make=_bench_svd,
            torch=_svd_torch,
            torch_label="-svdvals(Z)[:k].sum()/svdvals(Z).sum(); autograd (SVD) backward",
            blas=_svd_blas,
        ),
    )
)


@transcribes("balora-svd-no-gradient", outputs=("loss",))
def _official_svd(z, *, k, dtype):
    """cyp-jlu-ai/BA-LoRA train.py, CustomTrainer.svd_regularization with its indexing fixed to the
    1-D singular values (``s[:k]``, ``s.sum()``; as written ``s[:, :k]`` raises): the loss
    ``−Σ_{i≤k} σ_i/(Σσ_i + 1e-10)``, computed under no_grad (a constant to autograd)."""
    matrix = z.astype(dtype).reshape(z.shape[0], -1)
    sigma = np.linalg.svd(matrix, compute_uv=False)
    return {"loss": -sigma[:k].sum() / (sigma.sum() + 1e-10)}

"""Conformance cases for `linear_cka` and `representational_alignment_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ORTHOGONAL": "Y = c·X Q + 1bᵀ: CKA = 1 exactly, the gradient 0 (a maximum)",
    "OFFSET": "inputs 1e4 + O(1): centring the Gram X Xᵀ after forming it cancels; centring X first does not",
    "SCALE": "inputs ×1e±20: X Xᵀ overflows/underflows float32 unless X is rescaled (CKA is scale-invariant)",
    "TWO_ROWS": "n = 2: both centred Grams are rank one and equal up to scale, CKA = 1, gradient 0",
    "WIDE": "p ≫ n: the Gram (n × n) form, not the feature (p × p) form",
}


def _representations(rng, n, p):
    X = rng.standard_normal((n, p)) * float(rng.choice([0.1, 1.0, 30.0]))
    return X + float(rng.choice([0.0, 3.0]))


def _random(rng, n, p, q):
    X = _representations(rng, n, p)
    Y = X @ rng.standard_normal((p, q)) + rng.standard_normal((n, q)) * float(rng.choice([0.1, 1.0]))
    return Sample("random", (X, Y))


def _edges():
    rng = np.random.default_rng(41)
    X = rng.standard_normal((6, 4))
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    Y = rng.standard_normal((6, 3))
    return [
        Sample("Y = 2.5 X Q − 7", (X, 2.5 * X @ Q - 7.0), flags=("ORTHOGONAL",)),
        Sample("X against itself", (X, X.copy()), flags=("ORTHOGONAL",)),
        Sample("offset 1e4", (X + 1e4, Y - 1e4), flags=("OFFSET",), dtypes=("float64",), fd_step=1e-10),
        Sample("X, Y ×1e20", (X * 1e20, Y * 1e20), flags=("SCALE",)),
        Sample(
            "X, Y ×1e-20",
            (X * 1e-20, Y * 1e-20),
            flags=("SCALE",),
            fd_step=1e-26,
            comment="the step fd_step·max(1, |x|) must be relative to 1e-20",
        ),
        Sample("n = 2", (X[:2], Y[:2]), flags=("TWO_ROWS",)),
        Sample(
            "p = 40 ≫ n = 4", (rng.standard_normal((4, 40)), rng.standard_normal((4, 2))), flags=("WIDE",)
        ),
    ]


def _errors():
    X = np.arange(6.0).reshape(3, 2)
    return [
        ErrorCase("constant X", (np.ones((3, 2)), X), match="rows \\(examples\\) that are not all equal"),
        ErrorCase("identical rows of Y", (X, np.tile([[1.0, 2.0]], (3, 1))), match="argument 'Y'"),
        ErrorCase("one example", (X[:1], X[:1]), match="1 row\\(s\\), all equal"),
    ]


def _known():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    Y = np.array([[1.0], [-1.0], [0.0]])
    return [
        Known(
            "X = [e1, e2, 0], y = [1, −1, 0]",
            (X, Y),
            values={"cka": 3 / math.sqrt(10)},
            source="by hand: Y_cᵀX_c = [1, −1] (h = 2), ‖L‖ = 2, X_cᵀX_c = [[2, −1], [−1, 2]]/3 (‖·‖ √10/3)",
            rtol=1e-13,
        ),
    ]


def _official_cka(torch, X, Y):
    """rep_sim/rep_sims.py CKA.linear_CKA: centring(·) = H K H with an explicit H."""
    n = X.shape[0]
    H = torch.eye(n, dtype=X.dtype) - torch.ones((n, n), dtype=X.dtype) / n

    def linear_hsic(A, B):
        return torch.sum((H @ (A @ A.T) @ H) * (H @ (B @ B.T) @ H))

    return linear_hsic(X, Y) / (torch.sqrt(linear_hsic(X, X)) * torch.sqrt(linear_hsic(Y, Y)))


def _cka_torch(torch, args, kwargs, cotangent):
    X = torch.from_numpy(args[0]).requires_grad_()
    Y = torch.from_numpy(args[1]).requires_grad_()
    g = torch.tensor(float(np.asarray(cotangent)), dtype=X.dtype)

    def step():
        X.grad = Y.grad = None
        cka = _official_cka(torch, X, Y)
        cka.backward(g)
        return cka

    return step


def _bench_cka(rng, rows, cols):
    rows = min(rows, 1024)  # a minibatch of examples: the Grams are rows × rows
    X = rng.standard_normal((rows, cols))
    Y = X[:, : max(cols // 2, 1)] + rng.standard_normal((rows, max(cols // 2, 1)))
    return Sample("bench", (X, Y))


def _cka_blas(args, kwargs):
    """The forward's two Grams and the backward's two products ``K̄ X_c``, ``L̄ Y_c``."""
    X, Y = args[0], args[1]

    def step():
        K, L = X @ X.T, Y @ Y.T
        return K @ X, L @ Y

    return step


register(
    OpCases(
        "linear_cka",
        dims={"n": (3, 7), "p": (1, 5), "q": (1, 5)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench_cka,
            torch=_cka_torch,
            torch_label="official CKA.linear_CKA (H K H with an explicit H); autograd backward",
            blas=_cka_blas,
        ),
    )
)


# -- representational_alignment_loss ------------------------------------------------------------
ALIGNMENT_NOTES = {
    "ALIGNED": "guide = affine-orthogonal image of target: loss 0, gradient 0",
    "TOKENS": "token_sim: one CKA per position, summed",
    "FLATTEN": "(B, T, D) flattened to (B, T·D) before the CKA (official view(B, −1))",
    "ALPHA_ZERO": "α = 0: loss and gradient exactly 0",
}


def _alignment_random(rng, B, T, D, E):
    target = _representations(rng, B, T * D).reshape(B, T, D)
    guide = (target.reshape(B, -1) @ rng.standard_normal((T * D, T * E))).reshape(B, T, E)
    guide = guide + rng.standard_normal(guide.shape) * float(rng.choice([0.1, 1.0]))
    kwargs = {"alpha": float(rng.choice([0.5, 1.0, 2.0])), "token_sim": bool(rng.choice([False, True]))}
    return Sample("random", (target, guide), kwargs)


def _alignment_edges():
    rng = np.random.default_rng(43)
    target = rng.standard_normal((5, 2, 3))
    guide = rng.standard_normal((5, 4, 2))
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    aligned = (3.0 * target.reshape(5, 6) @ Q + 1.0).reshape(5, 2, 3)
    return [
        Sample("guide = 3·target Q + 1", (target, aligned), {"alpha": 1.0}, flags=("ALIGNED",)),
        Sample("flattened, T ≠ S", (target, guide), {"alpha": 1.5}, flags=("FLATTEN",)),
        Sample("token_sim, T = 2", (target, guide[:, :2]), {"token_sim": True}, flags=("TOKENS",)),
        Sample("α = 0", (target, guide), {"alpha": 0.0}, flags=("ALPHA_ZERO",)),
        Sample(
            "target ×1e15 + 1e3", (target * 1e15 + 1e3, guide), {}, flags=("FLATTEN",), dtypes=("float64",)
        ),
    ]


def _alignment_errors():
    rng = np.random.default_rng(5)
    target = rng.standard_normal((4, 2, 3))
    constant_position = target.copy()
    constant_position[:, 1] = 1.0
    return [
        ErrorCase(
            "token_sim with T ≠ S",
            (target, rng.standard_normal((4, 3, 3))),
            {"token_sim": True},
            match="as many token positions",
        ),
        ErrorCase(
            "token_sim with a constant position",
            (constant_position, target),
            {"token_sim": True},
            match="at token position 1",
        ),
        ErrorCase("constant guide", (target, np.ones((4, 1, 2))), match="argument 'guide'"),
    ]


def _alignment_known():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    Y = np.array([[1.0], [-1.0], [0.0]])
    return [
        Known(
            "α(1 − 3/√10), α = 2",
            (X[:, None, :], Y[:, None, :]),
            {"alpha": 2.0},
            values={"loss": 2 * (1 - 3 / math.sqrt(10))},
            source="by hand (linear_cka's known value)",
            rtol=1e-13,
        ),
    ]


def _alignment_torch(torch, args, kwargs, cotangent):
    """Official layermap_sim (CKA branch): 1 − linear_CKA on view(B, −1) or per token, ×α."""
    target = torch.from_numpy(args[0]).requires_grad_()
    guide = torch.from_numpy(args[1])
    g = torch.tensor(float(np.asarray(cotangent)), dtype=target.dtype)
    alpha, token_sim = kwargs.get("alpha", 1.0), kwargs.get("token_sim", False)
    batch = target.shape[0]

    def step():
        target.grad = None
        if token_sim:
            terms = [1 - _official_cka(torch, target[:, t], guide[:, t]) for t in range(target.shape[1])]
            loss = alpha * torch.stack(terms).sum()
        else:
            loss = alpha * (1 - _official_cka(torch, target.reshape(batch, -1), guide.reshape(batch, -1)))
        loss.backward(g)
        return loss

    return step


def _bench_alignment(rng, rows, cols):
    rows = min(rows, 1024)
    target = rng.standard_normal((rows, 4, max(cols // 4, 1)))
    guide = target[:, :, : max(cols // 8, 1)] + rng.standard_normal((rows, 4, max(cols // 8, 1)))
    return Sample("bench", (target, guide))


def _alignment_blas(args, kwargs):
    batch = args[0].shape[0]
    A, G = args[0].reshape(batch, -1), args[1].reshape(batch, -1)

    def step():
        K, L = A @ A.T, G @ G.T
        return K @ A, L

    return step


register(
    OpCases(
        "representational_alignment_loss",
        dims={"B": (3, 6), "T": (1, 3), "D": (1, 4), "E": (1, 4)},
        random=_alignment_random,
        edges=_alignment_edges,
        errors=_alignment_errors,
        known=_alignment_known,
        notes=ALIGNMENT_NOTES,
        defaults={"alpha": 1.0, "token_sim": False},
        bench=Bench(
            make=_bench_alignment,
            torch=_alignment_torch,
            torch_label="official layermap_sim CKA branch: α(1 − linear_CKA(view(B, −1))); autograd backward",
            blas=_alignment_blas,
        ),
    )
)

"""Conformance cases for `ensloss_surrogate`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "TIES": "tied margins: the stable order gives the earlier index the more negative derivative",
    "TAIL": "every margin > 1: every derivative is divided by its margin",
    "MARGIN_ONE": "s = 1 exactly: not in the tail (the official `s > 1.0`)",
    "CLIP": "λ < 0 with 1 + λε ≤ 0: b = +inf, clipped to the floor −1",
    "ZERO_BASE": "λ > 0 with 1 + λε ≤ 0: b = 0, so g = −1e-6 (the offset alone)",
    "OVERFLOW": "ε = 100: exp(ε) overflows float32 to inf; the derivative is clipped to −1",
    "HUGE_MARGIN": "s = 1e6: g/s is tiny; sg[g]·s stays O(1)",
    "ONE": "n = 1: a single margin takes the single derivative",
}


def stated_vjp(args, kwargs, cotangents):
    """The stated backward ∂L/∂s_i = ḡ·g_i/n, with g rebuilt element by element from the
    catalog's description (float64; ranks from sorting (s_i, i) pairs)."""
    s, eps = (np.asarray(a, dtype=np.float64) for a in args)
    lam = kwargs.get("lam", 0.0)
    n = s.shape[0]
    b = []
    for e in eps:
        if lam == 0:
            b.append(float(np.exp(e)) if e < 700 else float("inf"))
        else:
            base = max(1.0 + lam * e, 0.0)
            b.append(float("inf") if base == 0.0 and lam < 0 else base ** (1.0 / lam))
    derivatives = sorted(max(-value, -1.0) for value in b)
    ranked = sorted(range(n), key=lambda i: (s[i], i))
    g = np.empty(n)
    for rank, i in enumerate(ranked):
        value = derivatives[rank]
        if s[i] > 1.0:
            value /= s[i]
        g[i] = value - 1e-6
    return [float(np.asarray(cotangents[0])) * g / n]


def _random(rng, N):
    s = rng.standard_normal(N) * float(rng.choice([0.5, 2.0, 5.0])) + float(rng.choice([0.0, 1.0]))
    eps = rng.standard_normal(N)
    lam = float(rng.choice([0.0, 0.5, -0.5, rng.uniform(-1, 1)]))
    return Sample("random", (s, eps), {"lam": lam})


def _edges():
    rng = np.random.default_rng(88)
    eps = rng.standard_normal(6)
    return [
        Sample("tied margins", (np.array([0.5, -1.0, 0.5, 0.5, 2.0, -1.0]), eps), {}, flags=("TIES",)),
        Sample("every margin > 1", (np.array([1.5, 3.0, 10.0, 2.0, 1.01, 7.0]), eps), {}, flags=("TAIL",)),
        Sample(
            "margin exactly 1", (np.array([1.0, 0.0, 1.0, -2.0, 3.0, 0.9]), eps), {}, flags=("MARGIN_ONE",)
        ),
        Sample(
            "λ = −1/2, ε = 2 and 3: 1 + λε ≤ 0",
            (np.array([0.1, -0.3, 0.7, 1.5]), np.array([2.0, 3.0, -1.0, 0.5])),
            {"lam": -0.5},
            flags=("CLIP",),
        ),
        Sample(
            "λ = 1/2, ε = −2 and −3: 1 + λε ≤ 0",
            (np.array([0.1, -0.3, 0.7, 1.5]), np.array([-2.0, -3.0, 1.0, 0.5])),
            {"lam": 0.5},
            flags=("ZERO_BASE",),
        ),
        Sample(
            "ε = 100", (np.array([0.2, -0.4, 2.0]), np.array([100.0, 0.0, -1.0])), {}, flags=("OVERFLOW",)
        ),
        Sample(
            "margins 1e6", (np.array([1e6, -3.0, 2e6, 0.5]), eps[:4]), {"lam": 0.3}, flags=("HUGE_MARGIN",)
        ),
        Sample("n = 1", (np.array([0.3]), np.array([0.4])), {}, flags=("ONE",)),
        Sample(
            "λ = 1 (linear: b = max(1 + ε, 0))",
            (rng.standard_normal(9), rng.standard_normal(9)),
            {"lam": 1.0},
        ),
    ]


def _known():
    return [
        Known(
            "ε = 0, s = [2, 0.5]: g = [−1/2, −1] − 1e−6",
            (np.array([2.0, 0.5]), np.zeros(2)),
            {},
            values={"loss": ((-0.5 - 1e-6) * 2 + (-1 - 1e-6) * 0.5) / 2},
            source="by hand: b = exp(0) = 1 for both, d = [−1, −1]; the tail halves the first",
            rtol=1e-14,
        ),
        Known(
            "λ = −1/2: b = [1/0.95², 1/4, 4, 1/0.85²] clipped; s = [3, 0.5, −1, 0.5]",
            (np.array([3.0, 0.5, -1.0, 0.5]), np.array([0.1, -2.0, 1.0, 0.3])),
            {"lam": -0.5},
            # d ascending = [−1, −1, −1, −1/4]; ranks: s_2 < s_1 = s_3 (stable) < s_0; g_0 = −1/12
            values={
                "loss": ((-1 / 12 - 1e-6) * 3 + (-1 - 1e-6) * 0.5 + (-1 - 1e-6) * -1 + (-1 - 1e-6) * 0.5) / 4
            },
            source="by hand, from the forward's steps",
            rtol=1e-13,
        ),
    ]


def _bench(rng, rows, cols):
    n = rows * cols
    return Sample("bench", (rng.standard_normal(n) * 2.0, rng.standard_normal(n)), {})


def _ensloss_torch(torch, args, kwargs, cotangent):
    """The official ensLoss.forward (sorts, clip, tail, offset) as a torch.autograd.Function
    with the stated backward ḡ·g/n; stable sorts."""
    s = torch.from_numpy(args[0]).requires_grad_()
    eps = torch.from_numpy(args[1])
    lam = kwargs.get("lam", 0.0)
    g_out = torch.from_numpy(np.asarray(cotangent))

    class EnsLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, margins):
            if lam == 0:
                b = torch.exp(eps)
            else:
                b = torch.clamp(1 + lam * eps, min=0) ** (1.0 / lam)
            d = torch.clamp(-torch.sort(b, descending=True, stable=True).values, min=-1.0)
            g = torch.empty_like(margins)
            g[torch.sort(margins, stable=True).indices] = d
            g = torch.where(margins > 1, g / margins, g) - 1e-6
            ctx.save_for_backward(g)
            return (g * margins).mean()

        @staticmethod
        def backward(ctx, grad):
            (g,) = ctx.saved_tensors
            return grad * g / g.shape[0]

    def step():
        s.grad = None
        loss = EnsLoss.apply(s)
        loss.backward(g_out)
        return loss

    return step


register(
    OpCases(
        "ensloss_surrogate",
        dims={"N": (1, 16)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        known=_known,
        defaults={"lam": 0.0},
        stated_vjp=stated_vjp,
        bench=Bench(
            make=_bench,
            torch=_ensloss_torch,
            torch_label="torch.autograd.Function: exp(ε), stable sorts, clip, scatter by rank, tail, "
            "offset, mean(g·s); backward ḡ·g/n (the stated VJP)",
            # per element: exp(ε) (the Box-Cox inverse at λ = 0)
            transcendentals=lambda args, kwargs: args[0].shape[0],
        ),
    )
)

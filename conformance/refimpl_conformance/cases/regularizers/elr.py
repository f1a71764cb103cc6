"""Conformance cases for `elr_target_update` and `elr_loss`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "SATURATED": "one logit ≫ the others: p ≈ e_c (official clamp: every p_k outside [1e-4, 1 − 1e-4])",
    "SATURATED_UNCLAMPED": "logit gap 40 with t = e_c: 1 − ⟨t, p⟩ ≈ 1e-17; 1 − p_c from a log-sum-exp "
    "rounds to 0 (loss −inf), Σ_k p_k(1 − t_k) keeps it",
    "LAMBDA_ZERO": "λ = 0: the loss is the mean cross-entropy",
    "ZERO_MEMORY": "first epoch: t = 0, the regularizer is log 1 = 0 (its gradient too)",
    "ONE_CLASS": "K = 1: p = 1, CE = 0",
    "SUBSET": "only the rows in idx change (update); rows outside idx are never read (loss)",
}


def _memory(rng, N, K):
    """A memory like the one ELR builds from 0: rows are (1 − β^m)·(a probability vector)."""
    rows = rng.dirichlet(np.full(K, float(rng.choice([0.3, 1.0, 3.0]))), size=N)
    return rows * (1 - 0.7 ** rng.integers(1, 30, size=(N, 1)))


def _update_random(rng, B, K, extra):
    N = B + extra
    z = rng.standard_normal((B, K)) * float(rng.choice([0.5, 3.0, 12.0]))
    idx = rng.choice(N, size=B, replace=False)
    kwargs = {"beta": float(rng.choice([0.0, 0.7, 0.9, 0.99])), "clamp": bool(rng.random() < 0.5)}
    return Sample("random", (z, idx, _memory(rng, N, K)), kwargs)


def _update_edges():
    rng = np.random.default_rng(26)
    saturated = np.array([[60.0, 0.0, -3.0], [0.0, 0.0, 0.0]])
    return [
        Sample(
            "saturated row, official clamp",
            (saturated, np.array([2, 0]), _memory(rng, 4, 3)),
            {"beta": 0.7, "clamp": True},
            flags=("SATURATED",),
            comment="clamped p̃ = [1 − 1e-4, 1e-4, 1e-4] renormalized",
        ),
        Sample(
            "saturated row, paper",
            (saturated, np.array([2, 0]), _memory(rng, 4, 3)),
            {"beta": 0.7},
            flags=("SATURATED",),
        ),
        Sample(
            "first step from zero memory, β = 0.9",
            (rng.standard_normal((3, 5)), np.array([4, 0, 2]), np.zeros((6, 5))),
            {"beta": 0.9},
            flags=("ZERO_MEMORY", "SUBSET"),
        ),
        Sample("β = 0", (rng.standard_normal((2, 4)), np.array([1, 0]), _memory(rng, 2, 4)), {"beta": 0.0}),
        Sample(
            "one class",
            (np.array([[1.5]]), np.array([0]), np.zeros((2, 1))),
            {"beta": 0.7},
            flags=("ONE_CLASS",),
        ),
    ]


def _update_errors():
    z, t = np.zeros((2, 3)), np.zeros((5, 3))
    return [
        ErrorCase("repeated index", (z, np.array([1, 1]), t), {"beta": 0.7}, match=r"'idx'.*distinct"),
    ]


register(
    OpCases(
        "elr_target_update",
        dims={"B": (1, 6), "K": (1, 7), "extra": (0, 5)},
        random=_update_random,
        edges=_update_edges,
        errors=_update_errors,
        notes=NOTES,
    )
)


# -- the loss --------------------------------------------------------------------------------
def _loss_random(rng, B, K, extra):
    N = B + extra
    z = rng.standard_normal((B, K)) * float(rng.choice([0.5, 2.0, 6.0]))
    y = rng.integers(0, K, size=B)
    idx = rng.choice(N, size=B, replace=False)
    kwargs = {"lam": float(rng.choice([0.0, 3.0, 7.0])), "clamp": bool(rng.random() < 0.5)}
    return Sample("random", (z, y, idx, _memory(rng, N, K)), kwargs)


def _loss_edges():
    rng = np.random.default_rng(2007)
    memory = _memory(rng, 5, 4)
    z = rng.standard_normal((3, 4))
    return [
        Sample(
            "paper defaults, CIFAR-10 λ = 3",
            (z, np.array([0, 3, 1]), np.array([4, 0, 2]), memory),
            {"lam": 3.0},
            flags=("SUBSET",),
        ),
        Sample(
            "official clamp, CIFAR-100 λ = 7",
            (z, np.array([0, 3, 1]), np.array([4, 0, 2]), memory),
            {"lam": 7.0, "clamp": True},
        ),
        Sample(
            "λ = 0",
            (z, np.array([2, 2, 0]), np.array([1, 3, 0]), memory),
            {"lam": 0.0},
            flags=("LAMBDA_ZERO",),
        ),
        Sample(
            "saturated row, official clamp",
            (
                np.array([[60.0, 0.0, -3.0], [0.5, -0.2, 0.1]]),
                np.array([1, 0]),
                np.array([0, 1]),
                _memory(rng, 2, 3),
            ),
            {"lam": 3.0, "clamp": True},
            flags=("SATURATED",),
            comment="row 0: every p_k outside the clamp, zero ELR gradient",
        ),
        Sample(
            "saturated row with one-hot target, paper",
            (
                np.array([[40.0, 0.0, -2.0, 1.0], [0.3, 0.0, 0.0, -0.5]]),
                np.array([0, 2]),
                np.array([1, 0]),
                np.array([[0.2, 0.3, 0.1, 0.1], [1.0, 0.0, 0.0, 0.0]]),
            ),
            {"lam": 3.0},
            flags=("SATURATED_UNCLAMPED",),
            comment="row 0 (idx 1): t = e_0, p_0 = 1 − 5e-18",
        ),
        Sample(
            "zero memory",
            (z, np.array([0, 1, 2]), np.array([0, 1, 2]), np.zeros((3, 4))),
            {"lam": 3.0},
            flags=("ZERO_MEMORY",),
        ),
        Sample(
            "zero memory, official clamp",
            (z, np.array([0, 1, 2]), np.array([0, 1, 2]), np.zeros((3, 4))),
            {"lam": 3.0, "clamp": True},
            flags=("ZERO_MEMORY",),
        ),
        Sample(
            "one class",
            (np.array([[2.0], [-1.0]]), np.array([0, 0]), np.array([0, 1]), np.array([[0.3], [0.9]])),
            {"lam": 3.0},
            flags=("ONE_CLASS",),
        ),
    ]


def _loss_errors():
    z, y, idx, t = np.zeros((2, 3)), np.array([0, 2]), np.array([0, 1]), np.full((3, 3), 0.2)
    return [
        ErrorCase(
            "target entry above 1",
            (z, y, idx, np.full((3, 3), 1.5)),
            {"lam": 3.0},
            match=r"'targets'.*\[0, 1\]",
        ),
        ErrorCase(
            "negative target", (z, y, idx, np.full((3, 3), -0.1)), {"lam": 3.0}, match=r"'targets'.*\[0, 1\]"
        ),
        ErrorCase(
            "a target row of ones (1 − ⟨t, p⟩ = 0)",
            (z, y, idx, np.ones((3, 3))),
            {"lam": 3.0},
            match=r"'targets'.*below 1",
        ),
        ErrorCase(
            "clamp with a target row summing to 1.5",
            (z, y, idx, np.full((3, 3), 0.5)),
            {"lam": 3.0, "clamp": True},
            match=r"'targets'.*clamp=True",
        ),
        ErrorCase("repeated index", (z, y, np.array([2, 2]), t), {"lam": 3.0}, match=r"'idx'.*distinct"),
    ]


def _elr_loss_torch(torch, args, kwargs, cotangent):
    """Mean CE (F.log_softmax, F.nll_loss) + λ·mean log(1 − ⟨t, p̃⟩), t = targets[idx]."""
    F = torch.nn.functional
    z = torch.from_numpy(args[0]).requires_grad_()
    y, idx = (torch.from_numpy(a).long() for a in args[1:3])
    targets = torch.from_numpy(args[3])
    lam, clamp = kwargs["lam"], kwargs.get("clamp", False)
    g = torch.from_numpy(cotangent)

    def step():
        z.grad = None
        t = targets[idx]
        log_p = F.log_softmax(z, dim=-1)
        p = log_p.exp()
        if clamp:  # the official clamp inside the regularizer: D = 1 − ⟨t, clamp(p)⟩
            denominator = 1 - (t * p.clamp(1e-4, 1.0 - 1e-4)).sum(dim=-1)
        else:  # D = Σ_k p_k (1 − t_k)
            denominator = (p * (1 - t)).sum(dim=-1)
        loss = F.nll_loss(log_p, y) + lam * denominator.log().mean()
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "elr_loss",
        dims={"B": (1, 6), "K": (1, 7), "extra": (0, 5)},
        random=_loss_random,
        edges=_loss_edges,
        errors=_loss_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "K": "cols", "extra": 0},
            torch=_elr_loss_torch,
            torch_label="F.log_softmax, F.nll_loss + λ·mean log Σ p(1 − t) (clamp: 1 − ⟨t, clamp p⟩); "
            "autograd backward",
            # one exp per logit (softmax), one log per row for the log-sum-exp and one for log D
            transcendentals=lambda args, kwargs: args[0].size + 2 * args[0].shape[0],
        ),
    )
)

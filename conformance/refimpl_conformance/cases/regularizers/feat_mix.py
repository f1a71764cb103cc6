"""Conformance cases for `feat_mix`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "IDENTITY": "π = identity: x̃ = x whatever the mask, x̄ = ḡ",
    "ALL_KEPT": "λ = 0 with u > 0: every feature kept, Λ = ΣI = 1",
    "NONE_KEPT": "λ = 1: u > 1 never holds, x̃ = x[π] and Λ = 0",
    "TIE": "u = λ exactly: the strict comparison swaps the feature (official `random > rate`)",
    "REPEATED_PARTNER": "π not a permutation: a partner row collects several rows' terms",
}


def _importances(rng, F):  # noqa: N803
    scores = rng.random(F)
    return scores / scores.sum()


def _random(rng, B, F):  # noqa: N803
    x = rng.standard_normal((B, F)) * float(rng.choice([0.1, 1.0, 30.0]))
    return Sample(
        "random",
        (x, rng.permutation(B), rng.beta(0.5, 0.5, size=B), rng.random((B, F)), _importances(rng, F)),
    )


def _edges():
    rng = np.random.default_rng(11)
    x, u, importances = rng.standard_normal((4, 5)), rng.random((4, 5)), _importances(rng, 5)
    perm, lam = np.array([3, 2, 0, 1]), np.array([0.2, 0.5, 0.7, 0.9])
    tie = u.copy()
    tie[:, 1] = lam  # u = λ: swapped
    return [
        Sample("π = identity", (x, np.arange(4), lam, u, importances), flags=("IDENTITY",)),
        Sample("λ = 0: all kept", (x, perm, np.zeros(4), u + 0.01, importances), flags=("ALL_KEPT",)),
        Sample("λ = 1: none kept", (x, perm, np.ones(4), u, importances), flags=("NONE_KEPT",)),
        Sample("u = λ in column 1", (x, perm, lam, tie, importances), flags=("TIE",)),
        Sample(
            "repeated partners", (x, np.array([1, 1, 1, 0]), lam, u, importances), flags=("REPEATED_PARTNER",)
        ),
        Sample("B = 1, F = 1", (x[:1, :1], np.array([0]), lam[:1], u[:1, :1], np.ones(1))),
    ]


def _errors():
    x, u, importances = np.ones((2, 3)), np.full((2, 3), 0.5), np.full(3, 1 / 3)
    perm = np.array([1, 0])
    return [
        ErrorCase("λ > 1", (x, perm, np.array([0.5, 1.5]), u, importances), match=r"\[0, 1\].*row 1"),
        ErrorCase(
            "negative importance",
            (x, perm, np.array([0.5, 0.5]), u, np.array([0.5, -0.1, 0.6])),
            match="non-negative.*feature 1",
        ),
    ]


def _known():
    x = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0], [-1.0, -2.0, -3.0]])
    u = np.array([[0.9, 0.1, 0.6], [0.2, 0.8, 0.2], [0.5, 0.5, 0.5]])
    return [
        Known(
            "three rows, π = (1, 2, 0), λ = (½, ½, 0)",
            (x, np.array([1, 2, 0]), np.array([0.5, 0.5, 0.0]), u, np.array([0.5, 0.3, 0.2])),
            values={
                # masks: (1, 0, 1), (0, 1, 0), (1, 1, 1)
                "x_mixed": [[1.0, 20.0, 3.0], [-1.0, 20.0, -3.0], [-1.0, -2.0, -3.0]],
                "label_weight": [0.7, 0.3, 1.0],
                # x̄_j = m_j + (1 − m_i), π(i) = j: row 0 ← row 2 (m = 1), row 1 ← row 0, row 2 ← row 1
                "cotangent of 'x'": [[1.0, 0.0, 1.0], [0.0, 2.0, 0.0], [2.0, 1.0, 2.0]],
            },
            source="by hand",
            rtol=1e-15,
        )
    ]


def _feat_mix_torch(torch, args, kwargs, cotangent):
    """The official batch_feat_shuffle with the draws given: mask = u > λ, m·x + ~m·x[π];
    Λ = (I·m).sum(1); autograd backward."""
    x = torch.from_numpy(args[0]).requires_grad_()
    perm = torch.from_numpy(args[1]).long()
    lam, u, importances = (torch.from_numpy(a) for a in args[2:])
    g = torch.from_numpy(cotangent[0])

    def step():
        x.grad = None
        keep = u > lam[:, None]
        x_mixed = keep * x + ~keep * x[perm]
        label_weight = (importances * keep).sum(1)
        x_mixed.backward(g)
        return x_mixed, label_weight

    return step


def _feat_mix_bench(rng, rows, cols):
    return Sample(
        "bench",
        (
            rng.standard_normal((rows, cols)),
            rng.permutation(rows),
            rng.beta(0.5, 0.5, size=rows),
            rng.random((rows, cols)),
            _importances(rng, cols),
        ),
    )


register(
    OpCases(
        "feat_mix",
        dims={"B": (1, 6), "F": (1, 7)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_feat_mix_bench,
            torch=_feat_mix_torch,
            torch_label="batch_feat_shuffle with the draws given: m = u > λ, m·x + ~m·x[π], Λ = (I·m).sum(1)",
        ),
    )
)

"""Conformance cases for the Data Diet scores (EL2N, last-layer GraNd, margin) and score-based pruning.

The scores are smooth functions of the logits (EL2N is differentiated, the others compared on
outputs). ``score_based_pruning`` returns indices, compared exactly: its ranking is a stable
sort with a stated tie rule (lowest index first), so exact ties are part of the random samples
and of the edge cases — every implementation must break them the same way.
"""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "SATURATED": "logits ±1e4: p is exactly one-hot, e = 0 for a fitted example (score 0, gradient 0), "
    "e = e_k − e_y for a confidently wrong one; a softmax without the max shift overflows",
    "NEAR_SATURATED": "a 40-logit gap: 1 − p_y ≈ 4e-18 is below float64's 1 − p_y resolution; computed as "
    "Σ_{k≠y} p_k it keeps its digits (p_y − 1 gives 0 or 1e-16)",
    "ONE_CLASS": "K = 1: p = 1 always, every score is 0",
    "TIES": "equal scores: the ranking is stable, the lowest index first (descending and ascending)",
    "OFFICIAL_VARIANT": "official_offset=True: the offset counts from the lowest scores",
    "EMPTY": "size = 0 (or n = 0): nothing kept",
    "HUGE_FEATURES": "features 1e25: ‖h‖² overflows float32, the scaled norm does not",
}


def _logits(rng, R, n, K):
    scale = float(rng.choice([0.5, 2.0, 8.0]))
    return rng.standard_normal((R, n, K)) * scale + float(rng.choice([0.0, 30.0]))


# -- el2n_score ---------------------------------------------------------------------------------------
def _el2n_random(rng, R, n, K):
    z = _logits(rng, R, n, K)
    return Sample("random", (z, rng.integers(0, K, size=n)), {"ord": int(rng.choice([2, 1]))})


def _el2n_edges():
    rng = np.random.default_rng(11)
    saturated = np.array([[[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4]]])
    near = np.array([[[40.0, 0.0, 0.0], [0.0, 40.0, 1.0]]])
    return [
        Sample(
            "known value: p = [1/4, 3/4], label 0",
            (np.log(np.array([[[1.0, 3.0]]])), np.array([0])),
            comment="e = [−3/4, 3/4], ‖e‖₂ = 3√2/4",
        ),
        Sample(
            "known value, ord = 1",
            (np.log(np.array([[[1.0, 3.0]]])), np.array([0])),
            {"ord": 1},
            comment="‖e‖₁ = 2(1 − p_y) = 3/2",
        ),
        Sample(
            "logits ±1e4",
            (saturated, np.array([0, 0])),
            flags=("SATURATED",),
            comment="row 0 fitted: score 0, gradient 0; row 1 confidently wrong: score √2, gradient 0",
        ),
        Sample("a 40-logit gap", (near, np.array([0, 1])), flags=("NEAR_SATURATED",)),
        Sample("a 40-logit gap, ord = 1", (near, np.array([0, 1])), {"ord": 1}, flags=("NEAR_SATURATED",)),
        Sample(
            "one class", (rng.standard_normal((2, 3, 1)), np.zeros(3, dtype=np.int64)), flags=("ONE_CLASS",)
        ),
        Sample("five runs", (rng.standard_normal((5, 4, 6)) * 3, np.array([0, 5, 2, 2]))),
    ]


def _el2n_torch(torch, args, kwargs, cotangent):
    """torch.linalg.vector_norm(softmax(z) − one_hot(y), ord), mean over runs; autograd backward."""
    z = torch.from_numpy(args[0]).requires_grad_()
    y = torch.from_numpy(args[1])
    g = torch.from_numpy(np.asarray(cotangent))
    one_hot = torch.nn.functional.one_hot(y, z.shape[-1]).to(z.dtype)
    order = kwargs.get("ord", 2)

    def step():
        z.grad = None
        errors = torch.softmax(z, dim=-1) - one_hot
        scores = torch.linalg.vector_norm(errors, ord=order, dim=-1).mean(dim=0)
        scores.backward(g)
        return scores

    return step


register(
    OpCases(
        "el2n_score",
        dims={"R": (1, 3), "n": (1, 6), "K": (2, 7)},  # K = 1 is an edge case
        random=_el2n_random,
        edges=_el2n_edges,
        defaults={"ord": 2},
        notes=NOTES,
        bench=Bench(
            sizes={"R": 1, "n": "rows", "K": "cols"},
            torch=_el2n_torch,
            torch_label="torch.linalg.vector_norm(softmax(z) − one_hot(y)), mean over runs; autograd",
            # the softmax: one exp per logit (the backward reuses p; the norm's sqrt is not counted)
            transcendentals=lambda args, kwargs: args[0].size,
        ),
    )
)


# -- grand_score_last_layer -----------------------------------------------------------------------------
def _grand_random(rng, R, n, K, H):
    z = _logits(rng, R, n, K)
    h = rng.standard_normal((R, n, H)) * float(rng.choice([0.1, 1.0, 20.0]))
    return Sample("random", (z, rng.integers(0, K, size=n), h), {"bias": bool(rng.random() < 0.5)})


def _grand_edges():
    rng = np.random.default_rng(12)
    z = np.log(np.array([[[1.0, 3.0]]]))
    return [
        Sample(
            "known value, no bias",
            (z, np.array([0]), np.array([[[3.0, 4.0]]])),
            {"bias": False},
            comment="(3√2/4)·5",
        ),
        Sample("known value, bias", (z, np.array([0]), np.array([[[3.0, 4.0]]])), comment="(3√2/4)·√26"),
        Sample(
            "zero features with a bias",
            (rng.standard_normal((2, 3, 4)), np.array([0, 3, 1]), np.zeros((2, 3, 5))),
            comment="only the bias gradient: the score is EL2N",
        ),
        Sample(
            "features 1e25",
            (rng.standard_normal((1, 3, 4)), np.array([0, 3, 1]), rng.standard_normal((1, 3, 5)) * 1e25),
            flags=("HUGE_FEATURES",),
        ),
        Sample(
            "logits ±1e4",
            (
                np.array([[[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4]]]),
                np.array([0, 0]),
                rng.standard_normal((1, 2, 3)),
            ),
            flags=("SATURATED",),
        ),
    ]


def _grand_torch(torch, args, kwargs, cotangent):
    """‖softmax(z) − one_hot(y)‖·hypot(‖h‖, 1) (‖h‖ without a bias) from torch.linalg.vector_norm,
    mean over runs; a score, the forward alone."""
    z, h = torch.from_numpy(args[0]), torch.from_numpy(args[2])
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(args[1]), z.shape[-1]).to(z.dtype)
    bias = kwargs.get("bias", True)
    one = torch.ones((), dtype=h.dtype)

    def step():
        with torch.no_grad():
            errors = torch.linalg.vector_norm(torch.softmax(z, dim=-1) - one_hot, dim=-1)
            features = torch.linalg.vector_norm(h, dim=-1)
            if bias:
                features = torch.hypot(features, one)
            return (errors * features).mean(dim=0)

    return step


register(
    OpCases(
        "grand_score_last_layer",
        dims={"R": (1, 3), "n": (1, 6), "K": (1, 6), "H": (1, 5)},
        random=_grand_random,
        edges=_grand_edges,
        defaults={"bias": True},
        notes=NOTES,
        bench=Bench(
            sizes={"R": 1, "n": "rows", "K": "cols", "H": 64},
            torch=_grand_torch,
            torch_label="vector_norm(softmax(z) − one_hot(y))·hypot(‖h‖, 1), mean over runs; forward only",
            # the softmax: one exp per logit (the norms' square roots are not counted)
            transcendentals=lambda args, kwargs: args[0].size,
        ),
    )
)


# -- margin_score -----------------------------------------------------------------------------------------
def _margin_random(rng, R, n, K):
    z = _logits(rng, R, n, K)
    return Sample("random", (z, rng.integers(0, K, size=n)), {"kind": str(rng.choice(["max", "sum"]))})


def _margin_edges():
    return [
        Sample(
            "known value: p = [1/8, 3/8, 1/2], label 1",
            (np.log(np.array([[[1.0, 3.0, 4.0]]])), np.array([1])),
            comment="1/2 − 3/8 = 1/8",
        ),
        Sample(
            "known value, sum",
            (np.log(np.array([[[1.0, 3.0, 4.0]]])), np.array([1])),
            {"kind": "sum"},
            comment="(1/8 + 1/2) − 2·3/8 = −1/8",
        ),
        Sample(
            "two equal runner-up logits",
            (np.array([[[0.0, 2.0, 2.0], [1.0, 1.0, 1.0]]]), np.array([0, 2])),
            comment="the max of two equal probabilities; row 1 all equal: margin 0",
        ),
        Sample(
            "logits ±1e4",
            (np.array([[[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4]]]), np.array([0, 0])),
            {"kind": "sum"},
            flags=("SATURATED",),
            comment="margins −(K − 1) = −2 and +1",
        ),
    ]


def _margin_errors():
    return [
        ErrorCase("one class", (np.zeros((1, 2, 1)), np.array([0, 0])), match=r"'z'.*K >= 2"),
    ]


def _margin_torch(torch, args, kwargs, cotangent):
    """max over the other classes of softmax(z) minus the label's (or the sum), mean over runs."""
    z = torch.from_numpy(args[0])
    y = torch.from_numpy(args[1])
    is_label = torch.nn.functional.one_hot(y, z.shape[-1]).bool()
    kind = kwargs.get("kind", "max")

    def step():
        with torch.no_grad():
            p = torch.softmax(z, dim=-1)
            p_label = (p * is_label).sum(dim=-1)
            if kind == "max":
                margins = p.masked_fill(is_label, float("-inf")).amax(dim=-1) - p_label
            else:
                margins = (p * ~is_label).sum(dim=-1) - (z.shape[-1] - 1) * p_label
            return margins.mean(dim=0)

    return step


register(
    OpCases(
        "margin_score",
        dims={"R": (1, 3), "n": (1, 6), "K": (2, 7)},
        random=_margin_random,
        edges=_margin_edges,
        errors=_margin_errors,
        defaults={"kind": "max"},
        notes=NOTES,
        bench=Bench(
            sizes={"R": 1, "n": "rows", "K": "cols"},
            torch=_margin_torch,
            torch_label="softmax, masked amax over the other classes minus p_y, mean over runs; forward only",
            # the softmax: one exp per logit
            transcendentals=lambda args, kwargs: args[0].size,
        ),
    )
)


# -- score_based_pruning ----------------------------------------------------------------------------------
def _pruning_random(rng, n):
    if rng.random() < 0.5:
        scores = rng.integers(0, 4, size=n) / 4.0  # exact ties: the stated rule decides
    else:
        scores = rng.standard_normal(n)
    offset = int(rng.integers(0, n + 1))
    size = int(rng.integers(0, n - offset + 1))
    return Sample(
        "random", (scores,), {"size": size, "offset": offset, "official_offset": bool(rng.random() < 0.5)}
    )


def _pruning_edges():
    tied = np.array([0.5, 0.2, 0.5, 0.2, 0.5, 0.9])
    return [
        Sample(
            "ties, descending",
            (tied,),
            {"size": 2, "offset": 1},
            flags=("TIES",),
            comment="ranking 5, 0, 2, 4, 1, 3: keeps 0 and 2",
        ),
        Sample(
            "ties, ascending (official offset)",
            (tied,),
            {"size": 3, "offset": 1, "official_offset": True},
            flags=("TIES", "OFFICIAL_VARIANT"),
            comment="ranking 1, 3, 0, 2, 4, 5: keeps 0, 2, 3",
        ),
        Sample("keep all", (np.array([0.3, -1.0, 2.0]),), {"size": 3}),
        Sample("keep none", (np.array([0.3, -1.0, 2.0]),), {"size": 0, "offset": 2}, flags=("EMPTY",)),
        Sample("no examples", (np.zeros(0),), {"size": 0}, flags=("EMPTY",)),
    ]


def _pruning_errors():
    return [
        ErrorCase(
            "window beyond the ranking",
            (np.array([0.1, 0.2, 0.3]),),
            {"size": 2, "offset": 2},
            match=r"'size'.*size \+ offset <= n = 3",
        ),
    ]


register(
    OpCases(
        "score_based_pruning",
        dims={"n": (1, 12)},
        random=_pruning_random,
        edges=_pruning_edges,
        errors=_pruning_errors,
        defaults={"offset": 0, "official_offset": False},
        notes=NOTES,
    )
)

"""Conformance cases for `aaer_loss`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "NO_AAE": "no ℓ_before > ℓ_after: L is the plain mean CE, the logits get no gradient",
    "ALL_AAE": "every row abnormal, the normal set empty: the official code adds nothing",
    "GATE_OFF": "V(AAE) < V(normal): max(·, 0) = 0, the logits get no gradient",
    "LOSS_TIE": "ℓ_before = ℓ_after: the row is normal (strict >); a difference step flips it",
    "VARIATION_TIE": "V(AAE) = V(normal): the official max(t, 0) returns t, the gate counts as active",
    "DETACHED": "detach_loss_gap: the official detached λ2 term, ℓ̄_after = w/B",
    "ONE_CLASS": "K = 1",
}


def _pair(rng, B, K, spread_abnormal, spread_normal):  # noqa: N803
    """Losses with each row's flag drawn, |ℓ_before − ℓ_after| ≥ 0.05, and logits whose
    variation is larger on one set than on the other."""
    loss_before = rng.uniform(0.2, 3.0, size=B)
    abnormal = rng.random(B) < 0.5
    gap = rng.uniform(0.05, 1.0, size=B)
    loss_after = np.where(abnormal, loss_before - gap, loss_before + gap)
    logits_before = rng.standard_normal((B, K)) * 2.0
    spread = np.where(abnormal, spread_abnormal, spread_normal)[:, None]
    logits_after = logits_before + spread * rng.standard_normal((B, K))
    return loss_before, logits_before, loss_after, logits_after


def _random(rng, B, K):  # noqa: N803
    spreads = [(1.0, 0.2), (0.2, 1.0), (0.5, 0.5)][int(rng.integers(0, 3))]
    kwargs = {}
    if rng.integers(0, 2):
        kwargs = {
            "lambda1": float(rng.choice([0.5, 1.0, 2.0])),
            "lambda2": float(rng.choice([0.0, 4.0])),
            "lambda3": float(rng.choice([0.5, 1.5])),
            "detach_loss_gap": bool(rng.integers(0, 2)),
        }
    return Sample("random", _pair(rng, B, K, *spreads), kwargs)


def _edges():
    rng = np.random.default_rng(21)
    loss_before, logits_before = np.array([1.0, 2.0, 0.5, 1.5]), rng.standard_normal((4, 3))
    logits_after = logits_before + rng.standard_normal((4, 3))
    mixed = np.array([0.5, 2.5, 0.2, 2.0])  # rows 0 and 2 abnormal
    quiet = logits_before.copy()
    quiet[[0, 2]] += 0.01  # the AAEs barely move: V(AAE) < V(normal)
    quiet[[1, 3]] += 1.0
    tie_logits = logits_before.copy()
    tie_logits[:, 0] += 1.0  # every row moves by exactly 1: V(AAE) = V(normal) = 1
    return [
        Sample("no AAE", (loss_before, logits_before, loss_before + 0.3, logits_after), flags=("NO_AAE",)),
        Sample("all AAE", (loss_before, logits_before, loss_before - 0.3, logits_after), flags=("ALL_AAE",)),
        Sample("V(AAE) < V(normal)", (loss_before, logits_before, mixed, quiet), flags=("GATE_OFF",)),
        Sample(
            "ℓ_before = ℓ_after in row 1",
            (loss_before, logits_before, np.array([0.5, 2.0, 0.2, 2.0]), logits_after),
            flags=("LOSS_TIE",),
            fd=False,
            comment="a difference step on ℓ_after,1 moves the row between the sets",
        ),
        Sample(
            "V(AAE) = V(normal)",
            (loss_before, logits_before, mixed, tie_logits),
            flags=("VARIATION_TIE",),
            fd=False,
            dtypes=("float64",),
            comment="the gate max(t, 0) has a kink at t = 0; in float32 the moved logits round and the "
            "tie is gone",
        ),
        Sample(
            "official detached gap",
            (loss_before, logits_before, mixed, logits_after),
            {"detach_loss_gap": True},
            flags=("DETACHED",),
        ),
        Sample(
            "K = 1",
            (np.array([1.0, 0.3]), np.array([[0.0], [1.0]]), np.array([0.5, 0.9]), np.array([[2.0], [1.5]])),
            flags=("ONE_CLASS",),
        ),
    ]


def _known():
    args = (np.array([1.0, 0.5]), np.zeros((2, 1)), np.array([0.5, 1.0]), np.array([[1.0], [0.0]]))
    return [
        Known(
            "row 0 abnormal, V(AAE) = 1, V(normal) = 0, defaults",
            args,
            values={
                "loss": 0.75 + 0.5 * (4.0 * 0.5 + 1.5 * 1.0),
                "cotangent of 'loss_after'": [0.5 - 2.0, 0.5],  # 1/B − λ1λ2/B on the AAE
                "cotangent of 'logits_after'": [[1.5], [0.0]],  # (2λ1λ3/B)(o − o_org)
            },
            source="by hand (the catalog's formula)",
            rtol=1e-15,
        ),
        Known(
            "the same with the official detached gap",
            args,
            {"detach_loss_gap": True},
            values={
                "loss": 2.5,
                "cotangent of 'loss_after'": [0.5, 0.5],
                "cotangent of 'logits_after'": [[1.5], [0.0]],
            },
            source="by hand (official train loop: loss_after = loss.detach())",
            rtol=1e-15,
        ),
    ]


def _errors():
    return [
        ErrorCase(
            "negative λ2",
            (np.ones(2), np.zeros((2, 2)), np.ones(2), np.zeros((2, 2))),
            {"lambda2": -1.0},
            match="lambda2",
        )
    ]


def _aaer_stated(args, kwargs, cotangents):
    """The stated backward with the sets and V(normal) held fixed, float64, row by row:
    ℓ̄_after,i = w(1/B − [both sets] λ1λ2/B·1[AAE]) (no λ2 part when detached) and
    ō_i = w·[both sets, gate] (2λ1λ3/B)(o_i − o_org,i)·1[AAE]."""
    loss_before, logits_before, loss_after, logits_after = (np.asarray(a, dtype=np.float64) for a in args)
    lambda1, lambda2 = kwargs.get("lambda1", 1.0), kwargs.get("lambda2", 4.0)
    lambda3, detach = kwargs.get("lambda3", 1.5), kwargs.get("detach_loss_gap", False)
    w = float(np.asarray(cotangents[0]))
    batch = len(loss_after)
    abnormal = [bool(args[0][i] > args[2][i]) for i in range(batch)]  # compared in the input dtype
    variations = [float(np.sum((logits_after[i] - logits_before[i]) ** 2)) for i in range(batch)]
    n_abnormal = sum(abnormal)
    both = 0 < n_abnormal < batch
    gate = both and (
        sum(v for v, a in zip(variations, abnormal, strict=True) if a) / n_abnormal
        >= sum(v for v, a in zip(variations, abnormal, strict=True) if not a) / (batch - n_abnormal)
    )
    g_loss_after = np.full(batch, w / batch)
    g_logits = np.zeros_like(logits_after)
    for i in range(batch):
        if both and abnormal[i] and not detach:
            g_loss_after[i] -= w * lambda1 * lambda2 / batch
        if gate and abnormal[i]:
            g_logits[i] = w * 2 * lambda1 * lambda3 / batch * (logits_after[i] - logits_before[i])
    return [g_loss_after, g_logits]


def _aaer_torch(torch, args, kwargs, cotangent):
    """The official training-loop formula: masks from the losses, l2_square = ((x − y)²).sum(1).mean(0),
    V(normal).item(), Python max(·, 0); autograd backward."""
    loss_before, logits_before = (torch.from_numpy(a) for a in args[:2])
    loss_after, logits_after = (torch.from_numpy(a).requires_grad_() for a in args[2:])
    g = torch.from_numpy(np.asarray(cotangent))
    lambda1, lambda2 = kwargs.get("lambda1", 1.0), kwargs.get("lambda2", 4.0)
    lambda3, detach = kwargs.get("lambda3", 1.5), kwargs.get("detach_loss_gap", False)

    def l2_square(x, y):
        difference = x - y
        return (difference * difference).sum(1).mean(0)

    def step():
        loss_after.grad = logits_after.grad = None
        after = loss_after.detach() if detach else loss_after
        abnormal = loss_before > loss_after.detach()
        abnormal_count, normal_count = int(abnormal.sum()), int((~abnormal).sum())
        loss = loss_after.mean()
        if abnormal_count and normal_count:
            variation = l2_square(logits_before[abnormal], logits_after[abnormal])
            normal_variation = l2_square(logits_before[~abnormal], logits_after[~abnormal]).item()
            gap = (abnormal * (loss_before - after)).sum() / abnormal_count
            weight = lambda1 * abnormal_count / loss_before.shape[0]
            loss = loss + weight * (lambda2 * gap + lambda3 * max(variation - normal_variation, 0))
        loss.backward(g)
        return loss

    return step


def _aaer_bench(rng, rows, cols):
    return Sample("bench", _pair(rng, rows, cols, 1.0, 0.3))


register(
    OpCases(
        "aaer_loss",
        dims={"B": (2, 7), "K": (1, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        stated_vjp=_aaer_stated,
        defaults={"lambda1": 1.0, "lambda2": 4.0, "lambda3": 1.5, "detach_loss_gap": False},
        bench=Bench(
            make=_aaer_bench,
            torch=_aaer_torch,
            torch_label="official loop: boolean masks, l2_square, V(normal).item(), max(·, 0); autograd",
        ),
    )
)

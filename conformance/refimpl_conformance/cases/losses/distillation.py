"""Conformance cases for `distillation_kl`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "EQUAL_LOGITS": "student = teacher: KL = 0 and both gradients 0 (cross_entropy: the entropy)",
    "LARGE_LOGITS": "|z| up to 1e4: a softmax without the max shift overflows",
    "ONE_CLASS": "K = 1: every distribution is [1]; loss and gradients are 0",
    "TOKENS": "3-D logits (B, T, V): 'mean' averages over B·T rows, 'batchmean' divides by B only",
    "SHIFT": "adding a constant to a row changes nothing (softmax is shift-invariant)",
}


def _random(rng, B, T, K):  # noqa: N803
    shape = (B, K) if rng.integers(0, 2) else (B, T, K)
    spread = float(rng.choice([0.5, 3.0, 10.0]))
    z_teacher = rng.standard_normal(shape) * spread
    z_student = z_teacher + rng.standard_normal(shape) * spread * float(rng.choice([0.1, 1.0]))
    kwargs = {
        "temperature": float(rng.choice([0.5, 1.0, 3.0, 10.0])),
        "scale": str(rng.choice(["T2", "none"])),
        "form": str(rng.choice(["kl", "cross_entropy"])),
        "reduction": str(rng.choice(["mean", "batchmean", "sum", "none"])),
    }
    return Sample("random", (z_student, z_teacher), kwargs)


def _edges():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((3, 5))
    return [
        Sample(
            "known value: T = 2, z_s = [0, 0], z_t = [2, 0]",
            (np.array([[0.0, 0.0]]), np.array([[2.0, 0.0]])),
            {"temperature": 2.0},
            comment="4·KL(softmax([1, 0]) ‖ [½, ½]) = 0.4437763",
        ),
        Sample("equal logits, KL", (z, z.copy()), {"temperature": 3.0}, flags=("EQUAL_LOGITS",)),
        Sample(
            "equal logits, cross-entropy (Expert Merging's form)",
            (z, z.copy()),
            {"temperature": 3.0, "form": "cross_entropy"},
            flags=("EQUAL_LOGITS",),
        ),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4]]), np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 5.0]])),
            {"temperature": 1.0},
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the softmax is far from linear",
        ),
        Sample(
            "one class",
            (np.array([[2.0], [-3.0]]), np.array([[0.5], [7.0]])),
            {"temperature": 2.0, "form": "cross_entropy"},
            flags=("ONE_CLASS",),
        ),
        Sample(
            "tokens (2, 3, 4), batchmean",
            (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))),
            {"temperature": 3.0, "reduction": "batchmean"},
            flags=("TOKENS",),
        ),
        Sample(
            "tokens (2, 3, 4), per row",
            (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))),
            {"temperature": 0.5, "reduction": "none", "form": "cross_entropy"},
            flags=("TOKENS",),
        ),
        Sample(
            "one row of logits (K,)",
            (np.array([0.3, -1.0, 2.0]), np.array([1.0, 0.0, -0.5])),
            {"temperature": 1.0, "scale": "none"},
        ),
        Sample(
            "row shifted by +100",
            (z + 100.0, z[::-1].copy()),
            {"temperature": 3.0, "reduction": "sum"},
            flags=("SHIFT",),
            fd_step=1e-8,
        ),
    ]


def _errors():
    return [
        ErrorCase(
            "batchmean without a batch axis",
            (np.zeros(3), np.zeros(3)),
            {"temperature": 1.0, "reduction": "batchmean"},
            match="batch axis",
        ),
    ]


def _distillation_torch(torch, args, kwargs, cotangent):
    """T²·KL(teacher ‖ student) with PyTorch's kl_div over log-softmaxes (its batchmean over
    the rows is the op's mean); the other forms and reductions from the same log-softmaxes."""
    z_s, z_t = (torch.from_numpy(a).requires_grad_() for a in args)
    g = torch.from_numpy(np.asarray(cotangent))
    T, F = kwargs["temperature"], torch.nn.functional
    scale = T * T if kwargs.get("scale", "T2") == "T2" else 1.0
    form, reduction = kwargs.get("form", "kl"), kwargs.get("reduction", "mean")
    K = args[0].shape[-1]

    def step():
        z_s.grad = z_t.grad = None
        log_q = F.log_softmax(z_s.reshape(-1, K) / T, -1)
        log_p = F.log_softmax(z_t.reshape(-1, K) / T, -1)
        if form == "kl" and reduction == "mean":
            loss = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * scale
        else:
            if form == "kl":
                rows = F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1)
            else:
                rows = -(log_p.exp() * log_q).sum(-1)
            rows = (rows * scale).reshape(args[0].shape[:-1])
            loss = {
                "mean": rows.mean,
                "sum": rows.sum,
                "batchmean": lambda: rows.sum() / args[0].shape[0],
            }.get(reduction, lambda: rows)()
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "distillation_kl",
        dims={"B": (1, 4), "T": (1, 3), "K": (1, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "T": 1, "K": "cols"},
            torch=_distillation_torch,
            torch_label="F.kl_div of F.log_softmax (log_target), ×T², batchmean; autograd backward",
            # the student's and the teacher's softmax: one exp per logit of each and one log
            # per row of each (the backward reuses p, q and log p)
            transcendentals=lambda args, kwargs: 2 * (args[0].size + args[0][..., 0].size),
        ),
    )
)

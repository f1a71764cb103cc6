"""Conformance cases for `pskd_alpha_schedule`, `pskd_targets`, `pskd_loss` and `pskd_memory_update`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "OFF_BY_ONE": "official α_t = α_T·(epoch + 1)/end_epoch: epoch 0 is α_T/T (not 0), the last α_T",
    "FIRST_EPOCH": "epoch 0: the memory holds the one-hot labels, so t = Y whatever α_t is",
    "CROSS_ENTROPY": "α_t = 0 (or α_T = 0): t = Y and the loss is cross-entropy",
    "LARGE_LOGITS": "|z| up to 1e4: a log-softmax without the max shift overflows",
    "UNNORMALIZED_TARGETS": "targets not on the simplex: the VJP p·Σt − t (not p − t) is the exact one",
    "ONE_CLASS": "K = 1: t = [1], loss and gradient 0",
    "STATE": "only the rows idx of the memory change",
}
FLOAT64_ONLY = ("float64",)  # integer epochs in, float64 α_t out: no float32 variant


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- the α schedule ----------------------------------------------------------------------
def _schedule_random(rng, N):
    end_epoch = int(rng.choice([1, 5, 300]))
    epochs = rng.integers(0, end_epoch, size=N)
    kwargs = {"end_epoch": end_epoch, "alpha_T": float(rng.choice([0.0, 0.3, 0.8, 1.0]))}
    return Sample("random", (epochs,), kwargs, dtypes=FLOAT64_ONLY)


def _schedule_edges():
    return [
        Sample(
            "first and last epoch of 300",
            (np.array([0, 1, 149, 298, 299]),),
            {"end_epoch": 300},
            flags=("OFF_BY_ONE",),
            dtypes=FLOAT64_ONLY,
            comment="α = 0.8·[1, 2, 150, 299, 300]/300",
        ),
        Sample("one epoch", (np.array([0]),), {"end_epoch": 1, "alpha_T": 0.5}, dtypes=FLOAT64_ONLY),
        Sample(
            "α_T = 0: cross-entropy throughout",
            (np.array([0, 3]),),
            {"end_epoch": 4, "alpha_T": 0.0},
            flags=("CROSS_ENTROPY",),
            dtypes=FLOAT64_ONLY,
        ),
    ]


def _schedule_errors():
    return [
        ErrorCase("epoch = end_epoch", (np.array([0, 4]),), {"end_epoch": 4}, match=r"\[0, end_epoch\)"),
    ]


def _pskd_torch(torch, args, kwargs, cotangent):
    """PyTorch's cross-entropy with probability targets (the official PS-KD loss)."""
    z = torch.from_numpy(args[0]).requires_grad_()
    targets, g = torch.from_numpy(args[1]), torch.from_numpy(np.asarray(cotangent))
    reduction = kwargs.get("reduction", "mean")

    def step():
        z.grad = None
        loss = torch.nn.functional.cross_entropy(z, targets, reduction=reduction)
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "pskd_alpha_schedule",
        dims={"N": (1, 8)},
        random=_schedule_random,
        edges=_schedule_edges,
        errors=_schedule_errors,
        notes=NOTES,
    )
)


# -- targets -----------------------------------------------------------------------------
def _targets_random(rng, B, K, N):
    memory = _softmax(rng.standard_normal((N, K)) * 3)
    kwargs = {"alpha_t": float(rng.uniform(0, 1)), "first_epoch": bool(rng.integers(0, 4) == 0)}
    args = (rng.integers(0, K, size=B), rng.integers(0, N, size=B), memory)
    return Sample("random", args, kwargs)


def _targets_edges():
    memory = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
    y, idx = np.array([0, 2, 2]), np.array([1, 1, 0])
    return [
        Sample("known value", (y, idx, memory), {"alpha_t": 0.5}, comment="t_0 = [0.55, 0.1, 0.35]"),
        Sample(
            "first epoch: t = Y",
            (y, idx, memory),
            {"alpha_t": 0.8, "first_epoch": True},
            flags=("FIRST_EPOCH",),
        ),
        Sample("α_t = 0: t = Y", (y, idx, memory), {"alpha_t": 0.0}, flags=("CROSS_ENTROPY",)),
        Sample("α_t = 1: t = memory", (y, idx, memory), {"alpha_t": 1.0}),
    ]


register(
    OpCases(
        "pskd_targets",
        dims={"B": (1, 6), "K": (1, 7), "N": (1, 8)},
        random=_targets_random,
        edges=_targets_edges,
        notes=NOTES,
    )
)


# -- the loss ----------------------------------------------------------------------------
def _soft_targets(rng, B, K):
    alpha = float(rng.uniform(0, 1))
    one_hot = np.eye(K)[rng.integers(0, K, size=B)]
    return (1 - alpha) * one_hot + alpha * _softmax(rng.standard_normal((B, K)) * 3)


def _loss_random(rng, B, K):
    z = rng.standard_normal((B, K)) * float(rng.choice([0.5, 3.0, 30.0]))
    return Sample(
        "random", (z, _soft_targets(rng, B, K)), {"reduction": str(rng.choice(["mean", "sum", "none"]))}
    )


def _loss_edges():
    rng = np.random.default_rng(17)
    z = rng.standard_normal((4, 5)) * 2
    return [
        Sample(
            "known value: uniform prediction",
            (np.array([[0.0, 0.0]]), np.array([[0.8, 0.2]])),
            comment="log 2 for any targets on the simplex",
        ),
        Sample("one-hot targets: cross-entropy", (z, np.eye(5)[[0, 3, 4, 1]]), flags=("CROSS_ENTROPY",)),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]), np.array([[0.9, 0.05, 0.05], [0.0, 0.5, 0.5]])),
            {"reduction": "none"},
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the loss is far from linear",
        ),
        Sample(
            "targets not on the simplex",
            (z, rng.uniform(0, 1, size=(4, 5))),
            {"reduction": "sum"},
            flags=("UNNORMALIZED_TARGETS",),
        ),
        Sample("one class", (np.array([[2.5], [-1.0]]), np.ones((2, 1))), flags=("ONE_CLASS",)),
    ]


register(
    OpCases(
        "pskd_loss",
        dims={"B": (1, 6), "K": (1, 9)},
        random=_loss_random,
        edges=_loss_edges,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "K": "cols"},
            torch=_pskd_torch,
            torch_label="F.cross_entropy with probability targets; autograd backward",
            # the softmax: one exp per logit and one log per row (the backward reuses p)
            transcendentals=lambda args, kwargs: args[0].size + args[0].shape[0],
        ),
    )
)


# -- the memory update ---------------------------------------------------------------------
def _memory_random(rng, B, K, N):
    memory = _softmax(rng.standard_normal((N, K)))
    idx = rng.choice(N, size=min(B, N), replace=False)
    z = rng.standard_normal((idx.shape[0], K)) * float(rng.choice([0.5, 3.0, 30.0]))
    return Sample("random", (memory, idx, z))


def _memory_edges():
    return [
        Sample(
            "rows outside idx unchanged",
            (np.full((4, 3), 1 / 3), np.array([2, 0]), np.array([[0.0, 0.0, np.log(2.0)], [1e4, -1e4, 0.0]])),
            flags=("STATE", "LARGE_LOGITS"),
            comment="row 2 ← [0.25, 0.25, 0.5], row 0 ← [1, 0, 0]; rows 1 and 3 stay 1/3",
        ),
    ]


def _memory_errors():
    memory = np.full((3, 2), 0.5)
    return [
        ErrorCase(
            "repeated index", (memory, np.array([1, 1]), np.zeros((2, 2))), match="distinct sample indices"
        ),
    ]


register(
    OpCases(
        "pskd_memory_update",
        dims={"B": (1, 6), "K": (1, 7), "N": (1, 8)},
        random=_memory_random,
        edges=_memory_edges,
        errors=_memory_errors,
        notes=NOTES,
    )
)

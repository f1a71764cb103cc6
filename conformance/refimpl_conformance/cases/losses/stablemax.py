"""Conformance cases for `stablemax` and `stablemax_cross_entropy`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "LARGE_LOGITS": "|z| up to 1e6: an exp-based or float32-unstable s() overflows here",
    "KINK": "z = 0 exactly: s and s' are continuous there (both 1)",
    "LOGIT_ONE_FLOAT32": "z = 1.0 in float32: the official 1/(1 - z + 1e-30) branch gives a NaN gradient",
    "ONE_CLASS": "K = 1: the loss is exactly 0 and so is its gradient",
    "SHIFT": "a row shifted by a constant changes StableMax (catches max-subtraction)",
}


def _logits(rng, B, K):
    return rng.standard_normal((B, K)) * rng.choice([0.5, 3.0, 30.0])


def _stablemax_random(rng, B, K):
    return Sample("random", (_logits(rng, B, K),))


def _stablemax_edges():
    return [
        Sample(
            "logits in {-1, 0, 1}",
            (np.array([[-1.0, 0.0, 1.0], [1.0, 1.0, -1.0]]),),
            flags=("KINK",),
        ),
        Sample(
            "logits ±1e6",
            (np.array([[1e6, -1e6, 0.5], [-1e6, -1e6, 2.0]]),),
            flags=("LARGE_LOGITS",),
        ),
        Sample("one class", (np.array([[0.3], [-4.0]]),), flags=("ONE_CLASS",)),
        Sample("batch dims (2, 3, K)", (np.linspace(-3, 5, 24).reshape(2, 3, 4),)),
        Sample(
            "shifted row",
            (np.array([[0.2, 1.5, -0.7, 3.0], [10.2, 11.5, 9.3, 13.0]]),),
            flags=("SHIFT",),
            comment="the second row is the first plus 10; the probabilities must differ",
        ),
    ]


def _torch_s(torch, z):
    """s(z) = z + 1 (z ≥ 0), 1/(1 − z) (z < 0), each branch on its own half-line (no inf in the other)."""
    return torch.where(z >= 0, z + 1, 1 / (1 - z.clamp(max=0)))


def _stablemax_torch(torch, args, kwargs, cotangent):
    """s(z)/Σ s(z) with torch.where branches; autograd backward."""
    z = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(cotangent)

    def step():
        z.grad = None
        s = _torch_s(torch, z)
        p = s / s.sum(-1, keepdim=True)
        p.backward(g)
        return p

    return step


def _stablemax_ce_torch(torch, args, kwargs, cotangent):
    """log Σ s(z) − log s(z_y) with torch.where branches, mean; autograd backward."""
    z = torch.from_numpy(args[0]).requires_grad_()
    y = torch.from_numpy(args[1]).long()
    g = torch.from_numpy(cotangent)
    reduction, upcast = kwargs.get("reduction", "mean"), kwargs.get("compute_in_float64", False)

    def step():
        z.grad = None
        x = z.double() if upcast else z
        s = _torch_s(torch, x)
        per_row = torch.log(s.sum(-1)) - torch.log(s.gather(1, y[:, None])[:, 0])
        loss = per_row.mean() if reduction == "mean" else per_row.sum() if reduction == "sum" else per_row
        loss = loss.to(z.dtype)
        loss.backward(g)
        return loss

    return step


# the catalog's published values (losses.md, StableMax): z = [1, −2, 0.5], y = 2
CATALOG_Z, CATALOG_Y = np.array([[1.0, -2.0, 0.5]]), np.array([2])


def _stablemax_known():
    return [
        Known(
            "catalog: z = [1, -2, 0.5]",
            (CATALOG_Z,),
            values={"p": [[0.5217391, 0.0869565, 0.3913043]]},
            source="the catalog (s(1) = 2, s(−2) = 1/3, s(0.5) = 1.5)",
            atol=1e-7,  # written to 7 decimals
        )
    ]


def _ce_known():
    return [
        Known(
            "catalog: z = [1, -2, 0.5], y = 2",
            (CATALOG_Z, CATALOG_Y),
            values={"loss": 0.9382696, "cotangent of 'z'": [[0.2608696, 0.0289855, -0.4057971]]},
            source="the catalog",
            atol=1e-7,  # written to 7 decimals
        )
    ]


register(
    OpCases(
        "stablemax",
        dims={"B": (1, 6), "K": (1, 9)},
        random=_stablemax_random,
        edges=_stablemax_edges,
        known=_stablemax_known,
        notes=NOTES,
        # s(z) and the backward's 1/(1 + |z|) are divisions: no exp-class work to declare
        bench=Bench(
            sizes={"B": "rows", "K": "cols"},
            torch=_stablemax_torch,
            torch_label="torch.where branches of s, s/Σs; autograd backward",
        ),
    )
)


def _ce_random(rng, B, K):
    reduction = str(rng.choice(["mean", "sum", "none"]))
    z, y = _logits(rng, B, K), rng.integers(0, K, size=B)
    return Sample("random", (z, y), {"reduction": reduction, "compute_in_float64": bool(rng.integers(0, 2))})


def _ce_edges():
    known = np.array([[1.0, -2.0, 0.5]])
    return [
        Sample(
            "published example",
            (known, np.array([2])),
            comment="loss 0.9382696, gradient [0.2608696, 0.0289855, -0.4057971]",
        ),
        Sample(
            "float32 logit exactly 1.0",
            (known, np.array([2])),
            {"reduction": "sum"},
            flags=("LOGIT_ONE_FLOAT32",),
        ),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 3.0], [-1e4, 1e4, 1e4]]), np.array([1, 0])),
            flags=("LARGE_LOGITS",),
        ),
        Sample(
            "logits ±1e6, per row",
            (np.array([[1e6, -1e6, 0.0], [-1e6, 0.0, 1e6]]), np.array([0, 1])),
            {"reduction": "none"},
            flags=("LARGE_LOGITS",),
        ),
        Sample("kink at 0", (np.array([[0.0, 0.0, 1.0, -1.0]]), np.array([0])), flags=("KINK",)),
        Sample("one class", (np.array([[2.5], [-1.0]]), np.array([0, 0])), flags=("ONE_CLASS",)),
        Sample(
            "official float64 upcast",
            (np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -0.5]]), np.array([2, 0])),
            {"compute_in_float64": True},
        ),
    ]


register(
    OpCases(
        "stablemax_cross_entropy",
        dims={"B": (1, 6), "K": (1, 9)},
        random=_ce_random,
        edges=_ce_edges,
        known=_ce_known,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "K": "cols"},
            torch=_stablemax_ce_torch,
            torch_label="torch.where branches of s, log Σs − log s_y, mean; autograd backward",
            # two logs per row (log Σ_j s_j and log s_y); s itself is divisions only
            transcendentals=lambda args, kwargs: 2 * args[0].shape[0],
        ),
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("stablemax-two-branch-float32-nan", outputs=("loss",))
def _official_stablemax_cross_entropy(z, y, *, reduction, compute_in_float64, dtype):
    """The official two-branch s, evaluated in the input dtype (its float32 path): the forward
    is right (the NaN is in the backward, which the example records)."""
    z = z.astype(dtype)
    with np.errstate(divide="ignore", over="ignore"):
        s = np.where(z < 0, 1 / (1 - z + z.dtype.type(1e-30)), z + 1)
    log_p = np.log(s / s.sum(-1, keepdims=True))
    per_row = -log_p[np.arange(z.shape[0]), y]
    return {"loss": {"mean": per_row.mean(), "sum": per_row.sum()}.get(reduction, per_row)}

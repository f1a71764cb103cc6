"""Conformance cases for `pinball_loss`, `weighted_interval_score` and `quantile_aggregation`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "TIES": "y = q exactly: the reference returns the midpoint ½ − τ of the subdifferential",
    "EXTREME_LEVELS": "τ near 0 and 1: the two slopes differ by three orders of magnitude",
    "LARGE_VALUES": "targets and quantiles near 1e6: the loss is linear, nothing may overflow",
    "ONE_LEVEL": "L = 1 (pinball) or K = 0 (WIS = |y − m|)",
    "UNSORTED": "crossing quantiles: nothing is sorted or monotonized",
    "ONE_MEMBER": "J = 1: the weight is 1 and its logit gets no gradient",
    "LARGE_LOGITS": "θ ±1e4: a softmax without the max shift overflows",
}


def _levels(rng, count):
    # well separated, so float32 rounding keeps them strictly increasing (a finer grid only
    # for the benchmark's thousand levels)
    grid = max(50, 2 * count)
    return np.sort(rng.choice(np.arange(1, grid), size=count, replace=False)) / grid


def _pinball_random(rng, N, L):  # noqa: N803
    y = rng.standard_normal(N) * 2
    q = y[:, None] + rng.standard_normal((N, L)) * float(rng.choice([0.1, 1.0, 5.0]))
    reduction = str(rng.choice(["mean", "sum", "none"]))
    return Sample("random", (y, q, _levels(rng, L)), {"reduction": reduction})


def _pinball_edges():
    return [
        Sample(
            "known value",
            (np.array([1.0]), np.array([[0.5, 1.5]]), np.array([0.1, 0.9])),
            comment="ρ = [0.05, 0.05], mean 0.05; gradient [−0.05, 0.05]",
        ),
        Sample(
            "ties y = q",
            (
                np.array([1.0, -2.0]),
                np.array([[1.0, 0.0, 1.0], [-2.0, -2.0, 3.0]]),
                np.array([0.1, 0.5, 0.8]),
            ),
            {"reduction": "sum"},
            flags=("TIES",),
            fd=False,
            comment="a kink: finite differences see the mean of the one-sided slopes, which is ½ − τ here",
        ),
        Sample(
            "extreme levels",
            (np.array([0.0, 1.0]), np.array([[0.3, -0.3], [2.0, 0.5]]), np.array([0.001, 0.999])),
            {"reduction": "none"},
            flags=("EXTREME_LEVELS",),
        ),
        Sample(
            "values near 1e6",
            (np.array([1e6, -1e6]), np.array([[1e6 + 3.0], [-1e6 + 8.0]]), np.array([0.3])),
            flags=("LARGE_VALUES", "ONE_LEVEL"),
        ),
    ]


def _pinball_errors():
    y, q = np.zeros(2), np.zeros((2, 3))
    return [
        ErrorCase("level 0", (y, q, np.array([0.0, 0.5, 0.9])), match=r"strictly inside \(0, 1\)"),
        ErrorCase("level 1", (y, q, np.array([0.1, 0.5, 1.0])), match=r"strictly inside \(0, 1\)"),
    ]


def _reduce(values, reduction):
    return {"mean": values.mean, "sum": values.sum}.get(reduction, lambda: values)()


def _pinball_torch(torch, args, kwargs, cotangent):
    """max(τu, (τ − 1)u) of u = y − q with torch.maximum; autograd backward."""
    y, tau = torch.from_numpy(args[0]), torch.from_numpy(args[2])
    q = torch.from_numpy(args[1]).requires_grad_()
    g, reduction = torch.from_numpy(np.asarray(cotangent)), kwargs.get("reduction", "mean")

    def step():
        q.grad = None
        u = y[:, None] - q
        loss = _reduce(torch.maximum(tau * u, (tau - 1) * u), reduction)
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "pinball_loss",
        dims={"N": (1, 6), "L": (1, 5)},
        random=_pinball_random,
        edges=_pinball_edges,
        errors=_pinball_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"N": "rows", "L": "cols"},
            torch=_pinball_torch,
            torch_label="torch.maximum(τ·u, (τ − 1)·u), u = y − q, mean; autograd backward",
        ),
    )
)


def _symmetric_levels(rng, k):
    grid = max(50, 4 * k)  # 50ths; finer only for the benchmark's thousand intervals
    lower = np.sort(rng.choice(np.arange(1, grid // 2 - 1), size=k, replace=False)) / grid  # α/2 < 0.5
    return np.concatenate([lower, [0.5], (1 - lower)[::-1]])


def _wis_random(rng, N, K):  # noqa: N803
    tau = _symmetric_levels(rng, K)
    y = rng.standard_normal(N) * 2
    q = np.sort(rng.standard_normal((N, 2 * K + 1)) * 2, axis=1)
    if rng.integers(0, 4) == 0:
        q = q[:, rng.permutation(2 * K + 1)]  # crossing quantiles are allowed
    reduction = str(rng.choice(["mean", "sum", "none"]))
    return Sample("random", (y, q, tau), {"reduction": reduction})


def _wis_edges():
    tau = np.array([0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975])
    return [
        Sample(
            "known value",
            (np.array([3.0]), np.array([[1.0, 2.0, 4.0]]), np.array([0.1, 0.5, 0.9])),
            comment="(1/1.5)·[½·1 + 0.1·3] = 0.5333…",
        ),
        Sample(
            "median only (K = 0)",
            (np.array([1.0, -1.0]), np.array([[0.25], [2.0]]), np.array([0.5])),
            {"reduction": "none"},
            flags=("ONE_LEVEL",),
        ),
        Sample(
            "ties at the median and both ends",
            (np.array([1.0, 0.0]), np.array([[0.0, 1.0, 2.0], [0.0, -1.0, 0.0]]), np.array([0.2, 0.5, 0.8])),
            {"reduction": "sum"},
            flags=("TIES", "UNSORTED"),
            fd=False,
            comment="kinks at y = l, y = m and y = u",
        ),
        Sample(
            "seven levels (the epidemic-forecast set, K = 3)",
            (np.array([0.3, 5.0]), np.linspace(-3, 3, 14).reshape(2, 7), tau),
        ),
        Sample(
            "values near 1e6",
            (np.array([1e6]), np.array([[1e6 - 7.0, 1e6 + 1.0, 1e6 + 2.0]]), np.array([0.05, 0.5, 0.95])),
            flags=("LARGE_VALUES",),
            fd_step=1e-8,
            comment="the default relative step 1e-6·1e6 = 1 would cross the kinks at distance 1 and 2",
        ),
    ]


def _wis_errors():
    y, q = np.zeros(2), np.zeros((2, 3))
    return [
        ErrorCase("even number of levels", (y, np.zeros((2, 2)), np.array([0.25, 0.75])), match="odd number"),
        ErrorCase("median missing", (y, q, np.array([0.1, 0.4, 0.9])), match="median level"),
        ErrorCase(
            "not symmetric", (y, np.zeros((2, 5)), np.array([0.1, 0.2, 0.5, 0.7, 0.9])), match="symmetric"
        ),
        ErrorCase("not increasing", (y, q, np.array([0.9, 0.5, 0.1])), match="strictly increasing"),
        ErrorCase("level 0", (y, q, np.array([0.0, 0.5, 1.0])), match=r"strictly inside \(0, 1\)"),
    ]


def _wis_torch(torch, args, kwargs, cotangent):
    """The interval scores of the K central intervals and |y − m|, with torch.relu and abs."""
    y, tau = torch.from_numpy(args[0])[:, None], torch.from_numpy(args[2])
    q = torch.from_numpy(args[1]).requires_grad_()
    g, reduction = torch.from_numpy(np.asarray(cotangent)), kwargs.get("reduction", "mean")
    k = args[1].shape[1] // 2
    alphas = 2 * tau[:k]

    def step():
        q.grad = None
        lower, median, upper = q[:, :k], q[:, k], q[:, k + 1 :].flip(1)
        interval = (upper - lower) + (2 / alphas) * (torch.relu(lower - y) + torch.relu(y - upper))
        wis = (0.5 * (y[:, 0] - median).abs() + (alphas / 2 * interval).sum(-1)) / (k + 0.5)
        loss = _reduce(wis, reduction)
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "weighted_interval_score",
        dims={"N": (1, 6), "K": (0, 3)},
        random=_wis_random,
        edges=_wis_edges,
        errors=_wis_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"N": "rows", "K": 511},
            torch=_wis_torch,
            torch_label="(u − l) + (2/α)(relu(l − y) + relu(y − u)), ½|y − m|, weighted; autograd backward",
        ),
    )
)


def _aggregation_random(rng, N, J, L):  # noqa: N803
    members = np.sort(rng.standard_normal((N, J, L)), axis=2)
    shape = (J,) if rng.integers(0, 2) else (J, L)
    theta = rng.standard_normal(shape) * float(rng.choice([0.5, 3.0]))
    return Sample("random", (members, theta))


def _aggregation_edges():
    rng = np.random.default_rng(5)
    members = rng.standard_normal((3, 4, 2))
    return [
        Sample(
            "known value: equal weights",
            (np.array([[[1.0, 2.0], [3.0, 6.0]]]), np.array([0.0, 0.0])),
            comment="q̂ = [2, 4] (the member average)",
        ),
        Sample("one member", (members[:, :1, :], np.array([[0.7, -2.0]])), flags=("ONE_MEMBER",)),
        Sample(
            "logits ±1e4, per level",
            (members, np.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0], [5.0, 1e4]])),
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="saturated softmax; the relative FD step 1e-6·|θ| = 1e-2 crosses the tie in column 2",
        ),
        Sample("global logits", (members, np.array([0.3, -1.0, 2.0, 0.0]))),
    ]


def _aggregation_errors():
    members = np.zeros((2, 3, 4))
    return [
        ErrorCase("logits of the wrong length", (members, np.zeros(4)), match=r"shape \(J,\)"),
        ErrorCase("logits transposed", (members, np.zeros((4, 3))), match=r"\(J, L\) = \(3, 4\)"),
    ]


def _aggregation_torch(torch, args, kwargs, cotangent):
    """torch.softmax of θ over the members, then torch.einsum over j; autograd backward."""
    members, theta = (torch.from_numpy(a).requires_grad_() for a in args)
    g = torch.from_numpy(np.asarray(cotangent))
    spec = "njl,j->nl" if theta.ndim == 1 else "njl,jl->nl"

    def step():
        members.grad = theta.grad = None
        quantiles = torch.einsum(spec, members, torch.softmax(theta, dim=0))
        quantiles.backward(g)
        return quantiles

    return step


register(
    OpCases(
        "quantile_aggregation",
        dims={"N": (1, 5), "J": (1, 4), "L": (1, 4)},
        random=_aggregation_random,
        edges=_aggregation_edges,
        errors=_aggregation_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"N": "rows", "J": 4, "L": "cols"},
            torch=_aggregation_torch,
            torch_label="torch.softmax(θ, 0), torch.einsum over the members; autograd backward",
        ),
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("scoringrules-wis-median-term", outputs=("loss",))
def _scoringrules_wis(y, q, tau, *, reduction, dtype):
    """scoringrules 0.10 ``weighted_interval_score``: w_median·median, not w_median·|y − median|."""
    levels = q.shape[1]
    k = levels // 2
    alphas = 2 * tau[:k]
    lower, upper, median = q[:, :k], q[:, levels - 1 - np.arange(k)], q[:, k]
    interval = (
        (upper - lower)
        + (2 / alphas) * np.maximum(lower - y[:, None], 0)
        + (2 / alphas) * np.maximum(y[:, None] - upper, 0)
    )
    per_sample = (0.5 * median + (alphas / 2 * interval).sum(-1)) / (k + 0.5)
    return {"loss": {"mean": per_sample.mean(), "sum": per_sample.sum()}.get(reduction, per_sample)}

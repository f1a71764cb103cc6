"""Conformance cases for the PFN bar distribution: `bar_distribution_nll`,
`full_support_bar_distribution_nll`, `bar_distribution_mean` and `bar_borders_from_quantiles`."""

from __future__ import annotations

import math

import numpy as np

from refimpl.losses.bar_distribution import HALF_NORMAL_MEDIAN, LEFT_TAIL_CLAMP

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "ON_BORDER": "y exactly on an interior border: buckets are right-closed, y = b_k is in bucket k − 1",
    "LOWEST_BORDER": "y = b_0 is in bucket 0 (searchsorted gives −1 there)",
    "HIGHEST_BORDER": "y = b_M is in bucket M − 1",
    "ONE_BUCKET": "M = 1: no interior; the loss is log w_0 and the logit gradient 0",
    "LARGE_LOGITS": "|z| up to 1e4: a softmax without the max shift overflows",
    "LEFT_TAIL_CLAMP": "y = b_1 in the left tail: u = b_1 − y = 0 is clamped at 1e-8, gradient in y is 0",
    "FAR_TAILS": "targets far outside [b_0, b_M] join the outer buckets with half-normal densities",
    "TWO_BUCKETS": "M = 2: both buckets are tails, no uniform bucket",
    "UNEQUAL_WIDTHS": "outer buckets of different widths: the two tail scales differ",
    "DROPPED_REMAINDER": "the last n mod M values of the flattened, unsorted ys are dropped (official)",
    "ONE_VALUE_PER_BUCKET": "n = M: each interior border is the midpoint of two consecutive values",
}

ON_A_BORDER = "y on a border: ℓ jumps there, so differences in y straddle a discontinuity"


def _borders(rng, M):  # noqa: N803
    widths = rng.uniform(0.2, 2.0, size=M) * float(rng.choice([0.1, 1.0, 10.0]))
    start = float(rng.normal() * 5)
    return start + np.concatenate([[0.0], np.cumsum(widths)])


def _lead(rng, B):  # noqa: N803
    return (B,) if rng.integers(0, 2) else (B, 2)


def _logits(rng, lead, M):  # noqa: N803
    return rng.standard_normal((*lead, M)) * float(rng.choice([0.5, 3.0, 10.0]))


# -- PyTorch baselines ------------------------------------------------------------------------


def _torch_bucket(torch, borders, y):
    """searchsorted_left(b, y) − 1, with y = b_0 in bucket 0 (right-closed buckets)."""
    k = torch.searchsorted(borders, y.detach(), side="left") - 1
    return torch.where(y.detach() == borders[0], 0, k)


def _torch_reduce(per_element, reduction):
    if reduction == "mean":
        return per_element.mean()
    return per_element.sum() if reduction == "sum" else per_element


def _nll_torch(torch, args, kwargs, cotangent):
    """−log_softmax(z)_k + log w_k: F.cross_entropy at the bucket of y, plus the log width."""
    F = torch.nn.functional
    z = torch.from_numpy(args[0]).requires_grad_()
    borders, y = torch.from_numpy(args[1]), torch.from_numpy(args[2])
    g = torch.from_numpy(cotangent)
    reduction = kwargs.get("reduction", "mean")
    M = z.shape[-1]  # noqa: N806

    def step():
        z.grad = None
        k = _torch_bucket(torch, borders, y)
        log_widths = torch.log(borders[1:] - borders[:-1])
        ce = F.cross_entropy(z.reshape(-1, M), k.reshape(-1), reduction="none").reshape(y.shape)
        loss = _torch_reduce(ce + log_widths[k], reduction)
        loss.backward(g)
        return loss

    return step


def _full_support_torch(torch, args, kwargs, cotangent):
    """F.cross_entropy at the clipped bucket, minus the uniform or half-normal log-density."""
    F = torch.nn.functional
    z = torch.from_numpy(args[0]).requires_grad_()
    borders = torch.from_numpy(args[1])
    y = torch.from_numpy(args[2]).requires_grad_()
    g = torch.from_numpy(cotangent)
    reduction = kwargs.get("reduction", "mean")
    M = z.shape[-1]  # noqa: N806
    half_log_2_over_pi = 0.5 * math.log(2 / math.pi)

    def step():
        z.grad = y.grad = None
        k = _torch_bucket(torch, borders, y).clamp(0, M - 1)
        ce = F.cross_entropy(z.reshape(-1, M), k.reshape(-1), reduction="none").reshape(y.shape)
        s_left = (borders[1] - borders[0]) / HALF_NORMAL_MEDIAN
        s_right = (borders[-1] - borders[-2]) / HALF_NORMAL_MEDIAN
        left, right = k == 0, k == M - 1
        gap = borders[1] - y
        u_left = torch.where(gap > LEFT_TAIL_CLAMP, gap, torch.full_like(gap, LEFT_TAIL_CLAMP))
        u_right = torch.where(right, y - borders[-2], torch.zeros_like(y))
        log_hn_left = half_log_2_over_pi - torch.log(s_left) - u_left * u_left / (2 * s_left * s_left)
        log_hn_right = half_log_2_over_pi - torch.log(s_right) - u_right * u_right / (2 * s_right * s_right)
        log_widths = torch.log(borders[1:] - borders[:-1])
        log_density = torch.where(left, log_hn_left, torch.where(right, log_hn_right, -log_widths[k]))
        loss = _torch_reduce(ce - log_density, reduction)
        loss.backward(g)
        return loss

    return step


def _mean_torch(torch, args, kwargs, cotangent):
    """softmax(z) @ m with the bucket means m (half-normal tail means when full_support)."""
    z = torch.from_numpy(args[0]).requires_grad_()
    borders = torch.from_numpy(args[1])
    g = torch.from_numpy(cotangent)
    full_support = kwargs.get("full_support", True)
    sqrt_2_over_pi = math.sqrt(2 / math.pi)

    def step():
        z.grad = None
        m = (borders[:-1] + borders[1:]) / 2
        if full_support:
            s_left = (borders[1] - borders[0]) / HALF_NORMAL_MEDIAN
            s_right = (borders[-1] - borders[-2]) / HALF_NORMAL_MEDIAN
            m = torch.cat(
                [
                    (borders[1] - s_left * sqrt_2_over_pi)[None],
                    m[1:-1],
                    (borders[-2] + s_right * sqrt_2_over_pi)[None],
                ]
            )
        mean = torch.softmax(z, -1) @ m
        mean.backward(g)
        return mean

    return step


# -- bar_distribution_nll ---------------------------------------------------------------
def _nll_random(rng, B, M):  # noqa: N803
    lead = _lead(rng, B)
    borders = _borders(rng, M)
    y = rng.uniform(borders[0], borders[-1], size=lead)
    reduction = str(rng.choice(["mean", "sum", "none"]))
    return Sample("random", (_logits(rng, lead, M), borders, y), {"reduction": reduction})


def _nll_edges():
    b = np.array([-1.0, 0.0, 0.5, 2.0])
    z = np.array([[0.3, -1.2, 2.0], [1.0, 0.0, -0.5], [0.1, 0.2, 0.3]])
    return [
        Sample(
            "known value: p = [1/4, 3/4], b = [0, 1, 3], y = 2",
            (np.log(np.array([0.25, 0.75])), np.array([0.0, 1.0, 3.0]), np.array(2.0)),
            comment="−log(0.75/2) = 0.9808293",
        ),
        Sample(
            "y on interior borders",
            (z, b, np.array([0.0, 0.5, 0.25])),
            {"reduction": "none"},
            flags=("ON_BORDER",),
            comment="buckets [0, 1, 1]",
        ),
        Sample(
            "y on the outer borders",
            (z[:2], b, np.array([-1.0, 2.0])),
            {"reduction": "sum"},
            flags=("LOWEST_BORDER", "HIGHEST_BORDER"),
            comment="buckets [0, 2]",
        ),
        Sample(
            "one bucket",
            (np.array([[0.7], [-3.0]]), np.array([1.0, 4.0]), np.array([2.0, 4.0])),
            {"reduction": "none"},
            flags=("ONE_BUCKET",),
            comment="ℓ = log 3 for both rows",
        ),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]), b, np.array([1.0, -0.5])),
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the softmax is far from linear",
        ),
        Sample(
            "batch dims (2, 3, M)",
            (np.linspace(-3, 4, 18).reshape(2, 3, 3), b, np.array([[-0.9, 0.1, 1.9], [0.3, 0.6, -0.2]])),
            {"reduction": "none"},
        ),
        Sample(
            "narrow buckets far from 0",
            (z, 1000.0 + np.array([0.0, 0.01, 0.03, 0.04]), 1000.0 + np.array([0.005, 0.02, 0.035])),
            comment="log w ≈ −4.6 and −3.9; float32 holds 1000.005 to ~6e-5, inside each bucket",
        ),
    ]


def _nll_errors():
    z, b = np.zeros((2, 3)), np.array([0.0, 1.0, 2.0, 3.0])
    return [
        ErrorCase("target below b_0", (z, b, np.array([-0.5, 1.0])), match=r"'y'.*support"),
        ErrorCase("target above b_M", (z, b, np.array([0.5, 3.5])), match=r"'y'.*support"),
        ErrorCase(
            "repeated border", (z, np.array([0.0, 1.0, 1.0, 3.0]), np.array([0.5, 2.0])), match="zero-width"
        ),
        ErrorCase(
            "decreasing borders",
            (z, np.array([0.0, 2.0, 1.0, 3.0]), np.array([0.5, 2.0])),
            match="increasing",
        ),
        ErrorCase(
            "borders for another M", (z, np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5])), match=r"M \+ 1"
        ),
        ErrorCase(
            "infinite border", (z, np.array([-np.inf, 1.0, 2.0, 3.0]), np.array([0.5, 1.5])), match="finite"
        ),
    ]


register(
    OpCases(
        "bar_distribution_nll",
        dims={"B": (1, 5), "M": (1, 8)},
        random=_nll_random,
        edges=_nll_edges,
        errors=_nll_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "M": "cols"},
            torch=_nll_torch,
            torch_label="torch.searchsorted, F.cross_entropy + log width, mean; autograd backward",
            # one exp per logit (the softmax; its backward reuses it), one log per row (the LSE),
            # one log per bucket width
            transcendentals=lambda args, kwargs: args[0].size + args[2].size + args[0].shape[-1],
        ),
    )
)


# -- full_support_bar_distribution_nll ------------------------------------------------------
def _full_random(rng, B, M):  # noqa: N803
    lead = _lead(rng, B)
    borders = _borders(rng, M)
    span = borders[-1] - borders[0]
    y = rng.uniform(borders[0] - span, borders[-1] + span, size=lead)
    # keep y 1e-4·max(1, |y|) (100 FD steps) from the interior borders, where ℓ jumps
    margin = 1e-4 * np.maximum(1.0, np.abs(y))
    near = np.abs(y[..., None] - borders[1:-1]).min(axis=-1, initial=np.inf) < margin
    y = np.where(near, y + 2 * margin, y)
    reduction = str(rng.choice(["mean", "sum", "none"]))
    return Sample("random", (_logits(rng, lead, M), borders, y), {"reduction": reduction})


def _full_edges():
    b = np.array([-1.0, 0.0, 1.0, 3.0])
    z = np.array([[0.3, -1.2, 2.0], [1.0, 0.0, -0.5], [0.1, 0.2, 0.3]])
    return [
        Sample(
            "known value: uniform logits, interior target",
            (np.zeros(3), np.array([-1.0, 0.0, 1.0, 2.0]), np.array(0.5)),
            comment="log 3",
        ),
        Sample(
            "targets in both tails and inside",
            (z, b, np.array([-0.4, 2.5, 0.5])),
            {"reduction": "none"},
            flags=("UNEQUAL_WIDTHS",),
            comment="left tail s_0 = 1/q, right tail s_2 = 2/q, interior",
        ),
        Sample(
            "targets far outside the borders",
            (z[:2], b, np.array([-101.0, 203.0])),
            {"reduction": "sum"},
            flags=("FAR_TAILS",),
        ),
        Sample(
            "y = b_1: the left-tail clamp",
            (z[:1], b, np.array([0.0])),
            flags=("LEFT_TAIL_CLAMP",),
            fd=False,
            comment=ON_A_BORDER,
        ),
        Sample(
            "y on b_0, b_2 and b_M",
            (z, b, np.array([-1.0, 1.0, 3.0])),
            {"reduction": "none"},
            flags=("ON_BORDER", "LOWEST_BORDER", "HIGHEST_BORDER"),
            fd=False,
            comment=ON_A_BORDER + "; buckets [0 (left tail), 1 (interior), 2 (right tail)]",
        ),
        Sample(
            "two buckets",
            (np.array([[0.4, -0.4], [2.0, 1.0]]), np.array([0.0, 1.0, 1.5]), np.array([0.2, 1.7])),
            {"reduction": "none"},
            flags=("TWO_BUCKETS",),
        ),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]), b, np.array([-2.0, 5.0])),
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the softmax is far from linear",
        ),
        Sample(
            "batch dims (2, 3, M)",
            (np.linspace(-3, 4, 18).reshape(2, 3, 3), b, np.array([[-1.9, 0.1, 1.9], [0.3, 4.6, -0.2]])),
            {"reduction": "none"},
        ),
    ]


def _full_errors():
    z = np.zeros((2, 3))
    return [
        ErrorCase(
            "one bucket", (np.zeros((2, 1)), np.array([0.0, 1.0]), np.array([0.5, 0.5])), match="at least 2"
        ),
        ErrorCase(
            "repeated border", (z, np.array([0.0, 1.0, 1.0, 3.0]), np.array([0.5, 2.0])), match="zero-width"
        ),
        ErrorCase(
            "borders for another M", (z, np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5])), match=r"M \+ 1"
        ),
    ]


register(
    OpCases(
        "full_support_bar_distribution_nll",
        dims={"B": (1, 5), "M": (2, 8)},
        random=_full_random,
        edges=_full_edges,
        errors=_full_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "M": "cols"},
            torch=_full_support_torch,
            torch_label="torch.searchsorted, F.cross_entropy − uniform/half-normal log-density, mean; "
            "autograd backward",
            # one exp per logit (the softmax; its backward reuses it), one log per row (the LSE),
            # one log per bucket width and per tail scale (M + 2)
            transcendentals=lambda args, kwargs: args[0].size + args[2].size + args[0].shape[-1] + 2,
        ),
    )
)


# -- bar_distribution_mean -----------------------------------------------------------------
def _mean_random(rng, B, M):  # noqa: N803
    lead = _lead(rng, B)
    full_support = bool(M >= 2 and rng.integers(0, 2))
    return Sample("random", (_logits(rng, lead, M), _borders(rng, M)), {"full_support": full_support})


def _mean_edges():
    b = np.array([-1.0, 0.0, 1.0, 3.0])
    return [
        Sample(
            "known value: midpoints",
            (np.zeros(2), np.array([0.0, 1.0, 3.0])),
            {"full_support": False},
            comment="(0.5 + 2)/2 = 1.25",
        ),
        Sample(
            "half-normal tail means",
            (np.array([[0.0, 0.0, 0.0], [5.0, -5.0, 0.0]]), b),
            flags=("UNEQUAL_WIDTHS",),
            comment="m = [0 − √(2/π)/q, 0.5, 1 + 2√(2/π)/q]",
        ),
        Sample(
            "two buckets, both tails",
            (np.array([[0.3, -0.3]]), np.array([0.0, 1.0, 1.5])),
            flags=("TWO_BUCKETS",),
        ),
        Sample(
            "one bucket, midpoint",
            (np.array([[0.7], [-3.0]]), np.array([1.0, 4.0])),
            {"full_support": False},
            flags=("ONE_BUCKET",),
            comment="2.5 for both rows, gradient 0",
        ),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]), b),
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the softmax is far from linear",
        ),
    ]


def _mean_errors():
    z = np.zeros((2, 3))
    return [
        ErrorCase(
            "full support with one bucket", (np.zeros((2, 1)), np.array([0.0, 1.0])), match="at least 2"
        ),
        ErrorCase("decreasing borders", (z, np.array([0.0, 2.0, 1.0, 3.0])), match="increasing"),
        ErrorCase("borders for another M", (z, np.array([0.0, 1.0, 2.0, 3.0, 4.0])), match=r"M \+ 1"),
    ]


register(
    OpCases(
        "bar_distribution_mean",
        dims={"B": (1, 5), "M": (1, 8)},
        random=_mean_random,
        edges=_mean_edges,
        errors=_mean_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "M": "cols"},
            torch=_mean_torch,
            torch_label="torch.softmax @ bucket means (half-normal tails); autograd backward",
            # one exp per logit (the softmax; the backward reuses p)
            transcendentals=lambda args, kwargs: args[0].size,
        ),
    )
)


# -- bar_borders_from_quantiles -------------------------------------------------------------
def _quantiles_random(rng, N, M):  # noqa: N803
    ys = rng.standard_normal(N) * float(rng.choice([0.1, 1.0, 100.0]))
    kwargs = {"num_buckets": int(min(M, N))}
    if rng.integers(0, 2):
        kwargs["full_range"] = np.array([ys.min() - rng.uniform(0, 1), ys.max() + rng.uniform(0, 1)])
    return Sample("random", (ys,), kwargs)


def _quantiles_edges():
    return [
        Sample(
            "known value: the remainder dropped",
            (np.array([4.0, 0.0, 3.0, 1.0, 9.0]),),
            {"num_buckets": 2},
            flags=("DROPPED_REMAINDER",),
            comment="9 is dropped: [0, 2, 4]",
        ),
        Sample(
            "one bucket: the range",
            (np.array([3.0, -1.0, 2.0]),),
            {"num_buckets": 1},
            comment="[-1, 3]",
        ),
        Sample(
            "one value per bucket",
            (np.array([0.5, -2.0, 1.0, 7.0]),),
            {"num_buckets": 4},
            flags=("ONE_VALUE_PER_BUCKET",),
            comment="[-2, -0.75, 0.75, 4, 7]",
        ),
        Sample(
            "given full range, 2-D ys",
            (np.array([[0.1, 0.4, 0.2], [0.9, 0.3, 0.6]]),),
            {"num_buckets": 3, "full_range": np.array([0.0, 1.0])},
            comment="sorted [0.1, 0.2, 0.3, 0.4, 0.6, 0.9]: [0, 0.25, 0.5, 1]",
        ),
    ]


def _quantiles_errors():
    ys = np.array([0.0, 1.0, 2.0, 3.0])
    return [
        ErrorCase(
            "duplicated quantile",
            (np.array([0.0, 1.0, 1.0, 1.0, 1.0, 2.0]),),
            {"num_buckets": 3},
            match="zero-width",
        ),
        ErrorCase("all values equal", (np.ones(4),), {"num_buckets": 1}, match="zero-width"),
        ErrorCase("more buckets than values", (ys,), {"num_buckets": 5}, match="at least num_buckets"),
        ErrorCase(
            "range not containing the values",
            (ys,),
            {"num_buckets": 2, "full_range": np.array([0.5, 3.0])},
            match="containing",
        ),
    ]


register(
    OpCases(
        "bar_borders_from_quantiles",
        dims={"N": (2, 40), "M": (1, 8)},
        random=_quantiles_random,
        edges=_quantiles_edges,
        errors=_quantiles_errors,
        notes=NOTES,
    )
)

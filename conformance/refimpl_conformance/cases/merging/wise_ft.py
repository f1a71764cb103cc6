"""Conformance cases for WiSE-FT / BANG: `wise_ft_interpolate` and `output_space_ensemble`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ENDPOINT": "α = 0 or 1: exactly θ_pre or θ_ft (no 1 − α rounding leaking the other model)",
    "SCALAR_PARAMETER": "a 0-d parameter tensor",
    "OFFSET": "models 1e4 + O(1e-3): the interpolation of nearly equal numbers",
    "IDENTICAL": "identical members: the ensemble is the member, responsibilities = w",
    "ZERO_WEIGHT": "w_k = 0: log w_k = −inf, the member is ignored (no NaN from −inf − −inf)",
    "ONE_MEMBER": "K = 1: the member itself",
    "TINY": "log-probabilities −700: p underflows in float64 outside log space",
    "LOGITS": "unnormalized members (logits ±50): elementwise, no normalization assumed",
}


def shape_with(rng, n):
    """A random shape holding n elements: (n,), (n//d, d) or (d, 1, n//d) for a small divisor d
    (or () for n = 1: the samplers wrap their draws in arrays, since NumPy returns a 0-d draw
    as a scalar)."""
    divisors = [d for d in range(1, min(n, 64) + 1) if n % d == 0]
    d = int(rng.choice(divisors))
    shapes = [(n,), (n // d, d), (d, 1, n // d)] + ([()] if n == 1 else [])
    return shapes[int(rng.integers(0, len(shapes)))]


# -- wise_ft_interpolate -------------------------------------------------------------------------
def _interpolate_random(rng, n):
    shape = shape_with(rng, n)
    theta_pre = np.asarray(rng.standard_normal(shape) * float(rng.choice([0.1, 1.0, 10.0])))
    theta_ft = np.asarray(theta_pre + float(rng.choice([0.01, 0.1, 1.0])) * rng.standard_normal(shape))
    alpha = float(rng.choice([0.5, 0.25, 0.9, rng.uniform()]))
    return Sample("random", (theta_pre, theta_ft), {"alpha": alpha})


def _interpolate_edges():
    rng = np.random.default_rng(34)
    pre, ft = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    return [
        Sample("α = 0: θ_pre", (pre, ft), {"alpha": 0.0}, flags=("ENDPOINT",)),
        Sample("α = 1: θ_ft", (pre, ft), {"alpha": 1.0}, flags=("ENDPOINT",)),
        Sample("default α = 0.5", (pre, ft), flags=("ENDPOINT",)),
        Sample("0-d parameter", (np.array(1.0), np.array(3.0)), {"alpha": 0.25}, flags=("SCALAR_PARAMETER",)),
        Sample("offset 1e4", (1e4 + 1e-3 * pre, 1e4 + 1e-3 * ft), {"alpha": 0.3}, flags=("OFFSET",)),
    ]


def _interpolate_known():
    return [
        Known(
            "hand value: (1 − 0.25)·(0, 2) + 0.25·(4, 0) = (1, 1.5)",
            (np.array([0.0, 2.0]), np.array([4.0, 0.0])),
            {"alpha": 0.25},
            {"theta": [1.0, 1.5]},
            source="by hand, θ(α) = (1 − α)θ_pre + αθ_ft",
        )
    ]


def _interpolate_torch(torch, args, kwargs, cotangent):
    """(1 − α)·θ_pre + α·θ_ft with torch tensors (torch.lerp rounds differently): no backward."""
    pre, ft = (torch.from_numpy(a) for a in args)
    alpha = kwargs.get("alpha", 0.5)

    def step():
        with torch.no_grad():
            return (1.0 - alpha) * pre + alpha * ft

    return step


register(
    OpCases(
        "wise_ft_interpolate",
        dims={"n": (1, 12)},
        random=_interpolate_random,
        edges=_interpolate_edges,
        errors=lambda: [],
        known=_interpolate_known,
        notes=NOTES,
        defaults={"alpha": 0.5},
        bench=Bench(
            sizes={"n": 2**22},
            torch=_interpolate_torch,
            torch_label="(1 − α)·θ_pre + α·θ_ft, no_grad",
        ),
    )
)


# -- output_space_ensemble -----------------------------------------------------------------------
def _log_probs(rng, B, C, K):  # noqa: N803
    logits = rng.standard_normal((B, C, K)) * float(rng.choice([0.5, 2.0, 8.0]))
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))  # log_softmax over classes


def _ensemble_random(rng, B, C, K):  # noqa: N803
    log_probs = _log_probs(rng, B, C, K)
    choice = int(rng.integers(0, 3))
    if choice == 0:
        return Sample("random, uniform weights", (log_probs,))
    weights = rng.dirichlet(np.ones(K))
    return Sample("random, Dirichlet weights", (log_probs, weights))


def _ensemble_edges():
    rng = np.random.default_rng(219)
    member = _log_probs(rng, 2, 5, 1)
    log_probs = _log_probs(rng, 2, 5, 2)
    return [
        Sample("identical members", (np.repeat(member, 3, axis=-1),), flags=("IDENTICAL",)),
        Sample("K = 1", (member,), flags=("ONE_MEMBER",)),
        Sample("two models, α = 0.3", (log_probs, np.array([0.7, 0.3]))),
        Sample("α = 1: w = (0, 1)", (log_probs, np.array([0.0, 1.0])), flags=("ZERO_WEIGHT", "ENDPOINT")),
        Sample(
            "log-probabilities near −700",
            (log_probs - 700.0, np.array([0.5, 0.5])),
            flags=("TINY",),
            dtypes=("float64",),
        ),
        Sample("logits ±50", (50.0 * rng.standard_normal((3, 4, 3)),), flags=("LOGITS",)),
    ]


def _ensemble_errors():
    log_probs = np.log(np.full((2, 3, 2), 0.5))
    return [
        ErrorCase("negative weight", (log_probs, np.array([1.5, -0.5])), match="non-negative"),
        ErrorCase("all weights zero", (log_probs, np.array([0.0, 0.0])), match="positive"),
    ]


def _ensemble_known():
    log_probs = np.log(np.array([[[0.2, 0.6], [0.8, 0.4]]]))
    return [
        Known(
            "hand value: uniform mean of (0.2, 0.8) and (0.6, 0.4)",
            (log_probs,),
            {},
            {"log_mean": np.log([[0.4, 0.6]]), "cotangent of 'log_probs'": [[[0.25, 0.75], [2 / 3, 1 / 3]]]},
            source="by hand: p̄ = (0.4, 0.6); r_k = w_k p_k/p̄ = (0.1/0.4, 0.3/0.4), (0.4/0.6, 0.2/0.6)",
        ),
        Known(
            "hand value: w = (0.75, 0.25)",
            (log_probs, np.array([0.75, 0.25])),
            {},
            {"log_mean": np.log([[0.3, 0.7]])},
            source="by hand: 0.75·0.2 + 0.25·0.6 = 0.3, 0.75·0.8 + 0.25·0.4 = 0.7",
        ),
    ]


def _ensemble_torch(torch, args, kwargs, cotangent):
    """torch.logsumexp(log p_k + log w_k, dim=-1); autograd for the members."""
    log_probs = torch.from_numpy(args[0]).requires_grad_()
    count = args[0].shape[-1]
    weights = args[1] if len(args) > 1 and args[1] is not None else np.full(count, 1.0 / count, args[0].dtype)
    log_weights = torch.from_numpy(np.log(weights))
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        log_probs.grad = None
        log_mean = torch.logsumexp(log_probs + log_weights, dim=-1)
        log_mean.backward(g)
        return log_mean

    return step


register(
    OpCases(
        "output_space_ensemble",
        dims={"B": (1, 4), "C": (1, 6), "K": (1, 4)},
        random=_ensemble_random,
        edges=_ensemble_edges,
        errors=_ensemble_errors,
        known=_ensemble_known,
        notes=NOTES,
        defaults={"weights": None},
        bench=Bench(
            sizes={"B": "rows", "C": "cols", "K": 4},
            torch=_ensemble_torch,
            torch_label="torch.logsumexp(log_probs + log w, dim=-1); autograd",
            # K exponentials and one log per position
            transcendentals=lambda args, kwargs: args[0].size + args[0].size // args[0].shape[-1],
        ),
    )
)

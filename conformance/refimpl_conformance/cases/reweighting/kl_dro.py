"""Conformance cases for `kl_dro_weights`, `kl_dro_value` and `kl_dro_compositional_weights`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "EXP_OVERFLOW": "ℓ/r up to 1e4: a bare exp(ℓ/r) overflows; the max-shifted softmax does not",
    "TINY_R": "r = 1e-30 in float32 too: ℓ/r itself overflows float32, the gaps (ℓ − max ℓ)/r do not",
    "ALL_EQUAL": "all losses equal: uniform weights, F = ℓ",
    "ONE_SAMPLE": "n = 1: w = 1, F = ℓ",
    "LARGE_R": "r ≫ spread: log Σ e^x − log n cancels to log(1 + tiny); log1p(mean(expm1 x)) does not",
    "LARGE_LOSSES": "losses ~1e4 with an O(1) spread",
}


def _losses(rng, n):
    return rng.gamma(2.0, 1.0, size=n) * float(rng.choice([0.1, 1.0, 5.0])) + float(rng.uniform(0, 3))


def _random(rng, N):
    return Sample("random", (_losses(rng, N),), {"r": float(10 ** rng.uniform(-1.5, 1.5))})


def _edges():
    rng = np.random.default_rng(68)
    spread = rng.uniform(0, 10, size=12)
    return [
        Sample(
            "r = 1e-3", (spread,), {"r": 1e-3}, flags=("EXP_OVERFLOW",), comment="weight ~one-hot on the max"
        ),
        Sample("r = 1e-30", (spread,), {"r": 1e-30}, flags=("TINY_R",)),
        Sample("all losses equal", (np.full(6, 2.5),), {"r": 0.3}, flags=("ALL_EQUAL",)),
        Sample("one sample", (np.array([1.7]),), {"r": 0.5}, flags=("ONE_SAMPLE",)),
        Sample("r = 1e8", (spread,), {"r": 1e8}, flags=("LARGE_R",), comment="F = mean ℓ to ~1e-8"),
        Sample(
            "losses ~1e4",
            (1e4 + rng.uniform(0, 1, size=9),),
            {"r": 0.2},
            flags=("LARGE_LOSSES",),
            fd_step=1e-9,
            comment="FD step 1e-5 (the default 1e-6·|ℓ| = 1e-2 is not small against r = 0.2)",
        ),
        Sample("two tied maxima", (np.array([1.0, 3.0, 3.0, 0.5]),), {"r": 0.05}),
    ]


def _weights_torch(torch, args, kwargs, cotangent):
    """w = softmax((ℓ − max ℓ)/r) with torch.softmax; autograd backward."""
    losses = torch.from_numpy(args[0]).requires_grad_()
    r = kwargs["r"]
    g = torch.from_numpy(cotangent)

    def step():
        losses.grad = None
        weights = torch.softmax((losses - losses.max().detach()) / r, dim=0)
        weights.backward(g)
        return weights

    return step


def _value_torch(torch, args, kwargs, cotangent):
    """F = max ℓ + r·log1p(mean expm1((ℓ − max ℓ)/r)); autograd backward."""
    losses = torch.from_numpy(args[0]).requires_grad_()
    r = kwargs["r"]
    g = torch.from_numpy(cotangent)

    def step():
        losses.grad = None
        top = losses.max()
        value = top + r * torch.log1p(torch.expm1((losses - top) / r).mean())
        value.backward(g)
        return value

    return step


_TORCH = {
    "kl_dro_weights": (_weights_torch, "torch.softmax of the max-shifted ℓ/r; autograd backward"),
    "kl_dro_value": (_value_torch, "max ℓ + r·log1p(mean expm1((ℓ − max ℓ)/r)); autograd backward"),
}
# kl_dro_weights: one exp per loss (the backward reuses w); kl_dro_value: one expm1 per loss
# (w = (expm1 + 1)/Σ for the backward) and one log1p
_EXPS = {
    "kl_dro_weights": lambda args, kwargs: args[0].size,
    "kl_dro_value": lambda args, kwargs: args[0].size + 1,
}

for _name in ("kl_dro_weights", "kl_dro_value"):
    register(
        OpCases(
            _name,
            dims={"N": (1, 30)},
            random=_random,
            edges=_edges,
            notes=NOTES,
            bench=Bench(
                sizes={"N": 8192},
                torch=_TORCH[_name][0],
                torch_label=_TORCH[_name][1],
                transcendentals=_EXPS[_name],
            ),
        )
    )


# -- the compositional (moving-average) estimator ----------------------------------------
COMPOSITIONAL_NOTES = {
    "NO_HISTORY": "log u = −inf (u = 0): the new state is log β + the batch's log-mean-exp",
    "BETA_ONE": "β = 1: log(1 − β) = −inf, the history is dropped (no nan from −inf + finite)",
    "EXP_OVERFLOW": "ℓ/r up to 1e4: u = mean exp(ℓ/r) overflows unless kept in log space",
    "STALE_STATE": "log u far above the batch: the weights are tiny but not 0/0",
}


def _compositional_random(rng, B):
    losses = _losses(rng, B)
    r = float(10 ** rng.uniform(-1, 1))
    log_u = np.asarray(float(losses.mean() / r + rng.normal(0, 1)))
    kwargs = {"r": r, "beta": float(rng.uniform(0.01, 1.0)), "n_train": int(B + rng.integers(0, 1000))}
    return Sample("random", (losses, log_u), kwargs)


def _compositional_edges():
    rng = np.random.default_rng(2308)
    losses = rng.uniform(0, 5, size=8)
    return [
        Sample(
            "no history",
            (losses, np.asarray(-np.inf)),
            {"r": 0.5, "beta": 0.1, "n_train": 1000},
            flags=("NO_HISTORY",),
        ),
        Sample(
            "β = 1", (losses, np.asarray(3.0)), {"r": 0.5, "beta": 1.0, "n_train": 8}, flags=("BETA_ONE",)
        ),
        Sample(
            "r = 5e-4",
            (losses, np.asarray(9000.0)),
            {"r": 5e-4, "beta": 0.2, "n_train": 50000},
            flags=("EXP_OVERFLOW",),
            comment="float32: ℓ/r ~ 1e4 carries an absolute error ~6e-4 in every exponent (any float32 "
            "implementation), i.e. a relative error ~1e-3 in the weights",
        ),
        Sample(
            "stale state far above the batch",
            (losses, np.asarray(80.0)),
            {"r": 1.0, "beta": 0.01, "n_train": 64},
            flags=("STALE_STATE",),
        ),
        Sample("one sample", (np.array([2.0]), np.asarray(1.0)), {"r": 1.0, "beta": 0.5, "n_train": 1}),
    ]


def _compositional_torch(torch, args, kwargs, cotangent):
    """log m = logsumexp(ℓ/r) − log B; log u_t = logaddexp(log(1 − β) + log u, log β + log m);
    w = exp(ℓ/r − log u_t − log n) (no VJP: the forward under no_grad)."""
    losses, log_u = (torch.from_numpy(a) for a in args[:2])
    r, beta, n_train = kwargs["r"], kwargs["beta"], kwargs["n_train"]
    with np.errstate(divide="ignore"):  # β = 1: log(1 − β) = −∞ drops the history
        log_keep = float(np.log1p(-beta))
    log_beta, log_batch, log_n = float(np.log(beta)), float(np.log(losses.shape[0])), float(np.log(n_train))

    def step():
        with torch.no_grad():
            scaled = losses / r
            log_batch_mean = torch.logsumexp(scaled, dim=0) - log_batch
            log_u_new = torch.logaddexp(log_u + log_keep, log_batch_mean + log_beta)
            weights = torch.exp(scaled - log_u_new - log_n)
        return weights, log_u_new

    return step


register(
    OpCases(
        "kl_dro_compositional_weights",
        dims={"B": (1, 20)},
        random=_compositional_random,
        edges=_compositional_edges,
        notes=COMPOSITIONAL_NOTES,
        bench=Bench(
            sizes={"B": 8192},
            torch=_compositional_torch,
            torch_label="torch.logsumexp, torch.logaddexp, torch.exp (forward only, no VJP)",
            # one exp per loss (the log-sum-exp's e^(ℓ/r − max), reused for w times one common
            # factor), plus the scalars: the lse's log, logaddexp's exp and log1p, the factor's exp
            transcendentals=lambda args, kwargs: args[0].size + 4,
        ),
    )
)

"""Conformance cases for Mult-VAE: `multinomial_log_likelihood`, `mult_vae_loss`, `mult_vae_beta_schedule`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "ZERO_CLICKS": "a user with no clicks: likelihood 0 and logit gradient 0 (no NaN from normalizing)",
    "LARGE_LOGITS": "|f| up to 1e4: a log-softmax without the max shift overflows",
    "MANY_ITEMS": "I = 2000 items: the log-sum-exp runs over a long row",
    "ONE_ITEM": "I = 1: log_softmax = 0, likelihood and gradient 0",
    "DAE": "β = 0: Mult-DAE, the loss is the likelihood alone and mu, logvar get no gradient",
    "PRIOR": "mu = 0, logvar = 0: the posterior is the prior, KL = 0 with gradients 0",
    "EXTREME_LOGVAR": "log-variances ±20: exp(logvar) spans 1e-9 to 5e8",
    "ANNEAL_BOUNDARY": "β reaches the cap at t = cap·T exactly and stays there",
    "NO_ANNEALING": "total_anneal_steps = 0: β = anneal_cap from the first update",
}

FLOAT64_ONLY = ("float64",)  # integer counts in, float64 β out: no float32 variant


def _clicks(rng, shape):
    if rng.integers(0, 2):
        return (rng.random(shape) < 0.4).astype(np.float64)  # binary clicks, as in the paper's data
    return rng.integers(0, 4, size=shape).astype(np.float64)


def _logits(rng, shape):
    return rng.standard_normal(shape) * float(rng.choice([0.5, 3.0, 10.0]))


# -- multinomial_log_likelihood ----------------------------------------------------------
def _ll_random(rng, B, I):  # noqa: N803, E741
    shape = (B, I) if rng.integers(0, 3) else (I,)
    return Sample("random", (_logits(rng, shape), _clicks(rng, shape)))


def _ll_edges():
    rng = np.random.default_rng(7)
    return [
        Sample(
            "known value: uniform logits, two clicks of four",
            (np.zeros((1, 4)), np.array([[1.0, 0.0, 1.0, 0.0]])),
            comment="2·log(1/4) = −2.7725887",
        ),
        Sample(
            "a user with no clicks",
            (np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])),
            flags=("ZERO_CLICKS",),
        ),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]), np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])),
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|f| is 1e-2 here, where the softmax is far from linear",
        ),
        Sample("one item", (np.array([[0.3], [-2.0]]), np.array([[1.0], [3.0]])), flags=("ONE_ITEM",)),
        Sample(
            "2000 items",
            (rng.standard_normal((2, 2000)) * 3, (rng.random((2, 2000)) < 0.01).astype(np.float64)),
            flags=("MANY_ITEMS",),
        ),
        Sample(
            "batch dims (2, 3, I) with counts",
            (np.linspace(-2, 3, 24).reshape(2, 3, 4), np.arange(24.0).reshape(2, 3, 4) % 3),
        ),
    ]


def _ll_errors():
    f = np.zeros((2, 3))
    return [
        ErrorCase("negative count", (f, np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])), match=r"'x'.*>= 0"),
    ]


def _multinomial_torch(torch, args, kwargs, cotangent):
    """Σ_i x_i log softmax(f)_i per row with PyTorch's log_softmax."""
    logits = torch.from_numpy(args[0]).requires_grad_()
    x, g = torch.from_numpy(args[1]), torch.from_numpy(np.asarray(cotangent))

    def step():
        logits.grad = None
        value = (x * torch.nn.functional.log_softmax(logits, -1)).sum(-1)
        value.backward(g)
        return value

    return step


register(
    OpCases(
        "multinomial_log_likelihood",
        dims={"B": (1, 5), "I": (1, 9)},
        random=_ll_random,
        edges=_ll_edges,
        errors=_ll_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "I": "cols"},
            torch=_multinomial_torch,
            torch_label="(x · F.log_softmax(logits)).sum(-1); autograd backward",
            # the softmax: one exp per logit and one log per row (the backward reuses p)
            transcendentals=lambda args, kwargs: args[0].size + args[0][..., 0].size,
        ),
    )
)


# -- mult_vae_loss -------------------------------------------------------------------------
def _loss_random(rng, B, I, d):  # noqa: N803, E741
    args = (
        _logits(rng, (B, I)),
        _clicks(rng, (B, I)),
        rng.standard_normal((B, d)),
        rng.standard_normal((B, d)) * float(rng.choice([0.3, 2.0])),
    )
    return Sample("random", args, {"beta": float(rng.choice([0.0, 0.05, 0.2, 1.0]))})


def _loss_edges():
    f = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 0.0, -3.0]])
    x = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
    mu = np.array([[0.3, -1.2], [2.0, 0.1]])
    logvar = np.array([[-0.5, 0.4], [1.0, -2.0]])
    return [
        Sample(
            "known value",
            (np.zeros((1, 4)), np.array([[1.0, 0.0, 1.0, 0.0]]), np.array([[1.0, 0.0]]), np.zeros((1, 2))),
            {"beta": 0.2},
            comment="2·log 4 + 0.2·½ = 2.8725887",
        ),
        Sample("β = 0: Mult-DAE", (f, x, mu, logvar), {"beta": 0.0}, flags=("DAE",)),
        Sample(
            "posterior = prior", (f, x, np.zeros((2, 2)), np.zeros((2, 2))), {"beta": 1.0}, flags=("PRIOR",)
        ),
        Sample(
            "a user with no clicks",
            (f, np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]]), mu, logvar),
            {"beta": 0.2},
            flags=("ZERO_CLICKS",),
        ),
        Sample(
            "log-variances ±20",
            (f, x, mu, np.array([[20.0, -20.0], [-20.0, 20.0]])),
            {"beta": 0.2},
            flags=("EXTREME_LOGVAR",),
        ),
        Sample(
            "logits ±1e4",
            (
                np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]),
                np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]),
                mu,
                logvar,
            ),
            {"beta": 0.2},
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|f| is 1e-2 here, where the softmax is far from linear",
        ),
    ]


def _loss_errors():
    f, x, mu = np.zeros((2, 3)), np.ones((2, 3)), np.zeros((2, 4))
    return [
        ErrorCase("negative count", (f, -x, mu, mu), {"beta": 0.2}, match=r"'x'.*>= 0"),
    ]


def _mult_vae_torch(torch, args, kwargs, cotangent):
    """The β-weighted negative ELBO with PyTorch's log_softmax; autograd backward."""
    logits, mu, logvar = (torch.from_numpy(args[k]).requires_grad_() for k in (0, 2, 3))
    x, g = torch.from_numpy(args[1]), torch.from_numpy(np.asarray(cotangent))
    beta = kwargs["beta"]

    def step():
        logits.grad = mu.grad = logvar.grad = None
        neg_ll = -(x * torch.nn.functional.log_softmax(logits, -1)).sum(-1).mean()
        kl = (0.5 * (-logvar + torch.exp(logvar) + mu * mu - 1)).sum(-1).mean()
        loss = neg_ll + beta * kl
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "mult_vae_loss",
        dims={"B": (1, 5), "I": (1, 9), "d": (1, 4)},
        random=_loss_random,
        edges=_loss_edges,
        errors=_loss_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "I": "cols", "d": 64},
            kwargs={"beta": 0.2},  # the official anneal cap (β is required; the sampler may draw 0)
            torch=_mult_vae_torch,
            torch_label="−mean (x · F.log_softmax(f)).sum(-1) + β·mean ½Σ(−logvar + exp(logvar) + mu² − 1); "
            "autograd backward",
            # one exp per logit and one log per row (the softmax, reused by the backward) and
            # one exp per log-variance (reused by the backward)
            transcendentals=lambda args, kwargs: args[0].size + args[0].shape[0] + args[3].size,
        ),
    )
)


# -- mult_vae_beta_schedule ------------------------------------------------------------------
def _schedule_random(rng, N):  # noqa: N803
    total = int(rng.choice([0, 10, 1000, 200000]))
    cap = float(rng.choice([0.2, 0.5, 1.0]))
    counts = rng.integers(0, 2 * total + 5, size=N)
    return Sample("random", (counts,), {"anneal_cap": cap, "total_anneal_steps": total}, dtypes=FLOAT64_ONLY)


def _schedule_edges():
    return [
        Sample(
            "the official schedule",
            (np.array([0, 1, 20000, 39999, 40000, 40001, 10**7]),),
            flags=("ANNEAL_BOUNDARY",),
            dtypes=FLOAT64_ONLY,
            comment="[0, 5e-6, 0.1, 0.199995, 0.2, 0.2, 0.2]",
        ),
        Sample(
            "no annealing",
            (np.array([0, 5, 100]),),
            {"anneal_cap": 0.3, "total_anneal_steps": 0},
            flags=("NO_ANNEALING",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "cap 1: the plain ramp, int32 counts",
            (np.array([0, 3, 10, 12], dtype=np.int32),),
            {"anneal_cap": 1.0, "total_anneal_steps": 10},
            dtypes=FLOAT64_ONLY,
            comment="[0, 0.3, 1, 1]",
        ),
    ]


def _schedule_errors():
    return [
        ErrorCase("negative count", (np.array([-1, 3]),), match=r"'update_count'.*values in \[0"),
    ]


register(
    OpCases(
        "mult_vae_beta_schedule",
        dims={"N": (1, 6)},
        random=_schedule_random,
        edges=_schedule_edges,
        errors=_schedule_errors,
        notes=NOTES,
    )
)

"""Conformance cases for `loss_based_sample_weights`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

SCORED = ("linupper", "quadratic", "extremes", "identity")
STRATEGIES = (*SCORED, "uniform")

NOTES = {
    "MISSING_STEP": "r = 1e-3: f/r reaches 1000 and a softmax without the max subtraction "
    "overflows (exp(1000) = inf, weights nan)",
    "ALL_EQUAL": "all losses equal: D = 1e-6 guard, ℓ̃ = 0, uniform weights (an unguarded D divides 0 by 0)",
    "ONE_SAMPLE": "n = 1: the weight is exactly 1",
    "LARGE_LOSSES": "losses 1e4 + O(1): the published ℓ̃ = 2δℓ/D − δ(ℓmax + ℓmin)/D cancels "
    "(two terms of ~2e4 for a result in [−δ, δ]); float32 keeps ~1 digit",
    "SPREAD_BELOW_GUARD": "spread 5e-7 < 1e-6: D is the guard, ℓ̃ spans only [−δ/2, δ/2]",
    "IDENTITY": "the official code's 'uniform' strategy: ℓ̃ itself, not uniform weights",
}


def _random(rng, N):
    strategy = str(rng.choice(STRATEGIES))
    losses = rng.gamma(2.0, 1.0, size=N) * float(rng.choice([0.1, 1.0, 5.0])) + float(rng.uniform(0, 10))
    kwargs = {
        "strategy": strategy,
        "r": float(10 ** rng.uniform(-1.3, 1)),
        "delta": float(rng.choice([1.0, 0.5, 2.0])),
    }
    return Sample("random", (losses,), kwargs)


def _edges():
    rng = np.random.default_rng(5)
    spread_losses = 3.0 + rng.uniform(0, 1, size=16)
    samples = [
        Sample(
            f"r = 1e-3, {strategy}",
            (spread_losses,),
            {"strategy": strategy, "r": 1e-3},
            flags=("MISSING_STEP",),
            comment="the weight concentrates on the argmax of f; exp(f/r) alone overflows",
        )
        for strategy in SCORED
    ]
    samples += [
        Sample(
            f"all losses equal, {strategy}",
            (np.full(5, 2.75),),
            {"strategy": strategy, "r": 0.1},
            flags=("ALL_EQUAL",),
            comment="weights exactly 1/5",
        )
        for strategy in SCORED
    ]
    samples += [
        Sample("one sample", (np.array([1.7]),), {"strategy": "extremes", "r": 0.2}, flags=("ONE_SAMPLE",)),
        Sample(
            "one sample, uniform",
            (np.array([1.7]),),
            {"strategy": "uniform", "r": 0.2},
            flags=("ONE_SAMPLE",),
        ),
        Sample(
            "losses 1e4 + O(1), quadratic",
            (1e4 + rng.uniform(0, 2, size=12),),
            {"strategy": "quadratic", "r": 0.1},
            flags=("LARGE_LOSSES",),
            comment="in float32 the inputs keep ~3 digits of the O(1) part; the reference sees the same",
        ),
        Sample(
            "losses 1e4 + O(0.05), identity",
            (1e4 + np.linspace(0, 0.05, 9),),
            {"strategy": "identity", "r": 0.5, "delta": 2.0},
            flags=("LARGE_LOSSES",),
            comment="float32: the published form's ℓ̃ is off by 0.08 here, this one by 3e-8",
        ),
        Sample(
            "spread below the 1e-6 guard",
            (2.0 + np.array([0.0, 2.5e-7, 5e-7, 1e-7]),),
            {"strategy": "identity", "r": 0.5},
            flags=("SPREAD_BELOW_GUARD",),
        ),
        Sample(
            "identity strategy upweights hard samples",
            (np.array([1.0, 2.0, 4.0]),),
            {"strategy": "identity", "r": 1.0},
            flags=("IDENTITY",),
            comment="weights ∝ exp([−1, −1/3, 1])",
        ),
        Sample("uniform", (rng.uniform(1, 3, size=7),), {"strategy": "uniform", "r": 1.0}),
        Sample("large temperature", (rng.uniform(1, 3, size=7),), {"strategy": "extremes", "r": 1e6}),
    ]
    return samples


def _weights_torch(torch, args, kwargs, cotangent):
    """ℓ̃ = δ((ℓ − ℓmin) − (ℓmax − ℓ))/max(ℓmax − ℓmin, 1e-6), the strategy's f, then
    torch.softmax((f − max f)/r); "uniform": 1/n (no VJP: the forward under no_grad)."""
    losses = torch.from_numpy(args[0])
    strategy, r, delta = kwargs["strategy"], kwargs["r"], kwargs.get("delta", 1.0)
    n = losses.shape[0]

    def step():
        with torch.no_grad():
            if strategy == "uniform":
                return torch.full((n,), 1 / n, dtype=losses.dtype)
            low, high = losses.min(), losses.max()
            spread = (high - low).clamp(min=1e-6)
            l_tilde = delta * ((losses - low) - (high - losses)) / spread
            if strategy == "linupper":
                f = torch.clamp(l_tilde + delta, max=delta)
            elif strategy == "quadratic":
                f = 1 - l_tilde * l_tilde / (delta * delta)
            elif strategy == "extremes":
                f = l_tilde.abs()
            else:  # "identity"
                f = l_tilde
            return torch.softmax((f - f.max()) / r, dim=0)

    return step


register(
    OpCases(
        "loss_based_sample_weights",
        dims={"N": (1, 40)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        bench=Bench(
            sizes={"N": 8192},
            torch=_weights_torch,
            torch_label="min/max normalization, the strategy's f, torch.softmax((f − max f)/r) "
            "(forward only, no VJP)",
            # one exp per loss (none for the uniform strategy)
            transcendentals=lambda args, kwargs: 0 if kwargs["strategy"] == "uniform" else args[0].size,
        ),
    )
)


# -- the weighted objective Σ sg[w_i]·ℓ_i ----------------------------------------------
OBJECTIVE_NOTES = {
    "WORLD_SIZE": "per-device objective W·Σ_dev w_i ℓ_i: a backend that drops W scales the gradient by 1/W",
    "STOP_GRADIENT": "weights computed from the same losses: the VJP is still w (no term through w)",
    "ONE_SAMPLE": "n = 1",
    "LARGE_LOSSES": "losses ~1e4 with a weight spread over 7 orders of magnitude",
}


def _objective_random(rng, N):
    losses = rng.gamma(2.0, 1.0, size=N) * float(rng.choice([0.1, 1.0, 5.0]))
    weights = rng.dirichlet(np.full(N, float(rng.choice([0.3, 1.0, 5.0]))))
    return Sample("random", (losses, weights), {"world_size": int(rng.choice([1, 1, 2, 8]))})


def _objective_edges():
    rng = np.random.default_rng(11)
    losses = rng.uniform(1, 3, size=9)
    linupper = np.array(
        [0.05279, 0.13056, 0.13056, 0.13056, 0.06344, 0.13056, 0.04407, 0.13056, 0.11633]
    )  # LinUpper-like weights: flat over the hard half
    return [
        Sample(
            "world size 4, a device's slice",
            (losses[:4], linupper[:4]),
            {"world_size": 4},
            flags=("WORLD_SIZE",),
            comment="the slice's weights sum to < 1; the objective is 4× their weighted sum",
        ),
        Sample(
            "weights from the same losses (linupper, r = 0.4)",
            (np.array([1.0, 2.0, 4.0, 3.0]), np.array([0.0864, 0.2014, 0.3561, 0.3561])),
            flags=("STOP_GRADIENT",),
        ),
        Sample("one sample", (np.array([2.5]), np.array([1.0])), flags=("ONE_SAMPLE",)),
        Sample(
            "losses ~1e4, weights 1e-7..1",
            (1e4 + rng.uniform(0, 1, size=6), np.array([1e-7, 1e-3, 0.2, 0.3, 0.499899, 1e-4])),
            flags=("LARGE_LOSSES",),
        ),
        Sample("uniform weights", (losses, np.full(9, 1 / 9)), comment="the plain mean of the losses"),
    ]


def _objective_torch(torch, args, kwargs, cotangent):
    """J = W·⟨w, ℓ⟩ with torch.dot, the weights a constant; autograd backward."""
    losses = torch.from_numpy(args[0]).requires_grad_()
    weights = torch.from_numpy(args[1])
    world_size = kwargs.get("world_size", 1)
    g = torch.from_numpy(cotangent)

    def step():
        losses.grad = None
        objective = world_size * torch.dot(weights, losses)
        objective.backward(g)
        return objective

    return step


register(
    OpCases(
        "loss_weighted_objective",
        dims={"N": (1, 40)},
        random=_objective_random,
        edges=_objective_edges,
        notes=OBJECTIVE_NOTES,
        bench=Bench(
            sizes={"N": 8192},
            torch=_objective_torch,
            torch_label="world_size·torch.dot(w, ℓ), w constant; autograd backward",
        ),
    )
)


# -- the temperature schedule -----------------------------------------------------------
SCHEDULE_NOTES = {
    "BOUNDARY": "t = burnout_steps − 1 is still warm-up (∞), t = burnout_steps already uses the "
    "target (the official `global_step < burnout_steps`)",
    "NO_WARMUP": "burnout_steps = 0: reweighting from the first step",
}
FLOAT64_ONLY = ("float64",)  # integer steps in, float64 temperatures out: no float32 variant


def _schedule_random(rng, N):
    burnout = int(rng.choice([0, 10, 1000]))
    steps = rng.integers(0, 3 * burnout + 20, size=N)
    return Sample(
        "random",
        (steps,),
        {"target_r": float(rng.choice([1.0, 0.4, 0.05])), "burnout_steps": burnout},
        dtypes=FLOAT64_ONLY,
    )


def _schedule_edges():
    return [
        Sample(
            "around the default burnout step",
            (np.array([0, 998, 999, 1000, 1001, 20000]),),
            {"target_r": 0.4},
            flags=("BOUNDARY",),
            dtypes=FLOAT64_ONLY,
            comment="[inf, inf, inf, 0.4, 0.4, 0.4]",
        ),
        Sample(
            "no warm-up",
            (np.array([0, 1, 5]),),
            {"target_r": 1.0, "burnout_steps": 0},
            flags=("NO_WARMUP",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "int32 steps",
            (np.array([3, 4, 5], dtype=np.int32),),
            {"target_r": 0.4, "burnout_steps": 4},
            dtypes=FLOAT64_ONLY,
        ),
    ]


register(
    OpCases(
        "loss_reweighting_temperature",
        dims={"N": (1, 20)},
        random=_schedule_random,
        edges=_schedule_edges,
        notes=SCHEDULE_NOTES,
    )
)

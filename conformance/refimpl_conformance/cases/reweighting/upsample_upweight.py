"""Conformance cases for `temperature_sampling_probs`, `scalarization_weights` and
`cooldown_temperature_schedule`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "POWER_OVERFLOW": "n_i^{1/τ} overflows (1e9^{50} = 1e450): a softmax of log n/τ does not",
    "EMPTY_DOMAIN": "n_i = 0: probability and weight exactly 0 (log 0 = −inf must not give nan)",
    "NATURAL": "τ = 1: p = q and every scalarization weight is 1",
    "ONE_DOMAIN": "D = 1: p = 1, w = 1",
    "FLAT": "τ = 1e6: p uniform over the non-empty domains",
    "HUGE_COUNTS": "counts 1e12: N = Σn loses nothing in log space",
}


def _counts(rng, D):
    counts = np.floor(10 ** rng.uniform(0, float(rng.choice([2.0, 5.0, 8.0])), size=D))
    counts[rng.random(D) < 0.15] = 0.0  # some empty domains
    counts[rng.integers(D)] = max(counts.max(), 1.0)  # at least one non-empty
    return counts


def _random(rng, D):
    return Sample("random", (_counts(rng, D),), {"tau": float(10 ** rng.uniform(-0.5, 1.5))})


def _edges():
    skewed = np.array([1e9, 3e6, 2e4, 150.0, 7.0])
    return [
        Sample("τ = 0.02, counts up to 1e9", (skewed,), {"tau": 0.02}, flags=("POWER_OVERFLOW",)),
        Sample("τ = 5, skewed counts", (skewed,), {"tau": 5.0}),
        Sample(
            "empty domains", (np.array([0.0, 120.0, 0.0, 3.0, 45.0]),), {"tau": 3.0}, flags=("EMPTY_DOMAIN",)
        ),
        Sample("τ = 1", (np.array([5.0, 1.0, 994.0, 0.0]),), {"tau": 1.0}, flags=("NATURAL",)),
        Sample("one domain", (np.array([42.0]),), {"tau": 2.0}, flags=("ONE_DOMAIN",)),
        Sample("τ = 1e6", (np.array([1e6, 10.0, 1.0, 0.0]),), {"tau": 1e6}, flags=("FLAT",)),
        Sample("counts 1e12", (np.array([1e12, 4e11, 1.0]),), {"tau": 2.5}, flags=("HUGE_COUNTS",)),
        Sample("fractional sizes (token shares)", (np.array([0.5, 0.25, 0.125, 0.125]),), {"tau": 1.7}),
    ]


def _errors():
    counts = np.array([10.0, 5.0, 1.0])
    return [
        ErrorCase("negative count", (np.array([10.0, -1.0]),), {"tau": 1.0}, match=r"'counts'.*>= 0"),
        ErrorCase("all domains empty", (np.zeros(3),), {"tau": 1.0}, match=r"'counts'.*at least one"),
        ErrorCase("τ = 0", (counts,), {"tau": 0.0}, match=r"'tau'.*> 0"),
    ]


def _probs_torch(torch, args, kwargs, cotangent):
    """p = torch.softmax(log n / τ) (log 0 = −∞: p = 0); forward only (no VJP)."""
    counts, tau = torch.from_numpy(args[0]), kwargs["tau"]

    def step():
        with torch.no_grad():
            return torch.softmax(torch.log(counts) / tau, dim=0)

    return step


def _scalarization_torch(torch, args, kwargs, cotangent):
    """log w = (1/τ − 1) log n − logsumexp(log n/τ) + log Σn, w = exp(log w) (0 where n = 0);
    forward only (no VJP)."""
    counts, inverse_tau = torch.from_numpy(args[0]), 1 / kwargs["tau"]

    def step():
        with torch.no_grad():
            log_n = torch.log(counts)
            nonempty = counts > 0
            log_normalizer = torch.logsumexp(log_n * inverse_tau, dim=0)
            safe_log_n = torch.where(nonempty, log_n, 0.0)
            log_w = (inverse_tau - 1) * safe_log_n - log_normalizer + torch.log(counts.sum())
            return torch.where(nonempty, torch.exp(log_w), 0.0)

    return step


_TORCH = {
    "temperature_sampling_probs": (_probs_torch, "torch.softmax(torch.log(n)/τ) (forward only, no VJP)"),
    "scalarization_weights": (
        _scalarization_torch,
        "exp((1/τ − 1)·log n − torch.logsumexp(log n/τ) + log Σn), 0 where n = 0 (forward only)",
    ),
}

for _name in ("temperature_sampling_probs", "scalarization_weights"):
    register(
        OpCases(
            _name,
            dims={"D": (1, 12)},
            random=_random,
            edges=_edges,
            errors=_errors,
            notes=NOTES,
            bench=Bench(
                sizes={"D": 1024},
                torch=_TORCH[_name][0],
                torch_label=_TORCH[_name][1],
                # one non-integer power per domain: p_i ∝ (n_i/max n)^{1/τ}, and w_i = p_i·N/n_i
                transcendentals=lambda args, kwargs: args[0].size,
            ),
        )
    )


# -- the Cooldown schedule ----------------------------------------------------------------
SCHEDULE_NOTES = {
    "SWITCH_BOUNDARY": "t = switch − 1 keeps the old τ, t = switch takes the new one (side='right')",
    "ONE_STAGE": "S = 1: a constant temperature",
    "AFTER_LAST": "steps beyond the last switch point stay in the last stage",
}


def _schedule_random(rng, N, S):
    starts = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 1000), size=S - 1, replace=False))])
    taus = np.sort(10 ** rng.uniform(0, 1.5, size=S))[::-1].copy()
    steps = rng.integers(0, 1200, size=N)
    return Sample("random", (steps, taus, starts))


def _schedule_edges():
    return [
        Sample(
            "around the switch points",
            (
                np.array([0, 99, 100, 101, 299, 300, 10**6]),
                np.array([5.0, 2.0, 1.0]),
                np.array([0, 100, 300]),
            ),
            flags=("SWITCH_BOUNDARY", "AFTER_LAST"),
            comment="[5, 5, 2, 2, 2, 1, 1]",
        ),
        Sample("one stage", (np.array([0, 7, 70000]), np.array([3.3]), np.array([0])), flags=("ONE_STAGE",)),
        Sample(
            "int32 steps, fractional τ",
            (np.array([4, 5, 6], dtype=np.int32), np.array([1.4, 1.05]), np.array([0, 5], dtype=np.int32)),
        ),
    ]


def _schedule_errors():
    steps = np.array([0, 10])
    return [
        ErrorCase(
            "first stage not at 0",
            (steps, np.array([5.0, 1.0]), np.array([1, 10])),
            match=r"'switch_steps'.*start at step 0",
        ),
        ErrorCase(
            "switch points not increasing",
            (steps, np.array([5.0, 2.0, 1.0]), np.array([0, 10, 10])),
            match=r"'switch_steps'.*strictly increasing",
        ),
        ErrorCase("τ = 0", (steps, np.array([5.0, 0.0]), np.array([0, 10])), match=r"'taus'.*> 0"),
    ]


def _schedule_torch(torch, args, kwargs, cotangent):
    """τ(t) = taus[searchsorted(switch_steps, t, right=True) − 1]; forward only (no VJP)."""
    steps, switch_steps = (torch.from_numpy(a).long() for a in (args[0], args[2]))
    taus = torch.from_numpy(args[1])

    def step():
        with torch.no_grad():
            return taus[torch.searchsorted(switch_steps, steps, right=True) - 1]

    return step


register(
    OpCases(
        "cooldown_temperature_schedule",
        dims={"N": (1, 20), "S": (1, 4)},
        random=_schedule_random,
        edges=_schedule_edges,
        errors=_schedule_errors,
        notes=SCHEDULE_NOTES,
        bench=Bench(
            sizes={"N": 8192, "S": 4},
            torch=_schedule_torch,
            torch_label="taus[torch.searchsorted(switch_steps, t, right=True) − 1] (forward only)",
        ),
    )
)

"""Conformance cases for `mc_step_advantages`, `per_step_dpo_loss` and `advantage_weighted_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TIE": "equal advantages: i* is the first of them (np.argmin), not the last",
    "FLOAT_TIE": "count changes of 2/10 at different levels (0.3−0.1, 0.5−0.3): a float difference "
    "of Q̂ values breaks the tie, integer count differences do not",
    "FIRST_STEP": "V̂_1 = v_0, not Q̂_0 = 0 or Q̂_1: the first step's advantage uses the given value",
    "ONE_STEP": "L = 1: Â = Q̂_1 − v_0, i* = 0",
    "ONE_ROLLOUT": "M = 1: Q̂ ∈ {0, 1}, advantages ∈ {−1, 0, 1}",
    "ALL_EQUAL": "every step keeps the success rate: Â = 0 after step 1",
}
FLOAT64_ONLY = ("float64",)  # boolean outcomes in, float64 estimates out: no float32 variant


def _random(rng, L, M):
    # a success probability that drifts step by step, with a possible drop (the critical step)
    p = np.clip(rng.uniform(0.2, 0.9) + np.cumsum(rng.normal(0.0, 0.15, size=L)), 0.0, 1.0)
    outcomes = rng.random((L, M)) < p[:, None]
    v_0 = float(rng.choice([0.0, 1.0, rng.uniform(0, 1), rng.integers(0, M + 1) / M]))
    return Sample("random", (outcomes,), {"v_0": v_0}, dtypes=FLOAT64_ONLY)


def _edges():
    return [
        Sample(
            "tie between steps 2 and 4",
            (np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool),),
            {"v_0": 1.0},
            flags=("TIE",),
            dtypes=FLOAT64_ONLY,
            comment="Â = [0, −0.5, 0.5, −0.5]: i* = 1",
        ),
        Sample(
            "tie 0.3 − 0.1 vs 0.5 − 0.3 (M = 10)",
            (
                np.array(
                    [
                        [True] * 5 + [False] * 5,
                        [True] * 3 + [False] * 7,
                        [True] * 3 + [False] * 7,
                        [True] * 1 + [False] * 9,
                    ]
                ),
            ),
            {"v_0": 0.5},
            flags=("TIE", "FLOAT_TIE"),
            dtypes=FLOAT64_ONLY,
            comment="Q̂ = [0.5, 0.3, 0.3, 0.1]: Â = [0, −0.2, 0, −0.2], i* = 1",
        ),
        Sample(
            "first step is the worst",
            (np.array([[0, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=bool),),
            {"v_0": 1.0},
            flags=("FIRST_STEP",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "one step",
            (np.array([[1, 0, 0, 1, 1]], dtype=bool),),
            {"v_0": 0.2},
            flags=("ONE_STEP",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "one rollout per step",
            (np.array([[1], [1], [0], [1], [0]], dtype=bool),),
            {"v_0": 0.0},
            flags=("ONE_ROLLOUT",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "all steps keep the rate",
            (np.ones((4, 6), dtype=bool),),
            {"v_0": 1.0},
            flags=("ALL_EQUAL",),
            dtypes=FLOAT64_ONLY,
            comment="Â = 0 everywhere: i* = 0 (first of a four-way tie)",
        ),
        Sample(
            "all rollouts fail",
            (np.zeros((3, 7), dtype=bool),),
            {"v_0": 0.4},
            dtypes=FLOAT64_ONLY,
            comment="Â = [−0.4, 0, 0]: i* = 0",
        ),
    ]


def _errors():
    return [
        ErrorCase("no steps", (np.zeros((0, 4), dtype=bool),), {"v_0": 0.5}, match=r"'outcomes'.*L >= 1"),
        ErrorCase("no rollouts", (np.zeros((3, 0), dtype=bool),), {"v_0": 0.5}, match=r"'outcomes'.*M >= 1"),
    ]


def _known():
    return [
        Known(
            "hand computation",
            (np.array([[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool),),
            {"v_0": 0.5},
            values={
                "q": np.array([0.75, 0.5, 0.0]),
                "v": np.array([0.5, 0.75, 0.5]),
                "advantages": np.array([0.25, -0.25, -0.5]),
                "critical_step": np.int64(2),
            },
            source="by hand: Q̂ = c/M = [3, 2, 0]/4, V̂ = [v_0, Q̂_1, Q̂_2], Â = Q̂ − V̂",
        ),
        Known(
            "first index on a tie",
            (np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool),),
            {"v_0": 1.0},
            values={"advantages": np.array([0.0, -0.5, 0.5, -0.5]), "critical_step": np.int64(1)},
            source="by hand: Q̂ = [1, 0.5, 1, 0.5], argmin's first index",
        ),
    ]


register(
    OpCases(
        "mc_step_advantages",
        dims={"L": (1, 10), "M": (1, 16)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        known=_known,
        defaults={},
    )
)


# ---------------------------------------------------------------------------- per_step_dpo_loss

DPO_NOTES = {
    "AT_REFERENCE": "π = π_ref: Δ = 0, ℓ = log 2 exactly and ḡ± = ∓β/2 per pair",
    "SATURATED": "βΔ = ±800: softplus must stay linear (no exp overflow), σ(−βΔ) must not be NaN",
    "LONG_SEQUENCES": "log-probabilities −1e4 with O(1) log-ratios: the ratios are formed first",
    "CERTAIN": "a log-probability exactly 0 (a sequence of probability 1) is valid",
    "ONE_PAIR": "B = 1",
}


def _dpo_pairs(rng, batch, spread, scale=60.0):
    """Reference log-probabilities of whole sequences, and a policy that moved from them."""
    reference_chosen = -rng.uniform(1.0, scale, size=batch)
    reference_rejected = -rng.uniform(1.0, scale, size=batch)
    policy_chosen = np.minimum(reference_chosen + rng.normal(0.0, spread, size=batch), -0.05)
    policy_rejected = np.minimum(reference_rejected + rng.normal(0.0, spread, size=batch), -0.05)
    return policy_chosen, policy_rejected, reference_chosen, reference_rejected


def _dpo_random(rng, B):  # noqa: N803
    args = _dpo_pairs(rng, B, float(rng.choice([0.1, 1.0, 5.0])))
    kwargs = {
        "beta": float(rng.choice([0.05, 0.1, 0.5, 2.0])),
        "reduction": str(rng.choice(["mean", "sum", "none"])),
    }
    return Sample("random", args, kwargs)


def _dpo_edges():
    rng = np.random.default_rng(11)
    chosen, rejected = -rng.uniform(1, 30, size=4), -rng.uniform(1, 30, size=4)
    return [
        Sample(
            "policy equals reference",
            (chosen, rejected, chosen.copy(), rejected.copy()),
            {"beta": 0.3, "reduction": "none"},
            flags=("AT_REFERENCE",),
            comment="ℓ = log 2 on every pair",
        ),
        Sample(
            "βΔ = +800",
            (chosen, rejected - 40.0, chosen - 40.0, rejected),
            {"beta": 10.0},
            flags=("SATURATED",),
            comment="Δ = 40 − (−40) = 80: ℓ ≈ e⁻⁸⁰⁰ (0 in float64), gradient ≈ 0",
        ),
        Sample(
            "βΔ = −800",
            (chosen - 40.0, rejected, chosen, rejected - 40.0),
            {"beta": 10.0, "reduction": "sum"},
            flags=("SATURATED",),
            comment="Δ = −80: ℓ ≈ 800 per pair, gradient ∓β",
        ),
        Sample(
            "sequence log-probs −1e4",
            (chosen - 1e4 + 0.7, rejected - 1e4 - 0.4, chosen - 1e4, rejected - 1e4),
            {"beta": 1.0, "reduction": "none"},
            flags=("LONG_SEQUENCES",),
            dtypes=("float64",),
            fd_step=1e-10,
            comment="Δ = 1.1; float32 holds −1e4 to 1e-3, a fifth of Δ's digits: float64 only",
        ),
        Sample(
            "reference log-prob exactly 0",
            (np.array([-0.5, -2.0]), np.array([-3.0, -1.0]), np.array([0.0, -1.0]), np.array([-2.0, 0.0])),
            {"beta": 0.5, "reduction": "none"},
            flags=("CERTAIN",),
        ),
        Sample(
            "one pair",
            (chosen[:1], rejected[:1], chosen[:1] - 0.5, rejected[:1] - 0.25),
            {"beta": 0.1},
            flags=("ONE_PAIR",),
        ),
    ]


def _dpo_errors():
    good = np.array([-1.0, -2.0])
    return [
        ErrorCase(
            "positive policy log-prob (an NLL passed)",
            (np.array([-1.0, 2.5]), good, good, good),
            {"beta": 0.1},
            match=r"'policy_chosen_logps'.*≤ 0.*2\.5 at index 1",
        ),
        ErrorCase(
            "positive reference log-prob",
            (good, good, good, np.array([0.3, -1.0])),
            {"beta": 0.1},
            match=r"'reference_rejected_logps'.*≤ 0.*index 0",
        ),
    ]


def _dpo_known():
    sigma_minus_one = 1.0 / (1.0 + math.e)  # σ(−1)
    return [
        Known(
            "Δ = 2, β = 0.5",
            (np.array([-1.0]), np.array([-3.0]), np.array([-2.0]), np.array([-2.0])),
            {"beta": 0.5},
            values={
                "loss": math.log1p(math.exp(-1.0)),
                "cotangent of 'policy_chosen_logps'": [-0.5 * sigma_minus_one],
                "cotangent of 'policy_rejected_logps'": [0.5 * sigma_minus_one],
            },
            source="by hand: Δ = (−1 + 2) − (−3 + 2) = 2, ℓ = softplus(−βΔ), ḡ± = ∓βσ(−βΔ)",
            rtol=1e-12,
        ),
        Known(
            "policy equals reference, mean of two pairs",
            (np.array([-4.0, -1.0]), np.array([-2.0, -7.0]), np.array([-4.0, -1.0]), np.array([-2.0, -7.0])),
            {"beta": 0.2},
            values={
                "loss": math.log(2.0),
                "cotangent of 'policy_chosen_logps'": [-0.05, -0.05],  # −β·½/B
                "cotangent of 'policy_rejected_logps'": [0.05, 0.05],
            },
            source="by hand: Δ = 0, ℓ = log 2, σ(0) = ½, mean over B = 2",
            rtol=1e-12,
        ),
    ]


def _per_step_dpo_torch(torch, args, kwargs, cotangent):
    """−F.logsigmoid(β[(π⁺ − π_ref⁺) − (π⁻ − π_ref⁻)]), mean; autograd backward."""
    F = torch.nn.functional
    policy_chosen, policy_rejected = (torch.from_numpy(a).requires_grad_() for a in args[:2])
    reference_chosen, reference_rejected = (torch.from_numpy(a) for a in args[2:])
    g = torch.from_numpy(np.asarray(cotangent))
    beta, reduction = kwargs["beta"], kwargs.get("reduction", "mean")

    def step():
        policy_chosen.grad = policy_rejected.grad = None
        margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
        per_pair = -F.logsigmoid(beta * margin)
        loss = per_pair.mean() if reduction == "mean" else per_pair.sum() if reduction == "sum" else per_pair
        loss.backward(g)
        return loss

    return step


def _dpo_bench_sample(rng, rows, cols):
    return Sample("bench", _dpo_pairs(rng, rows * cols, 1.0), {"beta": 0.1})


register(
    OpCases(
        "per_step_dpo_loss",
        dims={"B": (1, 9)},
        random=_dpo_random,
        edges=_dpo_edges,
        errors=_dpo_errors,
        known=_dpo_known,
        notes=DPO_NOTES,
        defaults={"reduction": "mean"},
        bench=Bench(
            make=_dpo_bench_sample,
            torch=_per_step_dpo_torch,
            torch_label="−F.logsigmoid(β·(log-ratio⁺ − log-ratio⁻)), mean; autograd backward",
            # per pair: the softplus's exp(−|u|) and log1p (the backward's sigmoid reuses the exp)
            transcendentals=lambda args, kwargs: 2 * args[0].shape[0],
        ),
    )
)


# ---------------------------------------------------------------------- advantage_weighted_loss

AWL_NOTES = {
    "ZERO_ADVANTAGE": "Â = 0 everywhere: loss 0 and gradient 0 whatever log π",
    "CERTAIN_STEP": "log π = 0 (a step of probability 1): its term is 0, its gradient −Â",
    "SIGN": "a positive advantage raises log π (ḡ = −Â < 0), a negative one lowers it",
    "MC_ADVANTAGES": "advantages k/M − k'/M from mc_step_advantages: exact multiples of 1/M",
}


def _awl_random(rng, N):  # noqa: N803
    log_probs = -rng.exponential(float(rng.choice([0.3, 3.0, 40.0])), size=N) - 1e-3
    if rng.random() < 0.5:
        advantages = rng.uniform(-1.0, 1.0, size=N)
    else:  # Monte-Carlo advantages: differences of success counts over M rollouts
        rollouts = int(rng.integers(1, 9))
        advantages = rng.integers(-rollouts, rollouts + 1, size=N) / rollouts
    return Sample("random", (log_probs, advantages), {"reduction": str(rng.choice(["sum", "mean", "none"]))})


def _awl_edges():
    log_probs = np.log(np.array([0.9, 0.2, 0.55, 0.01]))
    return [
        Sample(
            "zero advantages",
            (log_probs, np.zeros(4)),
            {},
            flags=("ZERO_ADVANTAGE",),
            comment="L = 0, ḡ = 0",
        ),
        Sample(
            "a certain step (log π = 0)",
            (np.array([0.0, -1.5, -0.2]), np.array([0.5, -0.25, 1.0])),
            {"reduction": "none"},
            flags=("CERTAIN_STEP",),
        ),
        Sample(
            "signs of the advantages",
            (log_probs, np.array([1.0, -1.0, 0.5, -0.5])),
            {"reduction": "mean"},
            flags=("SIGN",),
        ),
        Sample(
            "Monte-Carlo advantages from mc_step_advantages",
            (np.array([-2.0, -0.7, -3.1]), np.array([0.25, -0.25, -0.5])),
            {},
            flags=("MC_ADVANTAGES",),
            comment="the advantages of mc_step_advantages' hand example",
        ),
        Sample("one step", (np.array([-0.3]), np.array([0.7])), {"reduction": "mean"}),
    ]


def _awl_errors():
    return [
        ErrorCase(
            "positive log-prob (an NLL passed)",
            (np.array([-0.5, 1.2, -0.1]), np.array([0.1, 0.2, 0.3])),
            {},
            match=r"'log_probs'.*≤ 0.*1\.2 at index 1",
        ),
    ]


def _awl_known():
    return [
        Known(
            "hand computation",
            (np.log(np.array([0.5, 0.25, 1.0])), np.array([0.25, -0.5, 0.75])),
            {},
            values={
                "loss": -0.75 * math.log(2.0),  # 0.25 log 2 − 0.5·2 log 2 = (0.25 − 1) log 2
                "cotangent of 'log_probs'": [-0.25, 0.5, -0.75],  # −Â
            },
            source="by hand: ℓ_i = −Â_i log π_i, ∂L/∂log π_i = −Â_i (the catalog's VJP)",
            rtol=1e-12,
        ),
        Known(
            "mean over three steps",
            (np.array([-1.0, -2.0, -4.0]), np.array([1.0, -0.5, 0.25])),
            {"reduction": "mean"},
            values={"loss": 1.0 / 3.0, "cotangent of 'log_probs'": [-1.0 / 3.0, 0.5 / 3.0, -0.25 / 3.0]},
            source="by hand: ℓ = −Â log π = [1, −1, 1], mean 1/3; ḡ = −Â/N",
            rtol=1e-12,
        ),
    ]


def _advantage_weighted_torch(torch, args, kwargs, cotangent):
    """−(Â · log π), summed; autograd backward."""
    log_probs = torch.from_numpy(args[0]).requires_grad_()
    advantages = torch.from_numpy(args[1])
    g = torch.from_numpy(np.asarray(cotangent))
    reduction = kwargs.get("reduction", "sum")

    def step():
        log_probs.grad = None
        per_step = -(advantages * log_probs)
        loss = per_step.mean() if reduction == "mean" else per_step.sum() if reduction == "sum" else per_step
        loss.backward(g)
        return loss

    return step


def _awl_bench_sample(rng, rows, cols):
    size = rows * cols
    return Sample("bench", (-rng.exponential(3.0, size=size), rng.uniform(-1.0, 1.0, size=size)))


register(
    OpCases(
        "advantage_weighted_loss",
        dims={"N": (1, 12)},
        random=_awl_random,
        edges=_awl_edges,
        errors=_awl_errors,
        known=_awl_known,
        notes=AWL_NOTES,
        defaults={"reduction": "sum"},
        bench=Bench(
            make=_awl_bench_sample,
            torch=_advantage_weighted_torch,
            torch_label="−(Â·log π), sum; autograd backward",
        ),
    )
)

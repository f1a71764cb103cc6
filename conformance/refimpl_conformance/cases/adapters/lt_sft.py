"""Conformance cases for LT-SFT: `lt_sft_mask` and `lt_sft_l1_regularizer`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TIES": "|Δ| tied at the threshold: every tied frozen entry is unfrozen (more than K)",
    "ROUNDS": "a second round: earlier entries are neither candidates nor counted, and stay unfrozen",
    "ALL": "K = N: every entry unfrozen, the threshold is the smallest |Δ|",
    "UNCHANGED": "θ₁ = θ₀ everywhere: Δ = 0, the threshold 0 selects every frozen entry",
    "AT_ZERO": "θ = θ₀ in some entries: the subgradient 0 there",
    "OFFSET": "weights 1e4 + O(1e-3): |θ − θ₀| of nearly equal numbers",
}


# -- lt_sft_mask ---------------------------------------------------------------------------------
def _mask_random(rng, N):  # noqa: N803
    theta0 = rng.standard_normal(N) * float(rng.choice([0.02, 1.0]))
    theta1 = theta0 + rng.standard_normal(N) * float(rng.choice([1e-3, 0.1]))
    previous = rng.random(N) < 0.2 if rng.random() < 0.4 else None
    frozen = N if previous is None else int(N - previous.sum())
    k = int(rng.integers(1, max(frozen, 1) + 1))
    if frozen == 0:
        previous = None
    if rng.integers(0, 3) == 0:  # the budget as a proportion of the N entries instead of a count
        proportion = float(rng.uniform(1.01, max(frozen, 1) + 0.5)) / N
        return Sample("random", (theta0, theta1, previous), {"ft_params_proportion": proportion})
    if k >= 2 and rng.integers(0, 3) == 0:  # the budget spread over two unfreezing rounds
        return Sample("random", (theta0, theta1, previous), {"ft_params_num": k, "n_ft_iterations": 2})
    return Sample("random", (theta0, theta1, previous), {"ft_params_num": k})


def _mask_edges():
    rng = np.random.default_rng(631)
    theta0 = rng.standard_normal(8)
    return [
        Sample(
            "ties at the threshold",
            (np.zeros(5), np.array([0.1, -0.5, 0.3, 0.3, 0.0])),
            {"ft_params_proportion": 0.4},
            flags=("TIES",),
            comment="K = 2, t = 0.3: entries 1, 2, 3 unfrozen",
        ),
        Sample(
            "second round",
            (
                np.zeros(6),
                np.array([0.9, 0.8, 0.1, -0.7, 0.2, 0.05]),
                np.array([1, 1, 0, 0, 0, 0], dtype=bool),
            ),
            {"ft_params_num": 4, "n_ft_iterations": 2},
            flags=("ROUNDS",),
            comment="K = 2 among entries 2..5: 0.7 and 0.2, not the larger 0.9, 0.8 already unfrozen",
        ),
        Sample("K = N", (theta0, theta0 + rng.standard_normal(8)), {"ft_params_num": 8}, flags=("ALL",)),
        Sample("unchanged weights", (theta0, theta0.copy()), {"ft_params_num": 1}, flags=("UNCHANGED",)),
        Sample(
            "offset 1e4",
            (1e4 + np.zeros(6), 1e4 + np.array([1e-3, -2e-3, 5e-4, 3e-3, -1e-4, 0.0])),
            {"ft_params_num": 2},
            flags=("OFFSET",),
            dtypes=("float64",),
        ),
    ]


def _mask_errors():
    zeros = np.zeros(4)
    return [
        ErrorCase("K = 0", (zeros, zeros), {"ft_params_proportion": 0.1}, match="K = 0"),
        ErrorCase(
            "K > frozen",
            (zeros, zeros, np.array([1, 1, 1, 0], dtype=bool)),
            {"ft_params_num": 2},
            match="still-frozen",
        ),
    ]


def _mask_known():
    return [
        Known(
            "ties at the threshold",
            (np.zeros(5), np.array([0.1, -0.5, 0.3, 0.3, 0.0])),
            {"ft_params_proportion": 0.4},
            values={"mask": [False, True, True, True, False], "threshold": 0.3},
            source="by hand: |Δ| = (0.1, 0.5, 0.3, 0.3, 0), K = 2, t = 0.3, |Δ| ≥ t",
        )
    ]


register(
    OpCases(
        "lt_sft_mask",
        dims={"N": (1, 40)},
        random=_mask_random,
        edges=_mask_edges,
        errors=_mask_errors,
        known=_mask_known,
        notes=NOTES,
        defaults={
            "previous_mask": None,
            "ft_params_proportion": 0.01,
            "ft_params_num": None,
            "n_ft_iterations": 1,
        },
    )
)


# -- lt_sft_l1_regularizer -----------------------------------------------------------------------
def _away_from_zero(rng, shape, scale):
    """Differences of random sign with |d| ≥ scale/4: no finite-difference step crosses a kink."""
    magnitude = scale * (0.25 + rng.random(shape))
    return np.where(rng.random(shape) < 0.5, -magnitude, magnitude)


def _l1_random(rng, R, C):  # noqa: N803
    shape = [(R * C,), (R, C), (R, 1, C)][int(rng.integers(0, 3))]
    theta0 = rng.standard_normal(shape) * float(rng.choice([0.05, 1.0]))
    theta = theta0 + _away_from_zero(rng, shape, float(rng.choice([0.01, 0.3])))
    kwargs = {"l1_reg": float(rng.choice([0.0, 0.1, 2.0]))}
    if rng.random() < 0.5:
        kwargs["num_params"] = int(theta.size * int(rng.integers(1, 5)))
    return Sample("random", (theta, theta0), kwargs)


def _l1_edges():
    rng = np.random.default_rng(632)
    theta0 = rng.standard_normal((3, 4))
    step = _away_from_zero(rng, (3, 4), 0.1)
    step[0, :2] = 0.0
    return [
        Sample(
            "known value: λ = 0.3, N_params = 10",
            (np.array([1.0, -2.0, 0.5]), np.array([0.0, 0.0, 0.5])),
            {"l1_reg": 0.3, "num_params": 10},
            flags=("AT_ZERO",),
            fd=False,
        ),
        Sample(
            "θ = θ₀ in two entries", (theta0 + step, theta0), {"l1_reg": 1.0}, flags=("AT_ZERO",), fd=False
        ),
        Sample("λ = 0 (the official default)", (theta0 + _away_from_zero(rng, (3, 4), 0.1), theta0)),
        Sample(
            "offset 1e4",
            (1e4 + _away_from_zero(rng, (5,), 1e-3), np.full(5, 1e4)),
            {"l1_reg": 0.5},
            flags=("OFFSET",),
            dtypes=("float64",),
            fd_step=1e-8,
        ),
    ]


def _l1_errors():
    return [
        ErrorCase(
            "num_params below the entries",
            (np.ones(4), np.zeros(4)),
            {"l1_reg": 1.0, "num_params": 3},
            match="parameter count",
        )
    ]


def _l1_known():
    return [
        Known(
            "λ = 0.3, N_params = 10",
            (np.array([1.0, -2.0, 0.5]), np.array([0.0, 0.0, 0.5])),
            {"l1_reg": 0.3, "num_params": 10},
            values={"penalty": 0.09, "cotangent of 'theta'": [0.03, -0.03, 0.0]},
            source="by hand: 0.3·(1 + 2 + 0)/10; θ̄ = 0.3·sign(θ − θ₀)/10",
            cotangent=np.array(1.0),
        )
    ]


def _l1_torch(torch, args, kwargs, cotangent):
    """l1_reg·Σ|θ − θ₀|/N_params, autograd for θ̄: the official training_step's term."""
    theta = torch.from_numpy(args[0]).requires_grad_()
    theta0 = torch.from_numpy(args[1])
    scale = kwargs.get("l1_reg", 0.0) / (kwargs.get("num_params") or args[0].size)
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        theta.grad = None
        penalty = scale * torch.sum(torch.abs(theta - theta0))
        penalty.backward(g)
        return penalty

    return step


register(
    OpCases(
        "lt_sft_l1_regularizer",
        dims={"R": (1, 6), "C": (1, 7)},
        random=_l1_random,
        edges=_l1_edges,
        errors=_l1_errors,
        known=_l1_known,
        notes=NOTES,
        defaults={"l1_reg": 0.0, "num_params": None},
        bench=Bench(
            sizes={"R": "rows", "C": "cols"},
            kwargs={"l1_reg": 0.1},
            torch=_l1_torch,
            torch_label="l1_reg·torch.sum(torch.abs(theta − theta0))/N, autograd",
        ),
    )
)

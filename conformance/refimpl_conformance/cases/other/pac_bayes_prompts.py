"""Conformance cases for `kl_inverse` and `pac_bayes_prompt_bound`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ZERO_RISK": "q = 0: the q-term is dropped (0 log 0 = 0), kl⁻¹(0, c) = 1 − e^{−c}",
    "ONE_RISK": "q = 1: the answer is 1 exactly, without bisection",
    "ZERO_BUDGET": "c = 0: the answer is q exactly, without bisection",
    "HUGE_BUDGET": "c = 1e3: the answer rounds to 1",
    "TINY": "q, c ~ 1e-300: log(1 − p) must be log1p(−p), or 1 − p rounds to 1 and the bisection stalls",
    "CAPPED": "max_iter below what the tolerance needs: the record says not converged",
    "TOLERANCE": "tol > 0: the bisection stops early, on the bracket width",
}


def _random(rng, N):
    q = rng.uniform(0, 1, size=N) * float(rng.choice([1.0, 0.1]))
    q[rng.random(N) < 0.2] = 0.0
    c = 10 ** rng.uniform(-4, 1, size=N)
    return Sample("random", (q, c), _solver_kwargs(rng))


def _solver_kwargs(rng) -> dict:
    """The bisection's stopping rule: to adjacent floats (the default) or a bracket width,
    with or without a cap on the steps."""
    return {"tol": float(rng.choice([0.0, 1e-9])), "max_iter": [None, 2000][int(rng.integers(2))]}


def _edges():
    return [
        Sample("catalog value kl⁻¹(0.1, 0.05)", (np.array([0.1]), np.array([0.05]))),
        Sample("q = 0", (np.array([0.0, 0.0, 0.0]), np.array([1e-6, 0.5, 5.0])), flags=("ZERO_RISK",)),
        Sample("q = 1", (np.array([1.0, 1.0]), np.array([0.0, 3.0])), flags=("ONE_RISK",)),
        Sample("c = 0", (np.array([0.0, 0.25, 0.9]), np.zeros(3)), flags=("ZERO_BUDGET",)),
        Sample("c = 1e3", (np.array([0.0, 0.5]), np.array([1e3, 1e3])), flags=("HUGE_BUDGET",)),
        Sample(
            "q, c ~ 1e-300",
            (np.array([1e-300, 0.0]), np.array([1e-300, 1e-300])),
            flags=("TINY",),
            dtypes=("float64",),
            comment="1e-300 is 0 in float32",
        ),
        Sample(
            "tol = 1e-6", (np.array([0.1, 0.4]), np.array([0.05, 0.2])), {"tol": 1e-6}, flags=("TOLERANCE",)
        ),
        Sample(
            "max_iter = 5",
            (np.array([0.1, 0.4]), np.array([0.05, 0.2])),
            {"tol": 1e-6, "max_iter": 5},
            flags=("CAPPED",),
        ),
    ]


def _errors():
    return [
        ErrorCase("q > 1", (np.array([1.5]), np.array([0.1])), match=r"'q'.*\[0, 1\]"),
        ErrorCase("q < 0", (np.array([-0.1]), np.array([0.1])), match=r"'q'.*\[0, 1\]"),
        ErrorCase("c < 0", (np.array([0.1]), np.array([-0.1])), match=r"'c'.*>= 0"),
    ]


def _known():
    return [
        Known(
            "kl⁻¹(0.1, 0.05)",
            (np.array([0.1]), np.array([0.05])),
            values={"p": [0.2200786]},
            source="catalog other.md (kl_inverse, known values)",
        ),
        Known(
            "kl⁻¹(0, 1) = 1 − 1/e",
            (np.array([0.0]), np.array([1.0])),
            values={"p": [1 - np.exp(-1.0)]},
            source="by hand: kl(0‖p) = −log(1 − p)",
            rtol=1e-15,
        ),
    ]


register(
    OpCases(
        "kl_inverse",
        dims={"N": (1, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"tol": 0.0, "max_iter": None},
    )
)


# -- pac_bayes_prompt_bound ----------------------------------------------------------------------
BOUND_NOTES = {
    "PADDED": "prompts of different lengths padded with log 1 = 0",
    "ZERO_ERROR": "R̂ = 0: the kl bound uses the q = 0 branch",
    "VACUOUS": "a long, unlikely prompt and few examples: occam/mcallester exceed 1 (not clipped)",
    "ONE_EXAMPLE": "n = 1: 2n − 1 = 1 in McAllester's denominator",
}


def _bound_random(rng, N, T):
    train_error = rng.uniform(0, 0.5, size=N)
    token_log_probs = np.log(rng.uniform(1e-4, 1, size=(N, T)))
    token_log_probs[:, T // 2 :][rng.random((N, T - T // 2)) < 0.3] = 0.0  # padding
    kwargs = {
        "n": int(rng.choice([50, 1000, 50000])),
        "delta": float(rng.choice([0.01, 0.05])),
        "bound": str(rng.choice(["occam", "kl", "mcallester"])),
        **_solver_kwargs(rng),
    }
    return Sample("random", (train_error, token_log_probs), kwargs)


def _bound_edges():
    prompts = np.log(np.array([[0.5, 0.5, 1.0], [0.01, 0.2, 0.3]]))
    errors = np.array([0.1, 0.0])
    long_prompt = np.full((1, 20), np.log(1e-4))
    return [
        *(
            Sample(
                f"{bound}, padded prompts",
                (errors, prompts),
                {"n": 100, "delta": 0.05, "bound": bound},
                flags=("PADDED", "ZERO_ERROR"),
            )
            for bound in ("occam", "kl", "mcallester")
        ),
        *(
            Sample(
                f"{bound}, vacuous",
                (np.array([0.3]), long_prompt),
                {"n": 10, "delta": 0.05, "bound": bound},
                flags=("VACUOUS",),
            )
            for bound in ("occam", "mcallester")
        ),
        Sample(
            "n = 1",
            (np.array([0.0]), prompts[:1]),
            {"n": 1, "delta": 0.1, "bound": "mcallester"},
            flags=("ONE_EXAMPLE",),
        ),
        Sample(
            "CIFAR-10 scale", (np.array([0.023]), prompts[1:]), {"n": 50000, "delta": 0.01, "bound": "kl"}
        ),
    ]


def _bound_errors():
    prompts = np.log(np.array([[0.5, 0.5]]))
    kwargs = {"n": 100, "delta": 0.05, "bound": "kl"}
    return [
        ErrorCase("error > 1", (np.array([1.2]), prompts), kwargs, match=r"'train_error'.*\[0, 1\]"),
        ErrorCase(
            "positive log-probability", (np.array([0.1]), -prompts), kwargs, match=r"'token_log_probs'.*<= 0"
        ),
    ]


def _bound_known():
    prompts = np.log(np.array([[0.5, 0.5]]))  # KL = 2 log 2
    kl_term, log_inverse_delta = 2 * np.log(2.0), np.log(20.0)
    return [
        Known(
            "occam by hand",
            (np.array([0.1]), prompts),
            {"n": 100, "delta": 0.05, "bound": "occam"},
            values={"risk_bound": [0.1 + np.sqrt((kl_term + log_inverse_delta) / 200)]},
            source="by hand",
            rtol=1e-14,
        ),
        Known(
            "mcallester by hand",
            (np.array([0.1]), prompts),
            {"n": 100, "delta": 0.05, "bound": "mcallester"},
            values={"risk_bound": [0.1 + np.sqrt((kl_term + log_inverse_delta + 2) / 199)]},
            source="by hand",
            rtol=1e-14,
        ),
    ]


register(
    OpCases(
        "pac_bayes_prompt_bound",
        dims={"N": (1, 5), "T": (2, 8)},
        random=_bound_random,
        edges=_bound_edges,
        errors=_bound_errors,
        known=_bound_known,
        notes=BOUND_NOTES,
        defaults={"tol": 0.0, "max_iter": None},
    )
)

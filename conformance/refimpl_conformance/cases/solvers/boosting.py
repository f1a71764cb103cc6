"""Conformance cases for `boosting_pseudo_residuals` and `ridge_output_fit` (GBNN)."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "SATURATED": "2yF = ±800: e^{2yF} overflows; the sigmoid form gives 0 or 2y",
    "LARGE_LOGITS": "logits ±1e3: softmax must subtract the row max",
    "PERFECT_FIT": "r = 0: f = 0 and the Newton denominator is 0 (s := 0, no NaN)",
    "RANK_DEFICIENT": "λ = 0 with a repeated feature column: the minimum-norm least-squares weights",
}


def _targets(rng, n, K, loss):
    if loss == "squared":
        return rng.standard_normal((n, K)) * 3
    if loss == "log_exponential":
        y = rng.choice([-1.0, 1.0], size=(n, K))
        y[0], y[-1] = 1.0, -1.0  # both classes in every column: F_0 finite
        return y
    return np.eye(K)[rng.integers(0, K, size=n)]


def _loss_for(rng, K):
    return str(
        rng.choice(
            ["squared", "log_exponential", "multi_class"] if K >= 2 else ["squared", "log_exponential"]
        )
    )


def _random_residuals(rng, n, K):
    loss = _loss_for(rng, K)
    F = rng.standard_normal((n, K)) * float(rng.choice([0.1, 1.0, 5.0]))
    return Sample("random", (_targets(rng, n, K, loss), F), {"loss": loss})


def _edges_residuals():
    return [
        Sample(
            "log-exponential, 2yF = ±800",
            (np.array([[1.0], [-1.0], [1.0], [-1.0]]), np.array([[400.0], [400.0], [-400.0], [-400.0]])),
            {"loss": "log_exponential"},
            flags=("SATURATED",),
            comment="r = [0, −2, 2, 0]",
        ),
        Sample(
            "multi-class, logits ±1e3",
            (np.eye(3), np.array([[1e3, -1e3, 0.0], [0.0, 1e3, 1e3], [-1e3, 0.0, 1e3]])),
            {"loss": "multi_class"},
            flags=("LARGE_LOGITS",),
        ),
        Sample("squared, one row", (np.array([[2.5, -1.0]]), np.array([[0.5, 0.5]]))),
    ]


def _errors_residuals():
    return [
        ErrorCase(
            "label 0 for log_exponential",
            (np.array([[1.0], [0.0]]), np.zeros((2, 1))),
            {"loss": "log_exponential"},
            match=r"'y'.*\{−1, \+1\}",
        ),
        ErrorCase(
            "not one-hot",
            (np.array([[1.0, 1.0], [0.0, 1.0]]), np.zeros((2, 2))),
            {"loss": "multi_class"},
            match=r"'y'.*one-hot",
        ),
        ErrorCase(
            "one class only: F_0 = +inf",
            (np.ones((3, 1)), np.zeros((3, 1))),
            {"loss": "log_exponential"},
            match="one class only in column 0",
        ),
        ErrorCase(
            "multi_class with K = 1",
            (np.ones((2, 1)), np.zeros((2, 1))),
            {"loss": "multi_class"},
            match="K >= 2",
        ),
    ]


def _known_residuals():
    return [
        Known(
            "log-exponential at F = 0",
            (np.array([[1.0], [-1.0], [1.0]]), np.zeros((3, 1))),
            {"loss": "log_exponential"},
            values={"residuals": [[1.0], [-1.0], [1.0]], "initial": [0.5 * np.log(2.0)]},
            source="by hand: 2y/(1 + e⁰) = y; ȳ = 1/3, ½ log((4/3)/(2/3)) = ½ log 2",
        ),
        Known(
            "multi-class at F = 0, K = 4",
            (np.array([[0.0, 1.0, 0.0, 0.0]]), np.zeros((1, 4))),
            {"loss": "multi_class"},
            values={"residuals": [[-0.25, 0.75, -0.25, -0.25]], "initial": [0.0, 0.0, 0.0, 0.0]},
            source="by hand: Y − 1/K",
        ),
    ]


register(
    OpCases(
        "boosting_pseudo_residuals",
        dims={"n": (2, 8), "K": (1, 4)},
        random=_random_residuals,
        edges=_edges_residuals,
        errors=_errors_residuals,
        known=_known_residuals,
        notes=NOTES,
        defaults={"loss": "squared"},
    )
)


def _random_fit(rng, n, J, K):
    loss = _loss_for(rng, K)
    y = _targets(rng, n, K, loss)
    F = rng.standard_normal((n, K))
    r = _pseudo(y, F, loss)
    H = np.tanh(rng.standard_normal((n, J)))
    kwargs = {
        "lam": float(rng.choice([1e-3, 0.1, 1.0])),
        "loss": loss,
        "step": str(rng.choice(["newton", "constant"])),
        "eta": float(rng.choice([1.0, 0.5, 0.1])),
    }
    return Sample("random", (H, r, y, F), kwargs)


def _pseudo(y, F, loss):  # noqa: N803
    import refimpl

    return refimpl.solvers.boosting_pseudo_residuals(y, F, loss=loss)[0]


def _edges_fit():
    rng = np.random.default_rng(3)
    H = rng.standard_normal((6, 2))
    y = np.array([[1.0], [-1.0], [1.0], [1.0], [-1.0], [-1.0]])
    F = rng.standard_normal((6, 1))
    r = _pseudo(y, F, "log_exponential")
    repeated = np.concatenate([H, H[:, :1]], axis=1)
    return [
        Sample("binary Newton step", (H, r, y, F), {"lam": 0.01, "loss": "log_exponential"}),
        Sample(
            "perfect fit: r = 0",
            (H, np.zeros((6, 2)), np.ones((6, 2)), np.ones((6, 2))),
            {"lam": 0.5, "loss": "squared"},
            flags=("PERFECT_FIT",),
        ),
        Sample(
            "multi-class at the optimum: r = 0",
            (H, np.zeros((6, 2)), np.tile([1.0, 0.0], (6, 1)), np.tile([50.0, -50.0], (6, 1))),
            {"lam": 0.5, "loss": "multi_class"},
            flags=("PERFECT_FIT",),
            dtypes=("float64",),
            comment="softmax(±50) = (1, e^{-100}): r is 0 to float64's resolution",
        ),
        Sample(
            "λ = 0, repeated feature",
            (repeated, r, y, F),
            {"lam": 0.0, "loss": "log_exponential", "step": "constant"},
            flags=("RANK_DEFICIENT",),
        ),
    ]


def _errors_fit():
    H, r = np.ones((2, 1)), np.zeros((2, 1))
    return [
        ErrorCase(
            "label 2 for log_exponential",
            (H, r, np.array([[1.0], [2.0]]), r),
            {"lam": 0.1, "loss": "log_exponential"},
            match=r"'y'.*\{−1, \+1\}",
        ),
    ]


def _known_fit():
    return [
        Known(
            "exact ridge-free fit",
            (np.array([[1.0], [2.0]]), np.array([[2.0], [4.0]]), np.array([[2.0], [4.0]]), np.zeros((2, 1))),
            {"lam": 0.0},
            values={"weights": [[2.0]], "block_output": [[2.0], [4.0]], "rho": 1.0, "F_new": [[2.0], [4.0]]},
            source="by hand: r = 2H, squared loss s = 1",
        ),
        Known(
            "ridge shrinkage",
            (np.array([[1.0], [1.0]]), np.array([[3.0], [1.0]]), np.array([[3.0], [1.0]]), np.zeros((2, 1))),
            {"lam": 2.0, "eta": 0.5, "step": "constant"},
            values={"weights": [[1.0]], "block_output": [[1.0], [1.0]], "rho": 0.5, "F_new": [[0.5], [0.5]]},
            source="by hand: v = Σ h r/(Σ h² + λ) = 4/4",
        ),
    ]


register(
    OpCases(
        "ridge_output_fit",
        dims={"n": (3, 8), "J": (1, 3), "K": (1, 3)},
        random=_random_fit,
        edges=_edges_fit,
        errors=_errors_fit,
        known=_known_fit,
        notes=NOTES,
        defaults={"loss": "squared", "step": "newton", "eta": 1.0},
    )
)

"""Conformance cases for `cett` (fast backends, not differentiable), `cett_threshold_search`
and `ppl_target_bisection` (reference-only searches)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "EPS_ZERO": "ε = 0: nothing is pruned, CETT = 0 and sparsity 0",
    "EPS_HUGE": "ε above every contribution norm: CETT = 1, sparsity 1",
    "ZERO_OUTPUT": "a token with h = 0: ‖y‖ = 0 gives CETT 0 (not 0/0), and all its neurons count as pruned",
    "NON_MONOTONE": "contributions 1, −1.5, 3 on one axis: CETT 0.4 at ε = 1.25, 0.2 at ε = 2",
    "TIE": "n_i = ε exactly (powers of two): the strict rule keeps the neuron, inclusive=True prunes it",
    "ZERO_COLUMN": "a neuron with w_i = 0: its norm is 0 < ε, it is pruned and contributes nothing",
}

#: relative gap kept between ε and every contribution norm in drawn samples, so float32
#: rounding of |h|·‖w‖ (~1e-7 relative) cannot move a neuron across the threshold
MARGIN = 1e-3


def _norms(h, w):
    return np.abs(h) * np.sqrt((w * w).sum(axis=0))[None, :]


def _cett_random(rng, T, F, D):  # noqa: N803
    scale = float(rng.choice([0.1, 1.0, 30.0]))
    h = rng.standard_normal((T, F)) * scale
    h[rng.random((T, F)) < 0.2] = 0.0  # ReLU-like exact zeros
    w = rng.standard_normal((D, F))
    values = np.sort(_norms(h, w).ravel())
    # ε in the middle of the widest relative gap among the central norms: no norm near it
    gaps = (values[1:] - values[:-1]) / np.maximum(values[1:], 1e-300)
    k = int(np.argmax(gaps)) if values.size > 1 else 0
    epsilon = (
        0.5 * (values[k] + values[k + 1]) if values.size > 1 and gaps[k] > 4 * MARGIN else 0.5 * values[0]
    )
    return Sample("random", (h, w), {"epsilon": float(epsilon), "inclusive": bool(rng.random() < 0.3)})


def _monotone_example():
    return np.array([[1.0, 1.0, 1.0]]), np.array([[1.0, -1.5, 3.0], [0.0, 0.0, 0.0]])


def _cett_edges():
    rng = np.random.default_rng(172)
    h = np.maximum(rng.standard_normal((4, 6)), 0.0)
    w = rng.standard_normal((3, 6))
    h_zero = h.copy()
    h_zero[1] = 0.0
    w_zero = w.copy()
    w_zero[:, 2] = 0.0
    h_tie = np.array([[0.5, 1.0, 0.25, 2.0]])
    w_tie = np.array([[2.0, 0.0, 4.0, 1.0], [0.0, 1.0, 0.0, 0.0]])  # norms 1, 1, 1, 2
    return [
        Sample("ε = 0", (h, w), {"epsilon": 0.0}, flags=("EPS_ZERO",)),
        Sample("ε above all norms", (h, w), {"epsilon": 1e6}, flags=("EPS_HUGE",)),
        Sample("token with h = 0", (h_zero, w), {"epsilon": 0.5}, flags=("ZERO_OUTPUT",)),
        Sample("zero weight column", (h, w_zero), {"epsilon": 1e-3}, flags=("ZERO_COLUMN",)),
        Sample("non-monotone ε = 1.25", _monotone_example(), {"epsilon": 1.25}, flags=("NON_MONOTONE",)),
        Sample("non-monotone ε = 2", _monotone_example(), {"epsilon": 2.0}, flags=("NON_MONOTONE",)),
        Sample("ties, strict", (h_tie, w_tie), {"epsilon": 1.0}, flags=("TIE",), comment="nothing pruned"),
        Sample(
            "ties, inclusive",
            (h_tie, w_tie),
            {"epsilon": 1.0, "inclusive": True},
            flags=("TIE",),
            comment="three of four pruned: CETT = ‖(2, 1)‖/‖(4, 1)‖",
        ),
    ]


def _cett_known():
    h_tie = np.array([[0.5, 1.0, 0.25, 2.0]])
    w_tie = np.array([[2.0, 0.0, 4.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    return [
        Known(
            "non-monotone example",
            _monotone_example(),
            {"epsilon": 1.25},
            {"cett": [0.4], "sparsity": [1 / 3]},
            source="by hand: |1|/|1 − 1.5 + 3| = 0.4",
        ),
        Known(
            "tie, inclusive",
            (h_tie, w_tie),
            {"epsilon": 1.0, "inclusive": True},
            {"cett": [np.sqrt(5.0) / np.sqrt(17.0)], "sparsity": [0.75]},
            source="by hand: pruned (1, 0) + (0, 1) + (1, 0) = (2, 1), y = (4, 1)",
        ),
    ]


def _cett_torch(torch, args, kwargs, cotangent):
    """n = |h|·‖W‖_col, mask n < ε, ‖(h·mask) @ Wᵀ‖/‖h @ Wᵀ‖ in float64 (forward only)."""
    h, w = (torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in args)
    epsilon, inclusive = kwargs["epsilon"], kwargs.get("inclusive", False)
    dtype = torch.from_numpy(np.asarray(args[0])).dtype

    def step():
        with torch.no_grad():
            norms = h.abs() * w.norm(dim=0)
            pruned = norms <= epsilon if inclusive else norms < epsilon
            y = h @ w.T
            partial = torch.where(pruned, h, 0.0) @ w.T
            norm_y = y.norm(dim=1)
            values = torch.where(norm_y > 0, partial.norm(dim=1) / torch.where(norm_y > 0, norm_y, 1.0), 0.0)
            return values.to(dtype), pruned.double().mean(dim=1).to(dtype)

    return step


def _cett_blas(args, kwargs):
    """The two products h @ Wᵀ (dense and pruned)."""
    h, w = (np.asarray(a) for a in args)

    def step():
        return h @ w.T, h @ w.T

    return step


def _cett_bench(rng, rows, cols):
    h = np.maximum(rng.standard_normal((rows, cols)), 0.0)
    w = rng.standard_normal((512, cols)) / np.sqrt(cols)
    return Sample("bench", (h, w), {"epsilon": 0.05})


register(
    OpCases(
        "cett",
        dims={"T": (1, 5), "F": (1, 8), "D": (1, 4)},
        random=_cett_random,
        edges=_cett_edges,
        notes=NOTES,
        known=_cett_known,
        defaults={"inclusive": False},
        bench=Bench(
            make=_cett_bench,
            torch=_cett_torch,
            torch_label="norms, mask and two float64 matmuls with torch (forward only)",
            blas=_cett_blas,
        ),
    )
)


# -- cett_threshold_search -----------------------------------------------------------------
SEARCH_NOTES = {
    "LEFT_ZERO": "target below the mean CETT at the first visited grid points: left ends at 0; "
    "refused, or the official wrap to the last candidate with wrap_left_zero=True",
    "SMALL_GRID": "n_candidates = 4 with quantile 1: the grid is min…max of the norms",
    "STRIDE": "T·F > n_candidates: the quantile is taken on the strided subsample",
}


def _search_random(rng, T, F, D):  # noqa: N803
    h = np.maximum(rng.standard_normal((T, F)), 0.0) + 0.01 * rng.random((T, F))
    w = rng.standard_normal((D, F))
    kwargs = {
        "target": float(rng.uniform(0.3, 0.9)),
        "n_candidates": int(rng.choice([16, 64, 256])),
        "quantile": float(rng.choice([0.99, 0.9])),
        "wrap_left_zero": bool(rng.random() < 0.3),  # changes the result only where the search ends at 0
    }
    return Sample("random", (h, w), kwargs)


def _search_edges():
    rng = np.random.default_rng(2411)
    h = np.maximum(rng.standard_normal((12, 10)), 0.0) + 0.01
    w = rng.standard_normal((4, 10))
    return [
        Sample(
            "hand grid",
            (np.array([[1.0, 2.0, 4.0]]), np.eye(3)),
            {"target": 0.3, "n_candidates": 4, "quantile": 1.0},
            flags=("SMALL_GRID",),
        ),
        Sample("strided subsample", (h, w), {"target": 0.2, "n_candidates": 16}, flags=("STRIDE",)),
        Sample(
            "left = 0, official wrap",
            (np.array([[1.0, 2.0, 4.0]]), np.eye(3)),
            {"target": 0.1, "n_candidates": 4, "quantile": 1.0, "wrap_left_zero": True},
            flags=("LEFT_ZERO",),
            comment="c(1) = 0.218 > 0.1 at every visited point: thresholds[−1] = 4, CETT 1",
        ),
    ]


def _search_errors():
    return [
        ErrorCase(
            "left = 0 without the flag",
            (np.array([[1.0, 2.0, 4.0]]), np.eye(3)),
            {"target": 0.1, "n_candidates": 4, "quantile": 1.0},
            match="left = 0",
        ),
    ]


register(
    OpCases(
        "cett_threshold_search",
        dims={"T": (1, 6), "F": (2, 8), "D": (1, 4)},
        random=_search_random,
        edges=_search_edges,
        errors=_search_errors,
        notes=SEARCH_NOTES,
        defaults={"n_candidates": 65536, "quantile": 0.99, "wrap_left_zero": False},
        known=lambda: [
            Known(
                "hand grid",
                (np.array([[1.0, 2.0, 4.0]]), np.eye(3)),
                {"target": 0.3, "n_candidates": 4, "quantile": 1.0},
                {"threshold": 1.0, "mean_cett": 1 / np.sqrt(21.0), "iterations": 2},
                source="by hand: grid 1, 2, 3, 4; c(2) = √(5/21) > 0.3 ⇒ right = 1; c(1) ≤ 0.3 ⇒ left = 1",
            )
        ],
    )
)


# -- ppl_target_bisection ------------------------------------------------------------------
BISECTION_NOTES = {
    "LINEAR_PPL": "PPL(c) = 10(1 + 0.03c): the budget 1% is crossed at c = 1/3",
    "ALWAYS_OVER": "every c > 0 exceeds the budget: the result is 0",
    "NEVER_OVER": "PPL constant: the result tends to 1",
    "FINE_TOL": "tol = 1e−6 (the released calc_activation.py)",
    "CAPPED": "max_iter below the steps the tolerance needs: converged = False",
}


def _linear(slope):
    return lambda c: (10.0 * (1.0 + slope * c), 0.9 * c)


def _bisection_random(rng):
    slope = float(rng.uniform(0.012, 0.2))
    kwargs = {
        "p": float(rng.choice([1.0, 2.0, 5.0])),
        "tol": float(rng.choice([1e-3, 1e-6])),
        "max_iter": int(rng.choice([100, 30])),
    }
    return Sample("random", (_linear(slope),), kwargs, dtypes=("float64",))


def _bisection_edges():
    return [
        Sample("crossing at 1/3", (_linear(0.03),), flags=("LINEAR_PPL",), dtypes=("float64",)),
        Sample(
            "always over", (lambda c: (10.0 + 5.0 * (c > 0), c),), flags=("ALWAYS_OVER",), dtypes=("float64",)
        ),
        Sample("never over", (lambda c: (7.0, c),), flags=("NEVER_OVER",), dtypes=("float64",)),
        Sample("tol 1e-6", (_linear(0.03),), {"tol": 1e-6}, flags=("FINE_TOL",), dtypes=("float64",)),
        Sample("max_iter 3", (_linear(0.03),), {"max_iter": 3}, flags=("CAPPED",), dtypes=("float64",)),
    ]


def _bisection_errors():
    return [
        ErrorCase("non-positive perplexity", (lambda c: (0.0, c),), {}, match="ppl > 0"),
    ]


register(
    OpCases(
        "ppl_target_bisection",
        dims={},
        random=_bisection_random,
        edges=_bisection_edges,
        errors=_bisection_errors,
        notes=BISECTION_NOTES,
        defaults={"p": 1.0, "tol": 1e-3, "max_iter": 100},
    )
)

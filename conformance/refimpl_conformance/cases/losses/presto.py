"""Conformance cases for `cumulative_logit_nll` and `presto_penalty`."""

from __future__ import annotations

import math

import numpy as np

from refimpl.losses.presto import crossing_rows

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

# -- cumulative_logit_nll ----------------------------------------------------------------------
NLL_NOTES = {
    "UPPER_TAIL": "η ~ +30: F(η_k) − F(η_{k−1}) as a difference of sigmoids is 1 − 1 in float32 and "
    "keeps 3 digits in float64; F(u)F(−l)(1 − e^{−d}) keeps them all",
    "LOWER_TAIL": "η ~ −40: every cumulative probability underflows float32's digits of 1 − F",
    "CLOSE_THRESHOLDS": "η_k − η_{k−1} = 1e-4: P ≈ f·d, −log P large; 1 − e^{−d} must come from expm1",
    "END_CLASSES": "labels 0 and K − 1 only: one side of the interval is ±∞ (η_{−1}, η_T)",
    "TWO_CLASSES": "K = 2: logistic regression, ℓ = softplus(∓η)",
    "PROPORTIONAL_ODDS": "all β_k equal: the proportional-odds model (never crosses with ordered α)",
}


def _thresholds(rng, T):
    """Increasing intercepts, gaps in [0.3, 2]."""
    return np.cumsum(rng.uniform(0.3, 2.0, size=T)) - rng.uniform(0.0, 2.0 * T)


def _noncrossing_slopes(rng, X, alpha, p, T, spread):
    """β_k = β̄ + δ_k with the deviations δ halved until every row keeps η increasing with a
    margin 0.05 (central differences and float32 need a gap away from the crossing)."""
    common = rng.standard_normal(p)
    deviations = rng.standard_normal((p, T)) * spread
    for _ in range(60):
        beta = common[:, None] + deviations
        eta = alpha + X @ beta
        if not (np.diff(eta, axis=1) < 0.05).any():
            return beta
        deviations = deviations * 0.5
    return np.repeat(common[:, None], T, axis=1)  # proportional odds: the gaps of α


def _nll_random(rng, n, p, T):
    X = rng.standard_normal((n, p)) * float(rng.choice([0.3, 1.0, 2.0]))
    alpha = _thresholds(rng, T)
    beta = _noncrossing_slopes(rng, X, alpha, p, T, float(rng.choice([0.05, 0.3, 1.0])))
    y = rng.integers(0, T + 1, size=n)
    kwargs = {
        "reduction": str(rng.choice(["mean", "sum", "none"])),
        "allow_crossing": bool(rng.choice([False, False, True])),
    }
    return Sample("random", (X, y, alpha, beta), kwargs)


def _nll_edges():
    rng = np.random.default_rng(84)
    X = rng.standard_normal((6, 3))
    y = np.array([0, 1, 2, 3, 1, 2])
    zeros = np.zeros((3, 3))
    # allow_crossing with a crossed row (ℓ = +inf, zero gradient) is tested in
    # tests/test_cumulative_logit_nll.py: the suite's finiteness check refuses +inf outputs
    return [
        Sample(
            "known: zero slopes, α = (−1, 1), the middle class",
            (np.zeros((1, 1)), np.array([1]), np.array([-1.0, 1.0]), np.zeros((1, 2))),
            comment="−log(F(1) − F(−1)) = −log tanh(1/2)",
        ),
        Sample(
            "upper tail",
            (X * 0.1, y, np.array([30.0, 31.0, 33.0]), zeros + 0.2),
            {"reduction": "none"},
            flags=("UPPER_TAIL",),
        ),
        Sample(
            "lower tail",
            (X * 0.1, y, np.array([-44.0, -42.0, -40.0]), zeros - 0.2),
            {"reduction": "sum"},
            flags=("LOWER_TAIL",),
        ),
        Sample(
            "close thresholds",
            (np.zeros((3, 3)), np.array([1, 2, 3]), np.array([0.0, 1e-4, 2e-4]), zeros),
            flags=("CLOSE_THRESHOLDS",),
            dtypes=("float64",),
            fd_step=1e-10,
            comment="float32 keeps 3 digits of d = 1e-4 after the additions; FD steps below the gap",
        ),
        Sample(
            "end classes only",
            (X, np.array([0, 3, 0, 3, 3, 0]), np.array([-1.0, 0.0, 1.0]), np.full((3, 3), 0.4)),
            flags=("END_CLASSES", "PROPORTIONAL_ODDS"),
        ),
        Sample(
            "two classes (logistic regression)",
            (X, np.array([0, 1, 1, 0, 1, 0]), np.array([0.3]), rng.standard_normal((3, 1))),
            flags=("TWO_CLASSES",),
        ),
        Sample(
            "proportional odds",
            (X, y, np.array([-2.0, 0.0, 1.5]), np.repeat(rng.standard_normal((3, 1)), 3, axis=1)),
            {"reduction": "none"},
            flags=("PROPORTIONAL_ODDS",),
        ),
    ]


def _nll_errors():
    X = np.array([[0.0, 1.0], [1.0, -1.0]])
    alpha = np.array([-1.0, 1.0])
    beta = np.array([[0.0, 0.0], [0.0, -3.0]])  # row 0: η = (−1, −2)
    return [
        ErrorCase(
            "label K", (X, np.array([0, 3]), alpha, np.zeros((2, 2))), match=r"'y'.*K = .*3 at index 1"
        ),
        ErrorCase("crossing hyperplanes", (X, np.array([0, 1]), alpha, beta), match=r"cross at row 0"),
    ]


def _nll_known():
    f, p_mid = 1 / (1 + math.exp(-1)) / (1 + math.exp(1)), math.tanh(0.5)  # f(±1), F(1) − F(−1)
    return [
        Known(
            "zero slopes, α = (−1, 1), middle class",
            (np.array([[2.0]]), np.array([1]), np.array([-1.0, 1.0]), np.zeros((1, 2))),
            values={
                "loss": -math.log(p_mid),
                # ∂ℓ/∂η_1 = −f(1)/P, ∂ℓ/∂η_0 = +f(−1)/P; β̄ = x·ᾱ with x = 2
                "cotangent of 'alpha'": [f / p_mid, -f / p_mid],
                "cotangent of 'beta'": [[2 * f / p_mid, -2 * f / p_mid]],
            },
            source="by hand: P = tanh(1/2), f(η) = F(η)F(−η)",
            rtol=1e-14,
        ),
        Known(
            "two classes: logistic regression",
            (np.array([[1.0], [-1.0]]), np.array([0, 1]), np.array([0.5]), np.array([[2.0]])),
            {"reduction": "sum"},
            values={"loss": math.log1p(math.exp(-2.5)) + math.log1p(math.exp(-1.5))},
            source="by hand: ℓ = softplus(−η) for class 0, softplus(η) for class 1; η = 2.5, −1.5",
            rtol=1e-14,
        ),
    ]


def _nll_torch(torch, args, kwargs, cotangent):
    """η = α + Xβ padded with ∓inf; log P = logsigmoid(u) + logsigmoid(−l) + log(1 − e^{−d});
    mean; autograd backward (rows are non-crossing at benchmark scale)."""
    F = torch.nn.functional
    X = torch.from_numpy(args[0])
    y = torch.from_numpy(args[1]).long()
    alpha, beta = (torch.from_numpy(a).requires_grad_() for a in args[2:4])
    reduction = kwargs.get("reduction", "mean")
    g = torch.from_numpy(cotangent)
    infinity = torch.full((X.shape[0], 1), torch.inf, dtype=X.dtype)

    def step():
        alpha.grad = beta.grad = None
        eta = alpha + X @ beta
        padded = torch.cat([-infinity, eta, infinity], dim=1)
        upper = padded.gather(1, (y + 1)[:, None])[:, 0]
        lower = padded.gather(1, y[:, None])[:, 0]
        d = upper - lower
        small = d < math.log(2.0)
        log_gap = torch.where(
            small, torch.log(-torch.expm1(-torch.where(small, d, 1.0))), torch.log1p(-torch.exp(-d))
        )
        per_row = -(F.logsigmoid(upper) + F.logsigmoid(-lower) + log_gap)
        loss = per_row.mean() if reduction == "mean" else per_row.sum() if reduction == "sum" else per_row
        loss.backward(g)
        return loss

    return step


def _nll_make(rng, rows, cols):
    thresholds = 8
    X = rng.standard_normal((rows, cols)) / math.sqrt(cols)
    alpha = np.linspace(-3.0, 3.0, thresholds)
    beta = np.repeat(rng.standard_normal((cols, 1)), thresholds, axis=1)
    beta = beta + 0.01 * rng.standard_normal((cols, thresholds))
    if crossing_rows(X, alpha, beta).any():  # the gaps of α are 0.86 ≫ the spread of δᵀx
        raise RuntimeError("benchmark slopes cross")
    return Sample("bench", (X, rng.integers(0, thresholds + 1, size=rows), alpha, beta))


def _nll_blas(args, kwargs):
    """η = Xβ and the VJP product β̄ = XᵀG."""
    X, beta = args[0], args[3]
    G = np.ones((X.shape[0], beta.shape[1]), dtype=X.dtype)

    def step():
        return X @ beta, X.T @ G

    return step


register(
    OpCases(
        "cumulative_logit_nll",
        dims={"n": (1, 8), "p": (1, 4), "T": (1, 4)},
        random=_nll_random,
        edges=_nll_edges,
        errors=_nll_errors,
        known=_nll_known,
        notes=NLL_NOTES,
        defaults={"reduction": "mean", "allow_crossing": False},
        bench=Bench(
            make=_nll_make,
            torch=_nll_torch,
            torch_label="α + X@β padded ∓inf, gather u and l, F.logsigmoid(u) + F.logsigmoid(−l) + "
            "log(1 − e^{−d}) (expm1/log1p branches), mean; autograd backward",
            # per row: log σ(u), log σ(−l) (exp + log1p each), log(1 − e^{−d}) (exp/expm1 + log),
            # r = 1/expm1(d) reuses that exp; the sigmoids of the backward reuse the first two
            transcendentals=lambda args, kwargs: 6 * args[0].shape[0],
            blas=_nll_blas,
        ),
    )
)


# -- presto_penalty ------------------------------------------------------------------------------
PENALTY_NOTES = {
    "FUSED": "adjacent slopes exactly equal (ψ = 0): sign(0) = 0, which central differences agree with "
    "(each |·| term is even around its kink)",
    "ZERO_SLOPES": "β = 0: the penalty and its subgradient are exactly 0",
    "CONSTANT_FEATURE": "a constant column of X: its SD 0 is replaced by 1 (ordinalNet's xSD[xSD == 0] <- 1)",
    "ONE_THRESHOLD": "T = 1 (K = 2): the lasso λ Σ s_j |β_j| of L1-logistic regression",
}

#: a drawn ψ closer to 0 than this is redrawn: float32 rounding (or an FD step) could flip its sign
KINK_MARGIN = 1e-3


def _away_from_kinks(rng, beta):
    """Redraw slopes until every first difference ψ (and every first slope) is ≥ KINK_MARGIN
    in magnitude: random samples stay off the kinks, which the edges probe exactly."""
    for _ in range(100):
        psi = np.diff(beta, axis=1, prepend=0.0)
        near = np.abs(psi) < KINK_MARGIN
        if not near.any():
            return beta
        beta = np.where(near, beta + rng.standard_normal(beta.shape), beta)
    raise RuntimeError("could not draw slopes away from the kinks")


def _penalty_random(rng, p, T, n):
    beta = _away_from_kinks(rng, rng.standard_normal((p, T)) * float(rng.choice([0.1, 1.0, 10.0])))
    X = rng.standard_normal((n, p)) * rng.uniform(0.2, 5.0, size=p) + rng.uniform(-3, 3, size=p)
    kwargs = {"lam": float(rng.choice([0.0, 0.01, 0.3, 2.0])), "standardize": bool(rng.choice([True, False]))}
    return Sample("random", (beta, X), kwargs)


def _penalty_edges():
    rng = np.random.default_rng(85)
    X = rng.standard_normal((7, 3))
    fused = np.array([[1.0, 1.0, 1.0, 2.0], [-0.5, -0.5, 0.0, 0.0], [0.0, 0.0, 3.0, 3.0]])
    constant = X.copy()
    constant[:, 1] = 4.0
    return [
        Sample(
            "known value",
            (np.array([[1.0, 1.0, 3.0], [-2.0, 0.0, 0.0]]), np.eye(2)),
            {"lam": 0.5, "standardize": False},
            flags=("FUSED",),
            comment="ψ = [[1, 0, 2], [−2, 2, 0]]: 0.5·7 = 3.5",
        ),
        Sample("fused slopes", (fused, X), {"lam": 0.7}, flags=("FUSED",)),
        Sample("zero slopes", (np.zeros((3, 2)), X), {"lam": 1.0}, flags=("ZERO_SLOPES", "FUSED")),
        Sample(
            "a constant feature",
            (rng.standard_normal((3, 3)) + 2.0, constant),
            {"lam": 0.25},
            flags=("CONSTANT_FEATURE",),
        ),
        Sample(
            "one threshold",
            (np.array([[1.5], [-2.0], [0.5]]), X),
            {"lam": 0.1},
            flags=("ONE_THRESHOLD",),
        ),
    ]


def _penalty_known():
    X = np.array([[0.0, 1.0], [2.0, 1.0]])  # column SDs 1 and 0 (→ 1)
    beta = np.array([[2.0, -1.0], [1.0, 1.0]])  # ψ = [[2, −3], [1, 0]]
    return [
        Known(
            "standardized, one constant column",
            (beta, X * np.array([[3.0, 1.0]])),  # SD of column 0: 3
            {"lam": 0.5},
            values={
                "penalty": 0.5 * (3 * (2 + 3) + 1 * (1 + 0)),
                # λ s_j (σ_k − σ_{k+1}): row 0: 1.5·(1 − (−1)), 1.5·(−1); row 1: 0.5·(1 − 0), 0
                "cotangent of 'beta'": [[3.0, -1.5], [0.5, 0.0]],
            },
            source="by hand: s = (3, 1), ψ = [[2, −3], [1, 0]], sign(0) = 0",
            rtol=1e-15,
        )
    ]


def _penalty_torch(torch, args, kwargs, cotangent):
    """ψ = β with its first differences (torch.diff), λ Σ_j s_j Σ_k |ψ_jk|; s from the population
    SD of X (0 → 1) under no_grad; autograd backward (torch.abs: sign(0) = 0)."""
    beta = torch.from_numpy(args[0]).requires_grad_()
    X = torch.from_numpy(args[1])
    lam, standardize = kwargs["lam"], kwargs.get("standardize", True)
    g = torch.from_numpy(cotangent)

    def step():
        beta.grad = None
        with torch.no_grad():
            if standardize:
                scale = X.std(dim=0, correction=0)
                scale = torch.where(scale == 0, torch.ones_like(scale), scale)
            else:
                scale = torch.ones(beta.shape[0], dtype=beta.dtype)
        psi = torch.diff(beta, dim=1, prepend=torch.zeros_like(beta[:, :1]))
        penalty = lam * (scale * psi.abs().sum(dim=1)).sum()
        penalty.backward(g)
        return penalty

    return step


def _penalty_make(rng, rows, cols):
    """A (cols × 16) slope matrix, X of (rows/8 × cols): the statistics of a data set's features."""
    thresholds = 16
    beta = _away_from_kinks(rng, rng.standard_normal((cols, thresholds)))
    X = rng.standard_normal((max(rows // 8, 2), cols))
    return Sample("bench", (beta, X), {"lam": 0.1})


register(
    OpCases(
        "presto_penalty",
        dims={"p": (1, 5), "T": (1, 5), "n": (2, 7)},
        random=_penalty_random,
        edges=_penalty_edges,
        known=_penalty_known,
        notes=PENALTY_NOTES,
        defaults={"standardize": True},
        bench=Bench(
            make=_penalty_make,
            torch=_penalty_torch,
            torch_label="X.std(0, correction=0) (0 → 1) under no_grad, torch.diff(β, prepend=0), "
            "λ Σ s_j Σ|ψ|; autograd backward",
        ),
    )
)

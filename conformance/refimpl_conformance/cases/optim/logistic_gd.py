"""Conformance cases for `logistic_gd_step` and `normalized_logistic_gd_step`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ZERO_MARGIN": "x = 0: every margin is 0 and σ(0) = ½ — a perceptron-style "
    "'m ≤ 0 → 1' weight is off by 2",
    "SEPARATED": "all margins ≫ 0: f and ∇f underflow; the loss-normalized step must stay finite "
    "(log-space weights), the gradient-norm step must keep its unit length",
    "LARGE_STEP": "γ = 1e6: the step approaches the batch perceptron direction",
    "STATIONARY": "Aᵀ(w ⊙ y) = 0 exactly: the gradient-norm step is 0, not 0/0",
    "NEGATIVE_MARGINS": "margins ≪ 0: σ(−m) → 1 via exp(−|m|) without overflow",
}


def _data(rng, n, d):
    data = rng.standard_normal((n, d))
    labels = rng.choice([-1, 1], size=n)
    x = rng.standard_normal(d) * float(rng.choice([0.1, 1.0, 5.0]))
    return data, labels, x


def _random_plain(rng, N, D):
    data, labels, x = _data(rng, N, D)
    return Sample("random", (data, labels, x), {"lr": float(10 ** rng.uniform(-2, 3))})


def _random_normalized(rng, N, D):
    data, labels, x = _data(rng, N, D)
    kwargs = {"lr": float(10 ** rng.uniform(-2, 2)), "normalizer": str(rng.choice(["loss", "grad_norm"]))}
    return Sample("random", (data, labels, x), kwargs)


def _edge_inputs():
    rng = np.random.default_rng(5)
    data = rng.standard_normal((6, 3))
    labels = np.array([1, -1, 1, 1, -1, -1])
    separator = np.array([1.0, -2.0, 0.5])
    separated_labels = np.where(data @ separator > 0, 1, -1)
    return data, labels, separator, separated_labels


def _plain_edges():
    data, labels, separator, separated = _edge_inputs()
    return [
        Sample("x = 0", (data, labels, np.zeros(3)), {"lr": 1.0}, flags=("ZERO_MARGIN",)),
        Sample("γ = 0", (data, labels, separator), {"lr": 0.0}, comment="x unchanged"),
        Sample("γ = 1e6", (data, labels, 1e-3 * separator), {"lr": 1e6}, flags=("LARGE_STEP",)),
        Sample(
            "separated, margins ≫ 0",
            (data, separated, 300.0 * separator),
            {"lr": 1.0},
            flags=("SEPARATED",),
            comment="∇f underflows toward 0: x barely moves",
        ),
        Sample(
            "margins ≪ 0", (data, -separated, 300.0 * separator), {"lr": 0.5}, flags=("NEGATIVE_MARGINS",)
        ),
        Sample("one example", (np.array([[2.0, -1.0]]), np.array([-1]), np.array([0.3, 0.4])), {"lr": 3.0}),
    ]


def _normalized_edges():
    data, labels, separator, separated = _edge_inputs()
    out = []
    for normalizer in ("loss", "grad_norm"):
        kw = {"normalizer": normalizer}
        out += [
            Sample(
                f"x = 0 ({normalizer})",
                (data, labels, np.zeros(3)),
                {"lr": 1.0, **kw},
                flags=("ZERO_MARGIN",),
            ),
            Sample(
                f"separated, f underflows ({normalizer})",
                (data, separated, 1e4 * separator),
                {"lr": 1.0, **kw},
                flags=("SEPARATED",),
                comment="margins up to ~1e4: exp(−m) is 0 in float64, the step is still O(γ)",
            ),
            Sample(
                f"margins ≪ 0 ({normalizer})",
                (data, -separated, 300.0 * separator),
                {"lr": 0.5, **kw},
                flags=("NEGATIVE_MARGINS",),
            ),
        ]
    out.append(
        Sample(
            "stationary point (grad_norm)",
            (np.array([[1.0, 2.0], [1.0, 2.0]]), np.array([1, -1]), np.zeros(2)),
            {"lr": 1.0, "normalizer": "grad_norm"},
            flags=("STATIONARY",),
            comment="σ(0)(a − a)/2 = 0: x stays",
        )
    )
    return out


def _errors(kwargs):
    def errors():
        return [
            ErrorCase(
                "label 0",
                (np.ones((2, 2)), np.array([1, 0]), np.zeros(2)),
                {"lr": 1.0, **kwargs},
                match="labels",
            ),
        ]

    return errors


def _plain_known():
    # x = 0: σ(0) = ½, ∇f = −(1/2)·½·(y₁a₁ + y₂a₂) = −¼·((1, 0) − (0, 1)) = (−¼, ¼); γ = 2
    return [
        Known(
            "x = 0, two points",
            (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1, -1]), np.zeros(2)),
            {"lr": 2.0},
            {"x": np.array([0.5, -0.5])},
            source="by hand: x' = γ·¼·(y₁a₁ + y₂a₂)",
        ),
        Known(
            "one point, margin log 3",
            (np.array([[1.0]]), np.array([1]), np.array([np.log(3.0)])),
            {"lr": 4.0},
            {"x": np.array([np.log(3.0) + 1.0])},
            source="by hand: σ(−log 3) = 1/4, x' = log 3 + 4·¼",
        ),
    ]


def _normalized_known():
    log3 = np.log(3.0)
    return [
        Known(
            "one point, margin log 3, f-normalized",
            (np.array([[1.0]]), np.array([1]), np.array([log3])),
            {"lr": 1.0, "normalizer": "loss"},
            # σ(−log 3) = 1/4, f = log(1 + 1/3) = log(4/3)
            {"x": np.array([log3 + 0.25 / np.log(4.0 / 3.0)])},
            source="by hand: x' = x + γ σ(−m)/softplus(−m)",
        ),
        Known(
            "x = 0, two orthogonal points, grad-normalized",
            (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1, -1]), np.zeros(2)),
            {"lr": 2.0, "normalizer": "grad_norm"},
            {"x": np.array([np.sqrt(2.0), -np.sqrt(2.0)])},
            source="by hand: direction (1, −1)/√2, length γ = 2",
        ),
    ]


def _bench_sample(kwargs):
    def make(rng, rows, cols):
        data = rng.standard_normal((rows, cols))
        return Sample(
            "bench", (data, rng.choice([-1, 1], size=rows), rng.standard_normal(cols) * 0.1), kwargs
        )

    return make


def _torch_plain(torch, args, kwargs, cotangent):
    data, labels, x = (torch.from_numpy(np.asarray(a)) for a in args)
    lr = kwargs["lr"]

    def step():
        with torch.no_grad():
            y = labels.to(x.dtype)
            m = y * (data @ x)
            grad = -(data.T @ (torch.sigmoid(-m) * y)) / data.shape[0]
            return x - lr * grad

    return step


def _torch_normalized(torch, args, kwargs, cotangent):
    data, labels, x = (torch.from_numpy(np.asarray(a)) for a in args)
    lr, normalizer = kwargs["lr"], kwargs["normalizer"]

    def step():
        with torch.no_grad():
            y = labels.to(x.dtype)
            m = y * (data @ x)
            log_w = torch.nn.functional.logsigmoid(-m)
            if normalizer == "loss":
                shift = torch.logsumexp(torch.log(torch.nn.functional.softplus(-m)), 0)
            else:
                shift = log_w.max()
            v = data.T @ (torch.exp(log_w - shift) * y)
            if normalizer == "grad_norm":
                v = v / torch.linalg.vector_norm(v)
            return x + lr * v

    return step


def _blas(args, kwargs):
    data, x = args[0], args[2]
    c = np.ones(data.shape[0], dtype=data.dtype)

    def step():
        np.dot(data, x)
        np.dot(data.T, c)

    return step


register(
    OpCases(
        "logistic_gd_step",
        dims={"N": (1, 6), "D": (1, 5)},
        random=_random_plain,
        edges=_plain_edges,
        errors=_errors({}),
        notes=NOTES,
        known=_plain_known,
        defaults={},
        bench=Bench(
            make=_bench_sample({"lr": 1.0}),
            torch=_torch_plain,
            torch_label="m = y·(Ax); x + γ·Aᵀ(sigmoid(−m)·y)/n (no autograd: an optimizer step)",
            transcendentals=lambda args, kwargs: args[0].shape[0],
            blas=_blas,
        ),
    )
)

register(
    OpCases(
        "normalized_logistic_gd_step",
        dims={"N": (1, 6), "D": (1, 5)},
        random=_random_normalized,
        edges=_normalized_edges,
        errors=_errors({"normalizer": "loss"}),
        notes=NOTES,
        known=_normalized_known,
        defaults={},
        bench=Bench(
            make=_bench_sample({"lr": 1.0, "normalizer": "loss"}),
            torch=_torch_normalized,
            torch_label="log-space weights: logsigmoid(−m) − logsumexp(log softplus(−m)); x + γ·Aᵀ(ω·y)",
            transcendentals=lambda args, kwargs: 6 * args[0].shape[0],
            blas=_blas,
        ),
    )
)

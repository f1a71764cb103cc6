"""Conformance cases for `wdr_loss` (EQ-Net weight distribution regularization)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TWO_ENTRIES": "n = 2: z = ±1/√2 whatever the weights, so K = 1/4, S = 0 and the gradient is 0",
    "OFFSET": "weights 1e4 + O(1): the one-pass variance E[W²] − μ² cancels; two-pass does not",
    "SCALE": "weights ×1e6 or ×1e-6: the loss is scale invariant, the gradient scales as 1/s",
    "EXCLUDED_FIRST": "a constant first tensor is allowed when left out, and gets a zero gradient",
    "SYMMETRIC": "a symmetric tensor: S = 0 exactly, only the kurtosis term acts",
    "OUTLIER": "one weight far out: K ≈ n, a large kurtosis term",
    "LARGE_TENSOR": "a tensor of 20 000 entries: float32 running sums of z⁴ drift; pairwise/float64 do not",
}


def _tensor(rng, n):
    kind = int(rng.integers(0, 4))
    if kind == 0:
        values = rng.standard_normal(n)
    elif kind == 1:
        values = rng.uniform(-1.0, 1.0, n)
    elif kind == 2:
        values = rng.exponential(1.0, n)  # skewed
    else:
        values = rng.laplace(0.0, 1.0, n)  # heavy tailed
    return values * float(rng.choice([0.02, 1.0, 30.0])) + float(rng.choice([0.0, 0.0, 3.0]))


def _random(rng, L, N):  # noqa: N803
    sizes = rng.integers(2, N + 1, size=L)
    w = np.concatenate([_tensor(rng, int(n)) for n in sizes])
    kwargs = {
        "kurt_rate": float(rng.choice([0.015, 0.5, 0.0])),
        "skew_rate": float(rng.choice([1.0, 0.3, 0.0])),
        "kurtosis_target": float(rng.choice([1.8, 3.0])),
        "exclude_first": bool(L >= 2 and rng.random() < 0.7),
    }
    return Sample("random", (w, sizes), kwargs)


def _edges():
    rng = np.random.default_rng(5)
    w = np.concatenate([rng.standard_normal(6), rng.exponential(1.0, 9), rng.laplace(0.0, 1.0, 7)])
    sizes = np.array([6, 9, 7])
    outlier = rng.uniform(-1.0, 1.0, 12)
    outlier[4] = 40.0
    return [
        Sample(
            "n = 2 tensors",
            (np.array([0.0, 1.0, -3.0, 5.0]), np.array([2, 2])),
            {"exclude_first": False},
            flags=("TWO_ENTRIES",),
        ),
        Sample(
            "offset 1e4",
            (w + 1e4, sizes),
            {"kurt_rate": 0.5},
            flags=("OFFSET",),
            dtypes=("float64",),
            fd_step=1e-8,
            comment="float32 rounds 1e4 + O(1) to 1e-3; the FD step is 1e-4 absolute: the mean of weights "
            "~1e4 is off by ~1e-12, which a step of 1e-6 would turn into 1e-6 relative noise",
        ),
        Sample("scale 1e6", (w * 1e6, sizes), {"kurt_rate": 0.5}, flags=("SCALE",)),
        Sample(
            "scale 1e-6",
            (w * 1e-6, sizes),
            {"kurt_rate": 0.5},
            flags=("SCALE",),
            fd_step=1e-12,
            comment="the step is fd_step·max(1, |w|): 1e-12 absolute, 1e-6 of the weights",
        ),
        Sample(
            "constant first tensor, excluded",
            (np.concatenate([np.full(4, 0.25), w[6:]]), np.array([4, 9, 7])),
            {},
            flags=("EXCLUDED_FIRST",),
        ),
        Sample(
            "symmetric tensor",
            (np.array([9.0, -2.0, -1.0, 0.5, 1.0, 2.0, -0.5]), np.array([1, 6])),
            {"kurt_rate": 1.0},
            flags=("SYMMETRIC", "EXCLUDED_FIRST"),
        ),
        Sample("one outlier", (outlier, np.array([12])), {"exclude_first": False}, flags=("OUTLIER",)),
        Sample(
            "20 000 entries",
            (np.concatenate([rng.standard_normal(3), rng.laplace(0.0, 1.0, 20_000)]), np.array([3, 20_000])),
            {"kurt_rate": 0.5},
            flags=("LARGE_TENSOR",),
            fd=False,
            comment="the dot-product FD test on 20 000 weights adds nothing the small samples do not",
        ),
    ]


def _known():
    c = 2.0 / (3.0 * np.sqrt(3.0))  # S of [0, 0, 3]: d = (−1, −1, 2), s = √3
    return [
        Known(
            "[0, 1]: K = 1/4, S = 0",
            (np.array([0.0, 1.0]), np.array([2])),
            {"exclude_first": False},
            values={"loss": 0.015 * (0.25 - 1.8) ** 2, "cotangent of 'w'": [0.0, 0.0]},
            source="by hand: z = ±1/√2, K = mean z⁴ = 1/4; for n = 2 K and S do not move",
            atol=1e-15,
        ),
        Known(
            "[0, 0, 3]: K = 2/3, S = 2/(3√3)",
            (np.array([0.0, 0.0, 3.0]), np.array([3])),
            {"exclude_first": False},
            values={"loss": 0.015 * (2.0 / 3.0 - 1.8) ** 2 + c * c, "cotangent of 'w'": [0.0, 0.0, 0.0]},
            source="by hand: z = (−1, −1, 2)/√3, z⁴ = (1, 1, 16)/9, z³ = (−1, −1, 8)/(3√3); two equal "
            "entries make S maximal among n = 3 shapes, a stationary point (zero gradient)",
            atol=1e-15,
        ),
        Known(
            "first tensor left out",
            (np.array([5.0, -7.0, 0.0, 1.0]), np.array([2, 2])),
            {"kurt_rate": 2.0, "kurtosis_target": 0.25},
            values={"loss": 0.0},
            source="by hand: only [0, 1] counts, K = 1/4 = K*, S = 0",
            atol=1e-15,
        ),
    ]


def _errors():
    w = np.array([0.0, 1.0, 2.0, 4.0, 0.5])
    return [
        ErrorCase("sizes add up to 4 ≠ 5", (w, np.array([2, 2])), {}, match="add up to the length of w"),
        ErrorCase("included tensor with n = 1", (w, np.array([2, 2, 1])), {}, match="n >= 2"),
        ErrorCase(
            "constant included tensor",
            (np.array([0.0, 1.0, 3.0, 3.0]), np.array([2, 2])),
            {},
            match="constant",
        ),
        ErrorCase("one tensor, exclude_first=True", (w, np.array([5])), {}, match="at least two tensors"),
    ]


def _bench(rng, rows, cols):
    layers = 16
    n = max(2, rows * cols // layers)
    w = np.concatenate([rng.standard_normal(n) * 0.05 for _ in range(layers)])
    return Sample("bench", (w, np.full(layers, n)), {})


def _wdr_torch(torch, args, kwargs, cotangent):
    """torch.split; torch.std (unbiased); mean(((W − μ)/s)⁴) and ³; mean over layers; autograd."""
    w = torch.from_numpy(args[0]).requires_grad_()
    sizes = [int(n) for n in args[1]]
    g = torch.from_numpy(np.asarray(cotangent))
    kurt_rate, skew_rate = kwargs.get("kurt_rate", 0.015), kwargs.get("skew_rate", 1.0)
    target, first = kwargs.get("kurtosis_target", 1.8), 1 if kwargs.get("exclude_first", True) else 0

    def step():
        w.grad = None
        kurtosis_terms, skewness_terms = [], []
        for weights in torch.split(w, sizes)[first:]:
            z = (weights - weights.mean()) / weights.std()
            kurtosis_terms.append((torch.mean(z**4) - target) ** 2)
            skewness_terms.append(torch.mean(z**3) ** 2)
        loss = kurt_rate * torch.stack(kurtosis_terms).mean() + skew_rate * torch.stack(skewness_terms).mean()
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "wdr_loss",
        dims={"L": (1, 4), "N": (2, 9)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"kurt_rate": 0.015, "skew_rate": 1.0, "kurtosis_target": 1.8, "exclude_first": True},
        bench=Bench(
            make=_bench,
            torch=_wdr_torch,
            torch_label="torch.split, unbiased torch.std, mean of z⁴ and z³ per tensor, mean over layers; "
            "autograd backward",
        ),
    )
)

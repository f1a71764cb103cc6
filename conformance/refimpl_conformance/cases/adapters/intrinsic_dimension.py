"""Conformance cases for `fwht`, `fastfood_projection`, `random_subspace_reparam` and `said_reparam`."""

from __future__ import annotations

import math

import numpy as np

from refimpl.adapters.intrinsic_dimension import fastfood_length

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

# -- fwht -----------------------------------------------------------------------------------------
FWHT_NOTES = {
    "LENGTH_ONE": "L = 1: H = [1], the identity (a loop that starts at h = 1 must do nothing)",
    "SINGLE_VECTOR": "x of shape (L,): no batch axis",
    "BATCH_DIMS": "x with several leading axes: each vector is transformed on its own",
    "CONSTANT": "a constant vector: all the mass goes to y_0 = L·c, every other output cancels to 0",
    "BASIS": "a basis vector e_j: y is column j of H, signs (−1)^{popcount(i AND j)} (the ordering)",
    "CANCELLATION": "1e4 + O(1) entries: y_0 ≈ 1e4·L while the others are O(1) differences of "
    "large partial sums (float32 accumulation loses them; float64 keeps them)",
    "LONG": "L = 2^12: twelve stages, the blocked and the strided passes of a fast kernel both run",
}


def _fwht_random(rng, T, m):  # noqa: N803 - dimension names as in the op's specs
    length = 2**m
    shape = [(length,), (T, length), (2, T, length)][int(rng.integers(0, 3))]
    x = rng.standard_normal(shape) * float(rng.choice([1e-3, 1.0, 50.0]))
    return Sample("random", (x,))


def _fwht_edges():
    rng = np.random.default_rng(3)
    basis = np.zeros(8)
    basis[5] = 1.0
    return [
        Sample("known value: [1, 2, 3, 4] -> [10, −2, −4, 0]", (np.array([1.0, 2.0, 3.0, 4.0]),)),
        Sample("L = 1", (rng.standard_normal((3, 1)),), flags=("LENGTH_ONE",)),
        Sample("single vector L = 16", (rng.standard_normal(16),), flags=("SINGLE_VECTOR",)),
        Sample("batch dims (2, 3, 8)", (rng.standard_normal((2, 3, 8)),), flags=("BATCH_DIMS",)),
        Sample("constant vector", (np.full((2, 8), 0.75),), flags=("CONSTANT",)),
        Sample("basis vector e_5 (L = 8)", (basis,), flags=("BASIS",)),
        Sample(
            "offset 1e4",
            (1e4 + rng.standard_normal((2, 32)),),
            flags=("CANCELLATION",),
            comment="float32 inputs are the rounded values; the outputs 1..L−1 are O(√L) sums of them",
        ),
        Sample("L = 4096", (rng.standard_normal((2, 4096)),), flags=("LONG",), fd=False),
    ]


def _fwht_errors():
    return [
        ErrorCase("L = 3", (np.ones((2, 3)),), match="length L = 2"),
        ErrorCase("L = 6", (np.ones(6),), match="got length 6"),
    ]


def _power_of_two_at_least(n):
    return 1 << max(int(n) - 1, 0).bit_length()


def _fwht_bench(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((rows, _power_of_two_at_least(cols))),))


def _torch_hadamard(torch, x):
    """H x along the last axis with reshapes and adds (the same butterflies)."""
    length = x.shape[-1]
    lead = tuple(x.shape[:-1])
    half = 1
    y = x
    while half < length:
        pairs = y.reshape(*lead, length // (2 * half), 2, half)
        a, b = pairs[..., 0, :], pairs[..., 1, :]
        y = torch.stack((a + b, a - b), dim=-2).reshape(*lead, length)
        half *= 2
    return y


def _fwht_torch(torch, args, kwargs, cotangent):
    """The unnormalized FWHT as reshapes and adds, backward by autograd."""
    x = torch.from_numpy(args[0]).requires_grad_()
    g_y = torch.from_numpy(cotangent)

    def step():
        x.grad = None
        y = _torch_hadamard(torch, x)
        y.backward(g_y)
        return y

    return step


register(
    OpCases(
        "fwht",
        dims={"T": (1, 4), "m": (0, 5)},
        random=_fwht_random,
        edges=_fwht_edges,
        errors=_fwht_errors,
        notes=FWHT_NOTES,
        defaults={},
        bench=Bench(
            make=_fwht_bench,
            torch=_fwht_torch,
            torch_label="the FWHT as torch reshapes and adds (log₂ L stacked butterflies), autograd backward",
        ),
    )
)


# -- fastfood_projection -------------------------------------------------------------------------
FASTFOOD_NOTES = {
    "D_ONE": "D = 1: L = 2^0 = 1, both transforms are the identity and c = |G_0|",
    "NO_TRUNCATION": "D = L (a power of two): nothing is cut from the output",
    "TRUNCATION": "D < L: the adjoint must pad the cotangent with L − D zeros (Sᵀ)",
    "NO_PADDING": "d = L: x fills the whole transform (Eᵀ keeps everything)",
    "PERMUTATION": "a permutation far from the identity: the adjoint scatters (u[Π] = v), a gather "
    "by Π there (instead of by Π⁻¹) is wrong",
    "SMALL_G": "G with a tiny entry: c depends on Σ G², not on the entries one by one",
}


def _fastfood_inputs(rng, d, D):  # noqa: N803
    length = fastfood_length(D)
    d = min(d, length)
    B = rng.choice(np.array([-1, 1]), size=length)  # noqa: N806
    Pi = rng.permutation(length)  # noqa: N806
    G = rng.standard_normal(length)  # noqa: N806
    x = rng.standard_normal(d)
    return x, B, Pi, G


def _fastfood_random(rng, d, D):  # noqa: N803
    x, B, Pi, G = _fastfood_inputs(rng, d, D)  # noqa: N806
    return Sample("random", (x * float(rng.choice([0.01, 1.0, 100.0])), B, Pi, G), {"D": D})


def _fastfood_edges():
    rng = np.random.default_rng(5)
    samples = [
        Sample(
            "known value: x = [1, 2], B = [1, −1], Π = [1, 0], G = [1, 2]",
            (np.array([1.0, 2.0]), np.array([1, -1]), np.array([1, 0]), np.array([1.0, 2.0])),
            {"D": 2},
            comment="y = [1, 5]/√10",
        ),
    ]
    x, B, Pi, G = _fastfood_inputs(rng, 1, 1)  # noqa: N806
    samples.append(Sample("D = 1 (L = 1)", (x, B, Pi, G), {"D": 1}, flags=("D_ONE",)))
    x, B, Pi, G = _fastfood_inputs(rng, 3, 8)  # noqa: N806
    samples.append(Sample("D = L = 8, d = 3", (x, B, Pi, G), {"D": 8}, flags=("NO_TRUNCATION",)))
    x, B, Pi, G = _fastfood_inputs(rng, 4, 5)  # noqa: N806
    samples.append(Sample("D = 5 (L = 8), d = 4", (x, B, Pi, G), {"D": 5}, flags=("TRUNCATION",)))
    x, B, Pi, G = _fastfood_inputs(rng, 16, 9)  # noqa: N806
    samples.append(Sample("d = L = 16, D = 9", (x, B, Pi, G), {"D": 9}, flags=("NO_PADDING", "TRUNCATION")))
    x, B, _, G = _fastfood_inputs(rng, 5, 16)  # noqa: N806
    reversal = np.arange(16)[::-1].copy()
    cycle = np.roll(np.arange(16), 3)
    samples.append(Sample("Π = reversal", (x, B, reversal, G), {"D": 13}, flags=("PERMUTATION",)))
    samples.append(Sample("Π = cyclic shift by 3", (x, B, cycle, G), {"D": 16}, flags=("PERMUTATION",)))
    G_small = G.copy()  # noqa: N806
    G_small[:15] *= 1e-6
    samples.append(Sample("G tiny but one entry", (x, B, cycle, G_small), {"D": 11}, flags=("SMALL_G",)))
    x, B, Pi, G = _fastfood_inputs(rng, 40, 1000)  # noqa: N806
    samples.append(Sample("D = 1000 (L = 1024), d = 40", (x, B, Pi, G), {"D": 1000}, fd=False))
    return samples


def _fastfood_errors():
    rng = np.random.default_rng(6)
    x, B, Pi, G = _fastfood_inputs(rng, 3, 5)  # noqa: N806  (L = 8)
    repeated = Pi.copy()
    repeated[1] = repeated[0]
    zero_sign = B.copy()
    zero_sign[2] = 0
    return [
        ErrorCase("L = 8 for D = 4", (x, B, Pi, G), {"D": 4}, match="L = 2\\^⌈log₂ D⌉ = 4"),
        ErrorCase("L = 8 for D = 9", (x, B, Pi, G), {"D": 9}, match="argument 'B'"),
        ErrorCase("d = 9 > L = 8", (rng.standard_normal(9), B, Pi, G), {"D": 5}, match="at most L = 8"),
        ErrorCase("a sign 0", (x, zero_sign, Pi, G), {"D": 5}, match="random signs"),
        ErrorCase("Π not a permutation", (x, B, repeated, G), {"D": 5}, match="a permutation of 0"),
        ErrorCase("G = 0", (x, B, Pi, np.zeros(8)), {"D": 5}, match="Σ G_i² > 0"),
    ]


def _fastfood_bench(rng, rows, cols):
    D = rows * cols  # noqa: N806 - the number of parameters
    x, B, Pi, G = _fastfood_inputs(rng, cols, D)  # noqa: N806
    return Sample("bench", (x, B, Pi, G), {"D": D})


def _fastfood_torch(torch, args, kwargs, cotangent):
    """fastfood_torched of the official code with the FWHT as reshapes and adds; autograd
    differentiates the unnormalized transform, so its backward is the true adjoint."""
    x = torch.from_numpy(args[0]).requires_grad_()
    B, Pi, G = (torch.from_numpy(a) for a in args[1:])  # noqa: N806
    D = kwargs["D"]  # noqa: N806
    length = B.shape[0]
    B = B.to(x.dtype)  # noqa: N806
    c = math.sqrt(length * float((G.double() ** 2).sum())) * math.sqrt(D / length)
    g_y = torch.from_numpy(cotangent)

    def step():
        x.grad = None
        padded = torch.nn.functional.pad(x, (0, length - x.shape[0]))
        mixed = _torch_hadamard(torch, padded * B)
        y = _torch_hadamard(torch, mixed[Pi] * G)[:D] / c
        y.backward(g_y)
        return y

    return step


@transcribes("fastfood-hadamard-backward-over-sqrt-l", outputs=("y",))
def _official_fastfood(x, B, Pi, G, *, D, dtype):  # noqa: N803
    """fastfood_torched's forward (the paper's; the deviation is in the backward, which the
    example records), in the dtype of the run: a port that keeps the official ``.float()`` casts
    differs in float64 by float32 rounding, which is not what this deviation is about."""
    length = B.shape[0]
    work = np.zeros(length, dtype=dtype)
    work[: x.shape[0]] = x
    work = work * B.astype(dtype)
    for step in range(2):
        half = 1
        while half < length:
            pairs = work.reshape(length // (2 * half), 2, half)
            work = np.stack((pairs[:, 0] + pairs[:, 1], pairs[:, 0] - pairs[:, 1]), axis=1).reshape(length)
            half *= 2
        if step == 0:
            work = work[Pi] * G.astype(dtype)
    divisor = math.sqrt(length * float(np.sum(np.square(G.astype(np.float64)))))
    return {"y": (work[:D] / (divisor * math.sqrt(D / length))).astype(dtype)}


register(
    OpCases(
        "fastfood_projection",
        dims={"d": (1, 9), "D": (1, 17)},
        random=_fastfood_random,
        edges=_fastfood_edges,
        errors=_fastfood_errors,
        notes=FASTFOOD_NOTES,
        defaults={},
        bench=Bench(
            make=_fastfood_bench,
            torch=_fastfood_torch,
            torch_label="the official fastfood_torched with the FWHT as torch reshapes and adds, "
            "autograd backward (the true adjoint)",
        ),
    )
)


# -- random_subspace_reparam ---------------------------------------------------------------------
SUBSPACE_NOTES = {
    "ZERO_INIT": "θ_d = 0 (the initialization): θ = θ_0 exactly, and θ̄_d = Pᵀḡ still flows",
    "ONE_DIRECTION": "d = 1: P is a single column",
    "WIDE": "d > D: more intrinsic coordinates than parameters (P is wide)",
    "UNIT_COLUMNS": "P with unit-length columns (Li et al.'s normalization)",
}


def _subspace_random(rng, D, d):  # noqa: N803
    theta0 = rng.standard_normal(D)
    P = rng.standard_normal((D, d)) * float(rng.choice([0.01, 1.0]))  # noqa: N806
    theta_d = rng.standard_normal(d) * float(rng.choice([0.1, 1.0, 10.0]))
    return Sample("random", (theta0, P, theta_d))


def _subspace_edges():
    rng = np.random.default_rng(7)
    theta0 = rng.standard_normal(6)
    P = rng.standard_normal((6, 3))  # noqa: N806
    return [
        Sample("θ_d = 0", (theta0, P, np.zeros(3)), flags=("ZERO_INIT",)),
        Sample("d = 1", (theta0, P[:, :1], np.array([0.7])), flags=("ONE_DIRECTION",)),
        Sample(
            "d = 9 > D = 6", (theta0, rng.standard_normal((6, 9)), rng.standard_normal(9)), flags=("WIDE",)
        ),
        Sample(
            "unit-length columns",
            (theta0, P / np.linalg.norm(P, axis=0), rng.standard_normal(3)),
            flags=("UNIT_COLUMNS",),
        ),
    ]


register(
    OpCases(
        "random_subspace_reparam",
        dims={"D": (1, 12), "d": (1, 6)},
        random=_subspace_random,
        edges=_subspace_edges,
        notes=SUBSPACE_NOTES,
        defaults={},
    )
)


# -- said_reparam --------------------------------------------------------------------------------
SAID_NOTES = {
    "ZERO_INIT": "θ_d = 0: θ = θ_0 whatever λ, yet θ̄_d = Pᵀ(λ_t ⊙ ḡ) ≠ 0 and λ̄ = 0",
    "UNIT_SCALES": "λ = 1 (SAID's initialization): θ equals random_subspace_reparam's",
    "ZERO_SCALE": "λ_i = 0 for one tensor: that tensor stays at θ_0 and gives θ_d no gradient, but "
    "λ̄_i = ⟨ḡ_i, u_i⟩ ≠ 0",
    "ONE_TENSOR": "m = 1: one scale for the whole vector",
    "FASTFOOD": "the Fastfood projection: θ̄_d goes through its true adjoint",
    "INTERLEAVED": "tensor ids not contiguous: λ̄ sums by id, not by position",
    "OFFICIAL_SIZE": "official_said_size=True: θ_d has d − (m_all + 1) entries",
}


def _tensor_ids(rng, D, m):  # noqa: N803
    ids = np.concatenate([np.arange(m), rng.integers(0, m, size=D - m)])
    return np.sort(ids) if rng.random() < 0.5 else rng.permutation(ids)


def _said_random(rng, D, m, k):  # noqa: N803
    m = min(m, D)
    fastfood = rng.random() < 0.5
    if fastfood:
        k = min(k, fastfood_length(D))
    theta0 = rng.standard_normal(D)
    theta_d = rng.standard_normal(k) * float(rng.choice([0.1, 1.0, 10.0]))
    lam = rng.uniform(0.25, 2.0, size=m) * rng.choice(np.array([-1.0, 1.0]), size=m)
    ids = _tensor_ids(rng, D, m)
    if fastfood:
        _, B, Pi, G = _fastfood_inputs(rng, k, D)  # noqa: N806
        args = (theta0, theta_d, lam, ids, None, B, Pi, G)
    else:
        args = (theta0, theta_d, lam, ids, rng.standard_normal((D, k)))
    kwargs = {}
    official = rng.random() < 0.5
    if official:
        all_tensors = m + int(rng.integers(0, 3))
        kwargs["official_said_size"] = True
        if all_tensors != m or rng.random() < 0.5:
            kwargs["num_named_parameters"] = all_tensors
        kwargs["budget"] = k + all_tensors + 1
    else:
        if rng.random() < 0.5:
            kwargs["official_said_size"] = False
        kwargs["budget"] = k + m
    return Sample("random", args, kwargs)


def _said_edges():
    rng = np.random.default_rng(8)
    D, m, k = 7, 3, 2  # noqa: N806
    theta0 = rng.standard_normal(D)
    theta_d = rng.standard_normal(k)
    lam = np.array([1.5, -0.5, 0.8])
    ids = np.array([0, 0, 0, 1, 1, 2, 2])
    P = rng.standard_normal((D, k))  # noqa: N806
    _, B, Pi, G = _fastfood_inputs(rng, k, D)  # noqa: N806
    zero_scale = lam.copy()
    zero_scale[1] = 0.0
    return [
        Sample(
            "known value: u = [2, 4, 6], λ = [1, −0.5]",
            (
                np.zeros(3),
                np.array([2.0]),
                np.array([1.0, -0.5]),
                np.array([0, 0, 1]),
                np.array([[1.0], [2.0], [3.0]]),
            ),
            {"budget": 3},
            comment="θ = [2, 4, −3]",
        ),
        Sample("θ_d = 0", (theta0, np.zeros(k), lam, ids, P), {"budget": k + m}, flags=("ZERO_INIT",)),
        Sample("λ = 1", (theta0, theta_d, np.ones(m), ids, P), {"budget": k + m}, flags=("UNIT_SCALES",)),
        Sample("λ_1 = 0", (theta0, theta_d, zero_scale, ids, P), {"budget": k + m}, flags=("ZERO_SCALE",)),
        Sample(
            "m = 1",
            (theta0, theta_d, np.array([0.6]), np.zeros(D, dtype=np.int64), P),
            {"budget": k + 1},
            flags=("ONE_TENSOR",),
        ),
        Sample(
            "Fastfood (D = 7, L = 8)",
            (theta0, theta_d, lam, ids, None, B, Pi, G),
            {"budget": k + m},
            flags=("FASTFOOD",),
        ),
        Sample(
            "interleaved tensor ids",
            (theta0, theta_d, lam, np.array([2, 0, 1, 0, 2, 1, 0]), P),
            {"budget": k + m},
            flags=("INTERLEAVED",),
        ),
        Sample(
            "official size, m_all = 5 (two tensors unscaled)",
            (theta0, theta_d, lam, ids, None, B, Pi, G),
            {"budget": k + 5 + 1, "official_said_size": True, "num_named_parameters": 5},
            flags=("OFFICIAL_SIZE", "FASTFOOD"),
        ),
    ]


def _said_errors():
    rng = np.random.default_rng(9)
    D, m, k = 6, 2, 3  # noqa: N806
    theta0, theta_d, lam = rng.standard_normal(D), rng.standard_normal(k), np.ones(m)
    ids = np.array([0, 0, 0, 1, 1, 1])
    P = rng.standard_normal((D, k))  # noqa: N806
    _, B, Pi, G = _fastfood_inputs(rng, k, D)  # noqa: N806
    base = (theta0, theta_d, lam, ids)
    return [
        ErrorCase("both projections", (*base, P, B, Pi, G), {"budget": 5}, match="both P and Fastfood"),
        ErrorCase("no projection", base, {"budget": 5}, match="neither"),
        ErrorCase("Fastfood without G", (*base, None, B, Pi), {"budget": 5}, match="G None"),
        ErrorCase(
            "Fastfood L = 4 for D = 6", (*base, None, B[:4], Pi[:4] % 4, G[:4]), {"budget": 5}, match="L = 2"
        ),
        ErrorCase(
            "tensor 1 owns no entry",
            (theta0, theta_d, lam, np.zeros(D, dtype=np.int64), P),
            {"budget": 5},
            match="no entry of tensor 1",
        ),
        ErrorCase("θ_d of d − m + 1 entries", (*base, P), {"budget": 4}, match="d − m = 4 − 2 = 2 entries"),
        ErrorCase(
            "num_named_parameters without the flag",
            (*base, P),
            {"budget": 5, "num_named_parameters": 3},
            match="argument 'num_named_parameters'",
        ),
        ErrorCase(
            "paper size under the official flag",
            (*base, P),
            {"budget": 5, "official_said_size": True},
            match="d − \\(m_all \\+ 1\\)",
        ),
        ErrorCase(
            "m_all below m",
            (*base, P),
            {"budget": 5, "official_said_size": True, "num_named_parameters": 1},
            match="at least the m = 2",
        ),
    ]


register(
    OpCases(
        "said_reparam",
        dims={"D": (2, 12), "m": (1, 3), "k": (1, 5)},
        random=_said_random,
        edges=_said_edges,
        errors=_said_errors,
        notes=SAID_NOTES,
        defaults={
            "P": None,
            "B": None,
            "Pi": None,
            "G": None,
            "official_said_size": False,
            "num_named_parameters": None,
        },
    )
)

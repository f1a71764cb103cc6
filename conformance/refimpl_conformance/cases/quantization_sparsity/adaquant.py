"""Conformance cases for AdaQuant: `adaquant_fake_quantize`, `adaquant_layer_loss` (straight-through
VJPs, checked against the stated formula), `bit_allocation_knapsack` (against brute force in the
tests) and `quantization_bias_correction`.

The quantizer is piecewise constant: a value whose grid coordinate ``u = x/s + r_z`` lies within
rounding of a half-integer (a rounding tie) or of the clamp ends rounds differently in float32 and
float64, a legitimate difference between backends. The random samples therefore place every
``u`` (and ``qmin − zero_point/s``) at least 0.05 away from half-integers and integers; exact
ties and exact clamp ends are edge cases on power-of-two scales, where every dtype computes
``u`` exactly.
"""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "TIES": "u = k + 0.5 exactly (s a power of two): round half to even (0.5 → 0, 1.5 → 2, 2.5 → 2, "
    "−0.5 → −0); C's round() (half away from zero) gives 1, 2, 3, −1",
    "GRID_END": "u = qmin or qmax exactly: inside the clamp (torch.clamp passes the gradient at both "
    "ends): x̄ = x̄̂, ∂x̂/∂zero_point = 0",
    "RANGE_CLAMP": "range below 1e−6 or above 1e5: s uses the clamped range and range̅ = 0",
    "ZERO_POINT_CLAMP": "qmin − zero_point/s rounds outside [qmin, qmax]: r_z is clamped, the "
    "zero point gets no gradient and the outside ∂x̂/∂s is q − r_z",
    "PER_TENSOR": "one (range, zero point) for a tensor of several rows: its cotangent sums every row",
    "SIGNED": "the signed grid [−2^{b−1}, 2^{b−1} − 1]",
    "ONE_BIT": "b = 1: two levels",
}


# -- shared pieces ------------------------------------------------------------------------------------
def _grid(num_bits, signed):
    qmin = -(2 ** (num_bits - 1)) if signed else 0
    return qmin, qmin + 2**num_bits - 1


def _away_from_ties(rng, shape):
    """Fractions in ±[0.05, 0.35]: a grid coordinate m + f is 0.05 or more from an integer
    (a clamp end) and 0.15 or more from a half-integer (a rounding tie)."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.05, 0.35, size=shape)


def _quantizer(rng, G, num_bits, signed, scale):
    """(range, zero_point, s, r_z) for G channels, ``qmin − zero_point/s`` away from ties; the
    integer zero point sometimes outside the grid (then clamped)."""
    qmin, qmax = _grid(num_bits, signed)
    range_ = scale * np.exp(rng.uniform(-1.0, 1.0, size=G))
    s = range_ / (qmax - qmin)
    zero_grid = rng.integers(qmin - 2, qmax + 3, size=G).astype(np.float64)
    zero_point = s * (qmin - zero_grid - _away_from_ties(rng, G))
    return range_, zero_point, s, np.clip(zero_grid, qmin, qmax)


def _grid_values(rng, shape, s_col, r_col, num_bits, signed):
    """Values whose grid coordinates u = x/s + r_z are integers in [qmin − 3, qmax + 3] plus a
    fraction away from ties and from the clamp ends."""
    qmin, qmax = _grid(num_bits, signed)
    u = rng.integers(qmin - 3, qmax + 4, size=shape) + _away_from_ties(rng, shape)
    return s_col * (u - r_col)


def stated_fake_quantize_vjp(x, range_, zero_point, num_bits, signed, g):
    """The stated straight-through VJP, element by element in float64, independent of the
    reference: returns (x̄, range̅ (G,), zero_point̅ (G,))."""
    x, range_, zero_point, g = (np.asarray(a, dtype=np.float64) for a in (x, range_, zero_point, g))
    qmin, qmax = _grid(num_bits, signed)
    rows, cols = x.shape
    groups = range_.shape[0]
    g_x = np.zeros_like(x)
    g_range, g_zero_point = np.zeros(groups), np.zeros(groups)
    for i in range(rows):
        c = i if groups == rows else 0
        clamped_range = min(max(range_[c], 1e-6), 1e5)
        s = clamped_range / (qmax - qmin)
        raw = round(qmin - zero_point[c] / s)  # Python's round: half to even
        zero_free = qmin <= raw <= qmax
        r_z = min(max(raw, qmin), qmax)
        for j in range(cols):
            u = x[i, j] / s + r_z
            q = round(min(max(u, qmin), qmax))
            if qmin <= u <= qmax:
                g_x[i, j] = g[i, j]
                d_s, d_zp = (q - r_z) - x[i, j] / s, 0.0
            elif zero_free:
                d_s, d_zp = (q - r_z) - zero_point[c] / s, 1.0
            else:
                d_s, d_zp = float(q - r_z), 0.0
            if 1e-6 <= range_[c] <= 1e5:
                g_range[c] += g[i, j] * d_s / (qmax - qmin)
            g_zero_point[c] += g[i, j] * d_zp
    return g_x, g_range, g_zero_point


# -- adaquant_fake_quantize ---------------------------------------------------------------------------
def _fake_quantize_stated(args, kwargs, cotangents):
    x, range_, zero_point = args
    return list(
        stated_fake_quantize_vjp(
            x, range_, zero_point, kwargs["num_bits"], kwargs.get("signed", False), cotangents[0]
        )
    )


def _fake_quantize_random(rng, C, K):
    num_bits = int(rng.choice([2, 3, 4, 8]))
    signed = bool(rng.random() < 0.5)
    G = int(rng.choice([1, C]))
    range_, zero_point, s, r_z = _quantizer(rng, G, num_bits, signed, float(rng.choice([0.05, 1.0, 30.0])))
    x = _grid_values(rng, (C, K), s[:, None], r_z[:, None], num_bits, signed)
    return Sample("random", (x, range_, zero_point), {"num_bits": num_bits, "signed": signed})


def _fake_quantize_edges():
    rng = np.random.default_rng(48)
    ties = np.array([[0.25, 0.75, 1.25, -0.0, 0.5]])  # s = 0.5: u = 0.5, 1.5, 2.5, 0, 1
    signed_ties = np.array([[-0.75, -0.25, 0.25]])  # s = 0.5, signed 2 bits: u = −1.5, −0.5, 0.5
    range_c, zero_c, s_c, r_c = _quantizer(rng, 3, 4, False, 1.0)
    per_channel = _grid_values(rng, (3, 5), s_c[:, None], r_c[:, None], 4, False)
    range_t, zero_t, s_t, r_t = _quantizer(rng, 1, 3, True, 2.0)
    per_tensor = _grid_values(rng, (4, 3), s_t[:, None], r_t[:, None], 3, True)
    wide = _grid_values(rng, (2, 24), 0.02, 5.0, 8, False)
    return [
        Sample(
            "ties at .5 round half to even",
            (ties, np.array([1.5]), np.array([0.0])),
            {"num_bits": 2},
            flags=("TIES", "GRID_END"),
            comment="u = 0.5, 1.5, 2.5 → q = 0, 2, 2: x̂ = 0, 1, 1; u = 0 is qmin (inside)",
        ),
        Sample(
            "signed ties",
            (signed_ties, np.array([1.5]), np.array([-1.0])),
            {"num_bits": 2, "signed": True},
            flags=("TIES", "SIGNED"),
            comment="zero_point = qmin·s = −1: r_z = 0; u = −1.5, −0.5, 0.5 → −2, −0, 0: x̂ = −1, 0, 0",
        ),
        Sample(
            "u = qmax and qmin exactly",
            (np.array([[1.5, 0.0, 1.75, -0.25]]), np.array([1.5]), np.array([0.0])),
            {"num_bits": 2},
            flags=("GRID_END",),
            comment="u = 3 and 0 are inside (gradient passes), 3.5 and −0.5 outside",
        ),
        Sample(
            "range below 1e-6 (clamped)",
            (np.array([[1e-7, 3e-7, -2e-7, 2e-6]]), np.array([1e-7]), np.array([-1e-7])),
            {"num_bits": 2},
            flags=("RANGE_CLAMP",),
            comment="s = 1e−6/3: the range gets no gradient",
        ),
        Sample(
            "range above 1e5 (clamped)",
            (np.array([[1.1e4, 3.7e4, 9.2e4, 2.3e5]]), np.array([2e5]), np.array([1e3])),
            {"num_bits": 3},
            flags=("RANGE_CLAMP",),
        ),
        Sample(
            "range exactly 1e-6 and 1e5 (gradient passes)",
            (np.array([[1e-7, 6e-7], [2.1e4, 7.7e4]]), np.array([1e-6, 1e5]), np.array([0.0, 0.0])),
            {"num_bits": 2},
            flags=("RANGE_CLAMP",),
            dtypes=("float64",),
            comment="1e−6 and 1e5 are not float32 numbers: their float32 roundings fall on either side",
        ),
        Sample(
            "zero point above the grid",
            (np.array([[0.3, 1.1, -0.9, 2.2]]), np.array([1.5]), np.array([-3.1])),
            {"num_bits": 2},
            flags=("ZERO_POINT_CLAMP",),
            comment="qmin − zero_point/s = 6.2 → r_z = qmax = 3: no zero-point gradient",
        ),
        Sample(
            "zero point below the grid",
            (np.array([[0.3, 1.1, -0.9, 2.2, 4.1]]), np.array([1.5]), np.array([1.1])),
            {"num_bits": 2, "signed": True},
            flags=("ZERO_POINT_CLAMP", "SIGNED"),
            comment="qmin − zero_point/s = −4.2 → r_z = qmin = −2",
        ),
        Sample("per channel", (per_channel, range_c, zero_c), {"num_bits": 4}),
        Sample(
            "per tensor, 4 rows",
            (per_tensor, range_t, zero_t),
            {"num_bits": 3, "signed": True},
            flags=("PER_TENSOR", "SIGNED"),
        ),
        Sample(
            "one bit",
            (
                np.array([[-0.8, -0.1, 0.2, 0.9], [0.4, -0.3, 1.7, -2.2]]),
                np.array([1.0, 2.0]),
                np.array([-0.4, -1.2]),
            ),
            {"num_bits": 1, "signed": True},
            flags=("ONE_BIT", "SIGNED"),
        ),
        Sample("8 bits", (wide, np.array([5.1]), np.array([-0.1])), {"num_bits": 8}, flags=("PER_TENSOR",)),
    ]


def _fake_quantize_known():
    return [
        Known(
            "ties at .5: half to even",
            (np.array([[0.25, 0.75, 1.25, 0.5]]), np.array([1.5]), np.array([0.0])),
            {"num_bits": 2},
            values={"x_hat": [[0.0, 1.0, 1.0, 0.5]]},
            source="a hand computation (s = 0.5: u = 0.5, 1.5, 2.5, 1 → 0, 2, 2, 1; half away from "
            "zero gives 0.5, 1, 1.5)",
            rtol=0.0,
        ),
        Known(
            "signed ties at −1.5 and −0.5",
            (np.array([[-0.75, -0.25, 0.25]]), np.array([1.5]), np.array([-1.0])),
            {"num_bits": 2, "signed": True},
            values={"x_hat": [[-1.0, 0.0, 0.0]]},
            source="a hand computation (r_z = 0, u = −1.5, −0.5, 0.5 → −2, −0, 0)",
            rtol=0.0,
        ),
        Known(
            "straight-through gradient by hand",
            (np.array([[0.3, 0.9, 2.0, -0.4]]), np.array([1.5]), np.array([-0.2])),
            {"num_bits": 2},
            values={
                "x_hat": [[0.5, 1.0, 1.5, 0.0]],
                "cotangent of 'x'": [[1.0, 1.0, 0.0, 0.0]],
                "cotangent of 'range'": [4.4 / 3],
                "cotangent of 'zero_point'": [2.0],
            },
            source="a hand computation (u = 0.6, 1.8, 4, −0.8; ∂x̂/∂s = 0.4, 0.2, 3.4, 0.4)",
            rtol=1e-12,
        ),
    ]


def _fake_quantize_errors():
    x = np.ones((3, 2))
    return [
        ErrorCase(
            "two ranges for three rows",
            (x, np.ones(2), np.zeros(2)),
            {"num_bits": 4},
            match="length 1\\) or per row of 'x' \\(length 3\\)",
        ),
    ]


def _fake_quantize_torch(torch, args, kwargs, cotangent):
    """The same quantizer in PyTorch, the official sequence (quantize_with_grad, QZP = True) with
    the straight-through rounding written as v + (round(v) − v).detach(); autograd backward."""
    x = torch.from_numpy(args[0]).requires_grad_()
    range_ = torch.from_numpy(args[1]).requires_grad_()
    zero_point = torch.from_numpy(args[2]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    num_bits, signed = kwargs["num_bits"], kwargs.get("signed", False)
    qmin = -(2.0 ** (num_bits - 1)) if signed else 0.0
    qmax = qmin + 2.0**num_bits - 1.0

    def round_ste(v):
        return v + (torch.round(v) - v).detach()

    def step():
        s = (range_.clamp(1e-6, 1e5) / (qmax - qmin))[:, None]
        r_z = round_ste(qmin - zero_point[:, None] / s).clamp(qmin, qmax)
        q = round_ste((x / s + r_z).clamp(qmin, qmax))
        x_hat = s * (q - r_z)
        x.grad = range_.grad = zero_point.grad = None
        x_hat.backward(g)
        return x_hat

    return step


register(
    OpCases(
        "adaquant_fake_quantize",
        dims={"C": (1, 5), "K": (1, 7)},
        random=_fake_quantize_random,
        edges=_fake_quantize_edges,
        errors=_fake_quantize_errors,
        known=_fake_quantize_known,
        notes=NOTES,
        defaults={"signed": False},
        stated_vjp=_fake_quantize_stated,
        bench=Bench(
            sizes={"C": "rows", "K": "cols"},
            kwargs={"num_bits": 4},
            torch=_fake_quantize_torch,
            torch_label="the official quantize_with_grad sequence, rounding v + (round(v) − v).detach(); "
            "autograd",
        ),
    )
)


# -- adaquant_layer_loss ------------------------------------------------------------------------------
def _layer_loss_stated(args, kwargs, cotangents):
    """Chain rule through the stated quantizer STE, in float64, independent of the reference."""
    X, Y, W, V, b, w_range, w_zero_point, x_range, x_zero_point = (np.asarray(a, np.float64) for a in args)
    bits_w, bits_x = kwargs["num_bits_weight"], kwargs["num_bits_input"]
    signed, relu = kwargs.get("signed", False), kwargs.get("relu", False)
    g_loss = float(np.asarray(cotangents[0]))

    def quantize(values, range_, zero_point, bits):
        qmin, qmax = _grid(bits, signed)
        out = np.empty_like(values)
        for i in range(values.shape[0]):
            c = i if range_.shape[0] == values.shape[0] else 0
            s = min(max(range_[c], 1e-6), 1e5) / (qmax - qmin)
            r_z = min(max(round(qmin - zero_point[c] / s), qmin), qmax)
            for j in range(values.shape[1]):
                out[i, j] = s * (round(min(max(values[i, j] / s + r_z, qmin), qmax)) - r_z)
        return out

    x_hat = quantize(X, x_range, x_zero_point, bits_x)
    w_hat = quantize(W + V, w_range, w_zero_point, bits_w)
    y_hat = np.einsum("bn,mn->bm", x_hat, w_hat) + b
    if relu:
        g_y_hat = g_loss * 2 * (np.maximum(y_hat, 0) - np.maximum(Y, 0)) / Y.size * (y_hat > 0)
    else:
        g_y_hat = g_loss * 2 * (y_hat - Y) / Y.size
    g_w_hat = np.einsum("bm,bn->mn", g_y_hat, x_hat)
    g_x_hat = np.einsum("bm,mn->bn", g_y_hat, w_hat)
    g_V, g_w_range, g_w_zero_point = stated_fake_quantize_vjp(
        W + V, w_range, w_zero_point, bits_w, signed, g_w_hat
    )
    _, g_x_range, g_x_zero_point = stated_fake_quantize_vjp(X, x_range, x_zero_point, bits_x, signed, g_x_hat)
    return [g_V, g_y_hat.sum(axis=0), g_w_range, g_w_zero_point, g_x_range, g_x_zero_point]


def _layer_loss_sample(rng, B, N, M, name="random", **fixed):
    bits_w = fixed.get("num_bits_weight", int(rng.choice([2, 4, 8])))
    bits_x = fixed.get("num_bits_input", int(rng.choice([2, 4, 8])))
    signed = fixed.get("signed", bool(rng.random() < 0.5))
    relu = fixed.get("relu", bool(rng.random() < 0.5))
    G = fixed.get("G", int(rng.choice([1, M])))
    w_range, w_zero_point, s_w, r_w = _quantizer(rng, G, bits_w, signed, 1.0)
    x_range, x_zero_point, s_x, r_x = _quantizer(rng, 1, bits_x, signed, 3.0)
    w_effective = _grid_values(rng, (M, N), s_w[:, None], r_w[:, None], bits_w, signed)
    V = rng.standard_normal((M, N)) * 1e-3 * s_w[:, None]  # small, the grid coordinates stay put
    V = np.where(np.abs(V) < 0.01 * s_w[:, None], V, 0.0)
    X = _grid_values(rng, (B, N), s_x[:, None], r_x[:, None], bits_x, signed)
    Y = X @ w_effective.T + rng.standard_normal((B, M)) * 0.3
    b = rng.standard_normal(M) * 0.1
    kwargs = {"num_bits_weight": bits_w, "num_bits_input": bits_x, "signed": signed, "relu": relu}
    return Sample(name, (X, Y, w_effective - V, V, b, w_range, w_zero_point, x_range, x_zero_point), kwargs)


def _layer_loss_random(rng, B, N, M):
    return _layer_loss_sample(rng, B, N, M)


def _layer_loss_edges():
    zero = np.zeros(1)
    X, W = np.array([[1.0, 2.0]]), np.array([[0.5, 0.25]])
    return [
        Sample(
            "known value: both on their grids",
            (X, np.array([[1.5]]), W, np.zeros_like(W), zero, np.array([0.75]), zero, np.array([3.0]), zero),
            {"num_bits_weight": 2, "num_bits_input": 2},
            comment="X̂ = X, Ŵ = W, Ŷ = 1: L = 0.25",
        ),
        _layer_loss_sample(np.random.default_rng(1), 6, 4, 3, "per-channel weights, ReLU", G=3, relu=True),
        _layer_loss_sample(np.random.default_rng(2), 5, 3, 4, "per-tensor weights, signed", G=1, signed=True),
        _layer_loss_sample(
            np.random.default_rng(3),
            4,
            5,
            2,
            "8-bit weights, 4-bit inputs",
            num_bits_weight=8,
            num_bits_input=4,
        ),
    ]


def _layer_loss_errors():
    X, Y, W = np.ones((2, 3)), np.ones((2, 4)), np.ones((4, 3))
    return [
        ErrorCase(
            "three weight ranges for four output channels",
            (X, Y, W, W * 0, np.zeros(4), np.ones(3), np.zeros(3), np.ones(1), np.zeros(1)),
            {"num_bits_weight": 4, "num_bits_input": 4},
            match="per row of 'W' \\(length 4\\)",
        ),
    ]


register(
    OpCases(
        "adaquant_layer_loss",
        dims={"B": (1, 6), "N": (1, 5), "M": (1, 4)},
        random=_layer_loss_random,
        edges=_layer_loss_edges,
        errors=_layer_loss_errors,
        notes=NOTES,
        defaults={"signed": False, "relu": False},
        stated_vjp=_layer_loss_stated,
    )
)


# -- bit_allocation_knapsack --------------------------------------------------------------------------
def _knapsack_random(rng, L, K):
    degradation = rng.exponential(1.0, size=(L, K)) * float(rng.choice([1e-3, 1.0, 50.0]))
    saved = rng.integers(0, 9, size=(L, K))
    degradation[:, 0], saved[:, 0] = 0.0, 0  # the base precision: no loss, no saving
    budget = int(rng.integers(0, saved.max(axis=1).sum() + 1))
    return Sample("random", (degradation, saved), {"budget": budget})


def _knapsack_edges():
    rng = np.random.default_rng(20)
    return [
        Sample(
            "known value: 4 bits in both layers",
            (np.array([[0.0, 0.2, 0.9], [0.0, 0.5, 0.6]]), np.array([[0, 4, 6], [0, 4, 6]])),
            {"budget": 8},
            comment="(4, 4) bits: 0.7; (4, 2): 0.8; (2, 2): 1.5; the rest save too little",
        ),
        Sample(
            "ties: the lowest option index in the last layer",
            (np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]), np.array([[0, 1, 2], [0, 1, 2]])),
            {"budget": 2},
            comment="(1, 1), (0, 2) and (2, 0) all cost 2 and save 2: the last layer's lowest index, 0",
        ),
        Sample(
            "budget 0: the cheapest option everywhere",
            (rng.exponential(size=(4, 3)), rng.integers(0, 5, size=(4, 3))),
            {"budget": 0},
        ),
        Sample(
            "budget = the largest saving",
            (rng.exponential(size=(3, 4)), np.array([[0, 2, 4, 6], [0, 1, 2, 3], [0, 5, 5, 7]])),
            {"budget": 16},
        ),
        Sample(
            "a missing option (+inf)",
            (np.array([[0.0, 0.3, np.inf], [0.0, 0.1, 0.4]]), np.array([[0, 2, 9], [0, 1, 3]])),
            {"budget": 4},
            comment="the 9-unit option does not exist: (1, 2) saves 5 at 0.7",
        ),
        Sample(
            "negative measured degradation",
            (np.array([[-0.01, 0.2], [0.0, -0.02]]), np.array([[0, 3], [0, 2]])),
            {"budget": 2},
        ),
        Sample("one layer", (np.array([[0.0, 0.4, 0.1, 0.7]]), np.array([[0, 2, 3, 5]])), {"budget": 2}),
    ]


def _knapsack_known():
    return [
        Known(
            "ties broken in the last layer",
            (np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]), np.array([[0, 1, 2], [0, 1, 2]])),
            {"budget": 2},
            values={"choice": [2, 0], "total_degradation": 2.0, "total_saved": 2},
            source="a hand enumeration ((1, 1), (0, 2), (2, 0) all cost 2: the last layer's lowest index)",
            rtol=0.0,
        )
    ]


def _knapsack_errors():
    degradation, saved = np.array([[0.0, 1.0], [0.0, 2.0]]), np.array([[0, 2], [0, 3]])
    return [
        ErrorCase("budget beyond every saving", (degradation, saved), {"budget": 6}, match="at most .* = 5"),
        ErrorCase(
            "a layer without an option",
            (np.array([[0.0, 1.0], [np.inf, np.inf]]), saved),
            {"budget": 1},
            match="none in layer 1",
        ),
        ErrorCase(
            "the only large saving is missing",
            (np.array([[0.0, np.inf], [0.0, 2.0]]), saved),
            {"budget": 4},
            match="at most .* = 3",
        ),
    ]


register(
    OpCases(
        "bit_allocation_knapsack",
        dims={"L": (1, 5), "K": (1, 4)},
        random=_knapsack_random,
        edges=_knapsack_edges,
        errors=_knapsack_errors,
        known=_knapsack_known,
        defaults={},
    )
)


# -- quantization_bias_correction ---------------------------------------------------------------------
def _bias_random(rng, B, C, S):
    shape = (B, C) if rng.random() < 0.5 else (B, C, S, int(rng.integers(1, 4)))
    y_fp = rng.standard_normal(shape) * float(rng.choice([0.1, 1.0, 100.0]))
    shift = rng.standard_normal((1, C) + (1,) * (len(shape) - 2)) * 0.05
    y_q = y_fp + shift + rng.standard_normal(shape) * 0.01
    return Sample("random", (rng.standard_normal(C), y_fp, y_q))


def _bias_edges():
    rng = np.random.default_rng(21)
    y = rng.standard_normal((3, 2, 4, 4))
    offset = 1e4 + rng.standard_normal((5, 3))
    return [
        Sample(
            "known value",
            (np.zeros(2), np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.5, 2.0], [2.5, 5.0]])),
            comment="channel 0 reads 0.5 low, channel 1 0.5 high: +0.5, −0.5",
        ),
        Sample("convolution outputs (B, C, H, W)", (np.ones(2), y, y - 0.25)),
        Sample("identical outputs: unchanged", (np.array([0.3, -0.2, 1.0]), offset, offset.copy())),
        Sample(
            "outputs near 1e4",
            (np.zeros(3), offset, offset + np.array([0.01, -0.02, 0.0])),
            comment="the difference is taken before the mean: no cancellation of two means near 1e4",
        ),
    ]


def _bias_errors():
    return [
        ErrorCase("outputs of rank 1", (np.zeros(3), np.ones(3), np.ones(3)), match="rank >= 2"),
        ErrorCase(
            "channels on the wrong axis", (np.zeros(3), np.ones((3, 2)), np.ones((3, 2))), match="3 channels"
        ),
    ]


register(
    OpCases(
        "quantization_bias_correction",
        dims={"B": (1, 6), "C": (1, 5), "S": (1, 3)},
        random=_bias_random,
        edges=_bias_edges,
        errors=_bias_errors,
        defaults={},
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("calibtip-bias-correction-tenth", outputs=("bias_corrected",))
def _official_correct_bias(bias, y_fp, y_q, *, dtype):
    """utils/correct_bias.py on one calibration batch: the per-channel output means (mean over
    every axis but 1, as trainer.py's save_activation), ``count = 1``, and
    ``bias −= (mean_q − mean_fp)/(count·10)``."""
    axes = (0, *range(2, y_fp.ndim))
    mean_q, mean_fp = y_q.astype(dtype).mean(axis=axes), y_fp.astype(dtype).mean(axis=axes)
    return {"bias_corrected": bias.astype(dtype) - (mean_q - mean_fp) / (1 * 10)}

"""Conformance cases for the Poincaré-ball geometry: Möbius operations, exp/log maps, distance,
gyration, parallel transport and projection."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

import refimpl
from refimpl.authoring import Tensor
from refimpl.layers.poincare import PROJECT_EPS, SERIES_BELOW

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "AT_ORIGIN": "a zero row: exp_0/log_0 are 0/0 there (series needed), 0 is ⊕'s identity",
    "SERIES_SWITCH": "‖v‖√c just below, at and above 1e-3: the series and direct formulas must agree",
    "UNDERFLOW": "‖v‖ = 1e-200: c‖v‖² underflows to 0; an unguarded tanh(u)/u gives 0/0",
    "BALL_BOUNDARY": "points at 1 − 1e-7 (float64) or 0.999 (float32) of the radius: λ ~ 1e7, artanh → ∞",
    "CANCELLATION": "y ≈ −x near the boundary: the textbook α, β, D of ⊕ cancel to ~3 digits",
    "SATURATED": "√c‖v‖ = 40: tanh rounds to 1, exp_0 lands on the boundary; gradients stay finite",
    "C_TO_ZERO": "c = 1e-10: the Euclidean limits x ⊕ y → x + y, exp_0(v) → v, log_0(y) → y",
    "BATCH_DIMS": "several leading dimensions: norms are over the last axis only",
    "SAME_POINT": "y = x: log_x(y) = 0 through the series, d(x, x) = 0 at a cone point, PT = I",
    "KERNEL": "Mx = 0 with x ≠ 0: M ⊗ x must be 0, not 0/0",
    "PROJECT_EDGE": "rows inside, outside and far outside the projection radius; dtype default eps",
}

BOUNDARY = 1 - 1e-7  # fraction of the radius 1/√c; exists in float64 only


def _directions(rng, shape):
    d = rng.standard_normal(shape)
    norms = np.linalg.norm(d, axis=-1, keepdims=True)
    return d / np.where(norms > 0, norms, 1.0)


def _ball_points(rng, shape, c, fractions):
    """Points at ``fractions`` (one per row) of the radius ``1/√c``, random directions."""
    return _directions(rng, shape) * (np.asarray(fractions)[..., None] / np.sqrt(c))


def _random_c(rng):
    return float(rng.choice([0.1, 1.0, 2.5]))


POINT_ARGUMENTS = ("x", "y", "a", "b", "fx", "points")  # points of the ball; the other arrays are tangent


def ball_bench_sample(op_name: str) -> Callable[..., Sample]:
    """Benchmark inputs of a Poincaré-ball op: ``rows`` points (or tangent vectors) of
    dimension ``cols`` inside the unit ball (c = 1) at random fractions of the radius, any
    matrix scaled by 1/√cols (the conformance samplers draw small dimensions only)."""

    def make(rng, rows, cols):
        op = refimpl.get(op_name)
        sizes = {"B": rows, "n": cols, "m": min(cols, 128)}
        args = []
        for name, spec in op.specs.items():
            if not isinstance(spec, Tensor):
                break  # the scalars keep their defaults
            shape = tuple(rows if d == "..." else sizes.get(d, d) for d in spec.shape)
            if name in POINT_ARGUMENTS:
                args.append(_ball_points(rng, shape, 1.0, rng.uniform(0.05, 0.95, shape[:-1])))
            elif len(shape) == 2 and name in ("M", "Z"):
                args.append(rng.standard_normal(shape) / np.sqrt(shape[0]))
            elif len(shape) == 0:
                args.append(np.asarray(1.0))
            else:
                args.append(
                    rng.standard_normal(shape) * (0.5 / np.sqrt(cols) if shape[-1:] == (cols,) else 0.5)
                )
        return Sample("bench", tuple(args))

    return make


def ball_bench(op_name: str, **declared) -> Bench:
    """The op's :class:`Bench` on :func:`ball_bench_sample` inputs; ``declared``: the other fields."""
    return Bench(make=ball_bench_sample(op_name), **declared)


# -- PyTorch baselines: the reference's formulas in torch ops (autograd for the backward) --------
# Each mirrors refimpl/layers/poincare.py: the same stable forms, the same series below
# √c‖·‖ = SERIES_BELOW with each branch evaluated on arguments clamped to its own side.
def torch_c_squared_norm(x, c):
    """``c‖x‖²`` per row, keeping the last axis."""
    return c * (x * x).sum(-1, keepdim=True)


def torch_row_dot(a, b):
    return (a * b).sum(-1, keepdim=True)


def _torch_series_split(u2):
    """The reference's branch mask and the two sides' clamped ``u²`` and ``u``."""
    t = SERIES_BELOW
    small = u2.detach().sqrt() < t
    u2_hi = u2.clamp(min=t * t)
    return small, u2.clamp(max=t * t), u2_hi, u2_hi.sqrt()


def torch_tanh_factor(torch, u2):
    """``tanh(u)/u`` from ``u² = c‖v‖²`` (``expmap0_factors``' f)."""
    small, lo, _, u_hi = _torch_series_split(u2)
    return torch.where(small, 1 - lo / 3 + 2 * lo * lo / 15, u_hi.tanh() / u_hi)


def torch_artanh_factor(torch, u2, one_minus_u2=None):
    """``artanh(u)/u`` from ``u²`` (``logmap0_factors``' f); with ``one_minus_u2`` given,
    ``artanh_factors``' f, which takes ``1 − u²`` from the caller."""
    small, lo, u2_hi, u_hi = _torch_series_split(u2)
    if one_minus_u2 is None:
        artanh = torch.log1p(u_hi) - 0.5 * torch.log1p(-u2_hi)
    else:
        artanh = torch.log1p(u_hi) - 0.5 * torch.log(one_minus_u2.clamp(max=1 - SERIES_BELOW**2))
    return torch.where(small, 1 + lo / 3 + lo * lo / 5, artanh / u_hi)


def torch_expmap0(torch, v, c):
    return torch_tanh_factor(torch, torch_c_squared_norm(v, c)) * v


def torch_logmap0(torch, y, c):
    return torch_artanh_factor(torch, torch_c_squared_norm(y, c)) * y


def torch_mobius_add(torch, x, y, c):
    """``x ⊕ y`` in the reference's cancellation-free form ``(β_x σ + q x)/(β_x β_y + q)``."""
    x_plus_y = x + y
    beta_x = 1 - torch_c_squared_norm(x, c)
    beta_y = 1 - torch_c_squared_norm(y, c)
    q = torch_c_squared_norm(x_plus_y, c)
    return (beta_x * x_plus_y + q * x) / (beta_x * beta_y + q)


def torch_gyration(torch, a, b, v, c):
    """``gyr[a, b] v`` by the reference's closed form (D in the form of ``mobius_add``)."""
    ab, av, bv = torch_row_dot(a, b), torch_row_dot(a, v), torch_row_dot(b, v)
    a2, b2 = torch_c_squared_norm(a, 1.0), torch_c_squared_norm(b, 1.0)
    c2 = c * c
    big_a = -c2 * av * b2 + c * bv + 2 * c2 * ab * bv
    big_b = -c2 * bv * a2 - c * av
    denominator = (1 - c * a2) * (1 - c * b2) + torch_c_squared_norm(a + b, c)
    return v + 2 * (big_a * a + big_b * b) / denominator


def _poincare_torch(forward):
    """A baseline: every array argument a leaf tensor, ``forward(torch, *tensors, c)``, then
    autograd's backward of the cotangent."""

    def baseline(torch, args, kwargs, cotangent):
        c = float(kwargs.get("c", 1.0))
        tensors = [torch.from_numpy(np.asarray(a)).requires_grad_() for a in args]
        g = torch.from_numpy(np.asarray(cotangent))

        def step():
            for t in tensors:
                t.grad = None
            out = forward(torch, *tensors, c)
            out.backward(g)
            return out

        return step

    return baseline


def _scalar_mul_forward(torch, r, x, c):
    return torch_expmap0(torch, r[..., None] * torch_logmap0(torch, x, c), c)


def _matvec_forward(torch, M, x, c):
    return torch_expmap0(torch, torch_logmap0(torch, x, c) @ M.T, c)


def torch_expmap(torch, x, v, c):
    beta_x = 1 - torch_c_squared_norm(x, c)
    return torch_mobius_add(torch, x, torch_expmap0(torch, v / beta_x, c), c)


def torch_logmap(torch, x, y, c):
    """``β_x F(u) (−x ⊕ y)`` with ``u² = q/D``, ``1 − u² = β_xβ_y/D`` (``_minus_x_plus_y_norms``)."""
    beta_x = 1 - torch_c_squared_norm(x, c)
    beta_y = 1 - torch_c_squared_norm(y, c)
    q = torch_c_squared_norm(y - x, c)
    denominator = beta_x * beta_y + q
    f = torch_artanh_factor(torch, q / denominator, beta_x * beta_y / denominator)
    return beta_x * (f * torch_mobius_add(torch, -x, y, c))


def torch_distance(torch, x, y, c):
    """``log1p(δ + √(δ(δ + 2)))/√c``, ``δ = 2c‖x − y‖²/(β_xβ_y)``."""
    beta_x = 1 - torch_c_squared_norm(x, c)
    beta_y = 1 - torch_c_squared_norm(y, c)
    delta = 2 * torch_c_squared_norm(x - y, c) / (beta_x * beta_y)
    return (torch.log1p(delta + (delta * (delta + 2)).sqrt()) / math.sqrt(c))[..., 0]


def torch_parallel_transport(torch, x, y, v, c):
    beta_x = 1 - torch_c_squared_norm(x, c)
    beta_y = 1 - torch_c_squared_norm(y, c)
    return beta_y / beta_x * torch_gyration(torch, y, -x, v, c)


def _project_torch(torch, args, kwargs, cotangent):
    """``x · min(1, ((1 − eps)/√c)/‖x‖)`` (not differentiable: the forward alone)."""
    x = torch.from_numpy(args[0])
    eps = kwargs.get("eps")
    eps = PROJECT_EPS[np.dtype(args[0].dtype)] if eps is None else float(eps)
    max_norm = (1 - eps) / math.sqrt(float(kwargs.get("c", 1.0)))

    def step():
        with torch.no_grad():
            norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
            return x * (max_norm / norm).clamp(max=1)  # exactly 1 (x unchanged) inside

    return step


def _matvec_blas(args, kwargs):
    """The products of M ⊗ x: forward ``p = w Mᵀ``; backward ``M̄ = p̄ᵀ w`` and ``w̄ = p̄ M``."""
    M, x = args
    w = np.ascontiguousarray(x.reshape(-1, M.shape[1]))
    g_p = np.ones((w.shape[0], M.shape[0]), dtype=x.dtype)

    def step():
        return w @ M.T, g_p.T @ w, g_p @ M

    return step


def _rows(position: int):
    """The number of points (rows) of argument ``position``: its size over the last axis."""
    return lambda args, kwargs: args[position][..., 0].size


# -- mobius_add --------------------------------------------------------------------------
def _mobius_random(rng, B, n):
    c = _random_c(rng)
    x = _ball_points(rng, (B, n), c, rng.uniform(0, 0.95, B))
    y = _ball_points(rng, (B, n), c, rng.uniform(0, 0.95, B))
    return Sample("random", (x, y), {"c": c})


def _mobius_edges():
    rng = np.random.default_rng(11)
    n = 4
    p, q = _ball_points(rng, (2, n), 1.0, [0.7, 0.4])
    zero = np.zeros(n)
    anti_x = _ball_points(rng, (3, n), 1.0, [0.3, 0.9, 0.99])
    boundary_x = _ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3)
    # y at angles 0°, 90° and 150° from x, also on the sphere of radius 1 − 1e-7
    unit_x = boundary_x / np.linalg.norm(boundary_x, axis=-1, keepdims=True)
    other = _directions(rng, (3, n))
    other -= np.sum(other * unit_x, axis=-1, keepdims=True) * unit_x
    other /= np.linalg.norm(other, axis=-1, keepdims=True)
    angles = np.radians([0.0, 90.0, 150.0])[:, None]
    boundary_y = BOUNDARY * (np.cos(angles) * unit_x + np.sin(angles) * other)
    near_anti_y = -boundary_x.copy()
    near_anti_y[1] = BOUNDARY * -(unit_x[1] + 1e-6 * other[1]) / np.linalg.norm(unit_x[1] + 1e-6 * other[1])
    near_anti_y[2] = -boundary_x[2] * (1 - 3e-8)
    x32 = _ball_points(rng, (3, n), 1.0, [0.999] * 3)
    y32 = -x32 + 1e-3 * _directions(rng, (3, n))
    return [
        Sample(
            "identity: x ⊕ 0, 0 ⊕ y, 0 ⊕ 0",
            (np.stack([p, zero, zero]), np.stack([zero, q, zero])),
            flags=("AT_ORIGIN",),
        ),
        Sample(
            "inverse: (−x) ⊕ x = 0",
            (-anti_x, anti_x),
            flags=("CANCELLATION",),
            comment="the output is exactly 0; the gradient is finite (D = β² > 0)",
        ),
        Sample(
            "both points at 1 − 1e-7 of the radius, 0°, 90°, 150° apart",
            (boundary_x, boundary_y),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=1e-9,
            comment="steps must stay ≪ 1e-7 to remain inside the ball",
        ),
        Sample(
            "antipodal points at 1 − 1e-7 of the radius (y = −x, rotated 1e-6, shorter by 3e-8)",
            (boundary_x, near_anti_y),
            flags=("BALL_BOUNDARY", "CANCELLATION"),
            dtypes=("float64",),
            fd_step=5e-11,
            comment="D ≈ 4e-14 and the Jacobian ≈ 5e6: differences need steps ~1e-10, where "
            "float64 rounding of the norms (~1e-9 relative in 1 − c‖x‖²) is still below 1e-6",
        ),
        Sample(
            "nearly antipodal points at 0.999 of the radius (float32 too)",
            (x32, y32),
            flags=("BALL_BOUNDARY", "CANCELLATION"),
            fd_step=1e-8,
        ),
        Sample(
            "c → 0 (c = 1e-10): x ⊕ y → x + y",
            (rng.standard_normal((2, n)), rng.standard_normal((2, n))),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "large curvature c = 100 (radius 0.1)",
            (
                _ball_points(rng, (3, n), 100.0, [0.2, 0.6, 0.9]),
                _ball_points(rng, (3, n), 100.0, [0.9, 0.5, 0.1]),
            ),
            {"c": 100.0},
        ),
        Sample(
            "batch dims (2, 3, n)",
            (
                _ball_points(rng, (2, 3, n), 1.0, rng.uniform(0, 0.9, (2, 3))),
                _ball_points(rng, (2, 3, n), 1.0, rng.uniform(0, 0.9, (2, 3))),
            ),
            flags=("BATCH_DIMS",),
        ),
        Sample(
            "n = 1: relativistic velocity addition (x + y)/(1 + cxy)",
            (np.array([[0.5], [0.9], [-0.3]]), np.array([[0.5], [-0.9], [0.6]])),
            comment="0.5 ⊕ 0.5 = 0.8, 0.9 ⊕ −0.9 = 0, −0.3 ⊕ 0.6 = 0.3/0.82",
        ),
        Sample("a single point", (p, q), {"c": 0.5}),
    ]


def _mobius_errors():
    x = np.array([[0.1, 0.2], [0.3, -0.1]])
    return [
        ErrorCase(
            "x outside the ball",
            (np.array([[0.1, 0.2], [0.8, 0.8]]), x),
            match=r"argument 'x'.*inside the Poincaré ball.*c‖x‖² = 1\.28\d* in row 1",
        ),
        ErrorCase(
            "y exactly on the boundary",
            (x, np.array([[1.0, 0.0], [0.0, 0.0]])),
            match=r"argument 'y'.*c‖y‖² < 1.*got c‖y‖² = 1\.0",
        ),
        ErrorCase(
            "inside for c = 1 but not for c = 4",
            (np.array([[0.6, 0.0], [0.0, 0.0]]), x),
            {"c": 4.0},
            match=r"argument 'x'.*1/√c = 0\.5",
        ),
    ]


register(
    OpCases(
        "mobius_add",
        dims={"B": (1, 5), "n": (1, 6)},
        random=_mobius_random,
        edges=_mobius_edges,
        errors=_mobius_errors,
        notes=NOTES,
        bench=ball_bench(
            "mobius_add",
            torch=_poincare_torch(torch_mobius_add),
            torch_label="(β_x σ + q x)/(β_x β_y + q) in torch ops; autograd backward",
        ),
    )
)


# -- poincare_expmap0 ---------------------------------------------------------------------
def _expmap0_random(rng, B, n):
    c = _random_c(rng)
    # row norms log-uniform over [1e-5, 3]/√c: both sides of the series switch at 1e-3
    norms = 10 ** rng.uniform(-5, np.log10(3.0), B) / np.sqrt(c)
    return Sample("random", (_directions(rng, (B, n)) * norms[:, None],), {"c": c})


def _series_switch_rows(rng, n, c):
    return _directions(rng, (3, n)) * (np.array([0.999e-3, 1e-3, 1.001e-3])[:, None] / np.sqrt(c))


def _expmap0_edges():
    rng = np.random.default_rng(12)
    n = 4
    v = rng.standard_normal((3, n))
    v[0] = 0.0
    v[2] = 0.0
    return [
        Sample("v = 0 exactly (rows 0 and 2)", (v,), flags=("AT_ORIGIN",)),
        Sample(
            "√c‖v‖ at 0.999e-3, 1e-3, 1.001e-3 (series switch)",
            (_series_switch_rows(rng, n, 2.5),),
            {"c": 2.5},
            flags=("SERIES_SWITCH",),
        ),
        Sample(
            "‖v‖ = 1e-200 (c‖v‖² underflows)",
            (_directions(rng, (2, n)) * 1e-200,),
            flags=("UNDERFLOW",),
            dtypes=("float64",),
        ),
        Sample(
            "√c‖v‖ = 40: the result rounds onto the boundary",
            (_directions(rng, (2, n)) * 40.0,),
            flags=("SATURATED",),
        ),
        Sample(
            "c → 0 (c = 1e-10): exp_0(v) → v",
            (rng.standard_normal((2, n)),),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample("batch dims (2, 3, n)", (rng.standard_normal((2, 3, n)),), {"c": 0.5}, flags=("BATCH_DIMS",)),
        Sample("n = 1: tanh(√c v)/√c", (np.array([[-2.0], [0.0], [0.3]]),), {"c": 2.0}),
    ]


register(
    OpCases(
        "poincare_expmap0",
        dims={"B": (1, 6), "n": (1, 8)},
        random=_expmap0_random,
        edges=_expmap0_edges,
        notes=NOTES,
        bench=ball_bench(
            "poincare_expmap0",
            torch=_poincare_torch(torch_expmap0),
            torch_label="tanh(u)/u · v (series below u = 1e-3) in torch ops; autograd backward",
            # one tanh per row (u = √c‖v‖); the backward reuses it (sech² = 1 − tanh²)
            transcendentals=_rows(0),
        ),
    )
)


# -- poincare_logmap0 ---------------------------------------------------------------------
def _logmap0_random(rng, B, n):
    c = _random_c(rng)
    fractions = np.where(rng.uniform(size=B) < 0.25, 10 ** rng.uniform(-5, -2, B), rng.uniform(0, 0.95, B))
    return Sample("random", (_ball_points(rng, (B, n), c, fractions),), {"c": c})


def _logmap0_edges():
    rng = np.random.default_rng(13)
    n = 4
    y = _ball_points(rng, (3, n), 1.0, [0.0, 0.5, 0.0])
    return [
        Sample("y = 0 exactly (rows 0 and 2)", (y,), flags=("AT_ORIGIN",)),
        Sample(
            "points at 1 − 1e-7 of the radius",
            (_ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3),),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=5e-11,
            comment="f ≈ 8.4, gradient ≈ 5e6; differences need steps ~1e-10 (see mobius_add)",
        ),
        Sample(
            "points at 1 − 1e-7 of the radius, c = 2.5",
            (_ball_points(rng, (2, n), 2.5, [BOUNDARY] * 2),),
            {"c": 2.5},
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=5e-11,
        ),
        Sample(
            "points at 0.999 of the radius (float32 too)",
            (_ball_points(rng, (3, n), 1.0, [0.999] * 3),),
            flags=("BALL_BOUNDARY",),
            fd_step=1e-8,
        ),
        Sample(
            "√c‖y‖ at 0.999e-3, 1e-3, 1.001e-3 (series switch)",
            (_series_switch_rows(rng, n, 0.1),),
            {"c": 0.1},
            flags=("SERIES_SWITCH",),
        ),
        Sample(
            "‖y‖ = 1e-200 (c‖y‖² underflows)",
            (_directions(rng, (2, n)) * 1e-200,),
            flags=("UNDERFLOW",),
            dtypes=("float64",),
        ),
        Sample(
            "c → 0 (c = 1e-10): log_0(y) → y",
            (rng.standard_normal((2, n)),),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "batch dims (2, 3, n)",
            (_ball_points(rng, (2, 3, n), 1.0, rng.uniform(0, 0.9, (2, 3))),),
            flags=("BATCH_DIMS",),
        ),
        Sample("n = 1: artanh(√c y)/√c", (np.array([[-0.6], [0.0], [0.3]]),)),
    ]


def _logmap0_errors():
    return [
        ErrorCase(
            "a point outside the ball",
            (np.array([[0.1, 0.2], [1.2, 0.0]]),),
            match=r"argument 'y'.*inside the Poincaré ball.*c‖y‖² = 1\.44 in row 1",
        ),
        ErrorCase("a point on the boundary", (np.array([[0.0, -1.0]]),), match=r"argument 'y'.*c‖y‖² = 1\.0"),
        ErrorCase(
            "inside for c = 1 but not for c = 4",
            (np.array([[0.3, 0.0], [0.0, 0.6]]),),
            {"c": 4.0},
            match=r"argument 'y'.*in row 1",
        ),
        ErrorCase(
            "batch dims: the row is named",
            (np.array([[[0.1, 0.0], [0.0, 0.1]], [[0.1, 0.0], [0.0, 2.0]]]),),
            match=r"argument 'y'.*in row \(1, 1\)",
        ),
    ]


register(
    OpCases(
        "poincare_logmap0",
        dims={"B": (1, 6), "n": (1, 8)},
        random=_logmap0_random,
        edges=_logmap0_edges,
        errors=_logmap0_errors,
        notes=NOTES,
        bench=ball_bench(
            "poincare_logmap0",
            torch=_poincare_torch(torch_logmap0),
            torch_label="artanh(u)/u · y (log1p form, series below 1e-3) in torch ops; autograd backward",
            # per row: artanh u = log1p(u) − ½ log1p(−u²), two log1p; the backward reuses them
            transcendentals=lambda args, kwargs: 2 * _rows(0)(args, kwargs),
        ),
    )
)


# -- shared pieces for the geometry ops -----------------------------------------------------------
def _in_ball_errors(valid_args, name, position, kwargs=None):
    """Error cases for the argument at ``position`` (a point of the ball) plus curvature."""
    kwargs = dict(kwargs or {})
    outside = [np.array(a, copy=True) for a in valid_args]
    outside[position][-1] = 0.0
    outside[position][-1, 0] = 1.5
    on_boundary = [np.array(a, copy=True) for a in valid_args]
    on_boundary[position][0] = 0.0
    on_boundary[position][0, -1] = 1.0
    return [
        ErrorCase(
            f"{name} outside the ball",
            tuple(outside),
            kwargs,
            match=rf"argument '{name}'.*inside the Poincaré ball.*c‖{name}‖² = 2\.25\d* in row 1",
        ),
        ErrorCase(f"{name} on the boundary", tuple(on_boundary), kwargs, match=rf"argument '{name}'.*= 1\.0"),
        ErrorCase(
            f"{name} inside for c = 1 but not for c = 100",
            tuple(valid_args),
            {**kwargs, "c": 100.0},
            match=r"1/√c = 0\.1",
        ),
    ]


def _two_points_errors(op_args, names):
    """Errors for ops on two points of the same shape (x, y) plus extra same-shape vectors."""
    errors = []
    for position, name in enumerate(names):
        errors += _in_ball_errors(op_args, name, position)
    x = op_args[0]
    errors += [
        ErrorCase(
            f"{names[1]} of another width",
            (x, np.zeros((2, 3)), *op_args[2:]),
            match=rf"argument '{names[1]}'.*n = 2",
        ),
    ]
    return errors


VALID_X = np.array([[0.1, 0.2], [0.3, -0.1]])
VALID_Y = np.array([[-0.2, 0.05], [0.0, 0.4]])


def _boundary_pair(rng, n, angles_degrees, radius=BOUNDARY):
    """x on the sphere of ``radius`` (default 1 − 1e-7) and y on it at the given angles from x."""
    x = _ball_points(rng, (len(angles_degrees), n), 1.0, [radius] * len(angles_degrees))
    unit_x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    other = _directions(rng, x.shape)
    other -= np.sum(other * unit_x, axis=-1, keepdims=True) * unit_x
    other /= np.linalg.norm(other, axis=-1, keepdims=True)
    angles = np.radians(angles_degrees)[:, None]
    return x, radius * (np.cos(angles) * unit_x + np.sin(angles) * other)


# -- mobius_scalar_mul ------------------------------------------------------------------------------
def _scalar_mul_random(rng, B, n):
    c = _random_c(rng)
    fractions = np.where(rng.uniform(size=B) < 0.25, 10 ** rng.uniform(-5, -2, B), rng.uniform(0, 0.9, B))
    return Sample("random", (rng.uniform(-2.5, 2.5, B), _ball_points(rng, (B, n), c, fractions)), {"c": c})


def _scalar_mul_edges():
    rng = np.random.default_rng(21)
    n = 3
    x = _ball_points(rng, (4, n), 1.0, [0.0, 0.5, 0.0, 0.3])
    return [
        Sample(
            "x = 0 (rows 0, 2), r = 0 (row 3)",
            (np.array([2.0, 1.5, -0.5, 0.0]), x),
            flags=("AT_ORIGIN",),
            comment="r ⊗ 0 = 0 with Jacobian r·I; 0 ⊗ x = 0",
        ),
        Sample(
            "r = 1, −1, 3 at 1 − 1e-7 of the radius",
            (np.array([1.0, -1.0, 0.5]), _ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3)),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=5e-11,
            comment="artanh(√c‖x‖) ≈ 8.4; r ≤ 1 keeps tanh(r·8.4) below 1 in float64",
        ),
        Sample(
            "√c‖x‖ at 0.999e-3, 1e-3, 1.001e-3 (series switch)",
            (np.array([0.7, -1.3, 2.0]), _series_switch_rows(rng, n, 2.5)),
            {"c": 2.5},
            flags=("SERIES_SWITCH",),
        ),
        Sample(
            "c → 0 (c = 1e-10): r ⊗ x → r x",
            (np.array([0.5, -2.0]), rng.standard_normal((2, n))),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "batch dims (2, 3, n)",
            (rng.uniform(-2, 2, (2, 3)), _ball_points(rng, (2, 3, n), 1.0, rng.uniform(0, 0.9, (2, 3)))),
            flags=("BATCH_DIMS",),
        ),
        Sample("a single point (0-d r)", (np.array(0.4), _ball_points(rng, (n,), 0.5, 0.6)), {"c": 0.5}),
        Sample("n = 1: tanh(r artanh(x))", (np.array([2.0, 0.5]), np.array([[0.6], [-0.3]]))),
    ]


def _scalar_mul_errors():
    r = np.array([0.5, 2.0])
    return [
        *_in_ball_errors((r, VALID_X), "x", 1),
    ]


register(
    OpCases(
        "mobius_scalar_mul",
        dims={"B": (1, 5), "n": (1, 6)},
        random=_scalar_mul_random,
        edges=_scalar_mul_edges,
        errors=_scalar_mul_errors,
        notes=NOTES,
        bench=ball_bench(
            "mobius_scalar_mul",
            torch=_poincare_torch(_scalar_mul_forward),
            torch_label="exp_0(r · log_0(x)) in torch ops; autograd backward",
            # per row: log_0's two log1p and exp_0's tanh; the backward reuses them
            transcendentals=lambda args, kwargs: 3 * _rows(1)(args, kwargs),
        ),
    )
)


# -- mobius_matvec --------------------------------------------------------------------------------
def _matvec_random(rng, B, m, n):
    c = _random_c(rng)
    M = rng.standard_normal((m, n)) / np.sqrt(n)
    fractions = np.where(rng.uniform(size=B) < 0.2, 10 ** rng.uniform(-5, -2, B), rng.uniform(0, 0.9, B))
    return Sample("random", (M, _ball_points(rng, (B, n), c, fractions)), {"c": c})


def _matvec_edges():
    rng = np.random.default_rng(22)
    n = 3
    x = _ball_points(rng, (3, n), 1.0, [0.0, 0.6, 0.9])
    kernel_M = np.array([[1.0, -1.0, 0.0], [2.0, -2.0, 0.0]])  # kills (1, 1, 0)
    kernel_x = np.array([[0.4, 0.4, 0.0], [0.1, 0.1, 0.0], [0.2, 0.3, 0.1]])
    return [
        Sample("x = 0 (row 0)", (rng.standard_normal((2, n)), x), flags=("AT_ORIGIN",)),
        Sample(
            "Mx = 0 with x ≠ 0 (rows 0, 1)",
            (kernel_M, kernel_x),
            flags=("KERNEL",),
            comment="the formula's tanh(0)·0/0; exp_0(M log_0 x) gives 0 and a finite Jacobian",
        ),
        Sample("M = I (identity)", (np.eye(n), x)),
        Sample(
            "x at 1 − 1e-7 of the radius, contracting M",
            (0.1 * rng.standard_normal((2, n)), _ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3)),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=5e-11,
        ),
        Sample(
            "c → 0 (c = 1e-10): M ⊗ x → M x",
            (rng.standard_normal((4, n)), rng.standard_normal((2, n))),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "batch dims (2, 3, n), m = 5",
            (rng.standard_normal((5, n)) / 2, _ball_points(rng, (2, 3, n), 1.0, rng.uniform(0, 0.9, (2, 3)))),
            flags=("BATCH_DIMS",),
        ),
        Sample("a single point x of shape (n,)", (rng.standard_normal((2, n)) / 2, x[1]), {"c": 0.5}),
    ]


def _matvec_errors():
    M = np.array([[1.0, 0.5], [0.0, 2.0], [1.0, 1.0]])
    return [
        *_in_ball_errors((M, VALID_X), "x", 1),
    ]


register(
    OpCases(
        "mobius_matvec",
        dims={"B": (1, 5), "m": (1, 5), "n": (1, 5)},
        random=_matvec_random,
        edges=_matvec_edges,
        errors=_matvec_errors,
        notes=NOTES,
        bench=ball_bench(
            "mobius_matvec",
            torch=_poincare_torch(_matvec_forward),
            torch_label="exp_0(log_0(x) @ Mᵀ) in torch ops; autograd backward",
            # per row of x: log_0's two log1p and exp_0's tanh (one row of Mx per row of x)
            transcendentals=lambda args, kwargs: 3 * _rows(1)(args, kwargs),
            blas=_matvec_blas,
        ),
    )
)


# -- poincare_expmap ------------------------------------------------------------------------------
def _expmap_random(rng, B, n):
    c = _random_c(rng)
    x = _ball_points(rng, (B, n), c, rng.uniform(0, 0.9, B))
    beta = 1 - c * np.sum(x * x, axis=-1, keepdims=True)
    # √c‖v‖/β log-uniform over [1e-5, 3]: both sides of the series switch, tanh below 1
    norms = 10 ** rng.uniform(-5, np.log10(3.0), (B, 1)) * beta / np.sqrt(c)
    return Sample("random", (x, _directions(rng, (B, n)) * norms), {"c": c})


def _expmap_edges():
    rng = np.random.default_rng(23)
    n = 4
    x = _ball_points(rng, (3, n), 1.0, [0.0, 0.7, 0.5])
    v = rng.standard_normal((3, n))
    v[2] = 0.0
    boundary_x = _ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3)
    return [
        Sample("x = 0 (row 0), v = 0 (row 2)", (x, v), flags=("AT_ORIGIN",)),
        Sample(
            "x at 1 − 1e-7 of the radius, v of Riemannian norm 0.5 (inward and tangential)",
            (boundary_x, -0.25e-7 * (boundary_x + 0.5 * _directions(rng, (3, n)))),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=3e-10,
            fd_rtol=1e-4,
            comment="λ ≈ 5e6: the step must stay ≪ 1e-7 and the differences keep ~5 digits",
        ),
        Sample(
            "√c‖v‖/β = 40: exp_0 of the scaled vector rounds onto the boundary",
            (_ball_points(rng, (2, n), 1.0, [0.0, 0.0]), _directions(rng, (2, n)) * 40.0),
            flags=("SATURATED",),
        ),
        Sample(
            "c → 0 (c = 1e-10): exp_x(v) → x + v",
            (rng.standard_normal((2, n)), rng.standard_normal((2, n))),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "batch dims (2, 3, n)",
            (
                _ball_points(rng, (2, 3, n), 0.5, rng.uniform(0, 0.9, (2, 3))),
                0.3 * rng.standard_normal((2, 3, n)),
            ),
            {"c": 0.5},
            flags=("BATCH_DIMS",),
        ),
        Sample("n = 1", (np.array([[0.5], [-0.2]]), np.array([[0.75 * np.log(3.0)], [0.1]]))),
    ]


def _expmap_errors():
    return [
        *_in_ball_errors((VALID_X, VALID_Y), "x", 0),
    ]


register(
    OpCases(
        "poincare_expmap",
        dims={"B": (1, 5), "n": (1, 6)},
        random=_expmap_random,
        edges=_expmap_edges,
        errors=_expmap_errors,
        notes=NOTES,
        bench=ball_bench(
            "poincare_expmap",
            torch=_poincare_torch(torch_expmap),
            torch_label="x ⊕ exp_0(v/β_x) in torch ops; autograd backward",
            # one tanh per row (exp_0 of v/β_x); ⊕ is arithmetic
            transcendentals=_rows(0),
        ),
    )
)


# -- poincare_logmap and poincare_distance ----------------------------------------------------------
def _two_points_random(rng, B, n):
    c = _random_c(rng)
    x = _ball_points(rng, (B, n), c, rng.uniform(0, 0.9, B))
    y = _ball_points(rng, (B, n), c, rng.uniform(0, 0.9, B))
    return Sample("random", (x, y), {"c": c})


def _two_points_edges(rng, *, same_point_fd):
    n = 4
    x = _ball_points(rng, (3, n), 1.0, [0.0, 0.6, 0.3])
    y = _ball_points(rng, (3, n), 1.0, [0.5, 0.0, 0.8])
    near = x + 1e-9 * _directions(rng, x.shape)
    boundary_x, boundary_y = _boundary_pair(rng, n, [0.0, 90.0, 150.0])
    anti_x, _ = _boundary_pair(rng, n, [0.0, 0.0])
    anti_y = -anti_x * (1 - 3e-8)
    return [
        Sample("x = 0 (row 0), y = 0 (row 1)", (x, y), flags=("AT_ORIGIN",)),
        Sample(
            "y = x exactly",
            (x, x.copy()),
            flags=("SAME_POINT",),
            fd=same_point_fd,
            comment="" if same_point_fd else "d has a cone point at y = x: outputs and finiteness only",
        ),
        Sample(
            "y = x + 1e-9 (nearly the same point)",
            (x, near),
            flags=("SAME_POINT",),
            fd_step=1e-12,
            fd_rtol=1e-2,
            comment="a difference step below the 1e-9 separation: the cone point is not crossed",
        ),
        Sample(
            "both at 1 − 1e-7 of the radius, 0°, 90°, 150° apart",
            (boundary_x, boundary_y),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd=False,
            comment="λ ≈ 5e6: central differences carry no digit here (outputs and finiteness only); "
            "the backward is FD-checked at 1 − 1e-4 of the radius",
        ),
        Sample(
            "both at 1 − 1e-4 of the radius, 1°, 90°, 150° apart",
            _boundary_pair(rng, n, [1.0, 90.0, 150.0], radius=1 - 1e-4),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=1e-9,
            fd_rtol=1e-4,
        ),
        Sample(
            "antipodal points at 1 − 1e-7 of the radius (y = −x, 3e-8 shorter)",
            (anti_x, anti_y),
            flags=("BALL_BOUNDARY", "CANCELLATION"),
            dtypes=("float64",),
            fd=False,
            comment="1 − c‖−x ⊕ y‖² ≈ 1e-14: taken from the rounded −x ⊕ y it would keep no digit; "
            "differences carry no digit here (outputs and finiteness only)",
        ),
        Sample(
            "points at 0.999 of the radius (float32 too)",
            tuple(_ball_points(rng, (2, 3, n), 1.0, [[0.999] * 3] * 2)),
            flags=("BALL_BOUNDARY",),
            fd_step=1e-8,
            comment="float32 keeps ~4 digits of 1 − c‖x‖² ≈ 2e-3",
        ),
        Sample(
            "c → 0 (c = 1e-10)",
            (rng.standard_normal((2, n)), rng.standard_normal((2, n))),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "batch dims (2, 3, n), c = 2.5",
            (
                _ball_points(rng, (2, 3, n), 2.5, rng.uniform(0, 0.9, (2, 3))),
                _ball_points(rng, (2, 3, n), 2.5, rng.uniform(0, 0.9, (2, 3))),
            ),
            {"c": 2.5},
            flags=("BATCH_DIMS",),
        ),
        Sample("single points of shape (n,)", (x[1], y[2]), {"c": 0.5}),
    ]


register(
    OpCases(
        "poincare_logmap",
        dims={"B": (1, 5), "n": (1, 6)},
        random=_two_points_random,
        edges=lambda: [
            *_two_points_edges(np.random.default_rng(24), same_point_fd=True),
            Sample("n = 1: log_0.5(13/14) = 0.75 log 3", (np.array([[0.5]]), np.array([[13 / 14]]))),
        ],
        errors=lambda: _two_points_errors((VALID_X, VALID_Y), ("x", "y")),
        notes=NOTES,
        bench=ball_bench(
            "poincare_logmap",
            torch=_poincare_torch(torch_logmap),
            torch_label="β_x · artanh(u)/u · (−x ⊕ y), u² = q/D, in torch ops; autograd backward",
            # per row: artanh u = log1p(u) − ½ log(1 − u²), one log1p and one log
            transcendentals=lambda args, kwargs: 2 * _rows(0)(args, kwargs),
        ),
    )
)

register(
    OpCases(
        "poincare_distance",
        dims={"B": (1, 5), "n": (1, 6)},
        random=_two_points_random,
        edges=lambda: [
            *_two_points_edges(np.random.default_rng(25), same_point_fd=False),
            Sample("n = 1: d(0, 0.6) = 2 log 2", (np.array([[0.0], [0.5]]), np.array([[0.6], [-0.5]]))),
        ],
        errors=lambda: _two_points_errors((VALID_X, VALID_Y), ("x", "y")),
        notes=NOTES,
        bench=ball_bench(
            "poincare_distance",
            torch=_poincare_torch(torch_distance),
            torch_label="log1p(δ + √(δ(δ + 2)))/√c in torch ops; autograd backward",
            # one log1p per row (arcosh(1 + δ)); the backward needs only square roots
            transcendentals=_rows(0),
        ),
    )
)


# -- poincare_gyration and poincare_parallel_transport ---------------------------------------------
def _three_args_random(rng, B, n):
    c = _random_c(rng)
    a = _ball_points(rng, (B, n), c, rng.uniform(0, 0.9, B))
    b = _ball_points(rng, (B, n), c, rng.uniform(0, 0.9, B))
    # float32: the cotangents of a and b are sums of terms of size ~‖g‖‖v‖λ_a²λ_b² that
    # cancel (exactly, for n = 1); computed in float32 they keep ~1e-4 of that size
    # (worst 1.5e-4 over 1 500 seeds at n = 1), hence atol 5e-4 there
    return Sample(
        "random",
        (a, b, rng.standard_normal((B, n))),
        {"c": c},
    )


def _three_args_edges(rng):
    n = 4
    a = _ball_points(rng, (3, n), 1.0, [0.0, 0.6, 0.0])
    b = _ball_points(rng, (3, n), 1.0, [0.5, 0.0, 0.0])
    v = rng.standard_normal((3, n))
    boundary_a, boundary_b = _boundary_pair(rng, n, [0.0, 90.0, 150.0])
    return [
        Sample("first point 0 (rows 0, 2), second point 0 (rows 1, 2)", (a, b, v), flags=("AT_ORIGIN",)),
        Sample("both points equal", (a + b, a + b, v), flags=("SAME_POINT",)),
        Sample(
            "both points at 1 − 1e-7 of the radius, 0°, 90°, 150° apart",
            (boundary_a, boundary_b, rng.standard_normal((3, n))),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd=False,
            comment="λ ≈ 5e6: central differences carry no digit here (outputs and finiteness only); "
            "the backward is FD-checked at 1 − 1e-4 of the radius",
        ),
        Sample(
            "both points at 1 − 1e-4 of the radius, 0°, 90°, 150° apart",
            (*_boundary_pair(rng, n, [0.0, 90.0, 150.0], radius=1 - 1e-4), rng.standard_normal((3, n))),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=1e-9,
            fd_rtol=1e-3,
        ),
        Sample(
            "points at 0.99 of the radius (float32 too)",
            (
                _ball_points(rng, (3, n), 1.0, [0.99] * 3),
                _ball_points(rng, (3, n), 1.0, [0.99] * 3),
                rng.standard_normal((3, n)),
            ),
            flags=("BALL_BOUNDARY",),
            fd_step=1e-8,
        ),
        Sample(
            "c → 0 (c = 1e-10)",
            (rng.standard_normal((2, n)), rng.standard_normal((2, n)), rng.standard_normal((2, n))),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "batch dims (2, 3, n), c = 2.5",
            (
                _ball_points(rng, (2, 3, n), 2.5, rng.uniform(0, 0.9, (2, 3))),
                _ball_points(rng, (2, 3, n), 2.5, rng.uniform(0, 0.9, (2, 3))),
                rng.standard_normal((2, 3, n)),
            ),
            {"c": 2.5},
            flags=("BATCH_DIMS",),
        ),
        Sample(
            "n = 1 (gyrations of a line are trivial)",
            (np.array([[0.5]]), np.array([[-0.3]]), np.array([[2.0]])),
        ),
    ]


VALID_V = np.array([[1.0, -2.0], [0.5, 3.0]])

register(
    OpCases(
        "poincare_gyration",
        dims={"B": (1, 5), "n": (1, 6)},
        random=_three_args_random,
        edges=lambda: _three_args_edges(np.random.default_rng(26)),
        errors=lambda: _two_points_errors((VALID_X, VALID_Y, VALID_V), ("a", "b")),
        notes=NOTES,
        bench=ball_bench(
            "poincare_gyration",
            torch=_poincare_torch(torch_gyration),
            torch_label="v + 2(A a + B b)/D in torch ops; autograd backward",
        ),
    )
)

register(
    OpCases(
        "poincare_parallel_transport",
        dims={"B": (1, 5), "n": (1, 6)},
        random=_three_args_random,
        edges=lambda: _three_args_edges(np.random.default_rng(27)),
        errors=lambda: _two_points_errors((VALID_X, VALID_Y, VALID_V), ("x", "y")),
        notes=NOTES,
        bench=ball_bench(
            "poincare_parallel_transport",
            torch=_poincare_torch(torch_parallel_transport),
            torch_label="β_y/β_x · gyr[y, −x] v in torch ops; autograd backward",
        ),
    )
)


# -- poincare_project ----------------------------------------------------------------------------
def _project_random(rng, B, n):
    c = _random_c(rng)
    eps = float(rng.choice([0.1, 4e-3, 1e-3]))
    radius = (1 - eps) / np.sqrt(c)
    # norms at 0.1–0.95 or 1.05–10 of the projection radius: never at the threshold itself
    fractions = np.where(rng.uniform(size=B) < 0.5, rng.uniform(0.1, 0.95, B), rng.uniform(1.05, 10, B))
    return Sample("random", (_directions(rng, (B, n)) * (fractions * radius)[:, None],), {"c": c, "eps": eps})


def _project_edges():
    rng = np.random.default_rng(28)
    n = 3
    rows = _directions(rng, (4, n)) * np.array([0.0, 0.5, 2.0, 1e6])[:, None]
    return [
        Sample(
            "default eps 1e-5 (float64): rows 0, 0.5, 2, 1e6",
            (rows,),
            flags=("PROJECT_EDGE", "AT_ORIGIN"),
            dtypes=("float64",),
            comment="the default eps depends on the dtype, and the reference runs in float64",
        ),
        Sample(
            "eps = 4e-3 (the float32 default) given explicitly",
            (rows,),
            {"eps": 4e-3},
            flags=("PROJECT_EDGE",),
        ),
        Sample("c = 100, eps = 0.5", (rows * 0.1,), {"c": 100.0, "eps": 0.5}, flags=("PROJECT_EDGE",)),
        Sample("batch dims (2, 2, n)", (rows.reshape(2, 2, n),), {"eps": 0.01}, flags=("BATCH_DIMS",)),
    ]


def _project_errors():
    return []


register(
    OpCases(
        "poincare_project",
        dims={"B": (1, 6), "n": (1, 6)},
        random=_project_random,
        edges=_project_edges,
        errors=_project_errors,
        notes=NOTES,
        bench=ball_bench(
            "poincare_project",
            torch=_project_torch,
            torch_label="x · clamp(r/torch.linalg.vector_norm(x), max=1) under no_grad",
        ),
    )
)

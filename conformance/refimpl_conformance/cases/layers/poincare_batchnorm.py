"""Conformance cases for `poincare_midpoint` and `poincare_batch_norm` (Poincaré ResNet's
midpoint batch normalization)."""

from __future__ import annotations

import numpy as np

from refimpl.layers.poincare_batchnorm import VARIANCE_EPS

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from .poincare import (
    BOUNDARY,
    _ball_points,
    _directions,
    _random_c,
    ball_bench_sample,
    torch_c_squared_norm,
    torch_distance,
    torch_expmap,
    torch_expmap0,
    torch_logmap,
    torch_parallel_transport,
)

NOTES = {
    "SAME_POINT": "identical points: the midpoint is the point; σ² = 0 and the scale is √(γ/1e-6)",
    "SINGLE_POINT": "B = 1: the midpoint is the point, σ² = 0, the output is b = exp_0(β)",
    "AT_ORIGIN": "points at the origin (λ = 2) or a batch symmetric about it (midpoint 0)",
    "BALL_BOUNDARY": "points at 1 − 1e-7 (float64) or 0.999 (float32) of the radius: λ ~ 1e7",
    "KLEIN_CANCELLATION": "1 − c‖u‖² of the Klein average u cancels (identical points near the boundary: "
    "((1 − c‖x‖²)/(1 + c‖x‖²))², below float32 resolution at 0.9999); the catalog's clamp of a "
    "negative value gives a midpoint off by 1e-4 and gradients ~1e35",
    "DOMINANT_POINT": "one point near the boundary among points near the origin: its λ dominates",
    "C_TO_ZERO": "c = 1e-10: the midpoint → the mean; batch norm → β + √(γ/(4 v + ε))(x − mean)",
    "TINY_SPREAD": "spread ~1e-5 ≪ √ε: σ² ≪ 1e-6 and the scale ≈ 1000√γ",
    "LIBRARY_INIT": "γ = 1, β = 0: the official code's initialization",
}


def _repeated(point, count):
    return np.repeat(point[None, :], count, axis=0)


# -- the PyTorch baselines: the reference's formulas (refimpl/layers/poincare*.py) in torch ops --------
def _t_midpoint(torch, points, c):
    """m = N/(S + √Q), Q = B² + 4cWV (the reference's cancellation-free gyromidpoint)."""
    batch = points.shape[0]
    w = 1 / (1 - torch_c_squared_norm(points, c))
    w_sum = torch.sum(w)
    numerator = 2 * torch.sum(w * points, dim=0)
    centred = points - numerator / (2 * w_sum)
    spread = torch.sum(w * torch.sum(centred * centred, dim=-1, keepdim=True))
    root_q = torch.sqrt(batch * batch + 4 * c * w_sum * spread)
    return numerator / (2 * w_sum - batch + root_q)


def _midpoint_torch(torch, args, kwargs, cotangent):
    points = torch.from_numpy(args[0]).requires_grad_()
    c = float(kwargs.get("c", 1.0))
    g = torch.from_numpy(cotangent)

    def step():
        points.grad = None
        m = _t_midpoint(torch, points, c)
        m.backward(g)
        return m

    return step


def _batch_norm_torch(torch, args, kwargs, cotangent):
    x, gamma, beta = (torch.from_numpy(np.asarray(a)).requires_grad_() for a in args)
    c = float(kwargs.get("c", 1.0))
    g = torch.from_numpy(cotangent)

    def step():
        x.grad = gamma.grad = beta.grad = None
        b = torch_expmap0(torch, beta, c)[None, :]
        mu = _t_midpoint(torch, x, c)[None, :]
        w = torch_logmap(torch, mu, x, c)
        d = torch_distance(torch, x, mu, c)
        variance = torch.sum(d * d) / x.shape[0]
        z = torch.sqrt(gamma / (variance + VARIANCE_EPS)) * torch_parallel_transport(torch, mu, b, w, c)
        out = torch_expmap(torch, b, z, c)
        out.backward(g)
        return out

    return step


# -- poincare_midpoint ----------------------------------------------------------------------
def _midpoint_random(rng, B, n):
    c = _random_c(rng)
    return Sample("random", (_ball_points(rng, (B, n), c, rng.uniform(0, 0.95, B)),), {"c": c})


def _midpoint_edges():
    rng = np.random.default_rng(31)
    n = 4
    point = _ball_points(rng, (n,), 1.0, 0.6)
    symmetric = _ball_points(rng, (2, n), 1.0, [0.5, 0.8])
    boundary_point = _ball_points(rng, (n,), 1.0, BOUNDARY)
    near = _ball_points(rng, (4, n), 1.0, [0.05, 0.1, 0.2, 0.0])
    near[3] = _ball_points(rng, (n,), 1.0, 0.999)
    return [
        Sample("identical points (B = 3)", (_repeated(point, 3),), flags=("SAME_POINT",)),
        Sample("a single point (B = 1)", (point[None, :],), {"c": 2.5}, flags=("SINGLE_POINT",)),
        Sample(
            "a batch symmetric about the origin, with a point at 0",
            (np.vstack([symmetric, -symmetric, np.zeros((1, n))]),),
            flags=("AT_ORIGIN",),
            comment="the midpoint is exactly 0",
        ),
        Sample("all points at the origin", (np.zeros((3, n)),), flags=("AT_ORIGIN",)),
        Sample(
            "identical points at 1 − 1e-7 of the radius",
            (_repeated(boundary_point, 3),),
            flags=("BALL_BOUNDARY", "SAME_POINT", "KLEIN_CANCELLATION"),
            dtypes=("float64",),
            fd_step=1e-10,
            fd_rtol=1e-5,
            comment="1 − c‖u‖² ≈ 1e-14 by the catalog's formula; steps stay ≪ 1e-7 inside the ball, "
            "and the rounding of λ ≈ 1e7 (~1e-9 relative) limits the differences to ~6 digits",
        ),
        Sample(
            "identical points at 0.9999 of the radius (float32 too)",
            (_repeated(_ball_points(rng, (n,), 1.0, 0.9999), 3),),
            flags=("BALL_BOUNDARY", "SAME_POINT", "KLEIN_CANCELLATION"),
            fd_step=1e-9,
            comment="in float32 1 − c‖u‖² rounds to ≤ 0 by the catalog's formula; the gradient "
            "loses ~1/(1 − c‖x‖²)·eps ≈ 3e-4 to the weights w_i = 1/(1 − c‖x_i‖²)",
        ),
        Sample(
            "distinct points at 1 − 1e-7 of the radius",
            (_ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3),),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=1e-10,
            fd_rtol=1e-5,
            comment="λ ≈ 1e7 and Jacobian entries ~1e6: the differences keep ~6 digits",
        ),
        Sample(
            "points at 0.999 of the radius (float32 too)",
            (_ball_points(rng, (4, n), 1.0, [0.999] * 4),),
            flags=("BALL_BOUNDARY",),
            fd_step=1e-8,
        ),
        Sample(
            "one point at 0.999 of the radius among points near the origin",
            (near,),
            flags=("DOMINANT_POINT", "AT_ORIGIN"),
            fd_step=1e-8,
        ),
        Sample(
            "c → 0 (c = 1e-10): the mean",
            (rng.standard_normal((5, n)),),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "large curvature c = 100 (radius 0.1)",
            (_ball_points(rng, (4, n), 100.0, [0.2, 0.6, 0.9, 0.0]),),
            {"c": 100.0},
        ),
        Sample("n = 1: on a line", (np.array([[0.5], [-0.3], [0.9]]),)),
    ]


def _midpoint_errors():
    valid = np.array([[0.1, 0.2], [0.3, -0.1], [-0.2, 0.0]])
    return [
        ErrorCase(
            "a point outside the ball",
            (np.array([[0.1, 0.2], [1.2, 0.0]]),),
            match=r"argument 'points'.*inside the Poincaré ball.*c‖points‖² = 1\.44 in row 1",
        ),
        ErrorCase("a point on the boundary", (np.array([[0.0, -1.0]]),), match=r"argument 'points'.*= 1\.0"),
        ErrorCase("inside for c = 1 but not for c = 100", (valid,), {"c": 100.0}, match=r"1/√c = 0\.1"),
    ]


register(
    OpCases(
        "poincare_midpoint",
        dims={"B": (1, 6), "n": (1, 5)},
        random=_midpoint_random,
        edges=_midpoint_edges,
        errors=_midpoint_errors,
        notes=NOTES,
        bench=Bench(
            make=ball_bench_sample("poincare_midpoint"),
            torch=_midpoint_torch,
            torch_label="torch: the reference's closed form N/(S + √Q) in torch ops; autograd backward",
        ),  # no transcendentals: divisions and one sqrt
    )
)


# -- poincare_batch_norm --------------------------------------------------------------------
def _batch_norm_random(rng, B, n):
    c = _random_c(rng)
    for _ in range(20):  # a batch spread out: nearly coincident points make the variance tiny,
        # and dividing by it amplifies float32 rounding (SAME_POINT is the edge case of it)
        x = _ball_points(rng, (B, n), c, rng.uniform(0, 0.9, B))
        if np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean() * c) > 0.1:
            break
    gamma = np.asarray(rng.uniform(0.3, 2.0))
    beta = 0.4 * rng.standard_normal(n) / np.sqrt(c)
    return Sample("random", (x, gamma, beta), {"c": c})


def _batch_norm_edges():
    rng = np.random.default_rng(32)
    n = 3
    one, zero = np.asarray(1.0), np.zeros(n)
    gamma, beta = np.asarray(0.7), 0.3 * rng.standard_normal(n)
    x = _ball_points(rng, (5, n), 1.0, rng.uniform(0.1, 0.8, 5))
    symmetric = _ball_points(rng, (2, n), 1.0, [0.3, 0.6])
    point = _ball_points(rng, (n,), 1.0, 0.5)
    return [
        Sample("library init γ = 1, β = 0", (x, one, zero), flags=("LIBRARY_INIT",)),
        Sample(
            "a batch symmetric about the origin, β = 0",
            (np.vstack([symmetric, -symmetric]), one, zero),
            flags=("AT_ORIGIN", "LIBRARY_INIT"),
            comment="midpoint 0: the output is x rescaled along geodesics from 0",
        ),
        Sample(
            "a single point (B = 1): the output is exp_0(β)",
            (point[None, :], gamma, beta),
            flags=("SINGLE_POINT",),
            comment="σ² = 0 and log_μ(x) = 0 up to rounding, amplified by √(γ/1e-6) ≈ 840: the exact "
            "x̄ and γ̄ are 0, float32 leaves ~840·eps ≈ 6e-5",
        ),
        Sample(
            "identical points (σ² = 0)",
            (_repeated(point, 4), gamma, beta),
            flags=("SAME_POINT",),
            fd_step=1e-7,
            comment="the rounding of log_μ(x_i) ≈ 0 is multiplied by √(γ/1e-6) ≈ 840; near σ² = 0 the "
            "scale's third-order term (~√γ/ε^{3/2}) needs steps ≲ 1e-7 for 1e-6 differences",
        ),
        Sample(
            "nearly identical points (spread 1e-5 ≪ √ε)",
            (_repeated(point, 4) + 1e-5 * _directions(rng, (4, n)), one, beta),
            flags=("TINY_SPREAD",),
            fd_step=1e-9,
            fd_rtol=1e-5,
            comment="float32 resolves the 1e-5 offsets of points of norm 0.5 to ~1e-3 relative, and "
            "the scale ≈ 1000 carries that into the output",
        ),
        Sample(
            "points at 1 − 1e-7 of the radius",
            (_ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3), gamma, beta),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd=False,
            comment="λ ≈ 5e6: central differences carry no digit here (outputs and finiteness only); "
            "the backward is FD-checked at 1 − 1e-4 of the radius",
        ),
        Sample(
            "points at 1 − 1e-4 of the radius",
            (_ball_points(rng, (3, n), 1.0, [1 - 1e-4] * 3), gamma, beta),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=1e-9,
            fd_rtol=1e-4,
        ),
        Sample(
            "points at 0.999 of the radius (float32 too)",
            (_ball_points(rng, (4, n), 1.0, [0.999] * 4), gamma, beta),
            flags=("BALL_BOUNDARY",),
            fd_step=1e-8,
            fd_rtol=1e-5,
            comment="float32 keeps ~4 digits of 1 − c‖x‖² ≈ 2e-3, and log_μ/exp_b amplify it by λ",
        ),
        Sample(
            "identical points at 0.9999 of the radius",
            (_repeated(_ball_points(rng, (n,), 1.0, 0.9999), 3), one, beta),
            flags=("BALL_BOUNDARY", "SAME_POINT", "KLEIN_CANCELLATION"),
            dtypes=("float64",),
            fd_step=1e-10,
            fd_rtol=1e-4,
        ),
        Sample(
            "one point at 0.99 of the radius among points near the origin",
            (
                np.vstack(
                    [_ball_points(rng, (3, n), 1.0, [0.05, 0.1, 0.0]), 0.99 * _directions(rng, (1, n))]
                ),
                gamma,
                beta,
            ),
            flags=("DOMINANT_POINT",),
            fd_step=1e-8,
        ),
        Sample(
            "c → 0 (c = 1e-10): Euclidean normalization with σ² = 4 mean‖x − x̄‖²",
            (rng.standard_normal((4, n)), gamma, beta),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "large curvature c = 100 (radius 0.1)",
            (_ball_points(rng, (4, n), 100.0, [0.2, 0.6, 0.9, 0.0]), gamma, 0.03 * rng.standard_normal(n)),
            {"c": 100.0},
        ),
        Sample(
            "large γ = 9 and a far shift √c‖β‖ = 3",
            (x, np.asarray(9.0), 3.0 * _directions(rng, (n,))),
            fd_step=1e-8,
            comment="b at tanh(3) ≈ 0.995 of the radius; the output spreads 3σ-far from it",
        ),
        Sample("n = 1: on a line", (np.array([[0.5], [-0.3], [0.1]]), one, np.array([0.2]))),
    ]


def _batch_norm_errors():
    x = np.array([[0.1, 0.2], [0.3, -0.1], [-0.2, 0.0]])
    one, zero = np.asarray(1.0), np.zeros(2)
    return [
        ErrorCase(
            "x outside the ball",
            (np.array([[0.1, 0.2], [0.9, 0.9]]), one, zero),
            match=r"argument 'x'.*inside the Poincaré ball.*c‖x‖² = 1\.62\d* in row 1",
        ),
        ErrorCase("γ = 0", (x, np.asarray(0.0), zero), match=r"argument 'gamma'.*positive"),
        ErrorCase("γ < 0", (x, np.asarray(-1.0), zero), match=r"argument 'gamma'.*positive.*-1\.0"),
        ErrorCase(
            "β whose exp_0 rounds onto the boundary (√c‖β‖ = 40)",
            (x, one, np.array([40.0, 0.0])),
            match=r"argument 'beta'.*inside the ball.*√c‖β‖ = 40",
        ),
        ErrorCase(
            "x inside for c = 1 but not for c = 100", (x, one, zero), {"c": 100.0}, match=r"1/√c = 0\.1"
        ),
    ]


register(
    OpCases(
        "poincare_batch_norm",
        dims={"B": (2, 6), "n": (1, 4)},  # B = 1 (σ² = 0, exact gradient 0) is an edge case
        random=_batch_norm_random,
        edges=_batch_norm_edges,
        errors=_batch_norm_errors,
        notes=NOTES,
        bench=Bench(
            make=ball_bench_sample("poincare_batch_norm"),
            torch=_batch_norm_torch,
            torch_label="torch: midpoint, log_μ, d(x, μ), transport, exp_b with the reference's formulas "
            "in torch ops; autograd backward",
            # per point one artanh (u = √c‖−μ ⊕ x_i‖, shared by log_μ(x_i) and d(x_i, μ) = 2 artanh(u)/√c)
            # and one tanh (exp_b); one tanh for b = exp_0(β)
            transcendentals=lambda args, kwargs: 2 * args[0].shape[0] + 1,
        ),
    )
)

"""Conformance cases for `mobius_add`, `poincare_expmap0` and `poincare_logmap0`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register

NOTES = {
    "AT_ORIGIN": "a zero row: exp_0/log_0 are 0/0 there (series needed), 0 is ⊕'s identity",
    "SERIES_SWITCH": "‖v‖√c just below, at and above 1e-3: the series and direct formulas must agree",
    "UNDERFLOW": "‖v‖ = 1e-200: c‖v‖² underflows to 0; an unguarded tanh(u)/u gives 0/0",
    "BALL_BOUNDARY": "points at 1 − 1e-7 (float64) or 0.999 (float32) of the radius: λ ~ 1e7, artanh → ∞",
    "CANCELLATION": "y ≈ −x near the boundary: the textbook α, β, D of ⊕ cancel to ~3 digits",
    "SATURATED": "√c‖v‖ = 40: tanh rounds to 1, exp_0 lands on the boundary; gradients stay finite",
    "C_TO_ZERO": "c = 1e-10: the Euclidean limits x ⊕ y → x + y, exp_0(v) → v, log_0(y) → y",
    "BATCH_DIMS": "several leading dimensions: norms are over the last axis only",
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
        ErrorCase("NaN in y", (x, np.array([[0.1, np.nan], [0.0, 0.0]])), match=r"argument 'y'.*nan"),
        ErrorCase("c = 0", (x, x), {"c": 0.0}, match=r"argument 'c'.*> 0"),
        ErrorCase("c < 0 (a sphere, not a ball)", (x, x), {"c": -1.0}, match=r"argument 'c'.*> 0"),
        ErrorCase("c = inf", (x, x), {"c": float("inf")}, match=r"argument 'c'.*finite"),
        ErrorCase("y of another width", (x, np.zeros((2, 3))), match=r"argument 'y'.*n = 2"),
        ErrorCase("y with other batch dims", (x, np.zeros((3, 2))), match=r"nothing is broadcast"),
        ErrorCase("one y for a batch of x", (x, np.zeros(2)), match=r"nothing is broadcast"),
        ErrorCase("mixed dtypes", (x, x.astype(np.float32)), match="nothing is cast"),
        ErrorCase(
            "integer points", (np.zeros((2, 2), int), np.zeros((2, 2), int)), match="float32 or float64"
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


def _scalar_errors(valid):
    return [
        ErrorCase("c = 0", (valid,), {"c": 0.0}, match=r"argument 'c'.*> 0"),
        ErrorCase("c < 0", (valid,), {"c": -0.5}, match=r"argument 'c'.*> 0"),
        ErrorCase("c = nan", (valid,), {"c": float("nan")}, match=r"argument 'c'.*finite"),
        ErrorCase("c as an array", (valid,), {"c": np.ones(2)}, match=r"argument 'c'"),
        ErrorCase("a 0-d array", (np.array(0.1),), match=r"shape \(\.\.\., n\)"),
        ErrorCase("zero-width vectors", (np.zeros((2, 0)),), match=r"n >= 1"),
        ErrorCase("integer input", (np.zeros((2, 2), int),), match="float32 or float64"),
        ErrorCase("a Python list", ([[0.1, 0.2]],), match="an array"),
    ]


register(
    OpCases(
        "poincare_expmap0",
        dims={"B": (1, 6), "n": (1, 8)},
        random=_expmap0_random,
        edges=_expmap0_edges,
        errors=lambda: _scalar_errors(np.array([[0.1, 5.0]])),
        notes=NOTES,
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
        ErrorCase("NaN in y", (np.array([[np.nan, 0.0]]),), match=r"argument 'y'.*nan"),
        *_scalar_errors(np.array([[0.1, 0.5]])),
    ]


register(
    OpCases(
        "poincare_logmap0",
        dims={"B": (1, 6), "n": (1, 8)},
        random=_logmap0_random,
        edges=_logmap0_edges,
        errors=_logmap0_errors,
        notes=NOTES,
    )
)

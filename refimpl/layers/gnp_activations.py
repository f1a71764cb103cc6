"""Gradient-norm-preserving activations: MaxMin, GroupSort and Householder (Novel Quadratic
Constraints for Extending LipSDP beyond Slope-Restricted Activations)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, OneOf, Paper, op

__all__ = ["PAPER", "groupsort_activation", "householder_activation", "maxmin_activation"]

PAPER = Paper(
    "Novel Quadratic Constraints for Extending LipSDP beyond Slope-Restricted Activations",
    arxiv="2401.14033",
    year=2024,
)

#: how far ‖v‖ may be from 1 before householder_activation refuses v (a unit vector rounded
#: to float32 is within 1e-7; the bound only catches a v that was never normalized)
UNIT_NORM_SLACK = 1e-3


def _check_even(arguments) -> None:
    d = arguments["x"].shape[-1]
    if d % 2:
        raise ArgumentError("x", "an even number of features D (MaxMin acts on pairs)", f"D = {d}")


def _pair_views(x, pairing):
    """The two members ``(a, b)`` of every pair, as views of the last axis."""
    if pairing == "adjacent":
        return x[..., 0::2], x[..., 1::2]
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


@op(
    inputs={"x": FloatArray("...", "D"), "pairing": OneOf("adjacent", "halves")},
    outputs=("y",),
    differentiable=("x",),
    check=_check_even,
)
def maxmin_activation(x, *, pairing="adjacent"):
    r"""MaxMin: sort every pair of features, ``(a, b) ↦ (max(a, b), min(a, b))``.

    The output is a permutation of the input (within each pair), so the map is
    piecewise orthogonal: 1-Lipschitz in ℓ2 and gradient-norm preserving (``‖J ḡ‖ = ‖ḡ‖``),
    unlike ReLU, which discards the gradient of every inactive unit. It is GroupSort with
    groups of 2 (``groupsort_activation(x, group_size=2)`` equals the ``"adjacent"`` pairing).

    Forward, per row of D features (D even), with the pairs chosen by ``pairing``::

        "adjacent": (a_i, b_i) = (x_{2i}, x_{2i+1})          i = 0 … D/2 − 1
        "halves":   (a_i, b_i) = (x_i,    x_{i+D/2})
        swap_i = [b_i > a_i]
        y at a_i's position = max(a_i, b_i),  y at b_i's position = min(a_i, b_i)

    The output keeps the input's layout: the max goes where ``a`` was, the min where ``b``
    was. Tie rule: ``a = b`` is not a swap (the first member takes the max), so the
    permutation, and with it the gradient's routing, is the identity on ties.

    Backward. On each pair the map is ``y = P_swap x`` with a constant 2×2 permutation
    (identity or exchange), so ``x̄ = P_swapᵀ ȳ`` — the exchange is its own inverse::

        ā_i = swap_i ? ȳ_{b-position} : ȳ_{a-position}
        b̄_i = swap_i ? ȳ_{a-position} : ȳ_{b-position}

    exact wherever ``a ≠ b`` (at a tie the function is continuous with a kink; the tie rule
    picks the one-sided derivative of the unswapped side). ``‖x̄‖ = ‖ȳ‖`` row by row.

    Args:
        x: pre-activations (..., D), float32 or float64, D even.
        pairing: which features form a pair (implementations differ; default
            ``"adjacent"``, GroupSort's contiguous groups of 2; ``"halves"`` is the
            split-in-two-halves layout of the SOC code, singlasahil14/SOC ``MaxMin``:
            ``a, b = z.split(D/2)``, ``cat(max, min)``).

    Returns:
        y: same shape and dtype as ``x``.

    Reference: Pauli, Havens, Araujo, Garg, Khorrami, Allgöwer, Hu, *Novel Quadratic
    Constraints for Extending LipSDP beyond Slope-Restricted Activations*, ICLR 2024,
    arXiv:2401.14033 (MaxMin: Anil, Lucas, Grosse, *Sorting out Lipschitz function
    approximation*, ICML 2019).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.maxmin_activation(np.array([[1.0, 3.0, 2.0, -1.0]]))
    array([[ 3.,  1.,  2., -1.]])
    >>> refimpl.layers.maxmin_activation(np.array([[1.0, 3.0, 2.0, -1.0]]), pairing="halves")
    array([[ 2.,  3.,  1., -1.]])
    """
    a, b = _pair_views(x, pairing)
    swap = b > a  # strict: a tie keeps the first member in the max position
    y = np.empty_like(x)
    y_a, y_b = _pair_views(y, pairing)
    y_a[...] = np.where(swap, b, a)
    y_b[...] = np.where(swap, a, b)
    return y, (swap, pairing)


@maxmin_activation.defvjp
def maxmin_activation_backward(residuals, g_y):
    swap, pairing = residuals
    g_a, g_b = _pair_views(g_y, pairing)
    g_x = np.empty_like(g_y)
    g_x_a, g_x_b = _pair_views(g_x, pairing)
    g_x_a[...] = np.where(swap, g_b, g_a)
    g_x_b[...] = np.where(swap, g_a, g_b)
    return (g_x,)


def _check_groups(arguments) -> None:
    d, g = arguments["x"].shape[-1], arguments["group_size"]
    if d % g:
        raise ArgumentError("group_size", f"a divisor of the number of features D = {d}", f"{g}")


def groupsort_order(x, group_size):
    """The permutation GroupSort applies: for every group of ``group_size`` consecutive
    features, the in-group indices in descending order of value, equal values in their
    original order (a stable sort of ``−x``). Shape (..., D/g, g)."""
    groups = x.reshape(*x.shape[:-1], x.shape[-1] // group_size, group_size)
    return np.argsort(-groups, axis=-1, kind="stable")


@op(
    inputs={"x": FloatArray("...", "D"), "group_size": IntScalar(1)},
    outputs=("y",),
    differentiable=("x",),
    check=_check_groups,
)
def groupsort_activation(x, *, group_size):
    r"""GroupSort: split the features into groups of g consecutive entries and sort each
    group in descending order.

    Like MaxMin (the case g = 2) the output is a permutation of the input, so the map is
    1-Lipschitz and gradient-norm preserving; g = D is the full sort.

    Forward, per row, with G = D/g groups ``x^{(j)} = x[j g : (j + 1) g]``::

        π_j   = argsort(−x^{(j)}, stable)          descending; equal values keep their order
        y^{(j)}_r = x^{(j)}_{π_j(r)}

    Tie rule: equal values are sorted stably — the one at the lower index comes first —
    so for g = 2 the first member takes the max on a tie, as in ``maxmin_activation``
    with ``pairing="adjacent"``.

    Backward. ``y = P(x) x`` with a permutation P that is constant where the values in
    each group are distinct, so ``x̄ = P(x)ᵀ ȳ``: scatter the cotangent back through the
    argsort::

        x̄^{(j)}_{π_j(r)} = ȳ^{(j)}_r

    ``‖x̄‖ = ‖ȳ‖`` (a permutation is orthogonal).

    Args:
        x: pre-activations (..., D), float32 or float64.
        group_size: g ≥ 1, a divisor of D (required: the paper treats any group size;
            2 is MaxMin and D the full sort).

    Returns:
        y: same shape and dtype as ``x``.

    Reference: Pauli et al., arXiv:2401.14033 (GroupSort: Anil, Lucas, Grosse,
    arXiv:1811.05381).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.groupsort_activation(np.array([[1.0, 3.0, 2.0, 5.0, 4.0, 0.0]]), group_size=3)
    array([[3., 2., 1., 5., 4., 0.]])
    """
    order = groupsort_order(x, group_size)
    groups = x.reshape(order.shape)
    y = np.take_along_axis(groups, order, axis=-1).reshape(x.shape)
    return y, order


@groupsort_activation.defvjp
def groupsort_activation_backward(order, g_y):
    g_x = np.empty(order.shape, dtype=g_y.dtype)
    np.put_along_axis(g_x, order, g_y.reshape(order.shape), axis=-1)  # x̄ = Pᵀ ȳ
    return (g_x.reshape(g_y.shape),)


def _check_unit(arguments) -> None:
    v = arguments["v"]
    norm = float(np.sqrt(np.sum(np.asarray(v, dtype=np.float64) ** 2)))
    if abs(norm - 1.0) > UNIT_NORM_SLACK:
        raise ArgumentError(
            "v", "a unit vector (‖v‖ = 1: the reflection I − 2vvᵀ is orthogonal)", f"‖v‖ = {norm:g}"
        )


@op(
    inputs={"z": FloatArray("...", "D"), "v": FloatArray("D")},
    outputs=("y",),
    differentiable=("z", "v"),
    check=_check_unit,
)
def householder_activation(z, v):
    r"""Householder activation: keep z on one side of the hyperplane ``vᵀz = 0`` and reflect
    it across the hyperplane on the other side.

    The map is the identity on the half-space ``vᵀz > 0`` and the Householder reflection
    ``H = I − 2vvᵀ`` elsewhere; both pieces are orthogonal and they agree on the
    hyperplane (``Hz = z`` when ``vᵀz = 0``), so σ_v is continuous, 1-Lipschitz and
    gradient-norm preserving. For D = 2 and ``v = (sin θ/2, −cos θ/2)`` it is the
    learnable 2-D activation of Singla, Singla and Feizi.

    Forward, per row (‖v‖ = 1)::

        s = vᵀz
        σ_v(z) = z            if s > 0
                 z − 2 s v    otherwise        ((I − 2vvᵀ) z without forming the matrix)

    Boundary rule: ``s = 0`` takes the reflected branch (the definition's ``otherwise``); the
    values agree there, only the parameter gradient differs.

    Backward. On the identity branch ``z̄ = ȳ`` and ``v̄`` gets nothing. On the reflected
    branch ``y = z − 2v(vᵀz)``: ``∂y/∂z = I − 2vvᵀ`` (symmetric), so ``z̄ = ȳ − 2v(vᵀȳ)``;
    and ``dy = −2 dv (vᵀz) − 2 v (dvᵀ z)``, so
    ``ȳᵀdy = −2 s ȳᵀdv − 2 (vᵀȳ) zᵀdv``, i.e. per reflected row::

        z̄ = ȳ − 2 (vᵀȳ) v
        v̄ += −2 [ s ȳ + (vᵀȳ) z ]           (summed over all reflected rows)

    ``v̄`` is the unconstrained gradient; a caller keeping ‖v‖ = 1 projects or
    re-normalizes it. ``‖z̄‖ = ‖ȳ‖`` row by row.

    Args:
        z: pre-activations (..., D), float32 or float64.
        v: the reflection direction (D,), a unit vector (refused when ‖v‖ is off 1 by
            more than ``UNIT_NORM_SLACK`` = 1e-3; v is used as given, not re-normalized).

    Returns:
        y: same shape and dtype as ``z``.

    Reference: Pauli et al., arXiv:2401.14033 (Householder activation: Singla, Singla,
    Feizi, *Improved deterministic l2 robustness on CIFAR-10 and CIFAR-100*, ICLR 2022,
    arXiv:2108.04062; their code, singlasahil14/SOC ``HouseHolder``, reflects where
    ``x sin(θ/2) − y cos(θ/2) > 0``: the same map with v replaced by −v).

    >>> import numpy as np, refimpl
    >>> v = np.array([1.0, 0.0])
    >>> refimpl.layers.householder_activation(np.array([[2.0, 1.0], [-2.0, 1.0]]), v)
    array([[2., 1.],
           [2., 1.]])
    """
    s = z @ v
    reflect = s <= 0
    y = np.where(reflect[..., None], z - 2 * s[..., None] * v, z)
    return y, (z, v, s, reflect)


@householder_activation.defvjp
def householder_activation_backward(residuals, g_y):
    z, v, s, reflect = residuals
    v_dot_g = g_y @ v
    g_z = np.where(reflect[..., None], g_y - 2 * v_dot_g[..., None] * v, g_y)
    rows = reflect.reshape(-1)
    g_rows, z_rows = g_y.reshape(-1, v.shape[0])[rows], z.reshape(-1, v.shape[0])[rows]
    s_rows, v_dot_g_rows = s.reshape(-1)[rows], v_dot_g.reshape(-1)[rows]
    g_v = -2 * (s_rows @ g_rows + v_dot_g_rows @ z_rows)  # Σ_rows s ȳ + (vᵀȳ) z
    return g_z, g_v.astype(v.dtype)

"""The infinite-width (NNGP) kernel recursion (The Principles of Deep Learning Theory,
Roberts, Yaida and Hanin)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = ["PAPER", "nngp_kernel_recursion"]

PAPER = Paper("The Principles of Deep Learning Theory", arxiv="2106.10165", year=2022)

#: activations whose two-point Gaussian expectation has a closed form
CLOSED_FORM = ("relu", "erf", "linear")

#: the largest Gauss–Hermite order: NumPy's ``hermgauss`` weights stay finite up to ~300 in float64
#: (order 500 gives NaN weights); beyond 300 the rule cannot be formed
MAX_QUADRATURE_ORDER = 300

#: a guard against a runaway call (an id passed as a depth), not a modelling choice
MAX_DEPTH = 1_000_000

#: a kernel counts as a covariance when |K_ab| ≤ √(K_aa K_bb) holds within this many ulp
CAUCHY_SCHWARZ_ULPS = 64.0


def _check(arguments) -> None:
    k = arguments["K0"]
    if bool(np.any(np.diag(k) < 0)):
        raise ArgumentError(
            "K0", "a covariance: variances K_aa >= 0 on the diagonal", "a negative diagonal entry"
        )
    scale = float(np.abs(k).max())
    tolerance = CAUCHY_SCHWARZ_ULPS * np.finfo(k.dtype).eps * max(scale, np.finfo(k.dtype).tiny)
    if float(np.abs(k - k.T).max()) > tolerance:
        raise ArgumentError("K0", "a symmetric kernel matrix", "K0 ≠ K0ᵀ")
    diagonal = np.diag(k).astype(np.float64)
    if bool(np.any(np.abs(k) > np.sqrt(np.outer(diagonal, diagonal)) + tolerance)):
        raise ArgumentError("K0", "a covariance: |K_ab| <= √(K_aa·K_bb) for every pair", "a pair beyond it")
    if arguments["quadrature_order"] is None and arguments["activation"] not in CLOSED_FORM:
        raise ArgumentError(
            "quadrature_order",
            f"a Gauss–Hermite order for activation {arguments['activation']!r} (closed forms exist only "
            f"for {', '.join(CLOSED_FORM)})",
            "None",
        )


def _activation(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "erf":
        from scipy.special import erf

        return erf(z)
    return z


def _closed_form(name: str, k_aa: np.ndarray, k_bb: np.ndarray, k_ab: np.ndarray) -> np.ndarray:
    """E[σ(u)σ(v)] for (u, v) ~ N(0, [[K_aa, K_ab], [K_ab, K_bb]]), elementwise (float64)."""
    if name == "linear":
        return k_ab.copy()
    if name == "erf":  # Williams (1997): (2/π) arcsin(2K_ab/√((1 + 2K_aa)(1 + 2K_bb)))
        argument = 2.0 * k_ab / np.sqrt((1.0 + 2.0 * k_aa) * (1.0 + 2.0 * k_bb))
        return (2.0 / np.pi) * np.arcsin(np.clip(argument, -1.0, 1.0))
    # relu, the arc-cosine kernel of degree 1 (Cho and Saul 2009)
    scale = np.sqrt(k_aa * k_bb)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(scale > 0, k_ab / np.where(scale > 0, scale, 1.0), 1.0)
    theta = np.arccos(np.clip(cosine, -1.0, 1.0))  # clipped: rounding can push |cos θ| past 1
    return scale / (2.0 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))


def _quadrature(name: str, k_aa, k_bb, k_ab, order: int) -> np.ndarray:
    """E[σ(u)σ(v)] by tensor-product Gauss–Hermite quadrature of the given order (float64).

    ``u = √K_aa z₁``, ``v = √K_bb (ρ z₁ + √(1 − ρ²) z₂)`` with z iid N(0, 1) and
    ``ρ = K_ab/√(K_aa K_bb)`` (0 where a variance is 0); ``E f(z) ≈ Σ_i w_i f(√2 x_i)/√π``.
    """
    nodes, weights = np.polynomial.hermite.hermgauss(order)
    z = np.sqrt(2.0) * nodes
    w = weights / np.sqrt(np.pi)
    scale = np.sqrt(k_aa * k_bb)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.clip(np.where(scale > 0, k_ab / np.where(scale > 0, scale, 1.0), 0.0), -1.0, 1.0)
    z1, z2 = z[:, None], z[None, :]
    weight = w[:, None] * w[None, :]
    out = np.empty(k_ab.shape)
    for index in np.ndindex(k_ab.shape):
        u = np.sqrt(k_aa[index]) * z1
        v = np.sqrt(k_bb[index]) * (rho[index] * z1 + np.sqrt(1.0 - rho[index] ** 2) * z2)
        out[index] = (weight * _activation(name, u) * _activation(name, v)).sum()
    return out


@op(
    inputs={
        "K0": FloatArray("n", "n"),
        "depth": IntScalar(0, MAX_DEPTH),
        "C_b": RealScalar(0),
        "C_W": RealScalar(0),
        "activation": OneOf("relu", "tanh", "erf", "linear"),
        "quadrature_order": IntScalar(1, MAX_QUADRATURE_ORDER, optional=True),
    },
    outputs=("kernels",),
    check=_check,
)
def nngp_kernel_recursion(K0, *, depth, C_b, C_W, activation, quadrature_order=None):  # noqa: N803 - the book's names
    r"""The infinite-width kernel recursion of a deep MLP: layer by layer, the covariance of
    the preactivations for every pair of inputs.

    At infinite width the preactivations z^{(l)}(x) of an MLP with weights
    ``W ~ N(0, C_W/n_{l−1})`` and biases ``b ~ N(0, C_b)`` are a Gaussian process whose
    kernel obeys a deterministic recursion: the next layer's covariance of two inputs is the
    bias variance plus ``C_W`` times the expected product of the activations under the
    current 2 × 2 covariance. Initialization hyperparameters are "critical" when the
    recursion neither explodes nor collapses: ReLU at ``C_b = 0, C_W = 2`` keeps every
    variance K_aa fixed; tanh at ``C_b = 0, C_W = 1`` (the K* = 0 universality class) lets the
    kernel decay only like 1/l.

    Forward, for every pair (a, b) of the n inputs and l = 0, …, L − 1 (float64)::

        K^{(l+1)}_ab = C_b + C_W · E_{(u,v) ~ N(0, Σ_ab)}[σ(u)σ(v)],
        Σ_ab = [[K_aa, K_ab], [K_ab, K_bb]]   (of layer l; the diagonal is the single-input case)

    The expectation is a closed form when ``quadrature_order`` is None::

        relu   : √(K_aa K_bb)/(2π) · (sin θ + (π − θ) cos θ),   θ = arccos(K_ab/√(K_aa K_bb))
        erf    : (2/π) · arcsin(2K_ab/√((1 + 2K_aa)(1 + 2K_bb)))
        linear : K_ab

    (relu's arc-cosine kernel, Cho and Saul 2009; erf's arcsine kernel, Williams 1997; cos θ
    is clipped to [−1, 1] against rounding, and a zero variance gives 0), and otherwise a
    tensor-product Gauss–Hermite rule of that order on ``u = √K_aa z₁``,
    ``v = √K_bb(ρz₁ + √(1 − ρ²) z₂)``. tanh has no closed form: its order is required. The
    quadrature converges slowly for relu (a kink), fast for smooth activations. No gradient
    is defined (reference-only: a deterministic construction, no data).

    Args:
        K0: the first layer's kernel K^{(0)} (n, n), symmetric, a covariance
            (|K_ab| ≤ √(K_aa K_bb)); for inputs x_a of dimension n₀ this is
            ``C_b + C_W·x_a·x_b/n₀``. n = 1 is the single-input recursion.
        depth: L ≥ 0, the number of recursion steps (at most 10⁶, a guard against runaway calls).
        C_b, C_W: bias and weight variances (required: the criticality conditions above are
            the book's choices, per activation).
        activation: "relu", "tanh", "erf" or "linear".
        quadrature_order: None (default, the closed form) or the Gauss–Hermite order (1 to 300:
            NumPy's Gauss–Hermite weights are not finite beyond).

    Returns:
        kernels: (L + 1, n, n), ``kernels[l] = K^{(l)}`` (K0 first), K0's dtype.

    Reference: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*,
    arXiv:2106.10165, Chapter 4 (the kernel recursion, eq. 4.90 in the infinite-width limit)
    and Chapter 5 (criticality: ReLU C_W = 2, tanh C_W = 1, C_b = 0); infinite-depth limits in
    Radhakrishnan, Belkin, Uhler, *Wide and Deep Neural Networks Achieve Optimality for
    Classification* (arXiv:2204.14126).

    >>> import numpy as np, refimpl
    >>> K0 = np.array([[1.0, 0.0], [0.0, 1.0]])     # orthogonal inputs: θ = π/2
    >>> refimpl.other.nngp_kernel_recursion(K0, depth=1, C_b=0.0, C_W=2.0, activation="relu")[1]
    array([[1.        , 0.31830989],
           [0.31830989, 1.        ]])
    """
    kernel = K0.astype(np.float64)
    kernels = [kernel]
    for _ in range(depth):
        k_diag = np.diag(kernel)
        k_aa, k_bb = np.broadcast_arrays(k_diag[:, None], k_diag[None, :])
        if quadrature_order is None:
            expectation = _closed_form(activation, k_aa, k_bb, kernel)
        else:
            expectation = _quadrature(activation, k_aa, k_bb, kernel, quadrature_order)
        kernel = C_b + C_W * expectation
        kernel = (kernel + kernel.T) / 2  # exactly symmetric
        kernels.append(kernel)
    return np.stack(kernels).astype(K0.dtype), None

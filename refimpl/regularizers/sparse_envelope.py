"""The sparse envelope function (½ the squared k-support norm), its prox and the weighted group
sparse envelope penalty (Learning k-Level Structured Sparse Neural Networks Using Group Envelope
Regularization)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, OneOf, Paper, RealScalar, array_namespace, op

__all__ = ["COMPOSITIONS", "PAPER", "k_support_squared_prox", "sparse_envelope_function", "wgsef_penalty"]

PAPER = Paper(
    "Learning k-Level Structured Sparse Neural Networks Using Group Envelope Regularization",
    arxiv="2212.12921",
    year=2022,
)


#: How the training penalty is formed from s_k of the weighted group norms u (not pinned, see
#: ``wgsef_penalty``): s_k(u) itself, or s_k(u) − ½‖u‖² (0 on k-group-sparse weights).
COMPOSITIONS = ("envelope", "envelope_minus_half_norm")


def _check_k(arguments, name="x") -> None:
    x, k = arguments[name], arguments["k"]
    if k > x.shape[-1]:
        raise ArgumentError("k", f"k <= n = {x.shape[-1]} (the length of the last axis of '{name}')", str(k))


def _sorted_magnitudes(x):
    """``|x|`` sorted in descending order along the last axis, in float64."""
    return -np.sort(-np.abs(x.astype(np.float64)), axis=-1)


def _suffix_sums(a):
    """``suffix[..., j] = Σ_{i ≥ j} a_i``, summed from the smallest entry up (a descending)."""
    return np.cumsum(a[..., ::-1], axis=-1)[..., ::-1]


def envelope_level(a, k):
    """The split of ``s_k`` for magnitudes ``a`` sorted descending along the last axis.

    Returns ``(theta, r)``: the tail level ``θ = (1/(r + 1)) Σ_{i ≥ k−r} a_i`` (1-based) and the
    index ``r``, the smallest ``r ∈ {0, …, k−1}`` with ``a_{k−r−1} > θ_r`` (``a_0 = +∞``). The
    right inequality ``θ_r ≥ a_{k−r}`` then holds by itself: for ``r = 0`` the tail contains
    ``a_k``; for ``r ≥ 1`` the failure at ``r − 1`` says ``θ_{r−1} ≥ a_{k−r}``, and ``θ_r`` is a
    mean of ``θ_{r−1}`` and ``a_{k−r}``. Searching for the first left inequality therefore
    needs no tie-breaking and always ends (``r = k − 1`` has ``a_0 = +∞``).
    """
    splits = np.arange(k)  # r
    tail_start = k - splits - 1  # 0-based index of the first tail entry, a_{k−r} in 1-based
    level = _suffix_sums(a)[..., tail_start] / (splits + 1)  # θ_r, (…, k)
    before = np.where(tail_start >= 1, a[..., np.maximum(tail_start - 1, 0)], np.inf)  # a_{k−r−1}
    found = before > level
    found[..., k - 1] = True
    r = np.argmax(found, axis=-1)
    theta = np.take_along_axis(level, r[..., None], axis=-1)[..., 0]
    return theta, r


@op(
    inputs={"x": FloatArray("...", "n"), "k": IntScalar(1)},
    outputs=("value",),
    differentiable=("x",),
    check=_check_k,
)
def sparse_envelope_function(x, *, k):
    r"""Sparse envelope function: the convex envelope of ½‖x‖² restricted to k-sparse x.

    ``s_k`` is the largest convex function below ``½‖x‖² + δ(‖x‖₀ ≤ k)``: it equals ½‖x‖² on
    k-sparse vectors and is ½ the squared k-support norm (Argyriou et al. 2012). It
    interpolates between ½‖x‖₁² (k = 1) and ½‖x‖₂² (k = n), and is the regularizer whose group
    version (``wgsef_penalty``) selects k groups of a network's weights.

    Forward, per vector along the last axis (n entries). Sort ``a = |x|`` descending
    (1-based, ``a_0 = +∞``); ``r`` is the unique index in ``{0, …, k−1}`` with::

        a_{k−r−1} > θ ≥ a_{k−r},    θ = (1/(r + 1)) Σ_{i ≥ k−r} a_i

        s_k(x) = ½ [Σ_{i < k−r} a_i² + (r + 1) θ²]      (= ½[Σ_head a² + (Σ_tail a)²/(r + 1)])

    ``r`` is found as the first index whose left inequality holds (the right one then holds
    by itself, see ``envelope_level``); the tail sums are accumulated from the smallest entry
    up, in float64.

    Backward. The head (the top ``k − r − 1`` entries) enters as ``½ a_i²`` and the tail as
    ``(Σ_tail a)²/(2(r + 1))``; ``r`` is locally constant (it changes only where the two sides
    of an inequality meet, where both formulas agree to first order). With ``∂a_i/∂x_i =
    sign(x_i)``::

        head:  ∂s/∂x_i = a_i sign(x_i) = x_i
        tail:  ∂s/∂x_i = sign(x_i) (Σ_tail a)/(r + 1) = sign(x_i) θ

    Head entries are exactly those with ``|x_i| > θ`` (they are ≥ a_{k−r−1} > θ ≥ a_{k−r}), so
    the gradient is ``sign(x) max(|x|, θ)``, times the cotangent of the vector. At a tail entry
    equal to 0 the function has a kink (``s_1 = ½‖x‖₁²``); the code takes sign(0) = 0 there (the
    minimum-norm subgradient).

    Args:
        x: vectors (…, n) along the last axis, float32 or float64.
        k: the sparsity level, 1 ≤ k ≤ n (required: the number of entries to keep).

    Returns:
        value: ``s_k(x)`` (…), in the dtype of ``x``.

    Reference: Refael, Arbel, Huleihel, *Learning k-Level Structured Sparse Neural Networks Using
    Group Envelope Regularization*, arXiv:2212.12921 (SEF after Beck & Refael); the formula is
    Argyriou, Foygel, Srebro, *Sparse Prediction with the k-Support Norm*, NeurIPS 2012,
    Proposition 2.1. No official code found.

    >>> import numpy as np, refimpl
    >>> x = np.array([3.0, -1.0, 1.0])
    >>> float(refimpl.regularizers.sparse_envelope_function(x, k=2))  # ½(9 + (1 + 1)²/1)
    6.5
    """
    a = _sorted_magnitudes(x)
    theta, r = envelope_level(a, k)
    value = envelope_value(a, theta, r, k)
    return np.asarray(value, dtype=x.dtype), (x, theta)


@sparse_envelope_function.defvjp
def sparse_envelope_function_backward(residuals, g_value):
    x, theta = residuals
    # ∂s/∂x = sign(x) max(|x|, θ): x itself on the head, sign(x)·θ on the tail
    gradient = np.sign(x) * np.maximum(np.abs(x), theta[..., None])
    g_x = np.asarray(g_value, dtype=np.float64)[..., None] * gradient
    return (g_x.astype(x.dtype),)


def prox_level(z, k, gamma):
    """The tail level θ of ``prox_{γ s_k}`` for magnitudes ``z`` sorted descending (last axis).

    For each split ``r`` (head = the top ``k − r − 1`` entries), the nonzero tail runs from
    ``z_{k−r}`` to ``z_l`` (1-based); ``l`` is the first index with ``z_{l+1} ≤ γ θ_{r,l}``,
    ``θ_{r,l} = S/(r + 1 + γ m)``, ``S`` the sum and ``m`` the count of ``z_{k−r}, …, z_l``
    (then ``z_l > γθ`` holds by itself: ``γθ_{r,l}`` is a weighted mean of ``γθ_{r,l−1} < z_l``
    and a value below ``z_l``). ``r`` is the first split with ``z_{k−r−1}/(1 + γ) > θ_r``
    (``z_0 = +∞``), as in ``envelope_level``. Returns θ (…).
    """
    n = z.shape[-1]
    rows = z.shape[:-1]
    theta = np.zeros(rows)
    settled = np.zeros(rows, dtype=bool)
    for r in range(k):
        start = k - r - 1  # 0-based index of the first tail entry
        tail = z[..., start:]
        count = np.arange(1, n - start + 1)  # m for l = start, …, n − 1
        level = np.cumsum(tail, axis=-1) / (r + 1 + gamma * count)  # θ_{r,l}
        after = np.concatenate([tail[..., 1:], np.full(rows + (1,), -np.inf)], axis=-1)  # z_{l+1}
        last = np.argmax(after <= gamma * level, axis=-1)  # the first l that holds (l = n always)
        level_r = np.take_along_axis(level, last[..., None], axis=-1)[..., 0]
        before = z[..., start - 1] / (1 + gamma) if start >= 1 else np.full(rows, np.inf)
        take = ~settled & ((before > level_r) | (r == k - 1))
        theta = np.where(take, level_r, theta)
        settled |= take
    return theta


@op(
    inputs={"x": FloatArray("...", "n"), "k": IntScalar(1), "gamma": RealScalar(0, low_open=True)},
    outputs=("prox",),
    check=_check_k,
)
def k_support_squared_prox(x, *, k, gamma):
    r"""Proximal operator of γ·s_k = (γ/2)(k-support norm)², per vector along the last axis.

    ``prox_{γ s_k}(x) = argmin_w ½‖w − x‖² + γ s_k(w)``: the step a proximal-gradient method
    takes on the sparse envelope function. Large entries are shrunk by 1/(1 + γ) (ridge-like),
    the middle ones are soft-thresholded by a common γθ, the small ones are set to 0, so the
    result tends to be k-sparse.

    Forward, per vector: sort ``z = |x|`` descending (1-based, ``z_0 = +∞``, ``z_{n+1} = −∞``).
    Optimality ``x − w ∈ γ ∂s_k(w)`` with ``∂s_k(w) = sign(w) max(|w|, θ)`` (``[−θ, θ]`` at a zero
    tail entry; θ the tail level of ``w``, see ``sparse_envelope_function``) gives, for a head
    of ``k − r − 1`` entries and a nonzero tail ``z_{k−r}, …, z_l`` of ``m`` entries summing to S::

        head:   w_i = x_i/(1 + γ)                       (x − w = γ w)
        middle: |w_i| = |x_i| − γθ,  sign(w_i) = sign(x_i)  (x − w = γ sign(w) θ)
        zero:   w_i = 0, |x_i| ≤ γθ
        θ = Σ_middle |w_i|/(r + 1) = (S − mγθ)/(r + 1)  ⇒  θ = S/(r + 1 + γm)

    with the consistency conditions ``z_{k−r−1}/(1 + γ) > θ ≥ z_{k−r}/(1 + γ)`` (head above the
    level, first tail entry at most it) and ``z_l > γθ ≥ z_{l+1}`` (the nonzero tail positive,
    the rest thresholded). The two-index search (Argyriou, Foygel, Srebro 2012, Algorithm 1)
    takes, for each r, the first ``l`` whose right condition holds, and the first ``r`` whose
    head condition holds (see ``prox_level``); then, elementwise::

        w = sign(x) · (|x|/(1 + γ)  if |x| > (1 + γ)θ  else  max(|x| − γθ, 0))

    O(n log n + k n) per vector (the sort, then at most k scans); float64 throughout.

    A proximal map, not differentiated (reference and fast backends compute the forward only).

    Args:
        x: points (…, n), float32 or float64.
        k: the sparsity level, 1 ≤ k ≤ n (required).
        gamma: the prox weight γ > 0, the step size times the penalty weight (required).

    Returns:
        prox: ``prox_{γ s_k}(x)`` (…, n), in the dtype of ``x``.

    Reference: Argyriou, Foygel, Srebro, *Sparse Prediction with the k-Support Norm*, NeurIPS 2012,
    Algorithm 1 (with γ = 1/β); McDonald, Pontil, Stamos, *Spectral k-Support Norm
    Regularization*, NeurIPS 2014; used as the SEF prox in Refael, Arbel, Huleihel,
    arXiv:2212.12921 (whose worst-case linear-time variant is not reproduced: the result is
    the same map).

    >>> import numpy as np, refimpl
    >>> refimpl.regularizers.k_support_squared_prox(np.array([4.0, 1.0]), k=2, gamma=1.0)  # x/(1 + γ)
    array([2. , 0.5])
    """
    z = _sorted_magnitudes(x)
    gamma_ = float(gamma)
    theta = prox_level(z, k, gamma_)[..., None]
    magnitude = np.abs(x.astype(np.float64))
    shrunk = np.where(
        magnitude > (1 + gamma_) * theta,
        magnitude / (1 + gamma_),
        np.maximum(magnitude - gamma_ * theta, 0.0),
    )
    return (np.sign(x) * shrunk).astype(x.dtype), None


def _check_groups(arguments) -> None:
    x, weights, k = arguments["x"], arguments["weights"], arguments["k"]
    if k > x.shape[0]:
        raise ArgumentError("k", f"k <= G = {x.shape[0]} (the number of groups, the rows of 'x')", str(k))
    xp = array_namespace(weights)
    if bool(xp.any(weights < 0)):
        index = int(xp.argmax(weights < 0))
        raise ArgumentError(
            "weights", "group weights ω_g >= 0", f"{float(weights[index])!r} at index {index}"
        )


def envelope_value(a, theta, r, k):
    """``s_k = ½[Σ_head a² + (r + 1)θ²]`` from descending magnitudes ``a`` and their split."""
    head_count = k - r - 1
    squares = np.cumsum(a * a, axis=-1)
    last_head = np.maximum(head_count - 1, 0)[..., None]
    head_squares = np.where(head_count > 0, np.take_along_axis(squares, last_head, -1)[..., 0], 0.0)
    return 0.5 * (head_squares + (r + 1) * theta * theta)


@op(
    inputs={
        "x": FloatArray("G", "m"),
        "weights": FloatArray("G"),
        "k": IntScalar(1),
        "composition": OneOf(*COMPOSITIONS),
    },
    outputs=("penalty",),
    differentiable=("x",),
    check=_check_groups,
)
def wgsef_penalty(x, weights, *, k, composition):
    r"""Weighted group sparse envelope penalty: s_k of the weighted group norms.

    The weights of a layer are split into G groups (filters, channels, filter shapes, …), one
    row of ``x`` per group; the group norms ``u_g = ω_g‖x_g‖₂`` are fed to the sparse envelope
    function ``s_k``, so the penalty favours at most k nonzero groups (k = the number of groups
    to keep), and its prox zeroes whole groups.

    Forward::

        u_g = ω_g ‖x_g‖₂                      (g = 1..G; norms in float64)
        penalty = s_k(u)                       (composition="envelope")
        penalty = s_k(u) − ½‖u‖²               (composition="envelope_minus_half_norm")

    ``s_k`` as in ``sparse_envelope_function`` (u ≥ 0, so no signs). The second form is ≤ 0
    and exactly 0 on k-group-sparse weights (``s_k = ½‖·‖²`` there): a penalty that does not
    shrink the kept groups (non-convex). The penalty weight λ multiplies the output outside.

    Not pinned: which of the two the paper trains with (λ·s_k(u) or λ·(s_k(u) − ½‖u‖²)); the
    paper's text was not available and no official code was found, so ``composition`` is a
    required argument with no default.

    Backward. From ``sparse_envelope_function``, ``∂s_k/∂u_g = max(u_g, θ)`` (u ≥ 0), so
    ``∂penalty/∂u_g = max(u_g, θ)`` or ``max(u_g, θ) − u_g = max(θ − u_g, 0)``. Then
    ``∂u_g/∂x_g = ω_g x_g/‖x_g‖``::

        x̄_g = ḡ · ∂penalty/∂u_g · ω_g x_g/‖x_g‖        (0 for a zero group)

    At a zero group the penalty has a kink (the group-lasso cone); the code takes the
    minimum-norm subgradient 0 there.

    Args:
        x: the grouped weights (G, m), one group per row (e.g. a convolution's filters:
            ``W.reshape(out_channels, −1)``; its input channels: ``W.transpose(1, 0, 2, 3)
            .reshape(in_channels, −1)``), float32 or float64.
        weights: the group weights ω (G,), ω_g ≥ 0 (e.g. √(group size), or ones); a constant.
        k: the number of groups to keep, 1 ≤ k ≤ G (required).
        composition: "envelope" or "envelope_minus_half_norm" (required; see above).

    Returns:
        penalty: a scalar in the dtype of ``x``.

    Reference: Refael, Arbel, Huleihel, *Learning k-Level Structured Sparse Neural Networks
    Using Group Envelope Regularization*, arXiv:2212.12921 (WGSEF; its linear-time prox is not
    reproduced: ``k_support_squared_prox`` gives the SEF prox by sorting). No official code
    found.

    >>> import numpy as np, refimpl
    >>> x = np.array([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0]])  # norms [5, 1, 1]
    >>> float(refimpl.regularizers.wgsef_penalty(x, np.ones(3), k=2, composition="envelope"))
    14.5
    """
    norms = np.sqrt((x.astype(np.float64) ** 2).sum(axis=-1))
    u = weights.astype(np.float64) * norms
    a = -np.sort(-u)
    theta, r = envelope_level(a, k)
    value = envelope_value(a, theta, r, k)
    if composition == "envelope_minus_half_norm":
        value = value - 0.5 * (u * u).sum()
    return np.asarray(value, dtype=x.dtype), (x, weights, norms, u, theta, composition)


@wgsef_penalty.defvjp
def wgsef_penalty_backward(residuals, g_penalty):
    x, weights, norms, u, theta, composition = residuals
    slope = np.maximum(u, theta)  # ∂s_k/∂u
    if composition == "envelope_minus_half_norm":
        slope = np.maximum(theta - u, 0.0)  # ∂(s_k − ½‖u‖²)/∂u
    nonzero = norms > 0
    # ∂u_g/∂x_g = ω_g x_g/‖x_g‖; 0 for a zero group
    factor = np.where(nonzero, float(g_penalty) * slope * weights / np.where(nonzero, norms, 1.0), 0.0)
    return ((factor[:, None] * x).astype(x.dtype),)

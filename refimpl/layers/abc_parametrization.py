"""abc-parametrizations and μP (Feature Learning in Infinite-Width Neural Networks, Yang and Hu)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = ["ABC_PARAMETRIZATIONS", "abc_exponents", "abc_init_std", "abc_parametrize"]

EXPORTS = ("ABC_PARAMETRIZATIONS", "abc_exponents")  # helpers exported by refimpl.layers beside the ops

PAPER = Paper(
    "Feature Learning in Infinite-Width Neural Networks (Tensor Programs IV)",
    arxiv="2011.14522",
    year=2020,
)

#: The named abc-parametrizations: ``(a, b)`` of the input layer (l = 1), of the hidden
#: layers (2 ≤ l ≤ L) and of the output layer (l = L + 1), and the learning-rate exponent c.
#: arXiv:2011.14522 §3 ("abc-Parametrizations") and Definition 5.1 (μP). The mean-field
#: parametrization is defined there for one hidden layer only (L = 1: no hidden row).
ABC_PARAMETRIZATIONS: dict[str, dict[str, tuple[float, float] | float | None]] = {
    "mup": {"input": (-0.5, 0.5), "hidden": (0.0, 0.5), "output": (0.5, 0.5), "c": 0.0},
    "sp": {"input": (0.0, 0.0), "hidden": (0.0, 0.5), "output": (0.0, 0.5), "c": 0.0},
    "ntp": {"input": (0.0, 0.0), "hidden": (0.5, 0.0), "output": (0.5, 0.0), "c": 0.0},
    "mfp": {"input": (0.0, 0.0), "hidden": None, "output": (1.0, 0.0), "c": -1.0},
}


def abc_exponents(parametrization: str, layer, depth: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The exponents ``(a_l, b_l)`` of the layers ``layer`` (1 = input, 2..L hidden, L + 1 =
    output, with L = ``depth`` hidden layers) and the learning-rate exponent ``c`` of a named
    parametrization (a key of :data:`ABC_PARAMETRIZATIONS`), as float64 arrays and a float.

    >>> a, b, c = abc_exponents("mup", [1, 2, 3], depth=2)
    >>> a, b, c
    (array([-0.5,  0. ,  0.5]), array([0.5, 0.5, 0.5]), 0.0)
    """
    table = ABC_PARAMETRIZATIONS[parametrization]
    layer = np.asarray(layer)
    if table["hidden"] is None and depth != 1:
        raise ValueError(f"the {parametrization!r} parametrization is defined for depth L = 1 only")
    if layer.size and (layer.min() < 1 or layer.max() > depth + 1):
        raise ValueError(f"layer indices must lie in [1, L + 1] = [1, {depth + 1}]")
    rows = [table["input"], table["hidden"] or (np.nan, np.nan), table["output"]]
    kind = np.where(layer == 1, 0, np.where(layer == depth + 1, 2, 1))
    a = np.array([rows[k][0] for k in kind.ravel()], dtype=np.float64).reshape(layer.shape)
    b = np.array([rows[k][1] for k in kind.ravel()], dtype=np.float64).reshape(layer.shape)
    return a, b, float(table["c"])


@op(
    inputs={
        "w": FloatArray("..."),
        "n": IntScalar(1),
        "a": RealScalar(),
    },
    outputs=("W",),
    differentiable=("w",),
    allow_empty=("...",),
)
def abc_parametrize(w, *, n, a):
    r"""The effective weight of an abc-parametrized layer: ``W = n^{−a} · w``.

    An abc-parametrization of an MLP of width n describes how every layer scales with n by
    three exponents: the trained parameter ``w^l`` is multiplied by ``n^{−a_l}`` in the
    forward pass, it is initialized with standard deviation ``n^{−b_l}``, and SGD trains it
    with learning rate ``η n^{−c}``. Standard (SP), neural-tangent (NTP), mean-field (MFP)
    parametrizations and μP (the maximal-update parametrization, where every layer learns
    features as n → ∞) are different choices of (a_l, b_l, c). This op is the multiplier
    ``n^{−a}`` applied to one layer's parameter; ``abc_init_std`` gives ``n^{−b}`` and
    ``n^{−c}`` of the named parametrizations, and ``abc_exponents`` their exponents.

    The named parametrizations (layer 1 = input, 2..L hidden, L + 1 = output; the paper's §3
    and Definition 5.1)::

        name   (a_1, b_1)   (a_l, b_l), 2 ≤ l ≤ L   (a_{L+1}, b_{L+1})   c
        μP     (−½, ½)      (0, ½)                  (½, ½)               0
        SP     (0, 0)       (0, ½)                  (0, ½)               0
        NTP    (0, 0)       (½, 0)                  (½, 0)               0
        MFP    (0, 0)       (L = 1 only)            (1, 0)               −1

    SP with c = 0 is unstable as n → ∞ (the paper: SP needs c = 1, and is then in the
    kernel regime, like NTP). The table is TP4's, for MLPs; the 1/d (instead of 1/√d)
    attention-logit scaling of μP comes from the later Tensor Programs V and is not part of
    it. Symmetry: ``(a_l, b_l, c) → (a_l + θ, b_l − θ, c − 2θ)``
    leaves the initial W and every SGD step of W unchanged (see Backward).

    Forward::

        W = s · w,    s = n^{−a}

    ``s`` is formed in double precision and rounded once to the dtype of ``w``.

    Backward. ``W_i = s·w_i`` elementwise, so ``∂W_i/∂w_j = s·δ_ij`` and the cotangent of w is
    ``g_w = s · g_W`` (``g_W = ∂L/∂W``). An SGD step on w with learning rate ``η n^{−c}``
    therefore moves the effective weight by
    ``ΔW = s·Δw = −η n^{−c} s² g_W = −η n^{−(c + 2a)} g_W``: only ``c + 2a`` matters for the
    dynamics and only ``a + b`` for the initial W (its std is ``n^{−a}·n^{−b}``), hence the
    symmetry above.

    Args:
        w: the trained parameter w, any shape (a layer's weight matrix, a bias), float32 or
            float64.
        n: the width n ≥ 1 (an integer).
        a: the layer's exponent a_l (a real number; see the table).

    Returns:
        W: ``n^{−a} · w``, same shape and dtype as ``w``.

    Reference: Yang and Hu, *Feature Learning in Infinite-Width Neural Networks*,
    arXiv:2011.14522, §3 (abc-parametrizations) and Definition 5.1 (μP).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.abc_parametrize(np.array([1.0, -3.0]), n=4, a=0.5)  # 4^{−½} = ½
    array([ 0.5, -1.5])
    """
    scale = w.dtype.type(np.power(np.float64(n), -float(a)))  # n^{−a}, rounded once to w's dtype
    return w * scale, scale


@abc_parametrize.defvjp
def abc_parametrize_backward(scale, g_W):
    g_w = g_W * scale  # ∂W/∂w = n^{−a}·I
    return (g_w,)


def _check_layers(arguments) -> None:
    depth, layer = arguments["depth"], arguments["layer"]
    if arguments["parametrization"] == "mfp" and depth != 1:
        raise ArgumentError(
            "depth",
            "L = 1 with parametrization 'mfp' (the mean-field parametrization is defined "
            "for one hidden layer)",
            f"L = {depth}",
        )
    if layer.size and int(layer.max()) > depth + 1:
        raise ArgumentError(
            "layer",
            f"layer indices in [1, L + 1] = [1, {depth + 1}] (1 = input, L + 1 = output)",
            f"index {int(layer.max())}",
        )


@op(
    inputs={
        "layer": IntArray("K", low=1),
        "depth": IntScalar(1),
        "n": IntScalar(1),
        "parametrization": OneOf("mup", "sp", "ntp", "mfp"),
    },
    outputs=("multiplier", "init_std", "lr_scale"),
    check=_check_layers,
)
def abc_init_std(layer, *, depth, n, parametrization):
    r"""The width scalings of a named abc-parametrization: ``n^{−a_l}``, ``n^{−b_l}``, ``n^{−c}``.

    For an MLP with input layer 1, hidden layers 2..L and output layer L + 1, all of width
    n, an abc-parametrization trains ``w^l`` with the forward weight ``W^l = n^{−a_l} w^l``
    (``abc_parametrize``), the initialization ``w^l ~ N(0, n^{−2 b_l})`` and the SGD
    learning rate ``η n^{−c}``. This op reads the exponents of a named parametrization from
    the table below (``abc_exponents``) and evaluates the three scalings at width n, for the
    layers asked.

    Forward (``abc_exponents`` then powers, in float64)::

        name   (a_1, b_1)   (a_l, b_l), 2 ≤ l ≤ L   (a_{L+1}, b_{L+1})   c
        μP     (−½, ½)      (0, ½)                  (½, ½)               0
        SP     (0, 0)       (0, ½)                  (0, ½)               0
        NTP    (0, 0)       (½, 0)                  (½, 0)               0
        MFP    (0, 0)       (L = 1 only)            (1, 0)               −1

        multiplier_k = n^{−a_{l_k}},  init_std_k = n^{−b_{l_k}},  lr_scale_k = n^{−c}

    μP checks the paper's stability conditions (Theorem 3.3): ``a_1 + b_1 = 0``,
    ``a_l + b_l = ½`` for hidden layers, ``a_{L+1} + b_{L+1} ≥ ½`` and ``2 a_{L+1} + c ≥ 1``,
    with equality where features are learned. SP at c = 0 violates the last one (the paper:
    SP needs c = 1). Not differentiable (a table of scalings).

    Args:
        layer: layer indices l (K,), integers in [1, L + 1]: 1 is the input layer (fixed input
            dimension), 2..L the hidden layers, L + 1 the output layer.
        depth: L ≥ 1, the number of hidden layers (the MLP has L + 1 weight matrices); the
            mean-field parametrization is defined for L = 1 only.
        n: the width n ≥ 1.
        parametrization: ``"mup"`` (μP, Definition 5.1), ``"sp"`` (standard), ``"ntp"``
            (neural tangent) or ``"mfp"`` (mean field).

    Returns:
        multiplier: ``n^{−a_l}`` (K,), the forward multiplier of each layer.
        init_std: ``n^{−b_l}`` (K,), the standard deviation of the trained parameter at init.
        lr_scale: ``n^{−c}`` (K,), the learning-rate factor (the same for every layer).
        All float64.

    Reference: Yang and Hu, *Feature Learning in Infinite-Width Neural Networks*,
    arXiv:2011.14522, §3 (the parametrizations' examples), Theorem 3.3 (stability) and
    Definition 5.1 (μP).

    >>> import numpy as np, refimpl
    >>> m, std, lr = refimpl.layers.abc_init_std(np.array([1, 2, 3]), depth=2, n=4, parametrization="mup")
    >>> m, std, lr  # n^{½}, 1, n^{−½};  n^{−½} everywhere;  n^0
    (array([2. , 1. , 0.5]), array([0.5, 0.5, 0.5]), array([1., 1., 1.]))
    """
    a, b, c = abc_exponents(parametrization, layer, depth)
    width = np.float64(n)
    multiplier = np.power(width, -a)
    init_std = np.power(width, -b)
    lr_scale = np.full(layer.shape, np.power(width, -c), dtype=np.float64)
    return (multiplier, init_std, lr_scale), None

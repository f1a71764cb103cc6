"""DCC gradient matching: the layer-wise cosine gradient distance and its contrastive (DCC) form
(Dataset Condensation with Contrastive Signals)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Flag, FloatArray, Paper, RealScalar, array_namespace, op

__all__ = ["PAPER", "dcc_contrastive_gradient", "gradient_matching_distance"]

PAPER = Paper(
    "Dataset Condensation with Contrastive Signals",
    arxiv="2202.02916",
    year=2022,
    code="Saehyung-Lee/DCC",
)


def layer_rows(gradient: np.ndarray) -> np.ndarray | None:
    """One layer's gradient as the rows the distance compares, as the official ``distance_wb``
    reshapes it: conv (out, in, h, w) → (out, in·h·w), (C, h, w) → (C, h·w), a matrix as it is;
    a 1-D parameter (bias, normalization) gives None: it contributes 0."""
    if gradient.ndim == 1:
        return None
    return gradient.reshape(gradient.shape[0], -1)


def cosine_rows(a: np.ndarray, b: np.ndarray, eps: float):
    """``D = Σ_r (1 − ⟨a_r, b_r⟩/(‖a_r‖‖b_r‖ + eps))`` over the rows of a, b (R, K), and the
    per-row ``(dot, ‖a‖, ‖b‖, ‖a‖‖b‖ + eps)`` the backward needs, all in float64: a float32
    gradient of size 1e20 squares past float32's range, its float64 square does not."""
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    dot = (a * b).sum(axis=-1)
    norm_a = np.sqrt((a * a).sum(axis=-1))
    norm_b = np.sqrt((b * b).sum(axis=-1))
    denominator = norm_a * norm_b + eps  # eps outside the product, as official
    distance = (1 - dot / denominator).sum()
    return distance, (a, b, dot, norm_a, norm_b, denominator)


def cosine_rows_backward(row_terms, g_distance):
    """``∂D/∂b_r = −[a_r/den_r − (a_r·b_r)‖a_r‖ b_r/(‖b_r‖ den_r²)]`` times the cotangent
    (float64); the second term is 0 on a row with ‖b_r‖ = 0 (the zero subgradient of ‖·‖, as
    PyTorch)."""
    a, b, dot, norm_a, norm_b, denominator = row_terms
    safe_norm_b = np.where(norm_b > 0, norm_b, 1)
    along_b = np.where(norm_b > 0, (dot / denominator) * norm_a / (safe_norm_b * denominator), 0)
    return g_distance * (along_b[:, None] * b - a / denominator[:, None])


def _check_zero_rows(arguments, rows_of) -> None:
    """With eps = 0 a zero row (‖a_r‖‖b_r‖ = 0) divides 0 by 0: refused, naming the row."""
    if arguments.get("eps", 1e-6) != 0:
        return
    for name in ("g_real", "g_syn"):
        rows = rows_of(arguments[name])
        if rows is None:
            continue
        xp = array_namespace(rows)
        zero = ~xp.any(rows != 0, axis=-1)
        if bool(xp.any(zero)):
            raise ArgumentError(
                name,
                "no all-zero row when eps = 0 (‖a_r‖‖b_r‖ + eps = 0 divides; pass eps > 0, "
                "the official 1e-6)",
                f"row {int(xp.argmax(zero))} is zero",
            )


def _check_layer(arguments) -> None:
    g_real = arguments["g_real"]
    if not 1 <= g_real.ndim <= 4:
        raise ArgumentError(
            "g_real",
            "one layer's gradient of rank 1 to 4 (bias/norm, linear, (C, h, w), conv); "
            "call once per layer and sum",
            f"shape {tuple(g_real.shape)}",
        )
    _check_zero_rows(arguments, layer_rows)


@op(
    inputs={
        "g_real": FloatArray("...", "K"),
        "g_syn": FloatArray("...", "K"),
        "eps": RealScalar(0),
    },
    outputs=("distance",),
    differentiable=("g_syn",),
    check=_check_layer,
)
def gradient_matching_distance(g_real, g_syn, *, eps=1e-6):
    r"""DC/DCC gradient-matching distance of one layer: a sum of (1 − cosine) over output rows.

    Dataset condensation by gradient matching learns synthetic images whose training gradient
    ∇_θ CE(S) points like the real-data gradient ∇_θ CE(T), layer by layer. The official
    distance (``distance_wb`` in DC's and DCC's ``utils.py``) compares every output unit of a
    layer separately — one row of the gradient per output channel — by its cosine, and
    ignores 1-D parameters. The total over a network is the sum of this op over its layers.

    Forward. The layer gradient is reshaped to rows: (out, in, h, w) → (out, in·h·w),
    (C, h, w) → (C, h·w), (out, in) as is; a 1-D parameter gives ``D = 0``. For real rows
    ``a_r`` and synthetic rows ``b_r``::

        D = Σ_r (1 − ⟨a_r, b_r⟩/(‖a_r‖‖b_r‖ + ε))

    with ε added to the product of the norms (not to each norm), exactly as the code does.
    Dots and norms are accumulated in float64 (a float32 gradient entry of 1e20 squares past
    float32's range) and D is returned in the input dtype.

    Backward (w.r.t. the synthetic gradient; the real one is detached in the official code).
    With ``den_r = ‖a_r‖‖b_r‖ + ε`` and ``∂‖b_r‖/∂b_r = b_r/‖b_r‖``::

        ∂/∂b_r [⟨a_r, b_r⟩/den_r] = a_r/den_r − ⟨a_r, b_r⟩ ‖a_r‖ (b_r/‖b_r‖)/den_r²
        ḡ_syn_r = −ḡ_D [a_r/den_r − ⟨a_r, b_r⟩‖a_r‖ b_r/(‖b_r‖ den_r²)]

    reshaped back to the layer's shape (zeros for a 1-D parameter). At ``b_r = 0`` the norm
    has no derivative; the code takes its zero subgradient (as PyTorch's ``norm`` does), so
    the gradient there is ``−ḡ_D a_r/ε``.

    Args:
        g_real: the real-data gradient of one layer, rank 1 to 4 (a 1-D parameter gives 0),
            float32 or float64.
        g_syn: the synthetic-data gradient of the same layer (same shape).
        eps: ε added to ‖a_r‖‖b_r‖ (default 1e-6: ``0.000001`` in ``distance_wb``,
            Saehyung-Lee/DCC ``utils.py``).

    Returns:
        distance: the scalar D of the layer, in the input dtype.

    Reference: Lee et al., *Dataset Condensation with Contrastive Signals*, ICML 2022,
    arXiv:2202.02916; official code Saehyung-Lee/DCC ``utils.py``
    (``distance_wb``, ``match_loss`` with ``dis_metric='ours'``), inherited from
    VICO-UoE/DatasetCondensation.

    >>> import numpy as np, refimpl
    >>> g_real = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> g_syn = np.array([[3.0, 0.0], [1.0, 0.0]])  # row 0 parallel, row 1 orthogonal
    >>> round(float(refimpl.data_selection.gradient_matching_distance(g_real, g_syn, eps=0.0)), 12)
    1.0
    """
    dtype = g_syn.dtype
    a, b = layer_rows(g_real), layer_rows(g_syn)
    if a is None:
        return np.zeros((), dtype=dtype), (None, g_syn.shape, dtype)
    distance, row_terms = cosine_rows(a, b, eps)
    return np.asarray(distance, dtype=dtype), (row_terms, g_syn.shape, dtype)


@gradient_matching_distance.defvjp
def gradient_matching_distance_backward(residuals, g_distance):
    row_terms, shape, dtype = residuals
    if row_terms is None:
        return (np.zeros(shape, dtype=dtype),)
    g = np.float64(np.asarray(g_distance))
    return (cosine_rows_backward(row_terms, g).reshape(shape).astype(dtype),)


def _check_classes(arguments) -> None:
    g_real = arguments["g_real"]
    if not 2 <= g_real.ndim <= 5:
        raise ArgumentError(
            "g_real",
            "per-class gradients of one layer (C, *layer) with the layer of rank 1 to 4; "
            "call once per layer and sum",
            f"shape {tuple(g_real.shape)}",
        )
    if arguments.get("contrast", True):
        _check_zero_rows(arguments, lambda g: layer_rows(g.mean(axis=0)))
    else:
        _check_zero_rows(arguments, lambda g: None if g.ndim == 2 else g.reshape(g.shape[0] * g.shape[1], -1))


@op(
    inputs={
        "g_real": FloatArray("...", "K"),
        "g_syn": FloatArray("...", "K"),
        "contrast": Flag(),
        "eps": RealScalar(0),
    },
    outputs=("distance",),
    differentiable=("g_syn",),
    check=_check_classes,
)
def dcc_contrastive_gradient(g_real, g_syn, *, contrast=True, eps=1e-6):
    r"""DCC's contrastive gradient-matching loss of one layer, from per-class gradients (DC with
    ``contrast=False``).

    DC matches the gradients class by class, so nothing in its loss tells the classes apart.
    DCC (Lee et al.) matches instead the gradient summed over all classes: the real gradient
    is the average of the per-class real gradients and the synthetic gradient is the gradient
    of the CE over all synthetic images with all their labels, so the synthetic images of one
    class also receive the signal of the other classes' real data (the contrastive signal).

    Forward, with ``G^T_c`` and ``G^S_c`` the gradients of the mean CE over class c's real
    batch and synthetic images (``g_real[c]``, ``g_syn[c]``) and ``D`` the layer distance of
    :func:`gradient_matching_distance` (ε in the same place)::

        contrast=False (DC):   L = Σ_c D(G^T_c, G^S_c)
        contrast=True  (DCC):  L = D(Ḡ^T, Ḡ^S),  Ḡ^T = (1/C) Σ_c G^T_c,  Ḡ^S = (1/C) Σ_c G^S_c

    Ḡ^S is the gradient of the mean CE over all synthetic data when every class has the same
    number of synthetic images (the official layout: ipc images per class), since that mean is
    the average of the per-class means; Ḡ^T is the code's ``gw_real_i/num_classes`` sum.

    Backward (w.r.t. the per-class synthetic gradients; the real ones are detached in the
    official code). DC: each class's cotangent is the layer-distance VJP of its own pair.
    DCC: the chain through the mean, ``∂Ḡ^S/∂G^S_c = 1/C``, gives every class the same
    ``(1/C)·ḡ_{Ḡ^S}`` with ``ḡ_{Ḡ^S} = −ḡ_L[a_r/den_r − ⟨a_r, b_r⟩‖a_r‖ b_r/(‖b_r‖den_r²)]``
    for the rows a of Ḡ^T and b of Ḡ^S (see :func:`gradient_matching_distance`). A 1-D layer
    contributes 0 and gets zero gradients.

    Args:
        g_real: per-class real gradients of one layer (C, *layer), layer of rank 1 to 4.
        g_syn: per-class synthetic gradients (same shape).
        contrast: True (default: DCC, the ``--contrast`` run of Saehyung-Lee/DCC ``main.py``
            after the warm-up) or False (DC, the class-wise loss used during the bi-level
            warm-up of ``outer_warmup``/``inner_warmup`` iterations — a training-loop rule).
        eps: ε of the layer distance (default 1e-6, ``distance_wb``).

    Returns:
        distance: the scalar L of the layer, in the input dtype.

    Reference: Lee et al., *Dataset Condensation with Contrastive Signals*, ICML 2022,
    arXiv:2202.02916; official code Saehyung-Lee/DCC ``main.py`` (the ``args.contrast``
    branch: ``gw_real`` accumulated as ``gw_real_i/num_classes``, ``gw_syn`` from
    ``criterion(net(image_syn), label_syn)``) and ``utils.py`` (``match_loss``).

    >>> import numpy as np, refimpl
    >>> g_real = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # C = 2 classes, a (1, 2) layer
    >>> g_syn = np.array([[[0.0, 1.0]], [[1.0, 0.0]]])  # swapped: DC sees two orthogonal pairs
    >>> f = refimpl.data_selection.dcc_contrastive_gradient
    >>> round(float(f(g_real, g_syn, contrast=False, eps=0.0)), 12)  # DC: two orthogonal pairs
    2.0
    >>> round(float(f(g_real, g_syn, eps=0.0)), 12)  # DCC: both class means are (1/2, 1/2)
    0.0
    """
    dtype = g_syn.dtype
    num_classes = g_real.shape[0]
    layer_shape = g_real.shape[1:]
    if len(layer_shape) == 1:  # a 1-D parameter: 0, as distance_wb
        return np.zeros((), dtype=dtype), (None, g_syn.shape, dtype, contrast)
    if contrast:  # the class means, in float64
        a = layer_rows(g_real.mean(axis=0, dtype=np.float64))
        b = layer_rows(g_syn.mean(axis=0, dtype=np.float64))
    else:  # every class's rows stacked: the sum over classes of the layer distances
        a = g_real.reshape(num_classes * layer_shape[0], -1)
        b = g_syn.reshape(num_classes * layer_shape[0], -1)
    distance, row_terms = cosine_rows(a, b, eps)
    return np.asarray(distance, dtype=dtype), (row_terms, g_syn.shape, dtype, contrast)


@dcc_contrastive_gradient.defvjp
def dcc_contrastive_gradient_backward(residuals, g_distance):
    row_terms, shape, dtype, contrast = residuals
    if row_terms is None:
        return (np.zeros(shape, dtype=dtype),)
    g_rows = cosine_rows_backward(row_terms, np.float64(np.asarray(g_distance)))
    if contrast:  # ∂Ḡ^S/∂G^S_c = 1/C: every class gets the same share
        g_mean = (g_rows / shape[0]).reshape(shape[1:])
        return (np.broadcast_to(g_mean, shape).astype(dtype),)
    return (g_rows.reshape(shape).astype(dtype),)

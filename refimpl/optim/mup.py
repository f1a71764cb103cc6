"""μP's per-parameter learning-rate, weight-decay and readout multipliers (microsoft/mup's rules)."""

from __future__ import annotations

import numpy as np

from ..authoring import BoolArray, IntArray, OneOf, Paper, RealScalar, op

__all__ = ["mup_param_group_scaling"]

PAPER = Paper(
    "Feature Learning in Infinite-Width Neural Networks (Tensor Programs IV)",
    arxiv="2011.14522",
    year=2020,
    code="microsoft/mup",
)


@op(
    inputs={
        "shapes": IntArray("P", 2, low=1),
        "base_shapes": IntArray("P", 2, low=1),
        "readout": BoolArray("P"),
        "infinite": BoolArray("P", 2, optional=True),
        "optimizer": OneOf("adam", "sgd"),
        "output_mult": RealScalar(),
    },
    outputs=("lr_mult", "weight_decay_mult", "readout_mult"),
)
def mup_param_group_scaling(shapes, base_shapes, readout, infinite=None, *, optimizer, output_mult=1.0):
    r"""μP for a model given by its parameter shapes: each parameter's lr, weight-decay and
    readout multipliers relative to a tuned base model (microsoft/mup's ``MuAdam``/``MuSGD``).

    μP lets hyperparameters tuned on a small model transfer to a wide one. The ``mup``
    package implements it on top of a standard model: every parameter's shape is compared
    with its shape in a *base* model (the width the hyperparameters were tuned at); the
    dimensions that differ are "infinite" (width) dimensions, each with a width multiplier
    ``dim / base_dim``; the optimizer then rescales the learning rate and weight decay of each
    parameter by its multipliers, and the output layer (``MuReadout``) divides its input by
    its width multiplier. With base shape = shape every multiplier is 1 and the model trains
    exactly as the base model.

    Shapes (the convention of this op). Row p of ``shapes`` is ``(fan_out, fan_in)`` of
    parameter p in the torch layout (``nn.Linear.weight`` is (out, in); a convolution's
    (out, in, k, k) is written (out, in), its kernel dimensions being finite); a vector
    (a bias, a LayerNorm gain, of shape (d,)) is written ``(d, 1)`` and a scalar ``(1, 1)``.
    ``base_shapes`` holds the same parameters' shapes in the base model.

    Forward, per parameter (mup/infshape.py, mup/optim.py, mup/layer.py)::

        inf_k   = infinite[p, k]  if given,  else  shape_k ≠ base_k      (zip_infshape, fin_if_same)
        mult_k  = shape_k / base_k  if inf_k  else 1                       (InfDim.width_mult)
        ninf    = inf_0 + inf_1
        width_mult = mult of the LAST infinite dimension (fan_in if infinite, else fan_out),
                     1 if none                                             (InfShape.width_mult)

        Adam-like (MuAdam, MuAdamW; also RMSProp, Adagrad):
            ninf = 2 (matrix-like):       lr ×= 1/width_mult,   wd ×= width_mult
            otherwise (vector-like, fixed): lr ×= 1,             wd ×= 1
        SGD-like (MuSGD):
            ninf = 1 (vector-like):       lr ×= width_mult,     wd ×= 1/width_mult
            ninf = 2 (matrix-like):       r = mult_1 / mult_0   (fanin_fanout_mult_ratio)
                                          lr ×= 1/r,            wd ×= r
            ninf = 0 (fixed):             lr ×= 1,              wd ×= 1
        readout (MuReadout):   readout_mult = output_mult / width_mult   (other rows: 1)

    ``readout_mult`` multiplies the readout layer's *input* (``MuReadout.forward`` computes
    ``linear(output_mult · x / width_mult)``), so only the readout's weight row is marked in
    ``readout``; its bias is not divided. For the hidden (n, n) weights of a width-scaled
    MLP, Adam's rule is ``lr ∝ 1/n`` and SGD's is 1; the input layer and biases are
    vector-like (Adam: 1, SGD: ``lr ∝ n``); the readout (d_out, n) is vector-like too, with
    its ``1/n`` output multiplier. PyTorch's AdamW decays by ``lr·wd``, so the scaled pair
    keeps the decay per step independent of width.

    ``infinite`` matters when a width dimension is, in this model, equal to its base
    dimension (``set_base_shapes(model, base, delta=...)`` marks the dimensions that differ
    between the base and the delta model as infinite, whatever the target's size): it still
    counts in ``ninf`` (Adam: a (base, wider) weight with both dimensions infinite is
    matrix-like, lr ×= 1/mult_fan_in; without the flag it is vector-like, lr ×= 1).

    Not covered: ``set_base_shapes(..., rescale_params=True)`` also multiplies the readout's
    weight and bias by ``√width_mult`` and every other linear bias by ``√mult_fan_in`` (a
    change of the initialization, not of the optimizer); and mup refuses more than two
    infinite dimensions, which this representation cannot hold.

    The multipliers are returned as numbers; mup divides the base lr by ``width_mult``
    (``lr / width_mult``) where a caller of this op multiplies (``lr · (1/width_mult)``):
    the two can differ by one rounding (an ulp). Computed in float64.

    Args:
        shapes: (P, 2) integers ≥ 1, ``(fan_out, fan_in)`` of every parameter (vectors as
            ``(d, 1)``).
        base_shapes: (P, 2) integers ≥ 1, the same parameters in the base model (required:
            every multiplier is relative to it).
        readout: (P,) bool, True for the weight of the output layer (``MuReadout``,
            ``MuSharedReadout``).
        infinite: (P, 2) bool or None: which dimensions are width dimensions. None (default):
            a dimension is infinite iff it differs from its base (mup's
            ``set_base_shapes(model, base)`` without a delta model).
        optimizer: ``"adam"`` (Adam-like: entrywise-normalized updates) or ``"sgd"``
            (SGD-like); no default.
        output_mult: ``MuReadout``'s tunable constant ``output_mult`` (mup's default 1.0).

    Returns:
        lr_mult: (P,), the factor of the base learning rate for each parameter.
        weight_decay_mult: (P,), the factor of the base weight decay.
        readout_mult: (P,), ``output_mult / width_mult`` for readout rows, 1 elsewhere.
        All float64.

    Reference: Yang and Hu, *Feature Learning in Infinite-Width Neural Networks*,
    arXiv:2011.14522 (μP); the rules as implemented for Adam and SGD in Yang et al., *Tensor
    Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer*,
    arXiv:2203.03466, code microsoft/mup: ``mup/optim.py`` (``MuAdam``, ``MuSGD``),
    ``mup/infshape.py`` (``InfDim.width_mult``, ``InfShape.width_mult``,
    ``fanin_fanout_mult_ratio``, ``zip_infshape``) and ``mup/layer.py`` (``MuReadout``).

    >>> import numpy as np, refimpl
    >>> shapes = np.array([[256, 10], [256, 256], [1, 256]])  # input, hidden, readout: width 256
    >>> base = np.array([[64, 10], [64, 64], [1, 64]])        # tuned at width 64: width_mult 4
    >>> readout = np.array([False, False, True])
    >>> lr, wd, out = refimpl.optim.mup_param_group_scaling(shapes, base, readout, optimizer="adam")
    >>> lr, wd, out
    (array([1.  , 0.25, 1.  ]), array([1., 4., 1.]), array([1.  , 1.  , 0.25]))
    >>> refimpl.optim.mup_param_group_scaling(shapes, base, readout, optimizer="sgd")[0]
    array([4., 1., 4.])
    """
    if infinite is None:
        infinite = shapes != base_shapes  # zip_infshape(fin_if_same=True): equal dims are finite
    mult = np.where(infinite, shapes / base_shapes.astype(np.float64), 1.0)  # InfDim.width_mult
    ninf = infinite.sum(axis=1)
    # InfShape.width_mult: the last infinite dimension (fan_in when both are), else 1
    width_mult = np.where(infinite[:, 1], mult[:, 1], np.where(infinite[:, 0], mult[:, 0], 1.0))
    ones = np.ones(shapes.shape[0], dtype=np.float64)
    if optimizer == "adam":
        matrix_like = ninf == 2
        lr_mult = np.where(matrix_like, 1.0 / width_mult, ones)
        weight_decay_mult = np.where(matrix_like, width_mult, ones)
    else:
        ratio = mult[:, 1] / mult[:, 0]  # fanin_fanout_mult_ratio = mult(fan_in) / mult(fan_out)
        lr_mult = np.where(ninf == 1, width_mult, np.where(ninf == 2, 1.0 / ratio, ones))
        weight_decay_mult = np.where(ninf == 1, 1.0 / width_mult, np.where(ninf == 2, ratio, ones))
    readout_mult = np.where(readout, float(output_mult) / width_mult, ones)
    return (lr_mult, weight_decay_mult, readout_mult), None

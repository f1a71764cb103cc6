"""Fair error-bound scaling (FEBS) of the soft Dice loss, and the soft Dice loss (FairSeg, Tian et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    RealScalar,
    array_namespace,
    known_deviation,
    op,
)
from ..other.fairseg import PAPER  # noqa: F401 - the paper of this module's ops (read by @op)

__all__ = ["febs_dice_loss", "soft_dice_loss"]

#: the smoothing term of the official ``_dice_loss`` (``smooth = 1e-5``, TransUNet/utils.py)
SMOOTH = 1e-5


@op(
    inputs={
        "s": FloatArray("...", "N"),
        "t": FloatArray("...", "N"),
        "eps": RealScalar(0, low_open=True),
    },
    outputs=("loss",),
    differentiable=("s",),
)
def soft_dice_loss(s, t, *, eps=SMOOTH):
    r"""Soft Dice loss: one minus the smoothed Dice overlap of a score map and its target.

    The Dice coefficient ``2|A∩B|/(|A| + |B|)`` of two masks, with the masks relaxed to real
    scores (squared "sizes", as in V-Net) and a small ε on both sides so that two empty masks
    score a perfect overlap instead of 0/0. Every entry of ``s`` and ``t`` enters one sum:
    the official code calls it on one class channel of a whole batch, ``(B, H, W)``.

    Forward (sums over every entry)::

        I = Σ s t,   S = Σ s² + Σ t² + ε
        D = 1 − (2I + ε)/S                      (the official form)
          = Q/S,     Q = Σ (s − t)²             (S − 2I − ε = Σ s² + Σ t² − 2Σ s t)

    The code evaluates ``D = Q/S``: a sum of squares over a positive sum, so D keeps its
    relative precision where the official ``1 − (2I + ε)/S`` cancels (D ≪ 1, s close to t).
    ``0 ≤ D < 1``, and ``D = 0`` exactly when ``s = t``. Sums are accumulated in float64.

    Backward. With ``κ = (2I + ε)/S = 1 − D`` (the smoothed Dice coefficient, also summed
    directly rather than as 1 − D: a class absent from ``t`` has κ = ε/S ≪ 1)::

        ∂I/∂s_i = t_i,   ∂S/∂s_i = 2 s_i
        ∂D/∂s_i = −[2 t_i S − (2I + ε)·2 s_i]/S² = (2/S)(κ s_i − t_i)

    and ``s̄ = D̄·(2/S)(κ s − t)`` for the cotangent ``D̄`` of the loss. At ``s = t``: κ = 1,
    the gradient is 0 (the minimum).

    Args:
        s: scores (..., N), float32 or float64 (class probabilities, any real values work).
        t: targets of the same shape and dtype (a one-hot mask, or soft labels).
        eps: the smoothing ε > 0 on both sides of the ratio (default 1e-5, ``smooth`` of
            ``_dice_loss`` in the official code).

    Returns:
        loss: D, a 0-d array in the dtype of ``s``.

    Reference: Tian et al., *FairSeg: A Large-Scale Medical Image Segmentation Dataset for
    Fairness Learning Using Segment Anything Model with Fair Error-Bound Scaling*, ICLR 2024,
    arXiv:2311.02189; official code Harvard-Ophthalmology-AI-Lab/FairSeg,
    ``TransUNet/utils.py`` (``DiceLoss._dice_loss``, ``febs_loss._dice_loss``).

    >>> import numpy as np, refimpl
    >>> s, t = np.array([1.0, 0.0]), np.array([1.0, 1.0])   # Q = 1, S = 1 + 2 + ε
    >>> round(float(refimpl.reweighting.soft_dice_loss(s, t, eps=1.0)), 12)   # 1/4
    0.25
    """
    dtype = s.dtype
    s64, t64 = s.astype(np.float64, copy=False), t.astype(np.float64, copy=False)
    difference = s64 - t64
    squared_error = np.vdot(difference.ravel(), difference.ravel())  # Q
    overlap = np.vdot(s64.ravel(), t64.ravel())  # I
    total = np.vdot(s64.ravel(), s64.ravel()) + np.vdot(t64.ravel(), t64.ravel()) + eps  # S
    loss = squared_error / total
    kappa = (2 * overlap + eps) / total
    return np.asarray(loss, dtype=dtype), (s, t, kappa, total)


@soft_dice_loss.defvjp
def soft_dice_loss_backward(residuals, g_loss):
    s, t, kappa, total = residuals
    dtype = s.dtype
    scale = 2 * float(g_loss) / total  # D̄·2/S
    # in float64: 2/S underflows float32 where t is large (t ~ 1e30: S ~ 1e60)
    g_s = (scale * kappa) * s.astype(np.float64) - scale * t.astype(np.float64)
    return (g_s.astype(dtype),)


def _check_febs(arguments) -> None:
    p, t, groups, num_groups = arguments["p"], arguments["t"], arguments["groups"], arguments["num_groups"]
    xp = array_namespace(groups)
    largest = int(groups.max())
    if largest >= num_groups:
        raise ArgumentError(
            "groups", f"group labels in [0, num_groups) = [0, {num_groups})", f"label {largest}"
        )
    # D_g = 0 exactly when p = t on every entry of the group's samples (D = Σ(s − t)²/S):
    # the weight ratio min D/D_g is then 0/0. A sample almost always differs early, so the
    # first entries decide most samples and only the undecided ones are compared in full.
    differs = xp.any(p[:, 0, 0, :64] != t[:, 0, 0, :64], axis=1)  # no copy of p or t
    undecided = ~differs
    if bool(xp.any(undecided)):
        differs[undecided] = xp.any(p[undecided] != t[undecided], axis=(1, 2, 3))
    present = xp.unique(groups)
    differing = xp.unique(groups[differs])
    perfect = present[~xp.isin(present, differing)]
    if perfect.size:
        group = int(perfect[0])
        raise ArgumentError(
            "p",
            "predictions that differ from t somewhere in every group of the batch (a group with "
            "Σ_c D_c = 0 makes the weight ratio min_g' D_g'/D_g = 0/0)",
            f"p equal to t on every sample of group {group}",
        )


@op(
    inputs={
        "p": FloatArray("B", "C", "H", "W"),
        "t": FloatArray("B", "C", "H", "W"),
        "groups": IntArray("B", low=0),
        "num_groups": IntScalar(1),
        "gamma": RealScalar(0),
        "eps": RealScalar(0, low_open=True),
        "official_absent_group": Flag(),
    },
    outputs=("loss",),
    differentiable=("p",),
    check=_check_febs,
    custom_vjp="the group weights are computed from p but used as constants (the official code "
    "converts them to NumPy, outside the autograd graph): the backward is the soft-Dice VJP at the "
    "scaled predictions times the sample's weight, not the derivative of the weights",
)
def febs_dice_loss(p, t, groups, *, num_groups, gamma=1.0, eps=SMOOTH, official_absent_group=False):
    r"""FEBS Dice loss: the soft Dice loss on predictions scaled down by their group's error bound.

    FairSeg's fair error-bound scaling makes a segmentation model attend to the demographic
    groups it segments worst. Each group g of the batch gets the soft Dice loss of its own
    samples, ``D_g`` (summed over the classes); the group with the smallest loss sets the
    bound, and every group's predictions are multiplied by ``w_g = tanh((min D/D_g)^γ)`` before
    the Dice term: a group with a large loss gets a small weight, its scaled predictions
    overlap its targets less, so its Dice term and its gradient stay large. The best group
    gets ``tanh(1) ≈ 0.76``. The weights are constants of the step.

    Forward, with ``soft_dice(s, t) = Σ(s − t)²/(Σ s² + Σ t² + ε)`` (:func:`soft_dice_loss`,
    sums over every entry given), class channels ``c = 1..C`` and ``b ∈ g`` the samples of
    group g::

        D_g   = Σ_c soft_dice(p[b ∈ g, c], t[b ∈ g, c])     for each group present in the batch
        w_g   = tanh((min_{g' present} D_g' / D_g)^γ)        (the minimum group: ratio 1 exactly)
        p̃_b   = w_{g(b)} p_b                                 (scaled predictions, not a scaled loss)
        L     = (1/C) Σ_c soft_dice(p̃[:, c], t[:, c])        (sums over the batch and the pixels)

    Training uses ``0.5·CE + 0.5·L`` (``TransUNet/trainer_febs.py``), the cross-entropy on the
    unscaled logits; ``p`` is the softmax of the network's logits over the class axis (the
    official ``softmax=True``), taken by the caller. Sums are accumulated in float64.

    Backward. The weights are constants (official: each D_g is stored into a NumPy array,
    outside the autograd graph; ``custom_vjp``). Per class, with ``I_c = Σ p̃ t``,
    ``S_c = Σ p̃² + Σ t² + ε``, ``D_c = soft_dice(p̃_c, t_c)`` and ``κ_c = (2I_c + ε)/S_c = 1 − D_c``,
    the soft-Dice VJP (see :func:`soft_dice_loss`) ``∂D_c/∂p̃ = (2/S_c)(κ_c p̃ − t)`` and
    ``∂p̃_b/∂p_b = w_{g(b)}`` give::

        p̄[b, c] = (L̄/C) · w_{g(b)} · (2/S_c) · (κ_c w_{g(b)} p[b, c] − t[b, c])

    With one group in the batch, or γ = 0, the weights do not depend on p (all ``tanh 1``) and
    this is the exact derivative of L.

    Official-code bug (``official_absent_group=True`` reproduces it): the weight array spans
    all ``num_groups`` groups, starts at zero and is filled only for the groups present, and
    its minimum is taken over all of it. A group absent from the batch makes the minimum 0:
    every weight is ``tanh(0^γ) = 0`` (γ > 0), the scaled predictions vanish and L is the
    constant ``(1/C) Σ_c Σt_c²/(Σt_c² + ε) ≈ 1`` with zero gradient. By default the minimum
    runs over the groups present.

    Args:
        p: class probabilities (B, C, H, W), float32 or float64.
        t: one-hot targets (B, C, H, W), same dtype (soft targets in [0, 1] work as well).
        groups: the group (demographic attribute value) of each sample (B,), integers in
            [0, num_groups).
        num_groups: the number of groups of the attribute (required: 3 for race or language,
            2 for gender or ethnicity in FairSeg's ``trainer_febs.py``); it only matters with
            ``official_absent_group``.
        gamma: the exponent γ ≥ 0 (default 1.0, ``--gamma`` of ``TransUNet/train_febs.py``;
            the ``febs_loss`` class itself defaults to 0.0, which makes every weight tanh(1)).
        eps: the soft-Dice smoothing ε > 0 (default 1e-5, ``smooth`` in ``_dice_loss``).
        official_absent_group: reproduce the official minimum over all groups, absent ones
            counting 0 (default False).

    Returns:
        loss: L, a 0-d array in the dtype of ``p``.

    Raises InputError where a group present in the batch has ``D_g = 0`` (p equals t on all of
    its samples: the ratio is 0/0).

    Reference: Tian et al., *FairSeg: A Large-Scale Medical Image Segmentation Dataset for
    Fairness Learning Using Segment Anything Model with Fair Error-Bound Scaling*, ICLR 2024,
    arXiv:2311.02189 (fair error-bound scaling); official code
    Harvard-Ophthalmology-AI-Lab/FairSeg, ``TransUNet/utils.py`` (``febs_loss.forward``,
    ``febs_loss._dice_loss``), ``TransUNet/trainer_febs.py``, ``TransUNet/train_febs.py``.

    >>> import numpy as np, refimpl
    >>> p = np.array([0.0, 2.0]).reshape(2, 1, 1, 1)    # group 0: D_0 = 1/(0+1+1) = 1/2
    >>> t = np.ones((2, 1, 1, 1))                       # group 1: D_1 = 1/(4+1+1) = 1/6
    >>> loss = refimpl.reweighting.febs_dice_loss(p, t, np.array([0, 1]), num_groups=2, eps=1.0)
    >>> s_1 = 2.0 * np.tanh(1.0)        # w_1 = tanh(1) (the minimum); w_0 scales p_0 = 0
    >>> bool(np.isclose(loss, (1 + (s_1 - 1) ** 2) / (s_1**2 + 2 + 1)))
    True
    """
    dtype = p.dtype
    num_classes = p.shape[1]
    p64, t64 = p.astype(np.float64, copy=False), t.astype(np.float64, copy=False)
    pixels = (2, 3)
    # per sample and class: Σ(p − t)², Σp², Σt² over the pixels
    sample_squared_error = ((p64 - t64) ** 2).sum(axis=pixels)
    sample_p_squares = (p64 * p64).sum(axis=pixels)
    sample_t_squares = (t64 * t64).sum(axis=pixels)
    weights = _group_weights(
        sample_squared_error,
        sample_p_squares + sample_t_squares,
        groups,
        num_groups=num_groups,
        gamma=gamma,
        eps=eps,
        official_absent_group=official_absent_group,
    )
    w = weights[:, None, None, None]
    scaled = w * p64  # p̃
    squared_error = ((scaled - t64) ** 2).sum(axis=(0, 2, 3))  # Q_c
    overlap = (scaled * t64).sum(axis=(0, 2, 3))  # I_c
    total = (scaled * scaled).sum(axis=(0, 2, 3)) + sample_t_squares.sum(axis=0) + eps  # S_c
    loss = (squared_error / total).mean()  # (1/C) Σ_c D_c
    kappa = (2 * overlap + eps) / total
    return np.asarray(loss, dtype=dtype), (p, t, weights, kappa, total, num_classes)


def _group_weights(squared_error, totals, groups, *, num_groups, gamma, eps, official_absent_group):
    """``w_b = tanh((min D/D_{g(b)})^γ)`` from per-sample, per-class ``Σ(p − t)²`` and
    ``Σp² + Σt²`` (B, C), float64: the sums of each group's samples, then D_g."""
    present, position = np.unique(groups, return_inverse=True)
    num_present = present.size
    group_squared_error = np.zeros((num_present, squared_error.shape[1]))
    group_totals = np.zeros_like(group_squared_error)
    np.add.at(group_squared_error, position, squared_error)
    np.add.at(group_totals, position, totals)
    group_loss = (group_squared_error / (group_totals + eps)).sum(axis=1)  # D_g, g present
    smallest = group_loss.min()
    if official_absent_group and num_present < num_groups:
        smallest = 0.0  # an absent group's zero entry of the official weight array
    # the minimum group's ratio is 1 by definition (also should its D_g underflow to 0)
    ratio = np.where(group_loss == smallest, 1.0, smallest / np.where(group_loss == 0, 1.0, group_loss))
    return np.tanh(ratio**gamma)[position]


@febs_dice_loss.defvjp
def febs_dice_loss_backward(residuals, g_loss):
    p, t, weights, kappa, total, num_classes = residuals
    dtype = p.dtype
    # p̄ = a_bc p − b_bc t with b_bc = (L̄/C)·w_b·2/S_c and a_bc = b_bc·κ_c·w_b
    scale_t = (2 * float(g_loss) / num_classes) * weights[:, None] / total[None, :]  # (B, C)
    scale_p = scale_t * kappa[None, :] * weights[:, None]
    # in float64: the scales underflow float32 where t is large (S_c ~ Σt²)
    g_p = scale_p[:, :, None, None] * p.astype(np.float64) - scale_t[:, :, None, None] * t.astype(np.float64)
    return (g_p.astype(dtype),)


_OFFICIAL_P = np.array([0.25, 0.5]).reshape(1, 2, 1, 1)
_OFFICIAL_T = np.array([0.0, 1.0]).reshape(1, 2, 1, 1)

known_deviation(
    febs_dice_loss,
    name="febs-absent-group-zero-minimum",
    source="Harvard-Ophthalmology-AI-Lab/FairSeg, TransUNet/utils.py, febs_loss.forward "
    "(`tmp_weights = np.zeros(self.n_attr)`, filled for `np.unique(attr)`, then "
    "`np.min(tmp_weights) / tmp_weights`)",
    official="takes the minimum over a weight array of all n_attr groups whose absent groups stay 0: "
    "one group missing from the batch makes every weight tanh(0) = 0 (γ > 0), the Dice term the "
    "constant (1/C) Σ_c Σt_c²/(Σt_c² + ε) and its gradient zero",
    paper="the minimum over the groups present in the batch (the best group's error bound); refimpl's "
    "default",
    example=Example(
        args=(_OFFICIAL_P, _OFFICIAL_T, np.array([0])),
        kwargs={"num_groups": 2},
        official={"loss": (0.0 + 1 / (1 + 1e-5)) / 2},
        reference={
            "loss": (
                (np.tanh(1) * 0.25) ** 2 / ((np.tanh(1) * 0.25) ** 2 + 1e-5)
                + (1 - np.tanh(1) * 0.5) ** 2 / ((np.tanh(1) * 0.5) ** 2 + 1 + 1e-5)
            )
            / 2
        },
        note="one sample of group 0 with num_groups = 2: group 1 is absent; class 0 has no target "
        "pixel (official: Σt² = 0 gives D = 0/ε = 0), class 1 gives 1/(1 + ε)",
    ),
    flag={"official_absent_group": True},
)

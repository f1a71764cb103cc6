"""Cosine power annealing, sharpDARTS' learning-rate schedule (sharpDARTS: Faster and More
Accurate Differentiable Architecture Search)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    IntArray,
    IntScalar,
    OneOf,
    RealScalar,
    known_deviation,
    op,
)
from ..layers.max_w import PAPER  # the same paper's Max-W weighting, max_w_mixed_op

__all__ = ["PAPER", "cosine_power_annealing"]


def _check(arguments) -> None:
    epochs, max_epoch, warmup = arguments["epochs"], arguments["max_epoch"], arguments["warmup_epochs"]
    last = int(epochs.max())
    total = last if max_epoch is None else max_epoch
    if last > total:
        raise ArgumentError(
            "epochs",
            f"epochs e in [1, max_epoch] = [1, {total}] (past E the cosine rises again)",
            f"epoch {last}",
        )
    if warmup >= total:
        raise ArgumentError(
            "warmup_epochs",
            f"fewer warm-up epochs than max_epoch = {total} (the cosine runs over E − W > 0 epochs)",
            f"warmup_epochs {warmup}",
        )
    if arguments["normalization"] == "empirical":
        proportions = _power_proportions(
            _cos_proportions(epochs, total, warmup), arguments["exponent_order"], "empirical_raw"
        )
        if float(np.max(proportions) - np.min(proportions)) == 0.0:
            raise ArgumentError(
                "epochs",
                "epochs whose proportions differ (the empirical normalization divides by "
                "max − min over the supplied epochs: one epoch is 0/0)",
                f"epochs {epochs.tolist()}",
            )


def _cos_proportions(epochs, max_epoch, warmup_epochs):
    """p_e = (1 + cos(π e/E))/2 on the epochs shifted by the warm-up (official order)."""
    shifted = epochs.astype(np.float64) - warmup_epochs
    return (1.0 + np.cos(np.pi * shifted / (max_epoch - warmup_epochs))) / 2.0


def _power_proportions(p, k, normalization):
    if normalization == "closed_form":
        if k == 1.0:
            return p  # the limit k → 1 of (k^{p+1} − k)/(k² − k): plain cosine
        # (k^{p+1} − k)/(k² − k) = k(k^p − 1)/(k(k − 1)) = expm1(p·log k)/(k − 1):
        # no cancellation of k^{p+1} against k for k near 1 or p near 0
        return np.expm1(p * np.log1p(k - 1.0)) / (k - 1.0)
    q = p if k == 1.0 else np.power(k, p + 1.0)  # official: np.power(exponent_order, p + 1)
    q = q - np.min(q)
    if normalization == "empirical_raw":
        return q
    return q / np.max(q)


@op(
    inputs={
        "epochs": IntArray("N", low=1),
        "exponent_order": RealScalar(1),
        "max_lr": RealScalar(0),
        "min_lr": RealScalar(0),
        "max_epoch": IntScalar(1, optional=True),
        "warmup_epochs": IntScalar(0),
        "normalization": OneOf("closed_form", "empirical"),
    },
    outputs=("lr",),
    check=_check,
)
def cosine_power_annealing(
    epochs,
    *,
    exponent_order=10.0,
    max_lr=0.1,
    min_lr=1e-4,
    max_epoch=None,
    warmup_epochs=0,
    normalization="closed_form",
):
    r"""Cosine power annealing: a cosine schedule pushed through a power k^(·), from max_lr to min_lr.

    Cosine annealing decays too slowly at the start and too fast at the end; exponential
    decay does the opposite. sharpDARTS raises the exponent order k to the cosine's
    proportion: the larger k, the closer to exponential decay; k = 1 is plain cosine
    annealing. ::

        p_e = (1 + cos(π e/E))/2                       (cosine from ~1 at e = 1 to 0 at e = E)
        q_e = (k^{p_e + 1} − k)/(k² − k)               (k > 1; q_e = p_e for k = 1)
        lr_e = min_lr + q_e·(max_lr − min_lr)

    ``normalization="closed_form"`` (the paper's, default) maps p ∈ [0, 1] to q ∈ [0, 1]
    with the fixed range of k^{p+1}, [k, k²]; it is evaluated as
    ``expm1(p·log1p(k − 1))/(k − 1)``, the same number without the cancellation of
    ``k^{p+1} − k`` (k near 1, p near 0), and tends to p as k → 1.
    ``normalization="empirical"`` is the official code's: ``q ← k^{p+1}`` (``p`` for k = 1),
    then ``q ← (q − min q)/max(q − min q)`` over the *supplied* epochs, so the first epoch of
    ``1..E`` gets exactly max_lr (the closed form gives it slightly less, p_1 < 1) and the
    schedule depends on which epochs are passed (a single epoch is 0/0: refused).

    Warm-up (``warmup_epochs = W > 0``, the official ``warmup_epochs``): the cosine runs
    over the shifted epochs ``e − W`` and ``E − W`` (official order: shift, then
    normalize over every supplied epoch, the warm-up ones included), then every epoch
    ``e ≤ W`` gets the linear proportion ``q_e = e/W`` (the official
    ``np.arange(1, W + 1)/W`` for the epochs ``1..W``).

    A learning-rate schedule: reference-only (no fast backend, no gradient), float64 out.

    Args:
        epochs: the epochs e (N,), integers in [1, E] (typically ``np.arange(E) + 1``; a
            resumed run passes the remaining ones).
        exponent_order: k ≥ 1 (default 10, the official function's default; the CIFAR-10
            example uses 2). k < 1 is refused.
        max_lr: the initial (largest) learning rate (default 0.1, official default; the
            CIFAR-10 example uses 0.025).
        min_lr: the final learning rate (default 1e-4, official default; the ImageNet runs
            use 7.5e-4).
        max_epoch: E (default: the largest supplied epoch, as the official code does).
        warmup_epochs: linear warm-up epochs W, 0 ≤ W < E (default 0: none; official
            ``None``).
        normalization: ``"closed_form"`` (paper, default) or ``"empirical"`` (official code).

    Returns:
        lr: the learning rate at each epoch (N,), float64.

    Reference: Hundt, Jain, Hager, *sharpDARTS: Faster and More Accurate Differentiable
    Architecture Search*, arXiv:1903.09900 (cosine power annealing); official code
    ahundt/sharpDARTS, ``cnn/cosine_power_annealing.py``, ``cosine_power_annealing``.

    >>> import numpy as np, refimpl
    >>> lr = refimpl.optim.cosine_power_annealing(np.arange(1, 11), max_lr=1.0, min_lr=0.0)
    >>> lr[:3].round(5)  # closed form, k = 10, E = 10
    array([0.93912, 0.78069, 0.58016])
    >>> float(lr[-1])  # p_E = 0: exactly min_lr
    0.0
    >>> refimpl.optim.cosine_power_annealing(
    ...     np.arange(1, 11), max_lr=1.0, min_lr=0.0, normalization="empirical")[:3].round(5)
    array([1.     , 0.83129, 0.61777])
    """
    total = int(epochs.max()) if max_epoch is None else max_epoch
    p = _cos_proportions(epochs, total, warmup_epochs)
    q = _power_proportions(p, float(exponent_order), normalization)
    if warmup_epochs > 0:
        warming = epochs <= warmup_epochs
        q = np.where(warming, epochs / float(warmup_epochs), q)
    return min_lr + q * (max_lr - min_lr), None


known_deviation(
    cosine_power_annealing,
    name="cosine-power-annealing-empirical-normalization",
    source="ahundt/sharpDARTS, cnn/cosine_power_annealing.py, cosine_power_annealing "
    "(`cos_power_proportions - np.min(...)`, then `/ np.max(...)`)",
    official="rescales k^{p+1} by its min and max over the supplied epoch array: the first of the epochs "
    "1..E gets exactly max_lr, and the values depend on which epochs are passed",
    paper="rescales with the fixed range of k^{p+1} for p ∈ [0, 1]: q = (k^{p+1} − k)/(k² − k), so epoch 1 "
    "(p_1 < 1) starts slightly below max_lr",
    example=Example(
        args=(np.arange(1, 11),),
        kwargs={"max_lr": 1.0, "min_lr": 0.0},
        official={"lr": [1.0, 0.83129, 0.61777, 0.41569, 0.25583, 0.14382, 0.07186, 0.0291, 0.00686, 0.0]},
        reference={
            "lr": [0.93912, 0.78069, 0.58016, 0.39038, 0.24025, 0.13507, 0.06748, 0.02732, 0.00644, 0.0]
        },
        note="E = 10, k = 10",
    ),
    flag={"normalization": "empirical"},
)

"""Co-teaching small-loss selection (Compressing Features for Learning with Noisy Labels)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "coteaching_small_loss_selection", "remembered_count"]

PAPER = Paper(
    "Compressing Features for Learning with Noisy Labels",
    arxiv="2206.13140",
    year=2022,
    code="yingyichen-cyy/Nested-Co-teaching",
)


def remembered_count(forget_rate: float, batch: int) -> int:
    """``⌊(1 − τ_e)·B⌋`` evaluated as the official code does: ``int((1 − τ_e)·B)`` in float64.

    Both the subtraction and the product are rounded to float64 before the floor, so a
    product meant to be an integer can land on either side of it: ``(1 − 0.8)·5 =
    0.9999999999999998`` keeps 0 examples, not 1, while ``(1 − 0.2)·5`` rounds to exactly
    4.0 (the exact product with the float64 τ = 0.2, slightly above 1/5, is just below 4,
    so an exact-rational floor keeps 3). The rule is the official expression, roundings
    included, so that a port keeps the same number of examples.

    >>> remembered_count(0.3, 10), remembered_count(0.0, 7), remembered_count(0.8, 5)
    (7, 7, 0)
    """
    return int((1.0 - float(forget_rate)) * batch)  # int() truncates: the floor of a value >= 0


@op(
    inputs={
        "losses_1": FloatArray("B"),
        "losses_2": FloatArray("B"),
        "forget_rate": RealScalar(0, 1),
    },
    outputs=("indices_1", "indices_2"),
)
def coteaching_small_loss_selection(losses_1, losses_2, *, forget_rate):
    r"""Co-teaching: each network keeps its small-loss examples, to train the *other* network.

    Deep networks fit clean labels before noisy ones, so early in training the examples with
    a small loss are likely clean. Co-teaching trains two networks side by side; in every
    mini-batch each network ranks the examples by its own per-sample cross-entropy and keeps
    the ``1 − τ_e`` fraction with the smallest losses, and the examples network 1 keeps train
    network 2, and vice versa (the two networks filter different errors, so a noisy example
    one of them has memorized is less likely to reach the other). Nested Co-teaching
    fine-tunes two nested-dropout networks this way.

    Forward, for a batch of B examples and the forget rate ``τ_e`` of the current epoch::

        R         = ⌊(1 − τ_e)·B⌋                                 (evaluated in float64)
        order_n   = argsort(ℓ_n), stable: ascending loss, equal losses by lowest index first
        indices_n = order_n[:R]                                   n = 1, 2

    Returned in that order: ascending loss (the first index is the smallest loss), exactly
    the prefix of the stable argsort. Network 1's ``indices_1`` select the examples that
    train network 2, and ``indices_2`` those that train network 1. The count is computed as
    the official ``int((1 − forgetRate)·len(idx1))`` (see :func:`remembered_count`): in
    float64, so ``(1 − 0.8)·5 = 0.9999999999999998`` keeps 0 examples, not 1. ``τ_e = 0``
    keeps every example (each output is then the full stable argsort); ``τ_e = 1`` keeps
    none.

    The official code sorts with ``torch.argsort`` (``stable=False``), which leaves the order
    of equal losses to the device and the kernel; the reference fixes it to the lowest index
    first, so ties are reproducible. The losses are only ranked: any finite values are
    accepted (cross-entropies in the paper). In the official training loop the two networks
    score the two halves of a mini-batch (``groupClsData``), and network 1 then trains on
    the half network 2 scored at ``indices_2``; in the original Co-teaching both score the
    same batch. The selection is the same rule either way. Not differentiable.

    Forget-rate schedule (the caller's, not part of the op): ``τ_e`` ramps linearly from 0
    to τ over the first ``nGradual`` epochs (``np.linspace(0, τ, nGradual)``) and stays at τ;
    the fine-tuning commands of the official README use τ = 0.3 on Clothing1M and 0.2 on
    ANIMAL-10N and CIFAR, with ``nGradual = 0`` (τ_e = τ from the first epoch).

    Args:
        losses_1: per-sample losses of network 1 (B,), float32 or float64, finite.
        losses_2: per-sample losses of network 2 (B,), same dtype.
        forget_rate: the current epoch's forget rate ``τ_e`` in [0, 1] (required: the
            schedule is the caller's).

    Returns:
        indices_1: the ``R`` smallest-loss indices of ``losses_1`` (R,), int64, by ascending
            loss (ties: lowest index first).
        indices_2: the same for ``losses_2`` (R,), int64.

    Reference: Chen et al., *Compressing Features for Learning with Noisy
    Labels*, IEEE TNNLS 2022, arXiv:2206.13140 (Co-teaching stage); official code
    yingyichen-cyy/Nested-Co-teaching (``co_teaching_resnet/loss.py``, ``SampleSelection``;
    the schedule in ``co_teaching_resnet/main.py``). Co-teaching: Han et al., *Co-teaching:
    Robust Training of Deep Neural Networks with Extremely Noisy Labels*, NeurIPS 2018,
    arXiv:1804.06872.

    >>> import numpy as np, refimpl
    >>> losses_1 = np.array([0.5, 0.1, 0.5, 0.1, 0.9])  # ties: 1 before 3, 0 before 2
    >>> losses_2 = np.array([2.0, 0.3, 0.1, 1.0, 0.2])
    >>> refimpl.reweighting.coteaching_small_loss_selection(losses_1, losses_2, forget_rate=0.4)
    (array([1, 3, 0]), array([2, 4, 1]))
    """
    keep = remembered_count(forget_rate, losses_1.shape[0])
    order_1 = np.argsort(losses_1, kind="stable")  # stable: equal losses keep index order
    order_2 = np.argsort(losses_2, kind="stable")
    indices_1 = order_1[:keep].astype(np.int64, copy=False)
    indices_2 = order_2[:keep].astype(np.int64, copy=False)
    return (indices_1, indices_2), None

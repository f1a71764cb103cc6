"""The proximal matching loss that trains learned proximal networks (What's in a Prior?
Learned Proximal Networks for Inverse Problems)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    Example,
    Flag,
    FloatArray,
    OneOf,
    Paper,
    RealScalar,
    known_deviation,
    op,
    reduce_rows,
    row_weights,
)

__all__ = ["PAPER", "proximal_matching_loss"]

PAPER = Paper(
    "What's in a Prior? Learned Proximal Networks for Inverse Problems",
    arxiv="2310.14344",
    year=2024,
    code="ZhenghanFang/learned-proximal-networks",
)


@op(
    inputs={
        "f": FloatArray("B", "D"),
        "x": FloatArray("B", "D"),
        "gamma": RealScalar(0, low_open=True),
        "normalize_by_dim": Flag(),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("f",),
)
def proximal_matching_loss(f, x, *, gamma, normalize_by_dim=False, reduction="mean"):
    r"""Proximal matching: ``1 − exp(−‖f − x‖²/γ²)``, a smoothed 0-1 loss on the denoiser error.

    A learned proximal network f is trained as a denoiser, ``f(y) ≈ x`` for noisy ``y = x +
    noise``. With the squared error it would learn the posterior mean (MMSE), with the absolute
    error the median; proximal matching instead trains with a Gaussian-shaped bump of width γ
    around the target, and as γ → 0 the minimizer tends to the posterior mode (MAP), so the
    network becomes the proximal operator of the true log-prior. γ is decreased in stages
    during training (a schedule supplied by the caller).

    Forward, per row (D entries; ``n = D`` with ``normalize_by_dim``, else ``n = 1``)::

        u_i = (1/n) Σ_d (f_id − x_id)²          (the squared Euclidean distance, or its mean)
        ℓ_i = 1 − exp(−u_i/γ²) = −expm1(−u_i/γ²)
        L   = mean_i ℓ_i   (reduction="mean", the official ``.mean()``; "sum"; "none")

    ``expm1`` keeps the digits of ℓ for ``u ≪ γ²`` (where ``1 − exp`` rounds to 0 or to a
    multiple of the ulp of 1); ℓ ∈ [0, 1), 0 exactly when f = x.

    Backward. ``∂u_i/∂f_id = (2/n)(f_id − x_id)`` and ``∂ℓ_i/∂u_i = exp(−u_i/γ²)/γ²``, so::

        ∂ℓ_i/∂f_id = exp(−u_i/γ²) · (1/γ²) · (2/n) · (f_id − x_id)

    times the row's cotangent (``L̄/B`` for "mean"). The code works with u directly: the
    official code forms the distance ``sqrt(u)`` and squares it again, whose autograd
    derivative at u = 0 is ``inf·0 = NaN`` (the known deviation below); here f = x gives a
    zero gradient. The targets x are constants (no gradient), as in the official training.

    Not pinned: γ. It is tuned per task and scheduled, so it is a required argument. The
    official image training (``lpn/train.py``, ``lpn/utils/utils.py``:
    ``get_loss_hparams_and_lr``) uses ``γ = σ_min·2^(S−1−stage)`` over S = 4 stages after an
    ℓ1 pre-training, with ``σ_min = 0.08·√D`` (D = pixels × channels) on the Euclidean
    distance — γ/√D = 0.08·2^k on the RMS distance (``normalize_by_dim=True``); the Laplacian
    toy (``exps/laplacian/laplacian_train.ipynb``, D = 1) steps γ through 0.5, 0.4, 0.3,
    0.2, 0.1.

    Args:
        f: network outputs f(y) (B, D), float32 or float64 (flatten images to rows).
        x: clean targets (B, D) (constants).
        gamma: the width γ > 0 (required; see above).
        normalize_by_dim: divide the squared distance by D, i.e. use the RMS over entries
            (default False: the Euclidean distance of the paper and of the official
            ``ExpDiracSrgt``; True is the RMS form, for which γ does not scale with D).
        reduction: "mean" (default), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the dtype of ``f``.

    Reference: Fang, Buchanan, Sulam, *What's in a Prior? Learned Proximal Networks for
    Inverse Problems*, ICLR 2024, arXiv:2310.14344 (proximal matching, Section 3.2); official
    code ZhenghanFang/learned-proximal-networks, ``lpn/utils/utils.py``: ``exp_func`` (``1 −
    exp(−(x/σ)²)``) and ``ExpDiracSrgt.forward`` (``dist = (input − target)²`` summed per
    sample, square-rooted; ``exp_func(dist, σ).mean()``).

    >>> import numpy as np, refimpl
    >>> f, x = np.array([[1.0, 1.0], [0.0, 0.0]]), np.zeros((2, 2))  # ‖f − x‖² = 2 and 0
    >>> round(float(refimpl.losses.proximal_matching_loss(f, x, gamma=np.sqrt(2.0))), 7)  # (1 − e^−1 + 0)/2
    0.3160603
    """
    dtype = f.dtype
    scale = f.shape[-1] if normalize_by_dim else 1
    difference = f - x
    u = (difference * difference).sum(axis=-1) / dtype.type(scale)
    inverse_gamma2 = dtype.type(1.0 / (gamma * gamma))
    closeness = np.exp(-u * inverse_gamma2)  # exp(−u/γ²) ∈ (0, 1]
    per_row = -np.expm1(-u * inverse_gamma2)
    slope = closeness * (inverse_gamma2 * dtype.type(2.0 / scale))  # ∂ℓ_i/∂f_i = slope_i·(f_i − x_i)
    return reduce_rows(per_row, reduction, dtype), (difference, slope, reduction)


@proximal_matching_loss.defvjp
def proximal_matching_loss_backward(residuals, g_loss):
    difference, slope, reduction = residuals
    dtype = difference.dtype
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, difference.shape[0])
    return (((w * slope)[:, None] * difference).astype(dtype, copy=False),)


known_deviation(
    proximal_matching_loss,
    name="lpn-proximal-matching-nan-gradient-at-zero-distance",
    source="ZhenghanFang/learned-proximal-networks, lpn/utils/utils.py, ExpDiracSrgt.forward "
    "(`dist = (input - target).pow(2).reshape(bsize, -1).sum(1).sqrt()`, then `exp_func(dist, sigma)`)",
    official="takes the square root of the squared distance and squares it again inside exp_func; autograd "
    "of sqrt at 0 is 0/0, so a sample with f = x exactly gets a NaN gradient (and one optimizer step "
    "then spreads NaN through the network's weights)",
    paper="ℓ = 1 − exp(−‖f − x‖²/γ²) is smooth, with gradient 0 at f = x; refimpl differentiates the "
    "squared distance directly",
    example=Example(
        args=(np.array([[0.5, 0.0], [0.0, 0.0]]), np.zeros((2, 2))),
        kwargs={"gamma": 1.0},
        official={"cotangent of 'f'": [[0.5 * np.exp(-0.25), 0.0], [np.nan, np.nan]]},
        reference={"cotangent of 'f'": [[0.5 * np.exp(-0.25), 0.0], [0.0, 0.0]]},
        note="row 1 has f = x: torch's sqrt backward divides its 0 cotangent by 2·sqrt(0) = 0",
    ),
)

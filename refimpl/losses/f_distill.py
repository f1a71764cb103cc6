"""f-divergence weights, VSD loss (One-step Diffusion Models with f-Divergence Distribution Matching)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    RealScalar,
    known_deviation,
    op,
)

__all__ = ["DIVERGENCES", "PAPER", "f_divergence_weight", "vsd_loss", "weighting_function"]

PAPER = Paper(
    "One-step Diffusion Models with f-Divergence Distribution Matching",
    arxiv="2502.15681",
    year=2025,
    code="NVlabs/FastGen (fastgen/methods/distribution_matching/f_distill.py)",
)

DIVERGENCES = ("rkl", "kl", "js", "sf", "neyman", "sh", "jf")
NORMALIZATION_EPS = 1e-6  # the official `+ 1e-6` of the bin and batch normalizations and of the VSD weight
NEYMAN_CLAMP = 1e-8  # the official clamp of r before 1/r


def weighting_function(r: np.ndarray, divergence: str) -> np.ndarray:
    """``h(r) ∝ r² f''(r)`` for the named divergence (the official table; see ``f_divergence_weight``)."""
    one = r.dtype.type(1)
    if divergence == "rkl":
        return np.ones_like(r)
    if divergence == "kl":
        return r.copy()
    if divergence == "js":
        return one - one / (one + r)
    if divergence == "sf":
        return one / (one + r)
    if divergence == "neyman":
        return one / np.maximum(r, r.dtype.type(NEYMAN_CLAMP))
    if divergence == "sh":
        return np.sqrt(r)
    return one + r  # "jf"


def _check_weight(arguments) -> None:
    if arguments["ratio_normalization"] and arguments["time_bin"] is None:
        raise ArgumentError(
            "time_bin",
            "each sample's time bin (B,) when ratio_normalization=True (pass it, or turn the "
            "per-bin normalization off)",
            "None",
        )
    if arguments["ratio_lower"] > arguments["ratio_upper"]:
        raise ArgumentError(
            "ratio_lower",
            f"a lower ratio clip <= ratio_upper = {arguments['ratio_upper']!r}",
            repr(arguments["ratio_lower"]),
        )


@op(
    inputs={
        "logit": FloatArray("B"),
        "time_bin": IntArray("B", low=0, optional=True),
        "divergence": OneOf(*DIVERGENCES),
        "logit_clip": RealScalar(0, low_open=True),
        "ratio_lower": RealScalar(0, low_open=True),
        "ratio_upper": RealScalar(0, low_open=True),
        "ratio_normalization": Flag(),
        "normalize": Flag(),
    },
    outputs=("h",),
    check=_check_weight,
)
def f_divergence_weight(
    logit,
    time_bin=None,
    *,
    divergence="js",
    logit_clip=10.0,
    ratio_lower=0.1,
    ratio_upper=20.0,
    ratio_normalization=True,
    normalize=True,
):
    r"""Per-sample weights ``h(r) = r² f''(r)`` that turn the VSD/DMD gradient into an f-divergence gradient.

    With the density ratio ``r = p_teacher/q_student`` at a noisy generator sample, the
    generator gradient of ``D_f(p‖q)`` is the reverse-KL (DMD) gradient reweighted per sample
    by ``h(r) = r² f''(r)``. The ratio is read off a discriminator: its logit estimates
    ``log r``. Weights are constants for the generator update (no gradient).

    Forward (the official preprocessing, the defaults)::

        r = exp(clip(ℓ, −logit_clip, logit_clip))          (clip first: exp cannot overflow)
        r = clip(r, ratio_lower, ratio_upper)
        if ratio_normalization (official default, with ratio_ema_rate = 0):
            m_b = (Σ_{i in bin b} r_i) / (count_b + 1e-6),   r_i ← r_i / (m_{bin(i)} + 1e-6)
        h = h_f(r)                                            (table below)
        if normalize:  h ← h / (mean_i h_i + 1e-6)

        divergence  h_f(r)          f(r) (up to a constant factor of h)
        "rkl"       1               −log r         (reverse KL: DMD)
        "kl"        r               r log r        (forward KL)
        "js"        1 − 1/(1 + r)   Jensen–Shannon (r²f'' = r/(1 + r))
        "sf"        1/(1 + r)       a softened weight (f not named in the code)
        "neyman"    1/max(r, 1e-8)  (1 − r)²/r     (Neyman χ², r²f'' = 2/r)
        "sh"        √r              (√r − 1)²      (squared Hellinger, r²f'' = √r/2)
        "jf"        1 + r           (r − 1) log r  (Jeffreys)

    The batch normalization couples the samples of a batch (and of all devices in the
    official code, which all-reduces the sums): compare only with fixed batches. With the
    official default EMA rate 0.0, each bin's statistic is the current batch's, so no state
    is carried; an EMA rate > 0 (a running per-bin state) is not implemented here.

    Args:
        logit: the discriminator's mean logit per sample (B,), float32 or float64 (the
            official code averages the logit map over its spatial axis first).
        time_bin: the time-bin index of each sample (B,), integers ≥ 0 (official: 10 uniform
            bins of [min_t, max_t], ``floor((t − min_t)/width)`` clipped to [0, 9]); read only
            when ``ratio_normalization`` is True, and may be None when it is False.
        divergence: one of "rkl", "kl", "js" (default, the paper's best), "sf", "neyman", "sh", "jf".
        logit_clip: clip of the logit before exp (default 10).
        ratio_lower, ratio_upper: clip of r (defaults 0.1 and 20, the official config).
        ratio_normalization: divide r by its time bin's batch mean (default True, the official
            config; False skips it, as the official flag does).
        normalize: divide h by its batch mean + 1e-6 (default True, as the official code).

    Returns:
        h: weights (B,), in the input dtype (the official code computes them in float32).

    Reference: Xu, Nie, Vahdat, *One-step Diffusion Models with f-Divergence Distribution
    Matching*, arXiv:2502.15681; official code NVlabs/FastGen, ``FdistillModel._get_f_div_weighting_h``.

    >>> import numpy as np, refimpl
    >>> logit = np.log(np.array([1.0, 3.0]))                      # r = 1 and 3
    >>> bins, raw = np.array([0, 1]), {"ratio_normalization": False, "normalize": False}
    >>> refimpl.losses.f_divergence_weight(logit, bins, divergence="js", **raw)
    array([0.5 , 0.75])
    """
    dtype = logit.dtype.type
    r = np.exp(np.clip(logit, dtype(-logit_clip), dtype(logit_clip)))
    r = np.clip(r, dtype(ratio_lower), dtype(ratio_upper))
    if ratio_normalization:
        # the ids are compacted first: memory follows the batch, not the largest id
        _, slot = np.unique(time_bin, return_inverse=True)
        count = np.bincount(slot).astype(logit.dtype)
        total = np.zeros(count.shape[0], dtype=logit.dtype)
        np.add.at(total, slot, r)
        bin_mean = total / (count + dtype(NORMALIZATION_EPS))
        r = r / (bin_mean[slot] + dtype(NORMALIZATION_EPS))
    h = weighting_function(r, divergence)
    if normalize:
        h = h / (h.mean() + dtype(NORMALIZATION_EPS))
    return h.astype(logit.dtype, copy=False), None


def _check_vsd(arguments) -> None:
    x, h = arguments["x"], arguments["h"]
    if x.ndim < 1:
        raise ArgumentError("x", "a batch of samples (B, ...), at least 1-D", "a 0-d array")
    if tuple(h.shape) != (x.shape[0],):
        raise ArgumentError(
            "h", f"one weight per sample, shape (B,) = ({x.shape[0]},)", f"shape {tuple(h.shape)}"
        )


@op(
    inputs={
        "x": FloatArray("..."),
        "x0_fake": FloatArray("..."),
        "x0_teacher": FloatArray("..."),
        "h": FloatArray("B"),
    },
    outputs=("loss",),
    differentiable=("x",),
    check=_check_vsd,
)
def vsd_loss(x, x0_fake, x0_teacher, h):
    r"""The f-weighted variational score distillation (VSD/DMD) loss in x0-space.

    DMD moves a one-step generator's samples along the difference of two scores, the
    student's ("fake") minus the teacher's; with x0-predictions
    ``s(x_t) = (α_t x̂0 − x_t)/σ_t²``, ``s_q − s_p = α_t (x̂0_fake − x̂0_teacher)/σ_t²``. The
    loss is a surrogate whose gradient in x is that direction, normalized per sample by the
    mean distance to the teacher's prediction and weighted by ``h`` (``f_divergence_weight``).

    Forward (B samples, every other axis a feature axis; D = numel/B)::

        w_i        = h_i / (mean_d |x_i − x0_teacher_i| + 1e−6)       (a constant: no gradient)
        vsd_grad_i = (x0_fake_i − x0_teacher_i) · w_i
        L          = ½ · mean((x − sg[x − vsd_grad])²)               (mean over batch and dims)

    Backward. ``sg[·]`` is a constant target ``c = x − vsd_grad`` evaluated at the current x, so
    ``∂/∂x ½·mean((x − c)²) = (x − c)/numel(x)`` and at the current x::

        x̄ = ḡ · vsd_grad / numel(x)      (computed as ḡ·(x − c)/numel, like the official code)

    Nothing flows into w, h or the predictions. This is a **custom VJP**: the forward value
    ``½·mean(vsd_grad²)`` does depend on x through ``w``, but the gradient deliberately
    ignores that (the stop-gradient of the official code), so it is compared with this
    formula, never with finite differences of the forward.

    Args:
        x: generator samples (B, ...), float32 or float64 (the only differentiable input).
        x0_fake: the fake-score network's x0-prediction at the noised x, same shape.
        x0_teacher: the teacher's x0-prediction, same shape.
        h: per-sample weights (B,) (``f_divergence_weight``; all ones reproduces DMD2).

    Returns:
        loss: a scalar in the input dtype (the official code forms w in float32).

    Reference: arXiv:2502.15681; NVlabs/FastGen ``variational_score_distillation_loss``
    (``additional_scale=h``).

    >>> import numpy as np, refimpl
    >>> x, fake, teacher = np.array([[1.0, 1.0]]), np.array([[0.0, 2.0]]), np.array([[0.0, 0.0]])
    >>> round(float(refimpl.losses.vsd_loss(x, fake, teacher, np.array([1.0]))), 9)   # w = 1/(1 + 1e-6)
    0.999998
    """
    dtype = x.dtype.type
    batch = x.shape[0]
    distance = np.abs(x - x0_teacher).reshape(batch, -1).mean(axis=1)
    w = h / (distance + dtype(NORMALIZATION_EPS))
    w = w.reshape((batch,) + (1,) * (x.ndim - 1))
    vsd_grad = (x0_fake - x0_teacher) * w
    pseudo_target = x - vsd_grad
    difference = x - pseudo_target
    loss = dtype(0.5) * (difference * difference).mean()
    return np.asarray(loss, dtype=x.dtype), (difference,)


@vsd_loss.defvjp
def vsd_loss_backward(residuals, g_loss):
    (difference,) = residuals
    return (difference * (g_loss / difference.size),)


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    f_divergence_weight,
    name="fastgen-rkl-weighting-typeerror",
    source="NVlabs/FastGen, fastgen/methods/distribution_matching/f_distill.py, "
    "all_f_div_weighting_function['rkl'] and FdistillModel._get_f_div_weighting_h",
    official="returns a 0-d tensor for 'rkl', whose `len(h)` in the batch-mean normalization raises "
    "TypeError (len() of a 0-d tensor)",
    paper="h ≡ 1 (reverse KL: plain DMD), normalized like the others: 1/(1 + 1e−6) per sample",
    example=Example(
        args=(np.array([0.3, -1.0, 2.0]), np.array([0, 1, 0])),
        kwargs={"divergence": "rkl"},
        official={"raises": "TypeError"},
        reference={"h": [0.999999, 0.999999, 0.999999]},
    ),
)

"""The KL divergence between diagonal Gaussians, the VAE/CVAE regularizer (Learning Structured
Output Representations from Attributes using Deep Conditional Generative Models)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Flag, FloatArray, OneOf, Paper, RealScalar, array_namespace, op

__all__ = ["PAPER", "PARAMETERIZATIONS", "diag_gaussian_kl"]

PAPER = Paper(
    "Learning Structured Output Representations from Attributes using Deep Conditional Generative Models",
    arxiv="2305.00980",
    year=2023,
)

#: How a scale array is read: the standard deviation σ, log σ, or the log-variance log σ².
PARAMETERIZATIONS = ("std", "log_std", "log_var")


def _check(arguments) -> None:
    if arguments.get("parameterization", "log_var") != "std":
        return
    for name in ("scale_q", "scale_p"):
        scale = arguments[name]
        xp = array_namespace(scale)
        bad = ~(scale > 0)
        if bool(xp.any(bad)):
            index = tuple(int(i) for i in np.unravel_index(int(xp.argmax(bad.ravel())), scale.shape))
            raise ArgumentError(
                name,
                "standard deviations σ > 0 with parameterization='std' (pass log σ with 'log_std' "
                "or log σ² with 'log_var' for an unconstrained scale)",
                f"{float(scale[index])!r} at index {index}",
            )


def _log_variance_ratio_and_inverse_std(scale_q, scale_p, parameterization):
    """``v = log(σ_q²/σ_p²)`` and ``1/σ_p``, formed from the given parameterization without
    exponentiating a scale alone (no exp(ℓ) that overflows while the ratio is representable)."""
    dtype = scale_q.dtype.type
    if parameterization == "log_var":
        return scale_q - scale_p, np.exp(-dtype(0.5) * scale_p)
    if parameterization == "log_std":
        return dtype(2) * (scale_q - scale_p), np.exp(-scale_p)
    return dtype(2) * np.log(scale_q / scale_p), dtype(1) / scale_p  # std: the log of the ratio


@op(
    inputs={
        "mu_q": FloatArray("...", "d"),
        "scale_q": FloatArray("...", "d"),
        "mu_p": FloatArray("...", "d"),
        "scale_p": FloatArray("...", "d"),
        "parameterization": OneOf(*PARAMETERIZATIONS),
        "weight": RealScalar(0),
        "normalize_by_dim": Flag(),
    },
    outputs=("kl",),
    differentiable=("mu_q", "scale_q", "mu_p", "scale_p"),
    check=_check,
)
def diag_gaussian_kl(
    mu_q, scale_q, mu_p, scale_p, *, parameterization="log_var", weight=1.0, normalize_by_dim=False
):
    r"""KL(q‖p) between two diagonal Gaussians, summed over the last axis (nats).

    The closed-form KL term of a (conditional) VAE's lower bound: q = N(μ_q, diag σ_q²) is the
    recognition network's posterior, p = N(μ_p, diag σ_p²) the (conditional) prior — N(0, I) in a
    plain VAE such as Mult-VAE, a prior network p(z|x) in the CVAE, the previous step's prior
    in PV-RNN. The same op serves all of them: the scale parameterization, a weight (β of the
    β-weighted bound, PV-RNN's meta-prior w) and PV-RNN's division by the latent size d are
    options.

    Forward, per leading index (d dimensions on the last axis; Δ = μ_q − μ_p)::

        KL(q‖p) = Σ_k [log σ_p − log σ_q + (σ_q² + Δ_k²)/(2σ_p²) − ½]

    evaluated as ``c·Σ_k ½(expm1(v_k) − v_k + t_k²)`` with ``c = weight`` (``/d`` when
    ``normalize_by_dim``) and::

        v = log(σ_q²/σ_p²):   ℓ_q − ℓ_p (log_var),  2(s_q − s_p) (log_std),  2 log(σ_q/σ_p) (std)
        t = Δ/σ_p:            Δ·exp(−ℓ_p/2),         Δ·exp(−s_p),            Δ/σ_p

    (ℓ = log σ², s = log σ), since ``log σ_p − log σ_q = −v/2`` and ``σ_q²/σ_p² − 1 = expm1(v)``.
    Why this way: a log-scale is never exponentiated alone, only the difference ``ℓ_q − ℓ_p``
    (so log-variances ±100 in float32 are fine, where ``exp(ℓ_q)/exp(ℓ_p)`` is inf/inf or
    0/0); ``expm1`` keeps the digits of ``σ_q²/σ_p² − 1`` near q = p, where the KL is ≈ v²/4 +
    t²/2 (the remaining ``expm1(v) − v`` leaves an absolute error of a few ulp of |v|); at
    q = p it is exactly 0. No log-scale is clamped (clamping log-scales before exp, as many
    training scripts do, is the caller's model choice; no source states a bound): where
    σ_q²/σ_p², Δ²/σ_p² or 1/σ_p itself exceeds the dtype (e.g. ℓ_p < −177 in float32), the op
    layer refuses the inputs instead of returning inf or NaN.

    Backward. With ``e = expm1(v) = σ_q²/σ_p² − 1`` and ``w = c·ḡ`` (ḡ the cotangent of the
    leading index), each term ``½(e − v + t²)`` has ``∂/∂v = ½e`` and ``∂/∂t = t``. Then:

    * means: ``∂t/∂μ_q = 1/σ_p``, so ``μ̄_q = w·t/σ_p = w·Δ/σ_p²`` and ``μ̄_p = −μ̄_q``;
    * ``∂v/∂ℓ_q = 1``, ``∂v/∂ℓ_p = −1``, ``∂t/∂ℓ_p = −t/2`` (log_var)::

          ℓ̄_q = w·½e = w·½(σ_q²/σ_p² − 1),   ℓ̄_p = −w·½(e + t²) = w·½(1 − (σ_q² + Δ²)/σ_p²)

    * ``∂v/∂s_q = 2``, ``∂v/∂s_p = −2``, ``∂t/∂s_p = −t`` (log_std)::

          s̄_q = w·e,   s̄_p = −w·(e + t²)

    * ``∂v/∂σ_q = 2/σ_q``, ``∂v/∂σ_p = −2/σ_p``, ``∂t/∂σ_p = −t/σ_p`` (std)::

          σ̄_q = w·e/σ_q = w·(σ_q/σ_p² − 1/σ_q),   σ̄_p = −w·(e + t²)/σ_p = w·(1/σ_p − (σ_q² + Δ²)/σ_p³)

    the textbook formulas in each parameterization. At q = p every gradient is 0 (e = t = 0).

    Args:
        mu_q: posterior means μ_q (…, d), float32 or float64.
        scale_q: posterior scales (…, d) in ``parameterization``.
        mu_p: prior means μ_p (…, d) (zeros for N(0, I)); nothing is broadcast.
        scale_p: prior scales (…, d) in ``parameterization`` (zeros for N(0, I) with
            ``log_var``/``log_std``, ones with ``std``).
        parameterization: "log_var" (default: log σ², the VAE convention, Mult-VAE's encoder
            output), "log_std" (log σ) or "std" (σ > 0, checked).
        weight: factor c ≥ 0 on the KL (default 1: the KL itself; β of a β-weighted bound,
            PV-RNN's meta-prior w).
        normalize_by_dim: divide by d (default False; PV-RNN's ``(w/d_z)·KL``).

    Returns:
        kl: (…) one KL per leading index, in nats (divide by ln 2 for bits), in the input dtype.

    Reference: Debbagh, *Learning Structured Output Representations from Attributes using Deep
    Conditional Generative Models*, arXiv:2305.00980 (the CVAE bound ``−E_q log p(y|x, z) +
    β·KL(q(z|x, y)‖p(z|x))``, after Sohn et al. 2015); also PV-RNN (meta-prior w, 1/d_z),
    RECOMBINER (the rate term) and Liang et al., arXiv:1802.05814 (Mult-VAE, prior N(0, I):
    official notebook dawenl/vae_cf, ``KL = ½Σ(−logvar + exp(logvar) + mu² − 1)``).

    >>> import numpy as np, refimpl
    >>> mu_q, log_var_q = np.array([[1.0, 0.0]]), np.array([[0.0, np.log(4.0)]])
    >>> zeros = np.zeros((1, 2))  # the prior N(0, I)
    >>> refimpl.losses.diag_gaussian_kl(mu_q, log_var_q, zeros, zeros).round(7)  # ½ + (3/2 − log 2)
    array([1.3068528])
    """
    dtype = mu_q.dtype.type
    num_dims = mu_q.shape[-1]
    coefficient = dtype(weight / num_dims if normalize_by_dim else weight)
    log_variance_ratio, inverse_std_p = _log_variance_ratio_and_inverse_std(
        scale_q, scale_p, parameterization
    )
    scaled_difference = (mu_q - mu_p) * inverse_std_p  # t = Δ/σ_p
    variance_ratio_minus_one = np.expm1(log_variance_ratio)  # e = σ_q²/σ_p² − 1, exact near 0
    terms = dtype(0.5) * (
        variance_ratio_minus_one - log_variance_ratio + scaled_difference * scaled_difference
    )
    kl = coefficient * terms.sum(axis=-1)
    residuals = (
        variance_ratio_minus_one,
        scaled_difference,
        inverse_std_p,
        scale_q if parameterization == "std" else None,
        parameterization,
        coefficient,
    )
    return np.asarray(kl, dtype=mu_q.dtype), residuals


@diag_gaussian_kl.defvjp
def diag_gaussian_kl_backward(residuals, g_kl):
    variance_ratio_minus_one, scaled_difference, inverse_std_p, std_q, parameterization, coefficient = (
        residuals
    )
    dtype = variance_ratio_minus_one.dtype
    w = (coefficient * np.asarray(g_kl).astype(dtype, copy=False))[..., None]
    e, t = variance_ratio_minus_one, scaled_difference
    g_mu_q = w * t * inverse_std_p  # w·Δ/σ_p²
    g_mu_p = -g_mu_q
    if parameterization == "log_var":
        half = dtype.type(0.5)
        g_scale_q = (w * half) * e
        g_scale_p = -(w * half) * (e + t * t)
    elif parameterization == "log_std":
        g_scale_q = w * e
        g_scale_p = -w * (e + t * t)
    else:  # std: the chain through v = 2 log(σ_q/σ_p) and t = Δ/σ_p
        g_scale_q = w * e / std_q
        g_scale_p = -w * (e + t * t) * inverse_std_p
    return tuple(g.astype(dtype, copy=False) for g in (g_mu_q, g_scale_q, g_mu_p, g_scale_p))

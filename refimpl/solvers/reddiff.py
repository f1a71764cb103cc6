"""The RED-diff variational loss for inverse problems with a diffusion prior (A Variational
Perspective on Solving Inverse Problems with Diffusion Models, Mardani et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, OneOf, Paper, RealScalar, op

__all__ = ["DENOISE_TERM_WEIGHTS", "PAPER", "denoiser_weight", "reddiff_loss"]

PAPER = Paper(
    "A Variational Perspective on Solving Inverse Problems with Diffusion Models",
    arxiv="2305.04391",
    year=2024,
    code="NVlabs/RED-diff",
)

#: ``denoise_term_weight`` of the official ``algos/reddiff.py`` (``REDDIFF.sample``): the
#: transformations g of the inverse SNR ``s = sqrt(1 − ᾱ_t)/sqrt(ᾱ_t)``, in its order.
DENOISE_TERM_WEIGHTS = ("linear", "sqrt", "square", "log", "trunc_linear", "power2over3", "const")

# _configs/algo/reddiff.yaml: obs_weight 1.0, grad_term_weight 0.25, denoise_term_weight
# "linear", sigma_x0 0.0
OBS_WEIGHT = 1.0
GRAD_TERM_WEIGHT = 0.25
DENOISE_TERM_WEIGHT = "linear"
SIGMA_X0 = 0.0


def denoiser_weight(alpha_bar: float, weighting: str) -> float:
    """``g(s)`` with ``s = sqrt(1 − ᾱ_t)/sqrt(ᾱ_t)``, one branch per official option
    (``algos/reddiff.py``, ``REDDIFF.sample``): linear s, sqrt √s, square s², log log(s + 1),
    trunc_linear min(s, 1), power2over3 s^{2/3}, const s⁰ = 1."""
    s = np.sqrt(1.0 - alpha_bar) / np.sqrt(alpha_bar)
    transforms = {
        "linear": lambda v: v,
        "sqrt": np.sqrt,
        "square": np.square,
        "log": lambda v: np.log(v + 1.0),
        "trunc_linear": lambda v: np.minimum(v, 1.0),
        "power2over3": lambda v: np.power(v, 2.0 / 3.0),
        "const": lambda v: np.power(v, 0.0),
    }
    return float(transforms[weighting](s))


def _check(arguments) -> None:
    if arguments.get("sigma_x0", SIGMA_X0) != 0 and arguments.get("eps_x0") is None:
        raise ArgumentError("eps_x0", "the draws ε_x0 when sigma_x0 > 0 (x0 = μ + σ_x0 ε_x0)", "None")


@op(
    inputs={
        "mu": FloatArray("B", "D"),
        "y": FloatArray("B", "M"),
        "H": FloatArray("M", "D"),
        "eps": FloatArray("B", "D"),
        "e_hat": FloatArray("B", "D"),
        "eps_x0": FloatArray("B", "D", optional=True),
        "alpha_bar": RealScalar(0, 1, low_open=True),
        "obs_weight": RealScalar(0),
        "grad_term_weight": RealScalar(0),
        "weighting": OneOf(*DENOISE_TERM_WEIGHTS),
        "sigma_x0": RealScalar(0),
    },
    outputs=("loss",),
    differentiable=("mu",),
    check=_check,
)
def reddiff_loss(
    mu,
    y,
    H,  # noqa: N803 - the paper's measurement operator
    eps,
    e_hat,
    eps_x0=None,
    *,
    alpha_bar,
    obs_weight=OBS_WEIGHT,
    grad_term_weight=GRAD_TERM_WEIGHT,
    weighting=DENOISE_TERM_WEIGHT,
    sigma_x0=SIGMA_X0,
):
    r"""RED-diff: the per-step variational loss of the posterior mean μ (measurement fit plus a
    denoiser-residual regularizer), with the denoiser's output as a constant.

    RED-diff solves ``y = H x + noise`` by fitting a (near-point-mass) variational posterior
    q = N(μ, σ_x0² I) with a diffusion prior: the KL to the prior becomes, by the score-matching
    identity, a sum over diffusion times of "regularization by denoising" terms
    ``⟨sg[ε_θ(x_t, t) − ε], μ⟩``. One step of the sampler draws t (descending), noises μ to
    x_t, evaluates the denoiser once, and takes an Adam step on this loss (official: Adam,
    lr 0.1, betas (0.9, 0.99)); the denoiser is never differentiated.

    Forward (official ``algos/reddiff.py``, ``REDDIFF.sample``; every mean is over all the
    elements of its array, the batch included)::

        x0   = μ + σ_x0 ε_x0                          (x_t = sqrt(ᾱ) x0 + sqrt(1 − ᾱ) ε feeds ê)
        r    = y − x0 Hᵀ                              (row b: y_b − H x0_b)
        L_obs   = Σ r²/(2 n_y)                       n_y = B·M
        L_noise = Σ (ê − ε) ⊙ x0 / n_μ               n_μ = B·D, ê − ε a constant (detached)
        s    = sqrt(1 − ᾱ)/sqrt(ᾱ)                    the inverse SNR
        w    = λ·g(s)                                 λ = grad_term_weight, g = ``weighting``
        loss = w·L_noise + v·L_obs                    v = obs_weight

    λ multiplies the TRANSFORMED inverse SNR (``w_t = self.grad_term_weight*snr_inv`` after the
    branch on ``denoise_term_weight``): g ∈ {linear s, sqrt √s, square s², log log(1 + s),
    trunc_linear min(s, 1), power2over3 s^{2/3}, const 1}. x_t is not an output: the caller
    forms it to evaluate the denoiser ê = ε_θ(x_t, t) (it enters the loss only through ê).

    Backward, with respect to μ only (∂x0/∂μ = I; ê, ε, y, H are constants). Each term:

    * ``∂L_obs/∂x0 = −rH/n_y`` (row b: ``−Hᵀ r_b/n_y``), since ``r_bm = y_bm − Σ_d H_md x0_bd``
      gives ``∂(r_bm²/2)/∂x0_bd = −r_bm H_md``;
    * ``∂L_noise/∂x0 = (ê − ε)/n_μ`` (the stop-gradient makes it linear in x0).

    Hence, with ḡ the cotangent of the scalar loss::

        μ̄ = ḡ (w (ê − ε)/n_μ − v r H/n_y)

    (the means matter: n_y and n_μ, not per-row means or sums).

    Pitfalls: s → ∞ as ᾱ → 0 (the first, large-t steps), so w blows up for "linear", "square",
    "power2over3"; ᾱ = 0 is refused, ᾱ = 1 gives s = 0 (w = 0 except for "const").

    Args:
        mu: (B, D) the variational mean μ (the flattened images being optimized).
        y: (B, M) measurements.
        H: (M, D) the linear measurement operator (applied to each row: ``H x0_b``).
        eps: (B, D) the noise draw ε of x_t.
        e_hat: (B, D) the denoiser output ê = ε_θ(x_t, t) (a constant input).
        eps_x0: (B, D) the draw ε_x0 of x0 = μ + σ_x0 ε_x0; needed only when sigma_x0 > 0.
        alpha_bar: ᾱ_t ∈ (0, 1].
        obs_weight: v (official ``obs_weight``: 1.0).
        grad_term_weight: λ (official ``grad_term_weight``: 0.25).
        weighting: g, the official ``denoise_term_weight`` (default "linear").
        sigma_x0: σ_x0 (official ``sigma_x0``: 0.0).

    Returns:
        loss: 0-d, in the inputs' dtype.

    Reference: Mardani, Song, Kautz, Vahdat, *A Variational Perspective on Solving Inverse
    Problems with Diffusion Models*, arXiv:2305.04391 (ICLR 2024), Eq. (8)–(10); official code
    NVlabs/RED-diff ``algos/reddiff.py`` (``REDDIFF.sample``: the means, λ·g(s), the weighting
    options) and ``_configs/algo/reddiff.yaml`` (the defaults).

    >>> import numpy as np, refimpl
    >>> mu, y, H = np.array([[1.0, 2.0]]), np.array([[0.0]]), np.array([[1.0, 1.0]])
    >>> eps, e_hat = np.zeros((1, 2)), np.array([[1.0, 0.0]])
    >>> # r = −3: L_obs = 9/2; L_noise = 1/2; ᾱ = 1/2: s = 1, w = 0.25
    >>> float(refimpl.solvers.reddiff_loss(mu, y, H, eps, e_hat, alpha_bar=0.5))
    4.625
    """
    dtype = mu.dtype.type
    x0 = mu if sigma_x0 == 0 else mu + dtype(sigma_x0) * eps_x0
    residual = y - x0 @ H.T  # r = y − H x0, per row
    direction = e_hat - eps  # sg[ê − ε]
    n_y, n_mu = residual.size, mu.size
    loss_obs = np.sum(residual * residual, dtype=np.float64) / (2.0 * n_y)
    loss_noise = np.sum(direction * x0, dtype=np.float64) / n_mu
    w = grad_term_weight * denoiser_weight(alpha_bar, weighting)
    loss = np.asarray(w * loss_noise + obs_weight * loss_obs, dtype=mu.dtype)
    return loss, (residual, direction, H, w, obs_weight, n_y, n_mu)


@reddiff_loss.defvjp
def reddiff_loss_backward(residuals, g_loss):
    residual, direction, H, w, obs_weight, n_y, n_mu = residuals
    g = float(g_loss)
    dtype = direction.dtype.type
    g_mu = dtype(g * w / n_mu) * direction - dtype(g * obs_weight / n_y) * (residual @ H)
    return (g_mu.astype(direction.dtype),)

"""Mult-VAE / Mult-DAE: multinomial likelihood, β-annealed ELBO and its β schedule (Variational
Autoencoders for Collaborative Filtering)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    FloatArray,
    IntArray,
    IntScalar,
    Paper,
    RealScalar,
    array_namespace,
    log_softmax,
    op,
    softmax,
)

__all__ = [
    "ANNEAL_CAP",
    "PAPER",
    "TOTAL_ANNEAL_STEPS",
    "mult_vae_beta_schedule",
    "mult_vae_loss",
    "multinomial_log_likelihood",
]

PAPER = Paper(
    "Variational Autoencoders for Collaborative Filtering",
    arxiv="1802.05814",
    year=2018,
    code="dawenl/vae_cf",
)

#: The official notebook's β cap and annealing length (in optimizer updates).
ANNEAL_CAP = 0.2
TOTAL_ANNEAL_STEPS = 200000


def _check_counts(arguments) -> None:
    x = arguments["x"]
    xp = array_namespace(x)
    if not bool(xp.all(x >= 0)):
        bad = x[~(x >= 0)].ravel()[0]
        raise ArgumentError("x", "click counts >= 0", f"a value {float(bad)!r}")


@op(
    inputs={"logits": FloatArray("...", "I"), "x": FloatArray("...", "I")},
    outputs=("log_likelihood",),
    differentiable=("logits",),
    check=_check_counts,
)
def multinomial_log_likelihood(logits, x):
    r"""Multinomial log-likelihood of a user's click counts under softmax item probabilities.

    Mult-VAE models a user's clicks ``x_u`` (counts over I items) as a draw from a multinomial
    with probabilities ``π(z_u) = softmax(f_u)``, f the decoder's logits. Up to the
    multinomial coefficient (constant in the model) the log-likelihood is a click-weighted
    sum of log-probabilities; it pushes probability mass onto the clicked items, which
    suits top-N ranking.

    Forward (per row u, I items on the last axis; log-softmax with the row max subtracted)::

        log p(x_u | z_u) = Σ_i x_ui · log_softmax(f_u)_i

    Backward. ``∂log_softmax(f)_i/∂f_j = δ_ij − p_j`` with ``p = softmax(f)``, so
    ``∂/∂f_j Σ_i x_i log_softmax(f)_i = x_j − p_j Σ_i x_i``. With cotangent ``ḡ_u`` per row::

        f̄_u = ḡ_u · (x_u − softmax(f_u)·Σ_i x_ui)

    (the ``log_softmax`` VJP with ``ā = ḡ_u x_u``). The gradient sums to 0 over the items.
    ``x`` gets no gradient (data).

    Args:
        logits: decoder logits f (…, I), float32 or float64.
        x: click counts (…, I), same dtype, finite and ≥ 0 (binary in the paper's data).

    Returns:
        log_likelihood: (…) per user, ≤ 0 for binary clicks, in the input dtype.

    Reference: Liang et al., *Variational Autoencoders for Collaborative Filtering*,
    arXiv:1802.05814; official notebook dawenl/vae_cf (``neg_ll``).

    >>> import numpy as np, refimpl
    >>> f, x = np.zeros((1, 4)), np.array([[1.0, 0.0, 1.0, 0.0]])
    >>> refimpl.losses.multinomial_log_likelihood(f, x).round(7)  # 2·log(1/4)
    array([-2.7725887])
    """
    log_p = log_softmax(logits)
    log_likelihood = (x * log_p).sum(axis=-1)
    return log_likelihood, (softmax(logits), x)  # not exp(log_p): z − lse loses digits at |z| ~ 1e4


@multinomial_log_likelihood.defvjp
def multinomial_log_likelihood_backward(residuals, g_log_likelihood):
    p, x = residuals
    g = g_log_likelihood[..., None]
    return (g * (x - p * x.sum(axis=-1, keepdims=True)),)


@op(
    inputs={
        "logits": FloatArray("B", "I"),
        "x": FloatArray("B", "I"),
        "mu": FloatArray("B", "d"),
        "logvar": FloatArray("B", "d"),
        "beta": RealScalar(0),
    },
    outputs=("loss",),
    differentiable=("logits", "mu", "logvar"),
    check=_check_counts,
)
def mult_vae_loss(logits, x, mu, logvar, *, beta):
    r"""The β-weighted negative ELBO of Mult-VAE (Mult-DAE at β = 0).

    The encoder maps a user's clicks to a Gaussian ``q(z|x) = N(mu, diag(exp(logvar)))``, a
    sample ``z = mu + exp(logvar/2)⊙ε`` is decoded to item logits f, and the loss is the
    multinomial negative log-likelihood plus β times the KL to the prior N(0, I). β < 1
    (annealed from 0 to a cap, see ``mult_vae_beta_schedule``) trades the prior's pull for
    better recommendations: a partially regularized ELBO.

    Forward, for a batch of B users::

        log p(x_u|z_u) = Σ_i x_ui log_softmax(f_u)_i                 (multinomial_log_likelihood)
        KL_u           = Σ_j ½(−logvar_uj + exp(logvar_uj) + mu_uj² − 1)
        L              = −mean_u log p(x_u|z_u) + β·mean_u KL_u

    This is the official notebook's ``neg_ELBO`` without its ``2·reg`` term (weight decay
    written with TensorFlow's ½ convention; weight decay is not part of this op). Mult-DAE
    uses the same likelihood with no KL: ``beta=0`` (its corruption is the input dropout).

    Backward. The likelihood term is the ``multinomial_log_likelihood`` VJP with cotangent
    ``−ḡ/B`` per row; the KL term is a sum of elementwise functions::

        f̄_u       = ḡ · (softmax(f_u)·Σ_i x_ui − x_u)/B
        mu̅_uj     = ḡ · β·mu_uj/B                          (∂½mu²/∂mu = mu)
        logvar̄_uj = ḡ · β·½(exp(logvar_uj) − 1)/B          (∂½(−ℓ + e^ℓ)/∂ℓ = ½(e^ℓ − 1))

    These are the gradients through the op's own inputs. The decoder's logits also depend
    on ``mu`` and ``logvar`` through the reparameterization ``z = mu + σ⊙ε``, ``σ = exp(logvar/2)``:
    a caller that back-propagates the likelihood to ``z̄`` (through its decoder) adds
    ``mu̅ += z̄`` and ``logvar̄ += z̄⊙ε⊙σ/2``; ε is the caller's explicit noise array.

    Numerics: the log-softmax subtracts the row max (I ≈ 20k items in the paper's data);
    ``exp(logvar)`` is not clamped (a log-variance beyond ~88 in float32 or ~709 in float64
    makes the KL itself overflow to inf, which is its true value's rounding).

    Args:
        logits: decoder logits f (B, I), float32 or float64.
        x: click counts (B, I), same dtype, finite and ≥ 0; a user with no clicks
            contributes only the KL.
        mu: posterior means (B, d).
        logvar: posterior log-variances (B, d).
        beta: the KL weight β ≥ 0 (required: it is annealed; the official cap is 0.2).

    Returns:
        loss: a scalar in the input dtype.

    Reference: arXiv:1802.05814; official notebook dawenl/vae_cf (``neg_ELBO = neg_ll +
    anneal_ph·KL + 2·reg_var``).

    >>> import numpy as np, refimpl
    >>> f, x = np.zeros((1, 4)), np.array([[1.0, 0.0, 1.0, 0.0]])
    >>> mu, logvar = np.array([[1.0, 0.0]]), np.zeros((1, 2))
    >>> round(float(refimpl.losses.mult_vae_loss(f, x, mu, logvar, beta=0.2)), 7)  # 2 log 4 + 0.2·½
    2.8725887
    """
    dtype = logits.dtype.type
    batch = logits.shape[0]
    log_p = log_softmax(logits)
    log_likelihood = (x * log_p).sum(axis=-1)
    half = dtype(0.5)
    variance = np.exp(logvar)
    kl = (half * (-logvar + variance + mu * mu - 1)).sum(axis=-1)
    loss = -log_likelihood.mean() + dtype(beta) * kl.mean()
    residuals = (softmax(logits), x, mu, variance, dtype(beta), batch)
    return np.asarray(loss, dtype=logits.dtype), residuals


@mult_vae_loss.defvjp
def mult_vae_loss_backward(residuals, g_loss):
    p, x, mu, variance, beta, batch = residuals
    dtype = p.dtype.type
    w = g_loss / dtype(batch)
    g_logits = w * (p * x.sum(axis=-1, keepdims=True) - x)
    g_mu = (w * beta) * mu
    g_logvar = (w * beta * dtype(0.5)) * (variance - 1)
    return g_logits, g_mu, g_logvar


@op(
    inputs={
        "update_count": IntArray("N", low=0),
        "anneal_cap": RealScalar(0),
        "total_anneal_steps": IntScalar(0),
    },
    outputs=("beta",),
)
def mult_vae_beta_schedule(update_count, *, anneal_cap=ANNEAL_CAP, total_anneal_steps=TOTAL_ANNEAL_STEPS):
    r"""The KL weight β of Mult-VAE at each optimizer update: a linear ramp from 0, capped.

    The paper anneals β linearly from 0 and stops at the value that gave the best validation
    ranking (0.2 in the official notebook), so the KL term is switched on gradually::

        β(t) = min(anneal_cap, t / total_anneal_steps)     total_anneal_steps > 0
               anneal_cap                                  total_anneal_steps = 0

    with t = ``update_count``, the number of optimizer updates done before this one (the
    notebook starts at 0 and adds 1 after each minibatch, so the first update has β = 0).

    Not differentiable (a schedule).

    Args:
        update_count: update counts t (N,), integers ≥ 0.
        anneal_cap: the largest β, ≥ 0 (default 0.2).
        total_anneal_steps: updates to reach β = 1 without the cap, ≥ 0 (default 200000;
            0 means "no annealing": β = anneal_cap from the start).

    Returns:
        beta: β(t) (N,), float64.

    Reference: arXiv:1802.05814; official notebook dawenl/vae_cf (``anneal = min(anneal_cap,
    1.*update_count/total_anneal_steps)``).

    >>> import numpy as np, refimpl
    >>> refimpl.losses.mult_vae_beta_schedule(np.array([0, 20000, 40000, 100000]))
    array([0. , 0.1, 0.2, 0.2])
    """
    if total_anneal_steps == 0:
        beta = np.full(update_count.shape, float(anneal_cap))
    else:
        beta = np.minimum(float(anneal_cap), 1.0 * update_count / total_anneal_steps)
    return beta.astype(np.float64), None

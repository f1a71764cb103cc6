"""WEAT, weighted energy adversarial training: the energy instance weights and the weighted
TRADES loss (Shedding More Light on Robust Classifiers under the lens of Energy-based Models)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    Example,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    RealScalar,
    known_deviation,
    log_softmax,
    logsumexp,
    op,
    softplus,
)

__all__ = ["BETA", "PAPER", "VARIANTS", "energy_instance_weight", "weat_loss"]

PAPER = Paper(
    "Shedding More Light on Robust Classifiers under the lens of Energy-based Models",
    arxiv="2407.06315",
    year=2024,
    code="OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM",
)

VARIANTS = ("weat_adv", "weat_nat")  # which logits take the cross-entropy: adversarial or natural
# β, the weight of the KL term, per variant: the defaults of the official WEAT_adv (beta=7.0) and
# WEAT_nat (beta=6.0) in `Adversarial ML/WEAT_loss.py`
BETA = {"weat_adv": 7.0, "weat_nat": 6.0}


@op(inputs={"z_nat": FloatArray("B", "K")}, outputs=("weights",))
def energy_instance_weight(z_nat):
    r"""WEAT's instance weight: ``1/softplus(|E(x)|)`` of the energy of the natural logits.

    Read as an energy-based model, a classifier with logits ``z(x)`` assigns ``x`` the
    energy ``E(x) = −log Σ_k exp z_k(x)`` (low energy: in-distribution for the model). The
    paper finds that samples of high energy magnitude dominate adversarial training, and
    down-weights them: Weighted Energy Adversarial Training (WEAT) multiplies each sample's
    TRADES loss by a weight that decays like ``1/|E|``, computed under a stop-gradient
    (detached) from the natural, not the adversarial, logits.

    Forward, per row of ``z_nat``::

        E_i = −LSE(z_nat,i) = −(m_i + log Σ_k exp(z_ik − m_i)),   m_i = max_k z_ik
        w_i = 1 / softplus(|E_i|),   softplus(u) = u + log1p(exp(−u))   (u = |E| ≥ 0)

    Both steps are evaluated without overflow: the row max is subtracted inside the
    log-sum-exp, and the softplus only exponentiates ``−|E| ≤ 0``. ``softplus(u) ≥ log 2``
    with equality at ``E = 0``, so ``w ∈ (0, 1/log 2]``: 1/log 2 ≈ 1.4427 at zero energy,
    ``w → 1/|E|`` for large |E|; w depends on E only through |E| (invariant to its sign).
    The official ``log(1 + exp(|E|))`` overflows once ``|E| > 88.7`` in float32 (709.8 in
    float64) and then silently returns w = 0 (a known deviation, ``refimpl deviations``).
    Not differentiable: the weights are detached in WEAT.

    Args:
        z_nat: natural logits (B, K), float32 or float64, finite.

    Returns:
        weights: w (B,), in the dtype of ``z_nat``, in (0, 1/log 2].

    Reference: Mirza, Briglia, Beadini, Masi, *Shedding More Light on Robust Classifiers
    under the lens of Energy-based Models*, ECCV 2024, arXiv:2407.06315 (WEAT); official
    code OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM (``Adversarial ML/WEAT_loss.py``,
    ``energy_x`` and ``compute_weights``).

    >>> import numpy as np, refimpl
    >>> z = np.array([[0.0], [np.log(np.e - 1)], [-np.log(np.e - 1)]])  # E = 0, ∓log(e − 1)
    >>> refimpl.reweighting.energy_instance_weight(z).round(6)  # 1/log 2, 1/log(e) twice
    array([1.442695, 1.      , 1.      ])
    """
    energy = -logsumexp(z_nat, axis=-1)  # max-shifted: no overflow
    weights = 1 / softplus(np.abs(energy))  # softplus(u) = u + log1p(e^{−u}): no overflow
    return weights.astype(z_nat.dtype, copy=False), None


@op(
    inputs={
        "z_nat": FloatArray("B", "K"),
        "z_adv": FloatArray("B", "K"),
        "y": IntArray("B", low=0, high="K"),
        "variant": OneOf(*VARIANTS),
        "beta": RealScalar(0, optional=True),
    },
    outputs=("loss",),
    differentiable=("z_nat", "z_adv"),
    custom_vjp="the energy weights w = 1/softplus(|LSE(z_nat)|) are detached (a stop-gradient, as in the "
    "official code): the cotangent of z_nat leaves out the ∂w/∂z_nat term; with w held fixed both "
    "cotangents are the exact derivatives",
)
def weat_loss(z_nat, z_adv, y, *, variant, beta=None):
    r"""WEAT's loss: the TRADES loss with each sample weighted by ``1/softplus(|E(x)|)``.

    TRADES trains on a cross-entropy plus ``β·KL(p‖q)`` between the model's predictions on
    the natural input (``p``) and on its adversarial perturbation (``q``). WEAT multiplies
    each sample's term by the detached energy weight ``w_i`` of its natural logits
    (:func:`energy_instance_weight`): samples of large energy magnitude, which dominate
    adversarial training, count less. Two variants differ only in which logits take the
    cross-entropy: ``weat_adv`` the adversarial ones, ``weat_nat`` the natural ones.

    Forward, per row ``i`` (K classes, label ``y_i``)::

        log p = log_softmax(z_nat),   log q = log_softmax(z_adv)      (max-shifted)
        w     = 1/softplus(|LSE(z_nat)|)                              (detached)
        KL    = Σ_k p_k (log p_k − log q_k)
        CE    = −log q_y   (weat_adv)   or   −log p_y   (weat_nat)
        L     = (1/B) Σ_i w_i (CE_i + β KL_i)

    Both log-softmaxes subtract the row max before exponentiating (no overflow), and
    ``p = exp(log p)``, so a class with ``p_k = 0`` contributes ``0·finite = 0`` to the KL.
    The official code takes ``log(q + 1e-12)`` for ``log q`` (a known convention,
    ``refimpl deviations``): the same to ~1e-12 while every ``q_k`` is well above 1e-12,
    but it caps ``−log q_k`` at 27.6 where the adversarial prediction is confidently wrong.

    Backward. With ``c_i = L̄ w_i/B``. ``w`` is a constant: the official code detaches the
    energy (``energy_x(logits).detach()``), so the backward is the derivative at fixed ``w``
    and, for ``z_nat``, deliberately not the derivative of the forward (``custom_vjp``; the
    conformance suite checks it against the stated formula, the tests by differences at
    fixed ``w``). Softmax Jacobians: ``∂log q_k/∂z_adv,j = δ_kj − q_j``, likewise for ``p``.

    * Cross-entropy: ``∂(−log q_y)/∂z_adv,j = q_j − δ_jy``, i.e. ``q − e_y`` (and
      ``p − e_y`` w.r.t. ``z_nat`` for weat_nat).
    * KL w.r.t. the adversarial logits, only through ``log q``:
      ``∂KL/∂z_adv,j = −Σ_k p_k (δ_kj − q_j) = q_j − p_j`` (``Σ_k p_k = 1``).
    * KL w.r.t. the natural logits, through ``p`` and ``log p`` (not detached in the official
      code, as in TRADES): with ``d_k = log p_k − log q_k`` and ``∂p_k/∂z_j = p_k(δ_kj − p_j)``,
      ``∂KL/∂z_nat,j = Σ_k p_k(δ_kj − p_j) d_k + Σ_k p_k(δ_kj − p_j)
      = p_j d_j − p_j KL + p_j − p_j = p_j (d_j − KL)``.

    Evaluated as written, ``d_j − KL`` cancels where p is nearly one-hot (both are O(|z|) at the
    dominant class, their difference O(e^−|z|)). Since ``Σ_k p_k = 1``, ``d_j − KL = e_j − Σ_k p_k
    e_k`` for any shift ``e_k = d_k − d_m``; with ``m = argmax_k z_nat,k``, ``e_k = (z_nat,k −
    z_adv,k) − (z_nat,m − z_adv,m)`` (the log-sum-exps cancel) and the dominant term ``e_m = 0``
    drops out of the sum, so the small result keeps its digits. Likewise the label entry of
    ``p − e_y`` is taken as ``−Σ_{k≠y} p_k``. So the code computes::

        z̄_adv = c (β (q − p) + [weat_adv] (q − e_y))
        z̄_nat = c (β p ⊙ (e − Σ_k p_k e_k) + [weat_nat] (p − e_y))

    Both rows of cotangents sum to 0 (the loss is invariant to shifting either row).

    Args:
        z_nat: logits of the natural inputs (B, K), float32 or float64, finite.
        z_adv: logits of the adversarial inputs (B, K), same dtype. The attack that makes
            them (TRADES-PGD: 10 steps of 0.007 within ε = 0.031 from ``x + 0.001·N(0, 1)``)
            runs upstream and is not part of the op.
        y: labels (B,), integers in [0, K).
        variant: "weat_adv" (cross-entropy on the adversarial logits, the official
            ``WEAT_adv``) or "weat_nat" (on the natural logits, ``WEAT_nat``); required, the
            paper reports both.
        beta: β ≥ 0, the weight of the KL term; None (default) takes the variant's official
            default, 7 for weat_adv and 6 for weat_nat (``WEAT_loss.py``, ``WEAT_adv(beta=7.0)``
            and ``WEAT_nat(beta=6.0)``).

    Returns:
        loss: a scalar in the dtype of the logits.

    Reference: Mirza, Briglia, Beadini, Masi, *Shedding More Light on Robust Classifiers
    under the lens of Energy-based Models*, ECCV 2024, arXiv:2407.06315 (WEAT); official
    code OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM (``Adversarial ML/WEAT_loss.py``,
    ``WEAT_adv`` and ``WEAT_nat``); TRADES, Zhang et al., ICML 2019, arXiv:1901.08573.

    >>> import numpy as np, refimpl
    >>> z, y = np.zeros((1, 2)), np.array([0])  # p = q: KL = 0, CE = log 2, E = −log 2
    >>> round(float(refimpl.reweighting.weat_loss(z, z, y, variant="weat_adv")), 7)  # log 2/log 3
    0.6309298
    """
    dtype = z_nat.dtype
    batch = z_nat.shape[0]
    rows = np.arange(batch)
    beta_ = dtype.type(BETA[variant] if beta is None else beta)
    weights, _ = energy_instance_weight.forward(z_nat)  # detached: 1/softplus(|E|)
    log_p = log_softmax(z_nat)  # max-shifted: no overflow
    log_q = log_softmax(z_adv)
    p, q = np.exp(log_p), np.exp(log_q)
    log_ratio = log_p - log_q
    kl = (p * log_ratio).sum(axis=-1)
    cross_entropy = -(log_q if variant == "weat_adv" else log_p)[rows, y]
    per_row = weights * (cross_entropy + beta_ * kl)
    loss = np.asarray(per_row.sum() / dtype.type(batch), dtype=dtype)
    # for the backward: e_k = d_k − d_m, m = argmax p, from the logits (no log-sum-exp, e_m = 0)
    difference = z_nat - z_adv
    e = difference - difference[rows, z_nat.argmax(axis=-1)][:, None]
    return loss, (p, q, e, weights, y, variant, beta_)


@weat_loss.defvjp
def weat_loss_backward(residuals, g_loss):
    p, q, e, weights, y, variant, beta = residuals
    dtype = p.dtype
    batch = p.shape[0]
    c = (np.asarray(g_loss, dtype=dtype) * weights / dtype.type(batch))[:, None]  # L̄ w_i/B
    g_adv = beta * (q - p)  # ∂KL/∂z_adv = q − p
    # ∂KL/∂z_nat = p ⊙ (log p − log q − KL) = p ⊙ (e − Σ_k p_k e_k): no cancellation at argmax p
    g_nat = beta * (p * (e - (p * e).sum(axis=-1, keepdims=True)))
    # ∂CE = probs − e_y, its label entry as −Σ_{k≠y} probs_k (probs_y − 1 would cancel at probs_y ≈ 1)
    probs = q if variant == "weat_adv" else p
    others = np.arange(probs.shape[-1])[None, :] != y[:, None]
    ce_grad = np.where(others, probs, -(probs * others).sum(axis=-1, keepdims=True))
    if variant == "weat_adv":
        g_adv = g_adv + ce_grad
    else:
        g_nat = g_nat + ce_grad
    return (c * g_nat).astype(dtype, copy=False), (c * g_adv).astype(dtype, copy=False)


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    energy_instance_weight,
    name="weat-weight-softplus-overflow",
    source="OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM, Adversarial ML/WEAT_loss.py, compute_weights "
    "(`1/(torch.log(1 + torch.exp(torch.abs(energy))))`)",
    official="evaluates softplus(|E|) as log(1 + exp(|E|)): exp overflows to inf once |E| > 88.7 in float32 "
    "(709.8 in float64), and the weight becomes 1/inf = 0, silently dropping the sample from the loss",
    paper="w = 1/log(1 + exp(|E|)), positive for every finite E (about 1/|E| for large |E|); refimpl "
    "evaluates softplus as |E| + log1p(exp(−|E|))",
    example=Example(
        args=(np.array([[100.0, 0.0]], dtype=np.float32),),
        official={"weights": [0.0]},
        reference={"weights": [0.01]},
        note="E = −LSE([100, 0]) = −100 − log1p(e^−100): exp(100) is inf in float32",
    ),
)


known_deviation(
    weat_loss,
    name="weat-kl-log-q-plus-1e-12",
    source="OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM, Adversarial ML/WEAT_loss.py, WEAT_adv and "
    "WEAT_nat (`kl_sample(torch.log(F.softmax(adv_logits, dim=1) + 1e-12), F.softmax(logits, dim=1))`)",
    official="takes log q as log(softmax(z_adv) + 1e-12), as TRADES does: the same to ~1e-12 while every "
    "q_k is well above 1e-12, but −log q_k is capped at −log(1e-12) = 27.6, so a confidently wrong "
    "adversarial prediction's KL (and its gradient) is clipped",
    paper="KL(p‖q) = Σ p (log p − log q) with log q = log_softmax(z_adv) (the catalog's convention)",
    example=Example(
        args=(np.array([[0.0, 40.0]]), np.array([[40.0, 0.0]]), np.array([1])),
        kwargs={"variant": "weat_adv"},
        official={"loss": 5.8354},
        reference={"loss": 8.0},
        note="w = 1/40, CE = 40, KL = 40 (official: 27.63 = −log(e^−40 + 1e-12)); L = (40 + 7·KL)/40",
    ),
    convention=True,
)

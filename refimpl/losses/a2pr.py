"""A2PR's actor loss, advantage-weighted VAE loss and state-value target (Adaptive
Advantage-Guided Policy Regularization for Offline Reinforcement Learning)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, RealScalar, array_namespace, op

__all__ = ["PAPER", "a2pr_actor_loss", "a2pr_vae_loss", "a2pr_value_target"]

PAPER = Paper(
    "Adaptive Advantage-Guided Policy Regularization for Offline Reinforcement Learning",
    arxiv="2405.19909",
    year=2024,
    code="ltlhuuu/A2PR",
)


def _check_not_done(arguments) -> None:
    not_done = arguments["not_done"]
    xp = array_namespace(not_done)
    bad = (not_done < 0) | (not_done > 1)
    if bool(xp.any(bad)):
        index = int(xp.argmax(bad))
        raise ArgumentError(
            "not_done",
            "continuation masks 1 − done in [0, 1] (1: bootstrap from s', 0: s' is terminal)",
            f"{float(not_done[index])!r} at index {index}",
        )


@op(
    inputs={
        "reward": FloatArray("B"),
        "not_done": FloatArray("B"),
        "target_q1": FloatArray("B"),
        "target_q2": FloatArray("B"),
        "next_q1": FloatArray("B"),
        "next_q2": FloatArray("B"),
        "discount": RealScalar(0, 1),
    },
    outputs=("value_target",),
    check=_check_not_done,
)
def a2pr_value_target(reward, not_done, target_q1, target_q2, next_q1, next_q2, *, discount=0.99):
    r"""A2PR's regression target for the state value V(s): the smaller of two clipped double-Q
    TD targets, one bootstrapped from the target critic and one from the online critic.

    A2PR (TD3+BC with an advantage-guided VAE) learns a state value V(s) beside the twin
    critic; the actor and the VAE compare the advantages ``Q(s, a) − V(s)`` of the dataset
    action and of the VAE's reconstruction against it. V is not fitted to ``E_a Q(s, a)``
    but to a pessimistic one-step target: the TD3 target computed with the slowly moving
    target critic Q̄ and the same target computed with the online critic Q (just updated on
    this batch), whichever is smaller. Taking the minimum of the two bootstraps keeps V from
    chasing the online critic's overestimation.

    Forward, with ``a' = clip(π̄(s') + clip(ε, −c, c), −a_max, a_max)`` the target policy's
    smoothed next action (drawn by the caller; ε ~ N(0, 0.2²), c = 0.5), ``d = not_done``
    and ``γ = discount``::

        y_target = r + d·γ·min(Q̄_1(s', a'), Q̄_2(s', a'))      (TD3's critic target)
        y_online = r + d·γ·min(Q_1(s', a'), Q_2(s', a'))      (online critic, after its update)
        value_target = min(y_target, y_online)

    and V is trained by ``mean((V(s) − value_target)²)`` (``F.mse_loss``). Because
    ``d·γ >= 0`` and rounding is monotone, this equals ``r + d·γ·min(Q̄_1, Q̄_2, Q_1, Q_2)``
    bit for bit; the code keeps the official two-target form. Nothing cancels: every step
    is a min, a product or one sum, each correctly rounded. No VJP: the target is a
    constant (computed under ``torch.no_grad()`` in the official code); the gradient of the
    value loss with respect to V(s) is ``2(V(s) − value_target)/B``.

    The target is often written in short as ``min(r + γ·Q̄(s', a'), r + γ·Q(s', a'))``; the
    official code also multiplies the bootstrap by ``not_done`` (0 at terminal transitions)
    and reads each critic as the minimum of its twin heads, as here. Pass ``not_done = 1`` and
    the same array twice for a single-head critic to get the short form.

    Args:
        reward: rewards r (B,), float32 or float64 (after any reward scaling the caller does).
        not_done: continuation masks d = 1 − done (B,), same dtype, values in [0, 1].
        target_q1: the target critic's first head Q̄_1(s', a') (B,), same dtype.
        target_q2: the target critic's second head Q̄_2(s', a') (B,), same dtype.
        next_q1: the online critic's first head Q_1(s', a') (B,), same dtype.
        next_q2: the online critic's second head Q_2(s', a') (B,), same dtype.
        discount: γ in [0, 1]; default 0.99 (``A2PR.__init__`` and ``--discount`` in
            ``utils/config.py`` of the official code).

    Returns:
        value_target: the regression target of V(s) (B,), in the input dtype.

    Reference: Liu, Li, Lan, Gao, Pan, Xu, *Adaptive Advantage-Guided Policy Regularization
    for Offline Reinforcement Learning*, ICML 2024, arXiv:2405.19909. Official code:
    ltlhuuu/A2PR, ``A2PR.py``, ``A2PR.train`` (``target_Q``, ``targ_Q``, ``t_Q``).

    >>> import numpy as np, refimpl
    >>> refimpl.losses.a2pr_value_target(
    ...     np.array([1.0, 1.0]), np.array([1.0, 0.0]),
    ...     np.array([10.0, 10.0]), np.array([12.0, 12.0]),
    ...     np.array([11.0, 5.0]), np.array([9.0, 5.0]), discount=0.5)
    array([5.5, 1. ])
    """
    gamma = reward.dtype.type(discount)
    bootstrap = not_done * gamma
    target_q = reward + bootstrap * np.minimum(target_q1, target_q2)  # clipped double-Q, target critic
    online_q = reward + bootstrap * np.minimum(next_q1, next_q2)  # the same with the online critic
    value_target = np.minimum(target_q, online_q)
    return value_target, None


def _check_q_pi(arguments) -> None:
    q_pi = arguments["q_pi"]
    xp = array_namespace(q_pi)
    if not bool(xp.any(q_pi != 0)):
        raise ArgumentError(
            "q_pi",
            "at least one nonzero critic value Q(s, π(s)) (λ = α/mean|Q| divides by mean|Q|)",
            "all values are 0",
        )


@op(
    inputs={
        "pi": FloatArray("B", "A"),
        "a": FloatArray("B", "A"),
        "a_recon": FloatArray("B", "A"),
        "q_pi": FloatArray("B"),
        "q_a": FloatArray("B"),
        "q_recon": FloatArray("B"),
        "v": FloatArray("B"),
        "alpha": RealScalar(0, low_open=True),
        "bc_weight": RealScalar(0),
    },
    outputs=("loss",),
    differentiable=("pi", "q_pi", "a_recon"),
    custom_vjp="λ = α/mean|Q(s, π)| is detached (a stop-gradient, as in TD3+BC and the official "
    "code): the cotangent of q_pi is −λ/B, leaving out the ∂λ/∂q_pi term; with λ held fixed every "
    "cotangent is the exact derivative",
    check=_check_q_pi,
)
def a2pr_actor_loss(pi, a, a_recon, q_pi, q_a, q_recon, v, *, alpha=2.5, bc_weight=1.0):
    r"""A2PR's actor loss: TD3+BC's normalized Q term plus a behaviour-cloning term towards
    whichever of the dataset action and the VAE's reconstruction has the higher advantage.

    TD3+BC keeps the actor near the data by a squared distance to the dataset action ``a``;
    A2PR replaces that fixed target by an advantage-guided one. An advantage-weighted VAE
    (``a2pr_vae_loss``) reconstructs actions ``ã`` near the good part of the data; for each
    state the actor is pulled towards ``ã`` when its advantage ``Q(s, ã) − V(s)`` is at least
    that of the dataset action, else towards ``a``, and only as strongly as the number of
    those two actions that beat the state value ``V(s)`` (0, 1 or 2 of them).

    Forward (batch B, action dimension A; ``q_pi = Q_1(s, π(s))``, ``q_a = Q_1(s, a)``,
    ``q_recon = Q_1(s, ã)``, ``v = V(s)``; ``sg`` a stop-gradient)::

        λ        = α / sg[mean_i |q_pi,i|]
        L_actor  = −λ · mean_i q_pi,i
        A_π      = q_recon − v,   A_a = q_a − v            (advantages, formed as the code does)
        target_i = ã_i  if A_π,i ≥ A_a,i  else  a_i
        m_i      = c · (1[q_recon,i ≥ v_i] + 1[q_a,i > v_i])  ∈ {0, c, 2c}
        L_bc     = mean_{i,k} m_i (π_ik − target_ik)²      (mean over all B·A entries)
        loss     = L_actor + L_bc

    ``c = bc_weight`` is the official code's ``mask``. The advantages are formed as
    differences before they are compared, as in the official code (``fl(q_recon − v) ≥
    fl(q_a − v)`` can hold where ``q_recon < q_a`` by less than an ulp). Nothing cancels:
    ``L_actor = −α·Σq/Σ|q|`` lies in [−α, α] and ``L_bc`` is a mean of nonnegative terms.

    Backward, with ``L̄`` the cotangent of the loss. λ, the selections and m are constants
    (λ detached in the code; indicators are piecewise constant), so::

        ∂L_actor/∂q_pi,i = −λ/B                             →  q̄_pi = −L̄ λ/B
        ∂L_bc/∂π_ik     = 2 m_i (π_ik − target_ik)/(B A)     →  π̄ = L̄ · that
        ∂L_bc/∂ã_ik     = −2 m_i (π_ik − ã_ik)·1[A_π,i ≥ A_a,i]/(B A)
                        = −π̄_ik where ã is the target, 0 elsewhere

    Dropping ``∂λ/∂q_pi`` makes the q_pi cotangent deliberately not the derivative of the
    forward (``custom_vjp``). Rows with m = 0 give π no BC gradient. The official code does
    not detach ã (``recon_pi = vae(state, pi)``), so its gradient also reaches π through the
    VAE: chaining ``ā_recon`` through the VAE's VJP (and ``q̄_pi`` through the critic) gives
    the official gradient; ignoring ``ā_recon`` gives the ``sg[ã]`` variant.

    Args:
        pi: the actor's actions π(s) (B, A), float32 or float64.
        a: the dataset actions (B, A), same dtype.
        a_recon: the VAE's reconstruction ã of π(s) (B, A), same dtype.
        q_pi: ``critic.Q1(s, π(s))`` (B,), not all zero.
        q_a: ``critic.Q1(s, a)`` (B,) (after this step's critic update).
        q_recon: ``critic.Q1(s, ã)`` (B,).
        v: the state value V(s) (B,) (the value net's output before its update this step).
        alpha: α > 0; default 2.5 (TD3+BC's α; ``A2PR.__init__`` and ``--alpha`` in
            ``utils/config.py``).
        bc_weight: c ≥ 0, the official ``mask`` scaling the BC term; default 1.0, the
            ``A2PR.__init__`` default (m ∈ {0, 1, 2}). The training script's
            ``--mask`` default (``utils/config.py``) is 0.5: pass ``bc_weight=0.5`` to match it.

    Returns:
        loss: a scalar, ``L_actor + L_bc``, in the input dtype.

    Reference: Liu, Li, Lan, Gao, Pan, Xu, *Adaptive Advantage-Guided Policy Regularization
    for Offline Reinforcement Learning*, ICML 2024, arXiv:2405.19909. Official code:
    ltlhuuu/A2PR, ``A2PR.py``, ``A2PR.train`` (the delayed policy update: ``lmbda``,
    ``actor_loss``, ``embedding_pi``, ``embedding_action``, ``adv``, ``bc_loss``).

    >>> import numpy as np, refimpl
    >>> pi, a, a_recon = np.array([[1.0], [0.0]]), np.array([[0.0], [2.0]]), np.array([[3.0], [1.0]])
    >>> q_pi, q_a, q_recon, v = np.array([1.0, 3.0]), np.array([2.0, 5.0]), np.array([4.0, 0.0]), np.ones(2)
    >>> # λ = 2.5/2; L_actor = −1.25·2 = −2.5; row 0: target ã (A_π = 3 ≥ 1), m = 2, (1 − 3)² = 4;
    >>> # row 1: target a (A_π = −1 < 4), m = 1, (0 − 2)² = 4; L_bc = (8 + 4)/2 = 6
    >>> float(refimpl.losses.a2pr_actor_loss(pi, a, a_recon, q_pi, q_a, q_recon, v))
    3.5
    """
    dtype = pi.dtype.type
    batch, action_dim = pi.shape
    lam = dtype(alpha) / np.abs(q_pi).mean()  # λ = α/sg[mean|Q|]: a constant in the backward
    actor_term = -lam * q_pi.mean()
    advantage_recon = q_recon - v  # A_π = Q(s, ã) − V(s)
    advantage_action = q_a - v  # A_a = Q(s, a) − V(s)
    use_recon = advantage_recon >= advantage_action
    target = np.where(use_recon[:, None], a_recon, a)
    m = dtype(bc_weight) * ((q_recon >= v).astype(pi.dtype) + (q_a > v).astype(pi.dtype))
    difference = pi - target
    bc_term = (m[:, None] * (difference * difference)).mean()
    loss = np.asarray(actor_term + bc_term, dtype=pi.dtype)
    return loss, (difference, m, use_recon, lam, batch, action_dim)


@a2pr_actor_loss.defvjp
def a2pr_actor_loss_backward(residuals, g_loss):
    difference, m, use_recon, lam, batch, action_dim = residuals
    dtype = difference.dtype.type
    g = dtype(np.asarray(g_loss))
    g_pi = ((g * dtype(2.0 / (batch * action_dim))) * m)[:, None] * difference  # 2 L̄ m (π − target)/(BA)
    g_a_recon = np.where(use_recon[:, None], -g_pi, dtype(0))  # only where ã is the target
    g_q_pi = np.full(batch, -g * lam / dtype(batch), dtype=difference.dtype)  # −L̄ λ/B, λ held fixed
    return g_pi.astype(difference.dtype, copy=False), g_q_pi, g_a_recon.astype(difference.dtype, copy=False)


def _check_clamp(arguments) -> None:
    low, high = arguments.get("log_std_min", -4.0), arguments.get("log_std_max", 15.0)
    if not low < high:
        raise ArgumentError(
            "log_std_max",
            "a clamp range log_std_min < log_std_max",
            f"log_std_min = {low!r}, log_std_max = {high!r}",
        )


@op(
    inputs={
        "recon": FloatArray("B", "A"),
        "a": FloatArray("B", "A"),
        "mu": FloatArray("B", "Z"),
        "log_std": FloatArray("B", "Z"),
        "q_a": FloatArray("B"),
        "v": FloatArray("B"),
        "vae_weight": RealScalar(0),
        "log_std_min": RealScalar(),
        "log_std_max": RealScalar(),
    },
    outputs=("loss",),
    differentiable=("recon", "mu", "log_std"),
    check=_check_clamp,
)
def a2pr_vae_loss(recon, a, mu, log_std, q_a, v, *, vae_weight=1.0, log_std_min=-4.0, log_std_max=15.0):
    r"""A2PR's advantage-weighted VAE loss: reconstruct only the dataset actions whose value
    beats the state value, plus half the element-mean Gaussian KL to N(0, I).

    A2PR's "augmented behaviour policy" is a BCQ-style conditional VAE trained on the dataset
    with its reconstruction term switched on only where the dataset action has a positive
    advantage, ``Q(s, a) > V(s)``: the decoder then generates actions like the better half of
    the data, and ``a2pr_actor_loss`` pulls the actor towards them. The KL term keeps the
    latent code near the prior N(0, I) so that the decoder can be sampled.

    Forward (batch B, action dimension A, latent dimension Z; ``w = vae_weight``)::

        s      = clamp(log_std, log_std_min, log_std_max)      (the encoder's clamp)
        e      = expm1(2s) = σ² − 1
        KL     = mean_{i,j} ½(e_ij − 2s_ij + μ_ij²)         (= −½(1 + log σ² − μ² − σ²), element mean)
        L_rec  = mean_{i,k} w·1[q_a,i > v_i]·(recon_ik − a_ik)²
        loss   = L_rec + ½·KL

    The KL is averaged over the batch and the latent dimensions (not summed over dimensions)
    and weighted ½, as in the official code. ``expm1(2s) − 2s`` keeps the digits of the
    per-element KL ≈ 2s² + μ²/2 near σ = 1, where ``1 + log σ² − σ²`` (the code's form) cancels;
    the two agree to rounding elsewhere. The indicator is a constant (the critic and value are
    not trained by this loss).

    Backward, with ``L̄`` the loss's cotangent and ``n = B·Z``::

        ∂/∂recon_ik = 2w·1[q_a,i > v_i](recon_ik − a_ik)/(B A)
        ∂/∂μ_ij     = ½ · ½ · 2μ_ij/n = ½ μ_ij/n
        ∂/∂s_ij     = ½ · ½ · (2σ² − 2)/n = ½ e_ij/n
        ∂/∂log_std  = ∂/∂s · 1[log_std_min ≤ log_std ≤ log_std_max]

    each times ``L̄``; the clamp passes the gradient on its closed range, as ``torch.clamp``
    does (zero where the clamp is active).

    Args:
        recon: the decoder's reconstructions of the dataset actions (B, A), float32/float64.
        a: the dataset actions (B, A), same dtype.
        mu: the encoder's latent means (B, Z), same dtype (Z = 2A in the official code).
        log_std: the encoder's latent log standard deviations before the clamp (B, Z).
        q_a: ``critic.Q1(s, a)`` (B,) after this step's critic update.
        v: V(s) (B,) from the value net before its update this step.
        vae_weight: w ≥ 0 on the reconstruction term; default 1.0 (``A2PR.__init__`` and
            ``--vae_weight`` in ``utils/config.py``).
        log_std_min: lower clamp of log σ; default −4 (``VAE.forward``, ``clamp(-4, 15)``).
        log_std_max: upper clamp of log σ; default 15 (same line). Must exceed log_std_min.

    Returns:
        loss: a scalar, ``L_rec + ½ KL``, in the input dtype.

    Reference: Liu et al., *Adaptive Advantage-Guided Policy Regularization for Offline
    Reinforcement Learning*, ICML 2024, arXiv:2405.19909. Official code: ltlhuuu/A2PR,
    ``A2PR.py``: ``VAE.forward`` (the clamp) and ``A2PR.train`` (``embedding = Q_vae > value``,
    ``recon_loss``, ``KL_loss``, ``vae_loss = recon_loss + 0.5*KL_loss``).

    >>> import numpy as np, refimpl
    >>> recon, a = np.array([[1.0], [5.0]]), np.array([[0.0], [0.0]])
    >>> mu, log_std = np.array([[2.0], [0.0]]), np.zeros((2, 1))
    >>> # L_rec = (1·1 + 0)/2 = 0.5 (row 1 has q_a < v); KL = mean(½·4, 0) = 1; 0.5 + 0.5·1
    >>> float(refimpl.losses.a2pr_vae_loss(recon, a, mu, log_std, np.array([2.0, 0.0]), np.ones(2)))
    1.0
    """
    dtype = recon.dtype.type
    low, high = dtype(log_std_min), dtype(log_std_max)
    clamped = np.clip(log_std, low, high)
    inside = (log_std >= low) & (log_std <= high)  # torch.clamp's gradient mask (closed range)
    two_s = dtype(2) * clamped  # log σ²
    variance_minus_one = np.expm1(two_s)  # σ² − 1 without cancellation near σ = 1
    kl = (dtype(0.5) * (variance_minus_one - two_s + mu * mu)).mean()
    weight = dtype(vae_weight) * (q_a > v).astype(recon.dtype)  # w·1[Q(s, a) > V(s)]
    difference = recon - a
    recon_term = (weight[:, None] * (difference * difference)).mean()
    loss = np.asarray(recon_term + dtype(0.5) * kl, dtype=recon.dtype)
    return loss, (difference, weight, mu, variance_minus_one, inside)


@a2pr_vae_loss.defvjp
def a2pr_vae_loss_backward(residuals, g_loss):
    difference, weight, mu, variance_minus_one, inside = residuals
    dtype = difference.dtype.type
    g = dtype(np.asarray(g_loss))
    g_recon = ((g * dtype(2.0 / difference.size)) * weight)[:, None] * difference
    half_over_n = g * dtype(0.5 / mu.size)
    g_mu = half_over_n * mu  # ½ μ/n
    g_log_std = np.where(inside, half_over_n * variance_minus_one, dtype(0))  # ½(σ² − 1)/n inside the clamp
    return tuple(x.astype(difference.dtype, copy=False) for x in (g_recon, g_mu, g_log_std))

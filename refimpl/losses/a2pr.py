"""A2PR's state-value target (Adaptive Advantage-Guided Policy Regularization for Offline
Reinforcement Learning)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, RealScalar, array_namespace, op

__all__ = ["PAPER", "a2pr_value_target"]

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

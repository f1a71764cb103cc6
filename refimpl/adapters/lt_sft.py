"""LT-SFT: lottery-ticket sparse fine-tuning, its mask and its L1 pull towards the pretrained
weights (Composable Sparse Fine-Tuning for Cross-Lingual Transfer, Ansell et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, BoolArray, FloatArray, IntScalar, Paper, RealScalar, op

__all__ = ["PAPER", "lt_sft_l1_regularizer", "lt_sft_mask"]

PAPER = Paper(
    "Composable Sparse Fine-Tuning for Cross-Lingual Transfer",
    arxiv="2110.07560",
    year=2022,
    code="cambridgeltl/composable-sft",
)


# -- the mask ----------------------------------------------------------------------------------
def unfreeze_count(size: int, ft_params_proportion: float, ft_params_num, n_ft_iterations: int) -> int:
    """K for one selection round: ``⌊⌊proportion·N⌋ / iterations⌋`` (or ``⌊num / iterations⌋``),
    the official ``n_tunable_params // n_ft_iterations``."""
    total = int(ft_params_proportion * size) if ft_params_num is None else int(ft_params_num)
    return total // n_ft_iterations


def _check_mask(arguments) -> None:
    theta0, mask = arguments["theta0"], arguments["previous_mask"]
    frozen = theta0.size if mask is None else int(theta0.size - np.count_nonzero(mask))
    k = unfreeze_count(
        theta0.size,
        arguments["ft_params_proportion"],
        arguments["ft_params_num"],
        arguments["n_ft_iterations"],
    )
    if k < 1:
        raise ArgumentError(
            "ft_params_proportion",
            "at least one parameter to unfreeze this round (K = ⌊⌊proportion·N⌋/iterations⌋ >= 1)",
            f"K = 0 for N = {theta0.size}",
        )
    if k > frozen:
        raise ArgumentError(
            "previous_mask", f"at least K = {k} still-frozen parameters to choose from", f"{frozen} frozen"
        )


@op(
    inputs={
        "theta0": FloatArray("N"),
        "theta1": FloatArray("N"),
        "previous_mask": BoolArray("N", optional=True),
        "ft_params_proportion": RealScalar(0, 1, low_open=True),
        "ft_params_num": IntScalar(1, optional=True),
        "n_ft_iterations": IntScalar(1),
    },
    outputs=("mask", "threshold"),
    check=_check_mask,
)
def lt_sft_mask(
    theta0, theta1, previous_mask=None, *, ft_params_proportion=0.01, ft_params_num=None, n_ft_iterations=1
):
    r"""LT-SFT's mask: unfreeze the K parameters that moved most in a full fine-tune.

    Lottery-ticket sparse fine-tuning first fine-tunes every parameter (θ₀ → θ₁), keeps the
    K entries that changed most, resets the model to θ₀ and fine-tunes again with every
    other entry frozen. The result is a sparse difference ``φ = (θ₂ − θ₀) ⊙ μ`` that can be
    added to the pretrained model alone or composed with others (:func:`sparse_ft_compose`).
    This op is the selection step (a construction done once per round: reference only).

    Forward, over the maskable parameters of the whole model flattened into one vector
    (N entries, the official ``_num_maskable_params``), with μ_prev the mask of earlier
    rounds (all False in the first)::

        K  = ⌊⌊ft_params_proportion·N⌋ / n_ft_iterations⌋      (or ⌊ft_params_num / n_ft_iterations⌋)
        Δ  = |θ₁ − θ₀|                                         (in the dtype, as the official p − p₀)
        t  = the K-th largest Δ_i among the entries with μ_prev = False
        new = (Δ ≥ t) ∧ ¬μ_prev
        μ  = μ_prev ∨ new

    Tie rule: every still-frozen entry with ``Δ = t`` is selected, so ties at the threshold
    unfreeze MORE than K entries (the official ``abs_delta >= thresh``, not a top-k by
    index); with no ties exactly K are new. Entries unfrozen in earlier rounds are neither
    candidates nor counted, and stay unfrozen.

    Not differentiable (a selection; no backward).

    Args:
        theta0: (N,) the pretrained values of the maskable parameters (float32/float64).
        theta1: (N,) the same after the full fine-tune of this round, same dtype.
        previous_mask: (N,) bool, the entries unfrozen in earlier rounds, μ_prev (None: none).
        ft_params_proportion: the share of the maskable parameters to tune (default 0.01,
            official ``SftArguments.ft_params_proportion``); ignored when ``ft_params_num``
            is given.
        ft_params_num: the number of parameters to tune over all rounds (default None,
            official ``SftArguments.ft_params_num``).
        n_ft_iterations: selection rounds the budget is split over (default 1, official
            ``SftArguments.n_ft_iterations``); each round unfreezes ``budget // rounds``.

    Returns:
        mask: (N,) bool, μ: True where the parameter is tuned in the sparse phase.
        threshold: 0-d array in the dtype, t.

    Raises ``InputError`` when K = 0 (the official ``np.partition`` fails there) or when K
    exceeds the frozen entries (the official ``ValueError``).

    Reference: Ansell et al., *Composable Sparse Fine-Tuning for Cross-Lingual Transfer*,
    ACL 2022, arXiv:2110.07560, §3 (LT-SFT); official code cambridgeltl/composable-sft,
    ``src/sft/lt_sft.py`` (``unfreeze_k_most_changed_params``: ``np.partition`` of the
    frozen |Δ|, ``to_mask = (abs_delta >= thresh) & ~mask``) and ``src/sft/sft_args.py``
    (the defaults).

    >>> import numpy as np, refimpl
    >>> theta0 = np.zeros(5)
    >>> theta1 = np.array([0.1, -0.5, 0.3, 0.3, 0.0])
    >>> mask, t = refimpl.adapters.lt_sft_mask(theta0, theta1, ft_params_proportion=0.4)  # K = 2
    >>> mask.astype(int), float(t)        # 0.3 is tied: three entries unfrozen
    (array([0, 1, 1, 1, 0]), 0.3)
    """
    previous = np.zeros(theta0.shape, dtype=bool) if previous_mask is None else previous_mask
    k = unfreeze_count(theta0.size, ft_params_proportion, ft_params_num, n_ft_iterations)
    delta = np.abs(theta1 - theta0)  # in the dtype: the official p − p₀
    candidates = delta[~previous]
    threshold = np.partition(candidates, candidates.size - k)[candidates.size - k]  # K-th largest
    new = (delta >= threshold) & ~previous  # ties at t: all selected
    return (previous | new, np.asarray(threshold, dtype=theta0.dtype)), None


# -- the L1 regularizer ------------------------------------------------------------------------
def _check_count(arguments) -> None:
    num_params, theta = arguments["num_params"], arguments["theta"]
    if num_params is not None and num_params < theta.size:
        raise ArgumentError(
            "num_params",
            f"the model's parameter count, at least the {theta.size} entries regularized here",
            str(num_params),
        )


@op(
    inputs={
        "theta": FloatArray("..."),
        "theta0": FloatArray("..."),
        "l1_reg": RealScalar(0),
        "num_params": IntScalar(1, optional=True),
    },
    outputs=("penalty",),
    differentiable=("theta",),
    check=_check_count,
)
def lt_sft_l1_regularizer(theta, theta0, *, l1_reg=0.0, num_params=None):
    r"""LT-SFT's L1 regularizer: the mean absolute distance from the pretrained weights.

    Both LT-SFT phases may add ``λ·Σ|θ − θ₀|/N_params`` to the task loss, which pulls the
    fine-tuned weights towards the pretrained ones: the full phase then changes fewer
    entries by much (a cleaner top-K), and the sparse difference stays small, which the
    paper finds limits interference when differences are composed.

    Forward (θ the regularized entries, flattened; N_params every parameter of the model)::

        R = λ · Σ_i |θ_i − θ₀_i| / N_params            (summed in float64, rounded once)

    Backward. ``|x|`` has derivative ``sign(x)`` away from 0; at ``θ_i = θ₀_i`` the
    subgradient 0 is taken (PyTorch's ``abs`` backward, the official code's autograd)::

        θ̄_i = R̄ · λ · sign(θ_i − θ₀_i) / N_params

    θ₀ is frozen (no cotangent).

    Args:
        theta: the current values of the regularized parameters (any shape), float32/float64.
        theta0: the pretrained values, same shape and dtype.
        l1_reg: λ ≥ 0 (default 0.0: the official ``full_l1_reg`` and ``sparse_l1_reg``
            defaults, one per phase; the paper's runs set it per experiment).
        num_params: N_params, the model's total parameter count (official ``_num_params``,
            every parameter, also the unregularized ones); None: ``theta.size``.

    Returns:
        penalty: R, a 0-d array in the dtype of ``theta``.

    Reference: Ansell et al., arXiv:2110.07560, §3 (L1 regularization); official code
    cambridgeltl/composable-sft, ``src/sft/trainer.py`` (``training_step``:
    ``l1_reg * torch.sum(torch.stack(l1_dists)) / self._num_params``, over the maskable
    parameters when ``apply_reg_to_sparse_only``, else every trainable one; the latest
    revision has the term commented out, which equals the default λ = 0) and
    ``src/sft/sft_args.py``.

    >>> import numpy as np, refimpl
    >>> theta, theta0 = np.array([1.0, -2.0, 0.5]), np.array([0.0, 0.0, 0.5])
    >>> refimpl.adapters.lt_sft_l1_regularizer(theta, theta0, l1_reg=0.3, num_params=10)  # 0.3·3/10
    array(0.09)
    """
    count = theta.size if num_params is None else num_params
    difference = theta - theta0
    total = np.sum(np.abs(difference), dtype=np.float64)
    penalty = np.asarray(l1_reg * total / count, dtype=theta.dtype)
    return penalty, (difference, l1_reg / count)


@lt_sft_l1_regularizer.defvjp
def lt_sft_l1_regularizer_backward(residuals, g_penalty):
    difference, scale = residuals
    g_theta = np.sign(difference) * (float(g_penalty) * scale)  # sign(0) = 0: the subgradient 0
    return (g_theta.astype(difference.dtype, copy=False),)

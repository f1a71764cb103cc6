"""BA-LoRA's three output regularizers: consistency, diversity and SVD (Bias-Alleviating
Low-Rank Adaptation to Mitigate Catastrophic Inheritance in Large Language Models)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    FloatArray,
    IntScalar,
    OneOf,
    Paper,
    RealScalar,
    known_deviation,
    l2_normalize,
    l2_normalize_backward,
    log_softmax,
    op,
    softmax_backward,
)

__all__ = ["PAPER", "VARIANTS", "balora_consistency_loss", "balora_diversity_loss", "balora_svd_loss"]

PAPER = Paper(
    "BA-LoRA: Bias-Alleviating Low-Rank Adaptation to Mitigate Catastrophic Inheritance in "
    "Large Language Models",
    arxiv="2408.04556",
    year=2024,
    code="cyp-jlu-ai/BA-LoRA",
)

#: The task type the consistency and diversity terms are written for: classifier logits
#: (B, d) ("nlu") or next-token logits (B, …, V) ("nlg"); the official ``task_type``.
VARIANTS = ("nlu", "nlg")


def _check_variant_rank(arguments, name) -> None:
    z = arguments[name]
    if arguments["variant"] == "nlu" and z.ndim != 2:
        raise ArgumentError(name, "classifier logits of shape (B, d) with variant='nlu'", f"shape {z.shape}")
    if arguments["variant"] == "nlg" and z.ndim < 2:
        raise ArgumentError(
            name,
            "token logits of shape (B, ..., V) (at least 2 dimensions) with variant='nlg'",
            f"shape {z.shape}",
        )


def _check_consistency(arguments) -> None:
    _check_variant_rank(arguments, "z_ft")


def _check_diversity(arguments) -> None:
    _check_variant_rank(arguments, "z")
    z = arguments["z"]
    if arguments["variant"] == "nlu" and z.shape[0] < 2:
        raise ArgumentError(
            "z", "B >= 2 rows with variant='nlu' (the covariance divides by B − 1)", f"B = {z.shape[0]}"
        )


def _check_svd(arguments) -> None:
    z = arguments["z"]
    if z.ndim < 2:
        raise ArgumentError("z", "logits of shape (B, ...) with at least 2 dimensions", f"shape {z.shape}")
    if not bool((z != 0).any()):
        raise ArgumentError("z", "a nonzero logits matrix (Σ σ_i = 0 leaves −T/Σ undefined)", "all zeros")


@op(
    inputs={
        "z_ft": FloatArray("...", "V"),
        "z_pre": FloatArray("...", "V"),
        "variant": OneOf(*VARIANTS),
        "eps": RealScalar(0, low_open=True),
    },
    outputs=("loss",),
    differentiable=("z_ft",),
    check=_check_consistency,
)
def balora_consistency_loss(z_ft, z_pre, *, variant, eps=1e-12):
    r"""BA-LoRA's consistency regularizer: keep the fine-tuned outputs near the frozen model's.

    BA-LoRA fine-tunes a PiSSA/LoRA adapter while a frozen copy of the pre-trained model sees
    the same batch; the consistency term ties the fine-tuned outputs ``z_ft`` to the
    pre-trained ones ``z_pre`` (constants: no gradient flows into the teacher), against
    "knowledge drift". Added as ``λ1·L_cons`` (λ1 = 1e−4, official ``lambda1``).

    Forward, ``variant="nlu"`` (classifier logits (B, d); official ``F.normalize`` then
    ``F.mse_loss``)::

        ẑ = z/max(‖z‖, eps)   per row (eps = 1e−12, F.normalize's default)
        L = (1/(B·d)) Σ_{i,k} (ẑ_ft,ik − ẑ_pre,ik)²

    ``variant="nlg"`` (token logits (B, …, V); official ``kl_div(…, reduction="batchmean")``,
    which sums over tokens and divides by B only)::

        log q = log_softmax(z_ft),  log r = log_softmax(z_pre),  r = exp(log r)
        L = (1/B) Σ_{positions} Σ_v r_v (log r_v − log q_v)     (KL(p_pre‖p_ft))

    Both log-probabilities are max-shifted log-softmaxes, so ``r·log r`` is 0 (not NaN) where
    ``r`` underflows and no ``log q`` is −inf (the official ``softmax(z).log()`` is; see the
    deviation ``balora-nlg-kl-log-of-softmax``). ``eps`` is used by ``"nlu"`` only.

    Backward (ḡ the cotangent of L). ``"nlu"``: ``∂L/∂ẑ_ft = (2/(B·d))(ẑ_ft − ẑ_pre)·ḡ =: ā``;
    for a row with ``n = ‖z‖ > eps``, ``ẑ = z/n`` has Jacobian ``(I − ẑẑᵀ)/n`` (∂n/∂z = ẑ),
    so ``z̄ = (ā − ẑ⟨ẑ, ā⟩)/n``; where the clamp is active (n ≤ eps) ``ẑ = z/eps`` and
    ``z̄ = ā/eps``. ``"nlg"``: per position ``∂/∂log q_v = −r_v/B``, and the log-softmax VJP
    ``ā − q Σ ā`` with ``Σ_v r_v = 1`` gives ``z̄_ft = (ḡ/B)(q − r)``.

    Args:
        z_ft: fine-tuned outputs, (B, d) for "nlu" or (B, …, V) for "nlg", float32/float64.
        z_pre: the frozen pre-trained model's outputs, the same shape (treated as constants).
        variant: "nlu" or "nlg" (required: the official ``task_type`` flag; no source ties a
            default to the routine).
        eps: the norm clamp of "nlu" (default 1e−12: ``torch.nn.functional.normalize``, which
            the official code calls with its default).

    Returns:
        loss: the scalar L, in the input dtype.

    Reference: Chang, Chang & Wu, *BA-LoRA*, arXiv:2408.04556 (§3, consistency regularizer);
    official code cyp-jlu-ai/BA-LoRA, ``train.py``, ``CustomTrainer.compute_loss``.

    >>> import numpy as np, refimpl
    >>> z_ft, z_pre = np.array([[3.0, 4.0]]), np.array([[4.0, 3.0]])
    >>> loss = refimpl.regularizers.balora_consistency_loss(z_ft, z_pre, variant="nlu")
    >>> round(float(loss), 12)  # ẑ = (0.6, 0.8) and (0.8, 0.6): ½(0.2² + 0.2²)
    0.04
    """
    dtype = z_ft.dtype
    if variant == "nlu":
        z_hat_ft, norm_ft = l2_normalize(z_ft, eps)
        z_hat_pre, _ = l2_normalize(z_pre, eps)
        difference = z_hat_ft - z_hat_pre
        loss = (difference * difference).mean()
        clamped = norm_ft <= dtype.type(eps)
        return np.asarray(loss, dtype=dtype), (variant, difference, z_hat_ft, norm_ft, clamped)
    log_q = log_softmax(z_ft)
    log_r = log_softmax(z_pre)
    r = np.exp(log_r)
    loss = (r * (log_r - log_q)).sum() / z_ft.shape[0]
    return np.asarray(loss, dtype=dtype), (variant, np.exp(log_q), r)


@balora_consistency_loss.defvjp
def balora_consistency_loss_backward(residuals, g_loss):
    variant = residuals[0]
    if variant == "nlu":
        _, difference, z_hat_ft, norm_ft, clamped = residuals
        dtype = difference.dtype.type
        g = dtype(g_loss)
        g_z_hat = (dtype(2) * g / dtype(difference.size)) * difference  # ā
        g_z_ft = np.where(clamped, g_z_hat / norm_ft, l2_normalize_backward(z_hat_ft, norm_ft, g_z_hat))
        return (g_z_ft.astype(difference.dtype, copy=False),)
    _, q, r = residuals
    g = q.dtype.type(g_loss)
    return (((g / q.dtype.type(q.shape[0])) * (q - r)).astype(q.dtype, copy=False),)


@op(
    inputs={
        "z": FloatArray("...", "V"),
        "variant": OneOf(*VARIANTS),
        "log_eps": RealScalar(0),
    },
    outputs=("loss",),
    differentiable=("z",),
    check=_check_diversity,
)
def balora_diversity_loss(z, *, variant, log_eps=0.0):
    r"""BA-LoRA's diversity regularizer: decorrelated logit dimensions (NLU) or high entropy (NLG).

    Against "representation collapse": for classifier logits the term penalizes the
    off-diagonal batch covariance of the logit dimensions (a redundancy penalty in the spirit
    of VICReg/Barlow Twins); for token distributions it maximizes the entropy. Added as
    ``λ2·L_div`` (λ2 = 3e−4, official ``lambda2``).

    Forward, ``variant="nlu"`` (z: (B, d), B ≥ 2)::

        Z_c = Z − mean_rows(Z),   C = Z_cᵀ Z_c/(B − 1)      (d × d, unbiased covariance)
        L = Σ_{i≠j} C_ij² / d = ‖C_off‖_F²/d,   C_off = C with its diagonal set to 0

    (the diagonal is zeroed, not subtracted as Σ C² − Σ C_ii², which would cancel).

    ``variant="nlg"`` (z: (B, …, V); N = the number of positions, all axes but the last)::

        log p = log_softmax(z),   L = (1/N) Σ_positions Σ_v p_v log p_v = −mean entropy

    ``log_eps`` (default 0: the paper's entropy, exact log-softmax) reproduces the official
    ``−Σ p·log(p + 1e−10)`` with ``log_eps=1e-10`` (deviation ``balora-nlg-entropy-log-eps``):
    ``L = (1/N) Σ Σ_v p_v log(p_v + ε)``. ``log_eps`` is used by "nlg" only.

    Backward (ḡ the cotangent of L). ``"nlu"``: ``∂L/∂C = (2/d)·C_off`` (treating C's entries as
    free; C_off is symmetric). ``C = Z_cᵀZ_c/(B − 1)`` gives, for a symmetric C̄,
    ``Z̄_c = Z_c(C̄ + C̄ᵀ)/(B − 1) = 2 Z_c C̄/(B − 1)``, so ``Z̄_c = (4ḡ/(d(B − 1)))·Z_c C_off``;
    the centring ``Z_c = (I − 11ᵀ/B)Z`` is a symmetric projection, so
    ``Z̄ = Z̄_c − mean_rows(Z̄_c)`` (zero in exact arithmetic, since 1ᵀZ_c = 0; applied anyway).
    ``"nlg"``, ε = 0: with ``H = −Σ_j p_j log p_j``, ``∂(Σ_j p_j log p_j)/∂p_j = log p_j + 1``,
    and the softmax VJP ``p ⊙ (ā − ⟨p, ā⟩)`` turns it into ``p_k(log p_k + H)`` (the 1s cancel):
    ``z̄ = (ḡ/N)·p ⊙ (log p + H)``. With ε > 0, ``a_j = log(p_j + ε) + p_j/(p_j + ε)`` and
    ``z̄ = (ḡ/N)·p ⊙ (a − ⟨p, a⟩)``.

    Args:
        z: fine-tuned outputs, (B, d) for "nlu" or (B, …, V) for "nlg", float32/float64.
        variant: "nlu" or "nlg" (required: the official ``task_type`` flag).
        log_eps: ε inside the log of "nlg" (default 0, the paper's entropy; 1e−10 is the
            official code's).

    Returns:
        loss: the scalar L, in the input dtype.

    Reference: Chang, Chang & Wu, *BA-LoRA*, arXiv:2408.04556 (§3, diversity regularizer);
    official code cyp-jlu-ai/BA-LoRA, ``train.py``, ``CustomTrainer.compute_loss``.

    >>> import numpy as np, refimpl
    >>> z = np.array([[1.0, 1.0], [-1.0, -1.0]])  # C = [[2, 2], [2, 2]]: (2² + 2²)/2
    >>> float(refimpl.regularizers.balora_diversity_loss(z, variant="nlu"))
    4.0
    """
    dtype = z.dtype
    if variant == "nlu":
        batch, num_dims = z.shape
        z_centered = z - z.mean(axis=0, keepdims=True)
        covariance = (z_centered.T @ z_centered) / dtype.type(batch - 1)
        covariance_off = covariance.copy()
        np.fill_diagonal(covariance_off, 0)
        loss = (covariance_off * covariance_off).sum() / dtype.type(num_dims)
        return np.asarray(loss, dtype=dtype), (variant, z_centered, covariance_off)
    positions = z.size // z.shape[-1]
    log_p = log_softmax(z)
    p = np.exp(log_p)
    if log_eps == 0:
        loss = (p * log_p).sum() / dtype.type(positions)
        return np.asarray(loss, dtype=dtype), (variant, p, log_p, 0.0)
    epsilon = dtype.type(log_eps)
    loss = (p * np.log(p + epsilon)).sum() / dtype.type(positions)
    return np.asarray(loss, dtype=dtype), (variant, p, None, epsilon)


@balora_diversity_loss.defvjp
def balora_diversity_loss_backward(residuals, g_loss):
    variant = residuals[0]
    if variant == "nlu":
        _, z_centered, covariance_off = residuals
        dtype = z_centered.dtype.type
        batch, num_dims = z_centered.shape
        g_centered = (dtype(4) * dtype(g_loss) / dtype(num_dims * (batch - 1))) * (
            z_centered @ covariance_off
        )
        g_z = g_centered - g_centered.mean(axis=0, keepdims=True)  # the centring projection
        return (g_z.astype(z_centered.dtype, copy=False),)
    _, p, log_p, epsilon = residuals
    dtype = p.dtype.type
    weight = dtype(g_loss) / dtype(p.size // p.shape[-1])
    if log_p is not None:  # p ⊙ (log p + H), H = −Σ p log p
        entropy = -(p * log_p).sum(axis=-1, keepdims=True)
        return (((weight * p) * (log_p + entropy)).astype(p.dtype, copy=False),)
    slope = np.log(p + epsilon) + p / (p + epsilon)  # a = ∂(p log(p + ε))/∂p
    return ((weight * softmax_backward(p, slope)).astype(p.dtype, copy=False),)


@op(
    inputs={"z": FloatArray("...", "n"), "k": IntScalar(1)},
    outputs=("loss",),
    differentiable=("z",),
    check=_check_svd,
)
def balora_svd_loss(z, *, k=3):
    r"""BA-LoRA's SVD regularizer: the share of the top-k singular values of the logits matrix.

    Against "overfitting to noise": the term rewards output matrices whose energy sits in a
    few leading singular directions (a low-rank, robust output representation). Added as
    ``λ3·L_svd`` (λ3 = 1e−4, official ``lambda3``).

    Forward: the logits are reshaped to a matrix ``Z = z.reshape(B, −1)`` (the official
    ``logits.view(logits.size(0), -1)``: (B, T, V) becomes (B, T·V)); with its singular values
    ``σ_1 ≥ σ_2 ≥ … ≥ σ_r`` (r = min of Z's sizes, a library SVD)::

        T = Σ_{i≤k} σ_i,   S = Σ_i σ_i,   L = −T/S   ∈ [−1, −min(k, r)/r]

    (k ≥ r gives T = S, L = −1 and a zero gradient). A zero Z (S = 0) is refused.

    Backward: for a simple nonzero singular value, ``dσ_i = u_iᵀ dZ v_i``, i.e.
    ``∂σ_i/∂Z = u_i v_iᵀ``; so ``∂T/∂Z = U_k V_kᵀ`` and ``∂S/∂Z = U Vᵀ`` (thin SVD). With
    ``∂L/∂T = −1/S`` and ``∂L/∂S = T/S²``::

        Z̄ = −ḡ·[(U_k V_kᵀ)·S − T·(U Vᵀ)]/S² = U diag(c) Vᵀ,   c_i = ḡ(T/S² − 1[i ≤ k]/S)

    reshaped back to z's shape. It needs σ_k > σ_{k+1} (T is then differentiable; ties inside
    the top k or inside the rest are harmless) and σ_r > 0 (S, the nuclear norm, is then
    differentiable: UVᵀ is the polar factor). At σ_k = σ_{k+1} the forward is still exact, but
    the backward returns the gradient for the singular vectors LAPACK happens to pick, one
    element of the (Clarke) subdifferential, which backends need not agree on.

    The official script runs the SVD under ``torch.no_grad()``, so the term gives no gradient
    at all (deviation ``balora-svd-no-gradient``); refimpl implements the paper's formula.

    Args:
        z: logits (B, …) with at least 2 dimensions, float32/float64; not all zero.
        k: how many leading singular values are rewarded (default 3: the official ``k``).

    Returns:
        loss: the scalar L = −T/S, in the input dtype.

    Reference: Chang, Chang & Wu, *BA-LoRA*, arXiv:2408.04556 (§3, SVD regularizer);
    official code cyp-jlu-ai/BA-LoRA, ``train.py``, ``CustomTrainer.svd_regularization``.

    >>> import numpy as np, refimpl
    >>> z = np.diag([3.0, 1.0])  # σ = (3, 1): −3/4
    >>> float(refimpl.regularizers.balora_svd_loss(z, k=1))
    -0.75
    """
    matrix = z.reshape(z.shape[0], -1)
    u, sigma, vt = np.linalg.svd(matrix, full_matrices=False)
    top = sigma[:k].sum()
    total = sigma.sum()
    loss = -top / total
    return np.asarray(loss, dtype=z.dtype), (u, vt, min(k, sigma.size), top, total, z.shape)


@balora_svd_loss.defvjp
def balora_svd_loss_backward(residuals, g_loss):
    u, vt, k, top, total, shape = residuals
    dtype = u.dtype.type
    g = dtype(g_loss)
    # ḡT/S², as (ḡ/S)(T/S): S² overflows float32 once S > 1.8e19
    coefficients = np.full(u.shape[1], (g / total) * (top / total), dtype=u.dtype)
    coefficients[:k] -= g / total  # − ḡ/S on the top k
    g_matrix = (u * coefficients) @ vt
    return (g_matrix.reshape(shape).astype(u.dtype, copy=False),)


known_deviation(
    balora_svd_loss,
    name="balora-svd-no-gradient",
    source="cyp-jlu-ai/BA-LoRA, train.py, CustomTrainer.svd_regularization "
    "(`with torch.no_grad(): u, s, v = linalg.svd(logits, full_matrices=False)`)",
    official="computes the SVD without gradient tracking, so L_svd is a constant to autograd and "
    "contributes no gradient at all (λ3 changes only the logged loss); the same function also "
    "indexes the 1-D singular values as 2-D (`s[:, :self.k]`, an IndexError as written) and adds "
    "1e-10 to Σσ_i",
    paper="L_svd = −Σ_{i≤k} σ_i/Σ_i σ_i is a training loss: its gradient −[(U_kV_kᵀ)Σ − T·UVᵀ]/Σ² "
    "reaches the logits",
    example=Example(
        args=(np.diag([3.0, 1.0]),),
        kwargs={"k": 1},
        official={"loss": -0.75, "cotangent of 'z'": [[0.0, 0.0], [0.0, 0.0]]},
        reference={"loss": -0.75, "cotangent of 'z'": [[-0.0625, 0.0], [0.0, 0.1875]]},
        note="σ = (3, 1), T = 3, Σ = 4 (official values with the indexing fixed to s[:k]): "
        "−[diag(4, 0) − 3I]/16",
    ),
)


known_deviation(
    balora_diversity_loss,
    name="balora-nlg-entropy-log-eps",
    source="cyp-jlu-ai/BA-LoRA, train.py, CustomTrainer.compute_loss, task_type 'nlg' "
    "(`-torch.sum(fine_probs * torch.log(fine_probs + 1e-10), dim=-1).mean()`)",
    official="takes the entropy as −Σ p log(p + 1e-10): the same to ~1e-10 per token where the "
    "probabilities are ≫ 1e-10, but tokens with p near 1e-10 contribute log(2e-10) instead of "
    "log(1e-10), and a vocabulary of many small probabilities shifts the value by up to ~V·1e-10",
    paper="diversity = −H(p_ft) = Σ p log p, with log p the exact log-softmax",
    example=Example(
        args=(np.array([[0.0, -23.0]]),),
        kwargs={"variant": "nlg"},
        official={"loss": -2.2930e-09},
        reference={"loss": -2.4629e-09},
        rtol=1e-8,  # values of ~1e-9: matches()'s atol is rtol·1e-3
        note="p = (1 − e^−23, e^−23 ≈ 1.03e-10): log(p_2 + 1e-10) = log p_2 + 0.68",
    ),
    flag={"log_eps": 1e-10},
)


known_deviation(
    balora_consistency_loss,
    name="balora-nlg-kl-log-of-softmax",
    source="cyp-jlu-ai/BA-LoRA, train.py, CustomTrainer.compute_loss, task_type 'nlg' "
    "(`kl_div(fine_probs.log(), pre_probs, reduction='batchmean')`)",
    official="takes log p_ft as the log of the softmax: a probability that underflows to 0 gives "
    "log 0 = −inf, and the KL (and its gradient) becomes inf/NaN wherever the teacher puts mass "
    "on that token",
    paper="KL(p_pre‖p_ft) with log p_ft = log_softmax(z_ft), finite for finite logits",
    example=Example(
        args=(np.array([[0.0, -800.0]]), np.array([[0.0, 0.0]])),
        kwargs={"variant": "nlg"},
        official={"loss": float("inf")},
        reference={"loss": 399.30685},
        note="softmax([0, −800]) = (1, 0) in float64; KL = ½ log ½ + ½(log ½ + 800)",
    ),
)

"""SSL4Rec losses and feature masking (Self-supervised Learning for Large-scale Item Recommendations)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntScalar,
    OneOf,
    Paper,
    RealScalar,
    l2_normalize_backward,
    log_softmax,
    op,
    reduce_rows,
    row_norm,
    row_weights,
    softmax,
)

__all__ = ["PAPER", "correlated_feature_masking", "cosine_infonce", "sampled_softmax_logq"]

PAPER = Paper(
    "Self-supervised Learning for Large-scale Item Recommendations",
    arxiv="2007.12865",
    year=2021,
)


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _check_norms(arguments) -> None:
    if arguments["eps"] > 0:
        return
    for name in ("z", "z_prime"):
        z = _host(arguments[name])
        zero = np.flatnonzero(np.all(z == 0, axis=-1))
        if zero.size:
            raise ArgumentError(
                name,
                "rows of nonzero norm when eps = 0 (a zero embedding has no direction; pass eps > 0)",
                f"a zero row at row {int(zero[0])}",
            )


def _guarded_normalize(z: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``ẑ = z/n`` with ``n = sqrt(‖z‖² + eps)`` (a smooth guard; eps = 0: plain L2), the norm
    right also where ``‖z‖²`` over- or underflows (``row_norm``)."""
    norm = row_norm(z, eps)
    return z / norm, norm


def _infonce_rows(s: np.ndarray) -> np.ndarray:
    """``−(S_ii − LSE_j S_ij)`` per row: cross-entropy with the diagonal as the positive."""
    return -np.diagonal(log_softmax(s)).copy()


@op(
    inputs={
        "z": FloatArray("N", "D"),
        "z_prime": FloatArray("N", "D"),
        "temperature": RealScalar(0, low_open=True),
        "alpha": RealScalar(0),
        "eps": RealScalar(0),
        "symmetric": Flag(),
    },
    outputs=("loss",),
    differentiable=("z", "z_prime"),
    check=_check_norms,
)
def cosine_infonce(z, z_prime, *, temperature, alpha, eps=0.0, symmetric=False):
    r"""SSL4Rec's self-supervised term: InfoNCE on cosine similarities of two views, in-batch negatives.

    Two augmented views of the same N items (e.g. the two halves of a correlated feature
    mask) are encoded to z and z'. Each item's view-1 embedding must pick its own view-2
    embedding out of the batch: a softmax over cosine similarities at temperature τ, with
    the other N − 1 items as negatives. The paper adds ``α·L_self`` to the main loss.

    Forward::

        n_i  = sqrt(‖z_i‖² + eps),   ẑ_i = z_i/n_i        (the same for z')
        S_ij = ⟨ẑ_i, ẑ'_j⟩ / τ
        L_self = −(1/N) Σ_i [S_ii − LSE_j S_ij]            (one-directional, the paper's term)
        loss = α·L_self
        symmetric=True: loss = α·(L(z, z') + L(z', z))/2  (L(z', z) uses Sᵀ)

    Backward. For a row-wise softmax cross-entropy with positives on the diagonal,
    ``∂L/∂S = (softmax_rows(S) − I)/N`` (LSE's gradient is the softmax). The symmetric form
    adds the same for Sᵀ, transposed back: ``∂L/∂S = ½[(softmax_rows(S) − I) +
    (softmax_rows(Sᵀ) − I)ᵀ]/N``. With ``S̄ = ḡ·α·∂L/∂S`` and ``S = ẐẐ'ᵀ/τ``::

        Ẑ̄  = S̄ Ẑ' / τ,      Ẑ̄' = S̄ᵀ Ẑ / τ

    then through the guarded normalization ``ẑ = z/n``, ``∂n/∂z = z/n``::

        z̄_i = ẑ̄_i/n_i − z_i ⟨z_i, ẑ̄_i⟩/n_i³ = (ẑ̄_i − ẑ_i⟨ẑ_i, ẑ̄_i⟩)/n_i

    which is ``(I − ẑ_iẑ_iᵀ)ẑ̄_i/‖z_i‖`` at eps = 0 (the shared ``l2_normalize_backward``).

    Args:
        z: view-1 embeddings (N, D), float32 or float64.
        z_prime: view-2 embeddings (N, D) of the same items, the same dtype.
        temperature: τ > 0, required: the paper tunes it per dataset and does not publish the
            values.
        alpha: the weight α ≥ 0 of the term in ``L_main + α·L_self``, required for the same reason.
        eps: the norm guard (default 0: exact cosine; a zero row then raises InputError).
        symmetric: average both directions (default False: the paper's one-directional term).

    Returns:
        loss: a scalar, ``α·L_self``, in the input dtype.

    Reference: Yao et al., *Self-supervised Learning for Large-scale Item Recommendations*,
    arXiv:2007.12865 (CIKM 2021). No public official code.

    >>> import numpy as np, refimpl
    >>> z = np.array([[1.0, 0.0], [0.0, 2.0]])       # the views agree: S = diag(1/τ)
    >>> round(float(refimpl.losses.cosine_infonce(z, z, temperature=1.0, alpha=1.0)), 12)
    0.313261687518
    """
    z_hat, n = _guarded_normalize(z, eps)
    z_prime_hat, n_prime = _guarded_normalize(z_prime, eps)
    inverse_t = z.dtype.type(1 / temperature)
    s = (z_hat @ z_prime_hat.T) * inverse_t
    loss = _infonce_rows(s).mean()
    if symmetric:
        loss = (loss + _infonce_rows(s.T).mean()) / 2
    loss = np.asarray(loss * z.dtype.type(alpha), dtype=z.dtype)
    return loss, (z_hat, n, z_prime_hat, n_prime, s, inverse_t, alpha, symmetric)


@cosine_infonce.defvjp
def cosine_infonce_backward(residuals, g_loss):
    z_hat, n, z_prime_hat, n_prime, s, inverse_t, alpha, symmetric = residuals
    batch = s.shape[0]
    identity = np.eye(batch, dtype=s.dtype)
    g_s = softmax(s) - identity  # ∂(N·L)/∂S, one direction
    if symmetric:
        g_s = (g_s + (softmax(s.T) - identity).T) / 2
    g_s = g_s * (g_loss * s.dtype.type(alpha) / batch)
    g_z_hat = (g_s @ z_prime_hat) * inverse_t
    g_z_prime_hat = (g_s.T @ z_hat) * inverse_t
    return l2_normalize_backward(z_hat, n, g_z_hat), l2_normalize_backward(
        z_prime_hat, n_prime, g_z_prime_hat
    )


@op(
    inputs={
        "scores": FloatArray("N", "N"),
        "log_p": FloatArray("N"),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("scores",),
)
def sampled_softmax_logq(scores, log_p, *, reduction="mean"):
    r"""Batch softmax with the logQ correction: in-batch negatives debiased by their sampling probability.

    With in-batch negatives, popular items appear as negatives far more often than rare
    ones, which pushes their scores down. Subtracting the log of each item's sampling
    probability from its logit corrects the sampled softmax toward the full softmax.

    Forward, with ``s_ij = s(q_i, x_j)`` the score of query i against the batch's item j
    (the positive of query i is item i) and ``log p_j`` the log sampling probability of item j::

        u_ij = s_ij − log p_j
        ℓ_i  = −(u_ii − LSE_j u_ij) = −log softmax_j(u_i)_i
        L    = mean_i ℓ_i     reduction="mean" (default); "sum"; "none" returns ℓ (N,)

    Backward. ``∂u/∂s = I`` elementwise, and the softmax cross-entropy gradient is
    ``∂ℓ_i/∂u_ij = softmax_j(u_i)_j − δ_ij``::

        s̄_ij = w_i · (softmax_j(u_i)_j − δ_ij),   w_i = ḡ/N (mean), ḡ (sum), ḡ_i (none)

    Nothing flows into ``log_p`` (a data statistic, estimated by streaming frequency counts).

    Args:
        scores: s (N, N), float32 or float64 (the diagonal holds the positives).
        log_p: log sampling probabilities (N,), the same dtype (≤ 0 for probabilities; any
            finite value is accepted).
        reduction: "mean" (default), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (N,) for reduction="none", in the input dtype.

    Reference: arXiv:2007.12865 (the main-task loss); Yi et al., *Sampling-Bias-Corrected
    Neural Modeling for Large Corpus Item Recommendations* (RecSys 2019).

    >>> import numpy as np, refimpl
    >>> s, log_p = np.zeros((2, 2)), np.log(np.array([0.5, 0.5]))   # uniform: ℓ = log 2
    >>> round(float(refimpl.losses.sampled_softmax_logq(s, log_p)), 12)
    0.69314718056
    """
    u = scores - log_p[None, :]
    log_probs = log_softmax(u)
    per_row = -np.diagonal(log_probs).copy()
    return reduce_rows(per_row, reduction, scores.dtype), (np.exp(log_probs), reduction)


@sampled_softmax_logq.defvjp
def sampled_softmax_logq_backward(residuals, g_loss):
    p, reduction = residuals
    batch = p.shape[0]
    g_u = p.copy()
    g_u[np.arange(batch), np.arange(batch)] -= 1
    g_u *= row_weights(g_loss, reduction, batch)[:, None]
    return (g_u,)


def _check_mutual_information(arguments) -> None:
    mi = _host(arguments["mutual_information"])
    fields = mi.shape[0]
    if not np.array_equal(mi, mi.T):
        raise ArgumentError(
            "mutual_information",
            "a symmetric matrix (MI(f, g) = MI(g, f))",
            f"max |MI − MIᵀ| = {float(np.abs(mi - mi.T).max()):.3g}",
        )
    if arguments["seed_field"] >= fields:
        raise ArgumentError(
            "seed_field", f"a field index in [0, F) = [0, {fields})", repr(arguments["seed_field"])
        )


@op(
    inputs={"mutual_information": FloatArray("F", "F"), "seed_field": IntScalar(0)},
    outputs=("mask_view1", "mask_view2"),
    check=_check_mutual_information,
)
def correlated_feature_masking(mutual_information, *, seed_field):
    r"""Correlated Feature Masking (CFM): mask a seed field together with its most correlated fields.

    Random feature masking lets the model solve the SSL task from a masked field's highly
    correlated partner (e.g. a channel id from the uploader). CFM instead masks groups of
    correlated fields together, chosen by pairwise mutual information (MI) between the
    categorical fields, and the second view masks the complement, so the two views share no
    field.

    Procedure, for F fields and a seed field f_seed (sampled uniformly by the caller)::

        k = ⌈F/2⌉
        M1 = {f_seed} ∪ the k − 1 other fields with the largest MI(f_seed, ·)
             (ties: lowest field index first)
        mask_view1 = 1[f ∈ M1]          (fields masked in view 1)
        mask_view2 = not mask_view1     (view 2 masks the complement)

    The diagonal MI(f, f) is not used: the seed is always in M1. Random feature masking
    (RFM), the paper's baseline, is the same split with M1 = the first k entries of a
    random permutation.

    Args:
        mutual_information: symmetric MI matrix (F, F) between the feature fields (finite).
        seed_field: the seed field index in [0, F).

    Returns:
        mask_view1, mask_view2: boolean masks (F,) (True = masked), complements of each other.

    Reference: arXiv:2007.12865, Section on Correlated Feature Masking.

    >>> import numpy as np, refimpl
    >>> mi = np.array([[0, .1, .9, .2], [.1, 0, .3, .4], [.9, .3, 0, .5], [.2, .4, .5, 0]])
    >>> refimpl.losses.correlated_feature_masking(mi, seed_field=0)[0]
    array([ True, False,  True, False])
    """
    fields = mutual_information.shape[0]
    keep = (fields + 1) // 2
    others = np.array([f for f in range(fields) if f != seed_field], dtype=np.int64)
    # a stable sort of −MI keeps the lowest index first among equal MI values
    order = others[np.argsort(-mutual_information[seed_field, others], kind="stable")]
    mask_view1 = np.zeros(fields, dtype=bool)
    mask_view1[seed_field] = True
    mask_view1[order[: keep - 1]] = True
    return (mask_view1, ~mask_view1), None

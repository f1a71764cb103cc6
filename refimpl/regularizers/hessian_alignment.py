"""Hessian alignment for domain generalization: softmax-head curvature, Hutchinson's diagonal, the penalty."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, IntArray, Paper, RealScalar, op, softmax, softmax_backward

__all__ = [
    "PAPER",
    "hessian_alignment_penalty",
    "hutchinson_hessian_diag",
    "softmax_head_gradient",
    "softmax_head_hessian_diag",
    "softmax_head_hvp",
]

PAPER = Paper(
    "Understanding Hessian Alignment for Domain Generalization",
    arxiv="2308.11778",
    year=2023,
    code="huawei-noah/Federated-Learning (HessianAlignment)",
)


def _head_probabilities(W: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p_i = softmax(W h_i)`` (n, K) and ``1 − p_i`` without cancellation.

    When a row saturates (p_k → 1), ``1 − p_k`` by subtraction returns 0 or round-off, and so
    does ``−expm1(log p_k)`` (the log-sum-exp already rounds ``log p_k`` to 0). For the one
    entry with ``p_k > ½`` the complement is summed from the other probabilities instead,
    ``1 − p_k = Σ_{j≠k} p_j`` (small positive terms, no cancellation); every other entry has
    ``1 − p_k ≥ ½``, where the subtraction is exact to a rounding.
    """
    p = softmax(h @ W.T)
    dominant = p > 0.5  # at most one entry per row
    others = np.where(dominant, 0, p).sum(axis=1, keepdims=True)
    return p, np.where(dominant, others, 1 - p)


def _hessian_apply(p: np.ndarray, h: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``H[V] = (1/n) Σ_i [(diag p_i − p_i p_iᵀ)(V h_i)] h_iᵀ`` for a (K, D) direction V."""
    a = h @ V.T  # rows a_i = V h_i
    return softmax_backward(p, a).T @ h / h.dtype.type(h.shape[0])


# -- softmax_head_gradient ----------------------------------------------------------------------
@op(
    inputs={"W": FloatArray("K", "D"), "h": FloatArray("n", "D"), "y": IntArray("n", low=0, high="K")},
    outputs=("g",),
    differentiable=("W",),
)
def softmax_head_gradient(W, h, y):
    r"""Gradient of the mean cross-entropy of a linear softmax head with respect to its weights.

    Hessian alignment penalizes only the classifier ``z = W h`` on top of the features h; for
    that head the gradient, Hessian-vector products and the Hessian diagonal have closed
    forms, so no autograd (and no double backward) is needed. A bias is a column of W with a
    constant feature 1 appended to h.

    Forward, with ``p_i = softmax(W h_i)`` and ``Y_i`` the one-hot label::

        L(W) = (1/n) Σ_i CE(W h_i, y_i)
        g    = ∂L/∂W = (1/n) Σ_i (p_i − Y_i) h_iᵀ                  (K, D)

    Backward. The Jacobian of g with respect to W is the Hessian of L, which is symmetric, so
    the VJP of a cotangent ``Ḡ`` is the Hessian-vector product ``H[Ḡ]``. Differentiating
    ``p_i − Y_i`` along W gives ``(diag p_i − p_i p_iᵀ)(dW h_i)`` (the softmax Jacobian), so::

        W̄ = H[Ḡ] = (1/n) Σ_i [(diag p_i − p_i p_iᵀ)(Ḡ h_i)] h_iᵀ
           = (1/n) Σ_i [p_i ⊙ (a_i − ⟨p_i, a_i⟩)] h_iᵀ,    a_i = Ḡ h_i

    Args:
        W: head weights (K, D), float32 or float64.
        h: features (n, D), same dtype.
        y: integer labels (n,), values in [0, K).

    Returns:
        g: the gradient (K, D), dtype of W.

    Reference: Hemati et al., *Understanding Hessian Alignment for Domain Generalization*,
    ICCV 2023, arXiv:2308.11778; official code huawei-noah/Federated-Learning (HessianAlignment).

    >>> import numpy as np, refimpl
    >>> W, h = np.zeros((2, 1)), np.array([[1.0], [2.0]])
    >>> refimpl.regularizers.softmax_head_gradient(W, h, np.array([0, 1]))  # p = (½, ½)
    array([[ 0.25],
           [-0.25]])
    """
    p, _ = _head_probabilities(W, h)
    residual = p.copy()
    residual[np.arange(h.shape[0]), y] -= 1  # p − Y
    g = residual.T @ h / h.dtype.type(h.shape[0])
    return g, (p, h)


@softmax_head_gradient.defvjp
def _softmax_head_gradient_vjp(residuals, g_g):
    p, h = residuals
    return (_hessian_apply(p, h, g_g),)


# -- softmax_head_hvp -----------------------------------------------------------------------------
@op(
    inputs={"W": FloatArray("K", "D"), "h": FloatArray("n", "D"), "V": FloatArray("K", "D")},
    outputs=("hvp",),
    differentiable=("W", "V"),
)
def softmax_head_hvp(W, h, V):
    r"""Hessian-vector product of the mean cross-entropy of a linear softmax head.

    The curvature signal of HGP is ``H g`` (the Hessian applied to the gradient); Hutchinson's
    estimator needs ``H z`` for random sign probes z. For the head ``z = W h`` both are this
    closed form (labels drop out: the CE Hessian does not depend on them).

    Forward, with ``J_i = diag p_i − p_i p_iᵀ`` the softmax Jacobian at ``p_i = softmax(W h_i)``::

        H[V] = (1/n) Σ_i [J_i (V h_i)] h_iᵀ                        (K, D)

    Backward with respect to V. H[V] is linear in V with a symmetric operator, so
    ``V̄ = H[Ū]`` for the cotangent Ū.

    Backward with respect to W (a third derivative of the loss; for this head it is closed
    form). Write ``a_i = V h_i``, ``b_i = Ū h_i``. Then ``⟨Ū, H[V]⟩ = (1/n) Σ_i f_i`` with::

        f_i = b_iᵀ J_i a_i = Σ_k b_ik p_ik a_ik − ⟨b_i, p_i⟩⟨a_i, p_i⟩
        ∂f_i/∂p_i = q_i = b_i ⊙ a_i − b_i ⟨a_i, p_i⟩ − a_i ⟨b_i, p_i⟩

    and through the softmax, ``z̄_i = p_i ⊙ (q_i − ⟨p_i, q_i⟩)``, ``W̄ = (1/n) Σ_i z̄_i h_iᵀ``.
    This is what makes the HGP penalty's gradient with respect to W exact (see
    ``hessian_alignment_penalty``).

    Args:
        W: head weights (K, D), float32 or float64.
        h: features (n, D).
        V: direction (K, D) (a gradient for HGP, a Rademacher probe for Hutchinson).

    Returns:
        hvp: H[V] (K, D).

    Reference: arXiv:2308.11778 (the HGP identity ``H g = ‖g‖·∇‖g‖`` is what the official code
    differentiates).

    >>> import numpy as np, refimpl
    >>> W, h = np.zeros((2, 1)), np.array([[2.0]])  # p = (½, ½), J = [[¼, −¼], [−¼, ¼]]
    >>> refimpl.regularizers.softmax_head_hvp(W, h, np.array([[1.0], [0.0]]))
    array([[ 1.],
           [-1.]])
    """
    p, _ = _head_probabilities(W, h)
    return _hessian_apply(p, h, V), (p, h, V)


@softmax_head_hvp.defvjp
def _softmax_head_hvp_vjp(residuals, g_hvp):
    p, h, V = residuals
    n = h.dtype.type(h.shape[0])
    a = h @ V.T  # a_i = V h_i
    b = h @ g_hvp.T  # b_i = Ū h_i
    a_dot_p = (a * p).sum(axis=1, keepdims=True)
    b_dot_p = (b * p).sum(axis=1, keepdims=True)
    q = b * a - b * a_dot_p - a * b_dot_p  # ∂f_i/∂p_i
    g_W = softmax_backward(p, q).T @ h / n
    g_V = _hessian_apply(p, h, g_hvp)
    return g_W, g_V


# -- softmax_head_hessian_diag --------------------------------------------------------------------
@op(
    inputs={"W": FloatArray("K", "D"), "h": FloatArray("n", "D")},
    outputs=("diag",),
    differentiable=("W",),
)
def softmax_head_hessian_diag(W, h):
    r"""Exact diagonal of the cross-entropy Hessian of a linear softmax head (Hutchinson's target).

    Hutchinson's estimator approximates ``diag(H)`` with random probes; for the linear head the
    diagonal is available exactly, which gives the "exact" variant of the penalty and the
    reference the estimator is checked against.

    Forward. ``H_{(k,d),(k',d')} = (1/n) Σ_i J_i[k, k'] h_id h_id'`` with
    ``J_i = diag p_i − p_i p_iᵀ``; on the diagonal ``J_i[k, k] = p_ik(1 − p_ik)``::

        diag(H)_{k,d} = (1/n) Σ_i p_ik (1 − p_ik) h_id²              (K, D)

    For a dominant class ``1 − p_k`` is summed from the other probabilities (``Σ_{j≠k} p_j``):
    exact for saturated rows, where ``1 − p`` and even ``−expm1(log p)`` return 0.

    Backward. Let ``s_ik = p_ik(1 − p_ik)``. With ``∂p_k/∂z_j = p_k(δ_kj − p_j)``,
    ``∂s_k/∂z = (1 − 2p_k)·p_k(e_k − p)``. For the cotangent Ḡ define
    ``c_ik = (1/n) Σ_d Ḡ_kd h_id²`` (the weight of s_ik in ⟨Ḡ, diag⟩); then::

        u_ik = c_ik (1 − 2p_ik) p_ik
        z̄_i  = Σ_k u_ik (e_k − p_i) = u_i − p_i Σ_k u_ik
        W̄    = Σ_i z̄_i h_iᵀ

    Args:
        W: head weights (K, D), float32 or float64.
        h: features (n, D).

    Returns:
        diag: diag(H) reshaped like W (K, D), ≥ 0.

    Reference: arXiv:2308.11778.

    >>> import numpy as np, refimpl
    >>> W, h = np.zeros((2, 1)), np.array([[2.0]])  # p = (½, ½): ¼·2² = 1
    >>> refimpl.regularizers.softmax_head_hessian_diag(W, h)
    array([[1.],
           [1.]])
    """
    p, one_minus_p = _head_probabilities(W, h)
    s = p * one_minus_p
    diag = s.T @ (h * h) / h.dtype.type(h.shape[0])
    return diag, (p, one_minus_p, h)


@softmax_head_hessian_diag.defvjp
def _softmax_head_hessian_diag_vjp(residuals, g_diag):
    p, one_minus_p, h = residuals
    c = (h * h) @ g_diag.T / h.dtype.type(h.shape[0])  # c_ik
    u = c * (one_minus_p - p) * p  # 1 − 2p = (1 − p) − p
    g_z = u - p * u.sum(axis=1, keepdims=True)
    return (g_z.T @ h,)


# -- hutchinson_hessian_diag ----------------------------------------------------------------------
@op(
    inputs={"probes": FloatArray("S", "P"), "hvps": FloatArray("S", "P")},
    outputs=("diag",),
)
def hutchinson_hessian_diag(probes, hvps):
    r"""Hutchinson's estimate of a Hessian diagonal from probes and their Hessian-vector products.

    For probes with ``E[z zᵀ] = I`` (Rademacher: independent ±1 entries),
    ``E[z ⊙ (H z)]_j = Σ_k H_jk E[z_j z_k] = H_jj``: the average of ``z ⊙ Hz`` is an unbiased
    estimate of diag(H) whose error shrinks like 1/√S. Averaged over **all** 2^P sign
    vectors it is exact (``(1/2^P) Σ_z z zᵀ = I``).

    Forward::

        diag(H) ≈ (1/S) Σ_s z_s ⊙ (H z_s)

    The probes are an input (randomness is an input): the official code draws
    ``z = 2·randint(0, 2) − 1`` fresh for every one of S = 300 repeats, separately for every
    environment and for the mean loss. The HVPs ``H z_s`` are an input too (from
    ``softmax_head_hvp`` for a linear head, or any HVP oracle). Parameters are flattened to
    one axis of size P (the official code concatenates the classifier's weight and bias
    gradients).

    Not differentiable here (the official code backpropagates through it by double
    backward; for a linear head use ``softmax_head_hvp``'s VJP, or the exact
    ``softmax_head_hessian_diag``).

    Args:
        probes: (S, P) probe vectors, float32 or float64 (Rademacher ±1 in the paper).
        hvps: (S, P), ``hvps[s] = H probes[s]``.

    Returns:
        diag: (P,) the estimate.

    Reference: arXiv:2308.11778 (official ``Hutchinson.calc_hessian_diag``); Bekas et al. 2007.

    >>> import numpy as np, refimpl
    >>> H = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> probes = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])  # all sign vectors
    >>> refimpl.regularizers.hutchinson_hessian_diag(probes, probes @ H)
    array([2., 3.])
    """
    return (probes * hvps).mean(axis=0), None


# -- hessian_alignment_penalty --------------------------------------------------------------------
@op(
    inputs={
        "losses": FloatArray("E"),
        "grads": FloatArray("E", "P"),
        "curvatures": FloatArray("E", "P"),
        "mean_grad": FloatArray("P"),
        "mean_curvature": FloatArray("P"),
        "alpha": RealScalar(0),
        "beta": RealScalar(0),
    },
    outputs=("loss", "penalty"),
    differentiable=("losses", "grads", "curvatures"),
)
def hessian_alignment_penalty(losses, grads, curvatures, mean_grad, mean_curvature, *, alpha, beta):
    r"""The Hessian-alignment objective: align per-environment gradients and curvatures to the mean.

    Domain generalization by alignment: if every training environment has the same classifier
    gradient and the same Hessian (curvature) at the solution, the head transfers to unseen
    environments. The paper aligns a cheap curvature signal: ``H_e g_e`` (HGP, via the
    identity ``H g = ‖g‖·∇‖g‖``) or ``diag(H_e)`` (Hutchinson's estimate, or the exact diagonal).

    Forward, for E environments with losses ``L_e``, gradients ``g_e`` and curvature signals
    ``A_e`` (all over the P flattened classifier parameters)::

        penalty = (1/E) Σ_e [ α‖A_e − sg[Ā]‖² + β‖g_e − sg[ḡ]‖² ]
        loss    = (1/E) Σ_e L_e + penalty

    where ``ḡ = ∇ mean_e L_e`` and ``Ā`` is the same curvature signal for the mean loss
    (``H̄ ḡ`` resp. ``diag(H̄)``), both stop-gradient: they are the inputs ``mean_grad`` and
    ``mean_curvature``, which receive no cotangent.

    Backward (α, β constants; cotangents ``ḡ_loss``, ``ḡ_pen`` on the two outputs, ``t =
    ḡ_loss + ḡ_pen``)::

        L̄_e = ḡ_loss / E
        ḡ_e  = t · 2β(g_e − ḡ) / E
        Ā_e  = t · 2α(A_e − Ā) / E

    Gradient with respect to the head W (linear head, chained by the caller). ``g_e`` is
    ``softmax_head_gradient`` (its VJP is ``H_e[·]``); ``A_e = softmax_head_hvp(W, h_e, g_e)``
    (HGP; its VJP gives the third-derivative term through W and ``H_e[·]`` through V, which then
    flows into ``g_e``) or ``softmax_head_hessian_diag(W, h_e)`` (exact diagonal). Chaining
    those VJPs gives the exact W-gradient of this objective (checked against finite
    differences in the tests). For the Hutchinson variant with explicit probes, ``A_e`` is
    linear in the HVPs, so the W-gradient is the chain through ``softmax_head_hvp`` with
    V = probe; this op itself is not differentiable in the probes.

    Official code (DomainBed ``HGP``/``Hutchinson``): ``g_e`` adds 1e−16 to every gradient
    element before the norm, so its HGP signal is ``H_e(g_e + 1e−16·1)`` and the mean's is
    ``H̄ḡ·(1 + 1e−16/‖ḡ‖)`` — a bias below float64 resolution for any non-vanishing gradient,
    not reproduced. Default hyperparameters there: HGP α = 1e−4, β = 5e−3; Hutchinson α = 1e−3,
    β = 5e−3 (``hparams_registry.py``); they differ per variant, so α, β are required here.

    Args:
        losses: per-environment losses (E,), float32 or float64.
        grads: per-environment gradients g_e (E, P).
        curvatures: per-environment curvature signals A_e (E, P).
        mean_grad: ḡ (P,), stop-gradient (for losses that are means, ḡ = mean_e g_e).
        mean_curvature: Ā (P,), stop-gradient.
        alpha: curvature-alignment weight α ≥ 0.
        beta: gradient-alignment weight β ≥ 0.

    Returns:
        loss: the full objective (scalar); penalty: the alignment term alone (scalar).

    Reference: arXiv:2308.11778; official code huawei-noah/Federated-Learning
    (``HessianAlignment/domainbed/algorithms.py``).

    >>> import numpy as np, refimpl
    >>> g = np.array([[1.0, 0.0], [0.0, 1.0]]); A = np.array([[2.0, 0.0], [0.0, 0.0]])
    >>> loss, penalty = refimpl.regularizers.hessian_alignment_penalty(
    ...     np.array([1.0, 3.0]), g, A, g.mean(axis=0), A.mean(axis=0), alpha=1.0, beta=1.0)
    >>> float(loss), float(penalty)  # penalty = ½[(1 + ½) + (1 + ½)]
    (3.5, 1.5)
    """
    n_envs = losses.dtype.type(losses.shape[0])
    grad_gap = grads - mean_grad
    curvature_gap = curvatures - mean_curvature
    penalty = (alpha * np.sum(curvature_gap**2) + beta * np.sum(grad_gap**2)) / n_envs
    loss = losses.sum() / n_envs + penalty
    outputs = (np.asarray(loss, dtype=losses.dtype), np.asarray(penalty, dtype=losses.dtype))
    return outputs, (losses, grad_gap, curvature_gap, alpha, beta)


@hessian_alignment_penalty.defvjp
def _hessian_alignment_penalty_vjp(residuals, cotangents):
    losses, grad_gap, curvature_gap, alpha, beta = residuals
    g_loss, g_penalty = cotangents
    n_envs = losses.dtype.type(losses.shape[0])
    total = (g_loss + g_penalty) / n_envs
    g_losses = np.full_like(losses, g_loss / n_envs)
    g_grads = (2 * beta) * total * grad_gap
    g_curvatures = (2 * alpha) * total * curvature_gap
    return g_losses, g_grads, g_curvatures

"""SaRA: threshold mask, sparse reparameterization and masked nuclear norm (SaRA paper)."""

from __future__ import annotations

import numpy as np

from ..authoring import BoolArray, Example, FloatArray, Paper, RealScalar, known_deviation, op

__all__ = ["masked_nuclear_norm", "sara_sparse_reparam", "sara_threshold_mask"]

PAPER = Paper(
    "SaRA: High-Efficient Diffusion Model Fine-tuning with Progressive Sparse Low-Rank Adaptation",
    arxiv="2409.06633",
    year=2024,
    code="sjtuplayer/SaRA",
)


@op(
    inputs={"W0": FloatArray("..."), "tau": RealScalar(0, low_open=True)},
    outputs=("M",),
)
def sara_threshold_mask(W0, *, tau):
    r"""SaRA's trainable set: the weights of small magnitude, ``M = 1[|W0| < τ]``.

    SaRA observes that the smallest-magnitude weights of a pretrained model barely affect
    its output, so they can be re-purposed: they become the trainable parameters, and the
    rest of the weight stays frozen. The mask is fixed at the start (and recomputed once,
    from the current weights, at the progressive iteration — a second call of this op).

    Forward::

        M = |W0| < τ          elementwise, strict: a weight of magnitude exactly τ stays frozen

    Not differentiable (a boolean mask).

    Args:
        W0: a pretrained weight of any shape (a matrix, a convolution kernel, a bias),
            float32 or float64.
        tau: the threshold τ > 0, required. The official README trains with ``threshold=2e-3``;
            the official optimizer's constructor default is ``threshold=100``, which makes
            every weight of a usual model trainable: no default is assumed here.

    Returns:
        M: a boolean mask of the shape of W0 (True: trainable).

    Reference: Hu et al., *SaRA: High-Efficient Diffusion Model Fine-tuning with Progressive
    Sparse Low-Rank Adaptation*, arXiv:2409.06633; code sjtuplayer/SaRA ``optim/adamw.py``
    (``AdamW.set_mask_param``: ``bool_mask = (param.abs() < threshhold)``).

    >>> import numpy as np, refimpl
    >>> refimpl.adapters.sara_threshold_mask(np.array([0.001, -0.002, 0.5, -0.0005]), tau=2e-3)
    array([ True, False, False,  True])
    """
    return np.abs(W0) < tau, None


@op(
    inputs={"W0": FloatArray("..."), "M": BoolArray("..."), "Theta": FloatArray("...")},
    outputs=("W",),
    differentiable=("Theta",),
)
def sara_sparse_reparam(W0, M, Theta):
    r"""SaRA's sparse reparameterization: ``W = W0 ⊙ (1 − M) + Θ ⊙ M``.

    The weights selected by the mask M (``sara_threshold_mask``) are replaced by trainable
    values Θ; every other weight keeps its pretrained value. Θ starts at W0 on M, so the
    model starts out unchanged (Θ = W0 gives W = W0), and only the entries of Θ on M ever
    reach the output.

    Θ is stored dense here, with the shape of W0 (its entries off M are ignored and get a
    zero cotangent). The official code stores only the selected values, a flat vector
    ``θ = Θ[M]`` in row-major order of the mask; ``Θ = W0.copy(); Θ[M] = θ`` converts.

    Forward::

        W = where(M, Θ, W0)

    Backward. W is linear in Θ with ``∂W_i/∂Θ_i = M_i`` (and no cross terms), so
    ``Θ̄ = M ⊙ W̄``: the cotangent passes through on M and is zero elsewhere. W0 and M are
    frozen and get none.

    The official release (sjtuplayer/SaRA) routes the *first* forward through ``Θ.abs()``
    (and again after the progressive re-masking), so negative trainable weights are flipped
    at the start: the model does not start from W0. That is recorded as a known deviation
    and not reproduced (refimpl follows the paper: Θ = W0 reproduces W0).

    Args:
        W0: the pretrained weight, any shape, float32 or float64 (frozen).
        M: the trainable mask, boolean, the shape of W0.
        Theta: the trainable values Θ, the shape of W0 (only the entries on M are used).

    Returns:
        W: the effective weight, the shape and dtype of W0.

    Reference: Hu et al., arXiv:2409.06633; code sjtuplayer/SaRA ``optim/adamw.py``
    (``Sparse``: ``param1[mask] = param2``, backward ``grad_param1[mask]``).

    >>> import numpy as np, refimpl
    >>> W0, M = np.array([0.5, -0.001, 2.0]), np.array([False, True, False])
    >>> refimpl.adapters.sara_sparse_reparam(W0, M, np.array([9.0, 0.25, 9.0]))
    array([0.5 , 0.25, 2.  ])
    """
    return np.where(M, Theta, W0), M


@sara_sparse_reparam.defvjp
def sara_sparse_reparam_backward(M, g_W):
    return (np.where(M, g_W, np.zeros((), dtype=g_W.dtype)),)


@op(
    inputs={"Theta": FloatArray("O", "I"), "M": BoolArray("O", "I")},
    outputs=("nuclear_norm",),
    differentiable=("Theta",),
)
def masked_nuclear_norm(Theta, M):
    r"""SaRA's rank regularizer: the nuclear norm of the trainable values, ``‖Θ ⊙ M‖_*``.

    SaRA keeps the sparse update effectively low-rank by penalizing the nuclear norm (the
    sum of singular values, the convex surrogate of the rank) of the masked matrix. It acts
    on the current masked *values* ``W ⊙ M = Θ ⊙ M`` (not on the change ``Θ − W0``).
    Training adds ``λ_rank·‖Θ ⊙ M‖_*`` (λ_rank = 5e−4 in the paper) for one randomly chosen
    2-d weight per step; the choice and λ_rank are the caller's.

    Forward, with the thin SVD ``X = Θ ⊙ M = U diag(σ) Vᵀ`` (k = min(out, in))::

        ‖X‖_* = Σ_i σ_i

    Backward. Let ``ḡ`` be the scalar cotangent.

    1. Where X has full rank k with distinct or repeated positive σ, ``d‖X‖_* = Σ_i dσ_i``
       and ``dσ_i = u_iᵀ dX v_i`` (first-order perturbation of a singular value; it needs
       no ``1/(σ_i² − σ_j²)`` terms, which appear only in the derivatives of the vectors, so
       repeated singular values are harmless). Hence ``∂‖X‖_*/∂X = Σ_i u_i v_iᵀ = U Vᵀ``.
    2. ``X = Θ ⊙ M``: ``∂X_{oi}/∂Θ_{oi} = M_{oi}``, so ``Θ̄ = ḡ · M ⊙ (U Vᵀ)``.

    Where X is rank-deficient the norm has a kink; ``U Vᵀ`` of the thin SVD is then still
    a valid subgradient (its part on the zero singular values has spectral norm 1 and is
    orthogonal to the rest), but which one depends on the SVD routine's null-space basis.

    The SVD runs in the input dtype (float32 or float64).

    The official release (sjtuplayer/SaRA) applies this loss to the optimizer's
    ``source_params``, which it never steps: the penalty changes no trained value
    (λ_rank = 5 and λ_rank = 0 train identically). That is recorded as a known deviation
    and not reproduced: here the cotangent reaches Θ, as in the paper.

    Args:
        Theta: the trainable values Θ (out, in), dense (only the entries on M are used).
        M: the trainable mask (out, in), boolean.

    Returns:
        nuclear_norm: a 0-d array, the dtype of Theta.

    Reference: Hu et al., arXiv:2409.06633 (the nuclear-norm constraint on the sparse
    matrix); code sjtuplayer/SaRA ``optim/adamw.py`` (``AdamW.nuclear_norm``:
    ``torch.svd(param * mask)``, ``s.sum()``).

    >>> import numpy as np, refimpl
    >>> Theta = np.array([[3.0, 7.0], [0.0, -4.0]])
    >>> refimpl.adapters.masked_nuclear_norm(Theta, np.array([[True, False], [True, True]]))
    array(7.)
    """
    U, S, Vh = np.linalg.svd(np.where(M, Theta, np.zeros((), dtype=Theta.dtype)), full_matrices=False)
    return np.asarray(S.sum()), (U, Vh, M)


@masked_nuclear_norm.defvjp
def masked_nuclear_norm_backward(residuals, g_norm):
    U, Vh, M = residuals
    subgradient = U @ Vh  # ∂‖X‖_*/∂X = U Vᵀ
    return (np.where(M, g_norm * subgradient, np.zeros((), dtype=subgradient.dtype)),)


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    sara_sparse_reparam,
    name="sara-official-abs-first-forward",
    source="sjtuplayer/SaRA, optim/adamw.py, AdamW.__init__ (and AdamW.step at progressive_iter + 1): "
    "Sparse.apply(param.detach(), trainable_params[i].abs(), mask)",
    official="inserts Θ.abs() into the first forward: the effective weight is |W0| on the mask, so every "
    "negative trainable weight is flipped before training starts (the model does not start from W0)",
    paper="W = W0 ⊙ (1 − M) + Θ ⊙ M with Θ initialized to W0 on M: the fine-tuning starts from the "
    "pretrained model",
    example=Example(
        args=(
            np.array([[0.5, -0.25], [2.0, -0.125]]),
            np.array([[True, True], [False, True]]),
            np.array([[0.5, -0.25], [2.0, -0.125]]),
        ),
        official={"W": [[0.5, 0.25], [2.0, 0.125]]},
        reference={"W": [[0.5, -0.25], [2.0, -0.125]]},
    ),
)

known_deviation(
    masked_nuclear_norm,
    name="sara-official-nuclear-norm-never-stepped",
    source="sjtuplayer/SaRA, optim/adamw.py, AdamW.step: rank_loss = lambda_rank * "
    "nuclear_norm(source_params[i] * mask); rank_loss.backward()",
    official="back-propagates the nuclear norm into source_params, which are not among the optimizer's "
    "parameters: the trainable values get no gradient from it (λ_rank = 5 and 0 give identical Θ)",
    paper="the nuclear norm of the masked trained values is part of the loss: its gradient "
    "M ⊙ (U Vᵀ) reaches Θ",
    example=Example(
        args=(np.array([[3.0, 0.0], [0.0, -2.0]]), np.array([[True, False], [False, True]])),
        official={"nuclear_norm": 5.0, "cotangent of 'Theta'": [[0.0, 0.0], [0.0, 0.0]]},
        reference={"nuclear_norm": 5.0, "cotangent of 'Theta'": [[1.0, 0.0], [0.0, -1.0]]},
    ),
)

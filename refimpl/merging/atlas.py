"""aTLAS: task vectors composed with learned anisotropic (blockwise) scaling (Zhang et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, StateDict, op

__all__ = ["PAPER", "atlas_composition"]

PAPER = Paper(
    "Knowledge Composition using Task Vectors with Learned Anisotropic Scaling",
    arxiv="2407.02880",
    year=2024,
    code="fredzzhang/atlas",
)


@op(
    inputs={
        "theta0": FloatArray("..."),
        "task_vectors": FloatArray("...", "T"),
        "lam": FloatArray("T"),
    },
    outputs=("theta",),
    differentiable=("lam",),
    state_dict=StateDict(
        {"theta0": "tensor", "task_vectors": "models", "lam": "per_tensor"}, outputs=("theta",)
    ),
)
def atlas_composition(theta0, task_vectors, lam):
    r"""aTLAS: add T task vectors to the pretrained weights, each parameter block scaled by
    its own learned coefficient.

    Task arithmetic adds ``λ·Σ_t τ_t`` to the pretrained model θ₀ with one hand-tuned λ.
    aTLAS learns one coefficient per task AND per parameter block (one block per parameter
    tensor: every weight matrix, bias and LayerNorm parameter), so the same task vector can
    be amplified in some layers and switched off in others ("anisotropic scaling"). Only
    T·B numbers are trained (B blocks), by gradient descent on a few labelled or unlabelled
    examples; θ₀ and the task vectors ``τ_t = θ_t − θ₀`` stay frozen.

    Forward, for one block (one parameter tensor of any shape; the task vectors stacked on a
    trailing axis, ``task_vectors[..., t] = τ_t``) with its coefficients λ (T,)::

        θ = θ₀ + Σ_t λ_t τ_t            Σ accumulated t = 1, 2, …, T first, θ₀ added last

    in the official order (``sum(τ_t·λ_t for t) + θ₀``). With all λ_t = λ it is task
    arithmetic; with λ = 0 (the official initialization) it is θ₀ exactly.

    Backward. θ is linear in λ: ``∂θ/∂λ_t = τ_t``. For a cotangent θ̄ (shape of θ₀)::

        λ̄_t = ⟨θ̄, τ_t⟩_F = Σ_j θ̄_j τ_{t,j}                  (one inner product per task)

    θ₀ and the task vectors are frozen (not differentiated: their cotangents, θ̄ and
    ``λ_t θ̄``, would be as large as the models).

    Whole models: ``atlas_composition(theta0, [tau_1, ..., tau_T], lam)`` with state dicts
    θ₀ and τ_t. ``lam`` is then either a mapping ``{name: (T,) λ}`` (blockwise, the aTLAS
    default: one block per tensor) or a single (T,) array shared by every tensor (one
    coefficient per task, the official ``blockwise=False``); ``refimpl.vjp`` returns λ̄ in
    the same form (a shared λ gets the sum over blocks). Integer buffers are copied from θ₀.
    The linearized variant (``f(x; θ₀) + J_θ f(x; θ₀)·Δθ(λ)``) differs in the model, not in
    this composition.

    Args:
        theta0: the pretrained parameter θ₀ of one block, any shape, float32 or float64.
        task_vectors: ``τ_t = θ_t − θ₀`` stacked on the last axis, shape ``θ₀.shape + (T,)``.
        lam: (T,) the block's coefficients, same dtype (the official initialization is 0).

    Returns:
        theta: the composed parameter, shape and dtype of ``theta0``.

    Reference: Zhang, Albert, Rodriguez-Opazo, van den Hengel, Abbasnejad, *Knowledge
    Composition using Task Vectors with Learned Anisotropic Scaling*, NeurIPS 2024,
    arXiv:2407.02880 (the composition θ₀ + Σ_t Λ_t τ_t with one coefficient per task and
    parameter block); official code
    fredzzhang/atlas, ``src/composition.py`` (``WeightedImageEncoder.forward``).

    >>> import numpy as np, refimpl
    >>> theta0 = np.array([1.0, 1.0])
    >>> taus = np.stack([np.array([2.0, 0.0]), np.array([0.0, 4.0])], axis=-1)   # (2, T = 2)
    >>> refimpl.merging.atlas_composition(theta0, taus, np.array([0.5, -0.25]))
    array([2., 0.])
    """
    theta = _combine(task_vectors, lam) + theta0  # Σ_t λ_t τ_t first, then θ₀
    return np.asarray(theta, dtype=theta0.dtype), (task_vectors,)


def _combine(task_vectors, lam):
    combined = task_vectors[..., 0] * lam[0]
    for t in range(1, task_vectors.shape[-1]):
        combined = combined + task_vectors[..., t] * lam[t]
    return combined


@atlas_composition.defvjp
def atlas_composition_backward(residuals, g_theta):
    (task_vectors,) = residuals
    count = task_vectors.shape[-1]
    g_lam = g_theta.reshape(-1) @ task_vectors.reshape(-1, count)  # λ̄_t = ⟨θ̄, τ_t⟩
    return (np.asarray(g_lam, dtype=task_vectors.dtype),)

"""Learning-from-the-Undesirable (LfU): a normalized ascent step and a layerwise consistency loss."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    BoolArray,
    Example,
    FloatArray,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    known_deviation,
    op,
    row_norm,
)

__all__ = ["ALPHA", "LAMBDA", "PAPER", "lfu_consistency_loss", "lfu_normalized_ascent_step"]

PAPER = Paper(
    "Learning from the Undesirable: Robust Adaptation of Language Models without Forgetting",
    arxiv="2511.13052",
    year=2025,
    code="yunpal/LfU",
)

#: α, the size of the undesirable step: ``ALPHA_LIST=(0.1)`` in both official scripts
#: (``run_lora.sh`` and ``run_reps.sh``), read as ``finetuning_args.alpha`` by the trainer.
ALPHA = 0.1
#: λ, the consistency weight, per variant: ``BETA_LIST`` of ``run_lora.sh`` (5) and
#: ``run_reps.sh`` (0.1), read as ``finetuning_args.beta`` (``final_loss = loss + beta·div_loss``).
LAMBDA = {"lora": 5.0, "reps": 0.1}


def _check_gradient(arguments) -> None:
    grad = arguments["grad"]
    xp = array_namespace(grad)
    if not bool(xp.any(grad != 0)):
        raise ArgumentError(
            "grad",
            "a nonzero gradient (the step divides by ‖∇ℓ‖₂; the official code would produce NaN)",
            "a gradient of norm 0",
        )


@op(
    inputs={"theta_aux": FloatArray("P"), "grad": FloatArray("P"), "alpha": RealScalar(0, low_open=True)},
    outputs=("theta_aux",),
    check=_check_gradient,
)
def lfu_normalized_ascent_step(theta_aux, grad, *, alpha=ALPHA):
    r"""LfU's undesirable update: one normalized gradient-ascent step on the SFT loss.

    LfU regularizes supervised fine-tuning (SFT) with a model that has taken one deliberately
    bad step: the auxiliary parameters (LoRA weights, or RepS steering vectors) move up the
    SFT loss by a step of fixed length α, and the consistency loss
    (:func:`lfu_consistency_loss`) then asks the model's hidden states to be the same with and
    without that step, so the fine-tuned solution is robust to undesirable updates::

        θ_aux ← θ_aux + α · ∇ℓ_SFT / ‖∇ℓ_SFT‖₂

    ``‖·‖₂`` is the norm over every trainable parameter at once (the official ``_grad_norm``
    stacks the per-tensor norms and takes their norm). Pass the parameters and their
    gradient flattened and concatenated.

    The step is taken under a stop-gradient (official ``training_step``: the gradient is
    detached, the step is written into ``param.data``), so this op is not differentiable: the
    consistency loss differentiates through the hidden states computed at ``θ_aux`` only
    (first order; no second-order term through ∇ℓ_SFT).

    A zero gradient is refused: ``max(‖∇ℓ‖₂, eps)`` would need an eps that no source pins,
    and the official code divides by the norm itself (NaN at 0).

    Fast backends: Numba (a blocked float64 sum of squares, then one fused pass) and CuPy.

    Args:
        theta_aux: the trainable parameters, raveled and concatenated (P,), float32/float64.
        grad: ∇ℓ_SFT with respect to them (P,), not all zero.
        alpha: α > 0, the step length (default 0.1: ``ALPHA_LIST=(0.1)`` in the official
            ``run_lora.sh`` and ``run_reps.sh``).

    Returns:
        theta_aux: the stepped parameters (P,), in the input dtype.

    Reference: Nam, Kim, Jeong, *Learning from the Undesirable: Robust Adaptation of
    Language Models without Forgetting*, AAAI 2026, arXiv:2511.13052; official code
    yunpal/LfU, ``LLaMA-Factory/src/llamafactory/train/sft/trainer.py``
    (``Lfu_consistency_asc_rep.training_step``, ``_grad_norm``).

    >>> import numpy as np, refimpl
    >>> refimpl.regularizers.lfu_normalized_ascent_step(np.zeros(2), np.array([3.0, 4.0]), alpha=0.5)
    array([0.3, 0.4])
    """
    dtype = theta_aux.dtype
    norm = float(row_norm(grad.astype(np.float64))[0])  # scaled where Σg² would overflow
    return (theta_aux + dtype.type(alpha / norm) * grad).astype(dtype, copy=False), None


def _check_hidden(arguments) -> None:
    hidden = arguments["hidden"]
    if hidden.shape[-1] < 1 or hidden.shape[1] < 1:
        raise ArgumentError("hidden", "at least one token and one feature", f"shape {tuple(hidden.shape)}")


@op(
    inputs={
        "hidden": FloatArray("L", "N", "D"),
        "hidden_aux": FloatArray("L", "N", "D"),
        "mask": BoolArray("N", optional=True),
        "lam": RealScalar(0),
        "layer_reduction": OneOf("sum", "mean"),
    },
    outputs=("loss",),
    differentiable=("hidden", "hidden_aux"),
    check=_check_hidden,
)
def lfu_consistency_loss(hidden, hidden_aux, mask=None, *, lam, layer_reduction="sum"):
    r"""LfU's consistency loss: λ · Σ_layers MSE of the hidden states with and without the bad step.

    After :func:`lfu_normalized_ascent_step` gives the auxiliary model ``θ_aux``, the same
    batch runs through both models and every layer's hidden states are compared::

        MSE_l = (1/(n·D)) Σ_{valid tokens i} Σ_k (h_aux[l, i, k] − h[l, i, k])²
        ℓ_cons = Σ_l MSE_l           (layer_reduction="sum"; "mean": (1/L) Σ_l)
        loss   = λ · ℓ_cons

    with ``n`` the number of valid tokens (``mask``: the official ``labels != −100``; all
    tokens when ``mask`` is None). The total LfU objective is ``ℓ_SFT(θ) + loss``; ℓ_SFT is
    not part of this op. With no valid token the loss is 0 (the official code skips such a
    layer, and returns 0 when every layer is skipped). Pass the layers that enter the loss
    (the official ``start_layer..finish_layer``, 0..32 in its scripts: every hidden state of
    Llama-3.1-8B, the embedding output included).

    Backward. ``∂MSE_l/∂h_aux[l, i, k] = 2 (h_aux − h)[l, i, k] · m_i/(n·D)``, and the same
    with a minus sign for ``h``; each layer's term has weight ``w = 1`` ("sum") or ``1/L``
    ("mean"), so with the loss cotangent ``ḡ``::

        h̄_aux = ḡ λ w · 2 (h_aux − h) m/(n·D),    h̄ = −h̄_aux

    Both inputs are differentiable; which one carries the gradient into θ is the caller's
    stop-gradient. The official trainer detaches the clean states ``h(x; θ)`` (the target)
    and back-propagates through ``h(x; θ_aux)``, computed with the perturbed weights, into θ
    (first order: the ascent step itself is a constant); the first-order variant that treats
    θ_aux as constant and differentiates ``h(x; θ)`` takes ``h̄`` instead. Dropout masks must
    be the same in both passes (the states arrive computed).

    Args:
        hidden: h_l(x; θ), the hidden states of the L chosen layers (L, N, D), N tokens
            (batch × sequence flattened), float32/float64.
        hidden_aux: h_l(x; θ_aux), the same after the undesirable step (L, N, D).
        mask: valid tokens (N,) bool, or None for all.
        lam: λ ≥ 0 (required: the official scripts use 5 for LfU(LoRA) and 0.1 for
            LfU(RepS); ``LAMBDA`` holds both).
        layer_reduction: "sum" (default, ℓ_cons = Σ_l MSE_l as the paper writes it) or
            "mean" (the official ``compute_mse_consistency_loss``: ``total_loss/count``).

    Returns:
        loss: λ·ℓ_cons, a scalar in the input dtype.

    Reference: Nam, Kim, Jeong, *Learning from the Undesirable: Robust Adaptation of
    Language Models without Forgetting*, AAAI 2026, arXiv:2511.13052; official code
    yunpal/LfU, ``LLaMA-Factory/src/llamafactory/train/sft/trainer.py``
    (``compute_mse_consistency_loss``, ``training_step``), ``run_lora.sh``, ``run_reps.sh``.

    >>> import numpy as np, refimpl
    >>> h = np.zeros((2, 1, 2)); h_aux = np.ones((2, 1, 2))  # MSE 1 in each of 2 layers
    >>> float(refimpl.regularizers.lfu_consistency_loss(h, h_aux, lam=0.5))
    1.0
    """
    dtype = hidden.dtype
    layers, tokens, features = hidden.shape
    valid = np.ones(tokens, dtype=bool) if mask is None else mask
    count = int(valid.sum())
    difference = hidden_aux - hidden  # formed before squaring
    if count == 0:
        return np.zeros((), dtype=dtype), (difference, valid, 0.0)
    layer_weight = 1.0 if layer_reduction == "sum" else 1.0 / layers
    scale = lam * layer_weight / (count * features)  # λ w/(n·D)
    squares = (difference * difference)[:, valid, :]
    loss = dtype.type(scale) * squares.sum()
    return np.asarray(loss, dtype=dtype), (difference, valid, scale)


@lfu_consistency_loss.defvjp
def lfu_consistency_loss_backward(residuals, g_loss):
    difference, valid, scale = residuals
    dtype = difference.dtype
    factor = dtype.type(2 * scale * float(g_loss))
    g_hidden_aux = factor * difference * valid[None, :, None]
    return (-g_hidden_aux).astype(dtype, copy=False), g_hidden_aux.astype(dtype, copy=False)


known_deviation(
    lfu_consistency_loss,
    name="lfu-consistency-mean-over-layers",
    source="yunpal/LfU, LLaMA-Factory/src/llamafactory/train/sft/trainer.py, "
    "Lfu_consistency_asc_rep.compute_mse_consistency_loss (`return total_loss / count`)",
    official="averages the per-layer MSEs over the selected layers (total_loss/count): the consistency "
    "term is 1/L of the paper's, so λ = 5 in the official scripts acts as λ = 5/L of the sum",
    paper="ℓ_cons = Σ_l MSE(h_l(x; θ), h_l(x; θ_aux)), the sum over all layers",
    example=Example(
        args=(np.zeros((2, 1, 2)), np.ones((2, 1, 2))),
        kwargs={"lam": 1.0},
        official={"loss": 1.0},
        reference={"loss": 2.0},
        note="two layers with MSE 1 each",
    ),
    flag={"layer_reduction": "mean"},
)

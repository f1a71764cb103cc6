"""sharpDARTS Max-W weighting of a mixed op (sharpDARTS: Faster and More Accurate
Differentiable Architecture Search)."""

from __future__ import annotations

import numpy as np

from ..authoring import Example, FloatArray, Paper, known_deviation, op, softmax, softmax_backward

__all__ = ["PAPER", "max_w_mixed_op"]

PAPER = Paper(
    "sharpDARTS: Faster and More Accurate Differentiable Architecture Search",
    arxiv="1903.09900",
    year=2019,
    code="ahundt/sharpDARTS",
)


@op(
    inputs={
        "outputs": FloatArray("...", "N", "D"),
        "alpha": FloatArray("...", "N"),
    },
    outputs=("y",),
    differentiable=("outputs", "alpha"),
)
def max_w_mixed_op(outputs, alpha):
    r"""Max-W mixed op: candidate outputs weighted by ``1 − max_j w_j + w_i``, ``w = softmax(α)``.

    A DARTS mixed op sums its N candidate operations weighted by the softmax of the
    architecture logits α. With many candidates every weight is small (~1/N at the start),
    so every op's output is damped. sharpDARTS' Max-W weighting shifts the weights so that
    the currently strongest op enters with weight exactly 1 and every other op with
    ``1 − (max w − w_i) ∈ (0, 1]``: the weights still rank the ops, but the network sees the
    best candidate at full strength.

    Forward, per row of leading dimensions (N candidate outputs ``O_i`` of D features each)::

        w   = softmax(α)                    (max-shifted: exp cannot overflow)
        m   = max_j w_j
        c_i = 1 − (m − w_i)                 (c_i = 1 exactly for every maximal w_i)
        y   = Σ_i c_i O_i

    The official ``(1 − max_w + w)`` rounds ``1 − m`` first; ``1 − (m − w_i)`` is the same
    number up to one rounding and gives the strongest op weight 1 exactly.

    Backward. Let ``ȳ = ∂L/∂y`` (D,) and ``s_i = ⟨ȳ, O_i⟩``. Directly, ``Ō_i = c_i ȳ``.
    Through ``c``: ``∂L/∂c_i = s_i`` and ``∂c_i/∂w_k = δ_ik − ∂m/∂w_k``. The max is
    differentiated as PyTorch's full-reduction ``torch.max`` (the official code's
    ``torch.max(weights)``): the gradient is split evenly over the maximal entries,
    ``∂m/∂w_k = t_k = 1[w_k = m]/|{j : w_j = m}|``. So::

        w̄_k = s_k − t_k Σ_i s_i
        ᾱ   = w ⊙ (w̄ − ⟨w, w̄⟩)            (the softmax VJP)
        Ō_i = c_i ȳ

    With a single maximal op ``a``: ``w̄_a = −Σ_{i≠a} s_i``. ``Σ_k ᾱ_k = 0`` (softmax is
    invariant to shifts of α). At ties (equal maximal weights) the max has a kink: the even
    split is one subgradient, the one PyTorch's autograd gives.

    Args:
        outputs: candidate-op outputs O (..., N, D), float32 or float64 (an op's output
            flattened to D features).
        alpha: architecture logits α (..., N), the same leading dimensions.

    Returns:
        y: the mixed output (..., D), in the dtype of ``outputs``.

    ``MixedOp.forward`` keeps the gradient through the max (followed here);
    ``MultiChannelNetwork.forward`` of the same file detaches it (a recorded convention,
    ``refimpl deviations``).

    Reference: Hundt, Jain, Hager, *sharpDARTS: Faster and More Accurate Differentiable
    Architecture Search*, arXiv:1903.09900 (Max-W weighting); official code
    ahundt/sharpDARTS, ``cnn/model_search.py``, ``MixedOp.forward`` with
    ``weighting_algorithm == 'max_w'`` (``max_w = torch.max(weights)``;
    ``sum((1. - max_w + w) * op(x) ...)``).

    >>> import numpy as np, refimpl
    >>> O = np.array([[1.0], [2.0]])                  # two ops, D = 1
    >>> alpha = np.log(np.array([3.0, 1.0]))          # w = (0.75, 0.25): c = (1, 0.5)
    >>> refimpl.layers.max_w_mixed_op(O, alpha)       # 1·1 + 0.5·2
    array([2.])
    """
    w = softmax(alpha)
    m = w.max(axis=-1, keepdims=True)
    coefficients = 1 - (m - w)
    y = np.einsum("...n,...nd->...d", coefficients, outputs)
    return y.astype(outputs.dtype, copy=False), (outputs, w, m, coefficients)


@max_w_mixed_op.defvjp
def max_w_mixed_op_backward(residuals, g_y):
    outputs, w, m, coefficients = residuals
    g_outputs = coefficients[..., :, None] * g_y[..., None, :]
    scores = np.einsum("...d,...nd->...n", g_y, outputs)  # s_i = ⟨ȳ, O_i⟩
    is_max = (w == m).astype(w.dtype)
    share = is_max / is_max.sum(axis=-1, keepdims=True)  # the max's gradient, split evenly over ties
    g_w = scores - share * scores.sum(axis=-1, keepdims=True)
    g_alpha = softmax_backward(w, g_w)
    return g_outputs.astype(outputs.dtype, copy=False), g_alpha.astype(w.dtype, copy=False)


known_deviation(
    max_w_mixed_op,
    name="sharpdarts-max-w-detached-in-multichannel",
    source="ahundt/sharpDARTS, cnn/model_search.py, MultiChannelNetwork.forward "
    "(`max_w = torch.max(weight_views[...]).clone().detach()`)",
    official="the multi-channel search network detaches max_w: the weight of op i is 1 − max_w + w_i with "
    "max_w a constant in backprop, so ∂L/∂w_k = s_k (no −t_k Σ_i s_i term); the forward is the same",
    paper="MixedOp.forward (the DARTS cell search the paper's Max-W weighting describes) keeps the "
    "gradient through torch.max(weights); refimpl follows it",
    example=Example(
        args=(np.array([[1.0], [2.0]]), np.log(np.array([3.0, 1.0]))),
        official={"y": [2.0], "cotangent of 'alpha'": [-0.1875, 0.1875]},
        reference={"y": [2.0], "cotangent of 'alpha'": [-0.75, 0.75]},
        note="w = (0.75, 0.25), s = (1, 2): w̄ = (1 − 3, 2) with the max's gradient, (1, 2) detached; "
        "ᾱ = w ⊙ (w̄ − ⟨w, w̄⟩)",
    ),
    convention=True,
)

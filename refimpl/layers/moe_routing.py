"""Top-k mixture-of-experts routing and the Switch load-balancing loss (WideNet, Go Wider, Xue et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntScalar,
    Paper,
    RealScalar,
    array_namespace,
    known_deviation,
    op,
    softmax,
)

__all__ = [
    "PAPER",
    "expert_capacity",
    "kept_assignments",
    "switch_load_balancing_loss",
    "top_k_mask",
    "topk_moe_routing",
]

EXPORTS = ("expert_capacity", "kept_assignments", "top_k_mask")

PAPER = Paper(
    "Go Wider Instead of Deeper",
    arxiv="2107.11817",
    year=2022,
    code="XueFuzhao/WideNet_Code",
)


def top_k_mask(z: np.ndarray, k: int) -> np.ndarray:
    """The (T, E) boolean mask of each row's k largest entries; ties go to the LOWEST index.

    A stable sort of ``−z`` keeps equal entries in index order, so among equal scores the
    lower expert index comes first (``tf.math.top_k``'s rule, which WideNet's ``Router``
    uses). Softmax is strictly increasing, so the top k of ``z`` are the top k of ``p``.
    """
    order = np.argsort(-z, axis=-1, kind="stable")[:, :k]
    mask = np.zeros(z.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask


def expert_capacity(num_tokens: int, num_experts: int, k: int, capacity_factor: float) -> int:
    """``C = ⌊T·cf·k/E⌋`` slots per expert (WideNet's scripts, integer division)."""
    return int(np.floor(num_tokens * capacity_factor * k / num_experts))


def kept_assignments(selected: np.ndarray, capacity: int | None, capacity_quirk: bool) -> np.ndarray:
    """Drop the assignments beyond an expert's capacity, in token order.

    ``pos_{t,e} = Σ_{t' ≤ t} 1[e ∈ S_{t'}]`` (1-based running count per expert over all k
    choices, no first-choice priority); kept iff ``pos ≤ C`` (slots 1..C), or ``pos < C``
    with ``capacity_quirk`` (the official ``tf.math.less(position_in_expert, capacity)``).
    """
    if capacity is None:
        return selected
    position = array_namespace(selected).cumsum(selected, axis=0)
    limit = capacity - 1 if capacity_quirk else capacity
    return selected & (position <= limit)


def _check_k(arguments) -> None:
    z, k = arguments["z"], arguments["k"]
    if k > z.shape[-1]:
        raise ArgumentError("k", f"k <= E = {z.shape[-1]} experts", f"k = {k}")


def _check_routing(arguments) -> None:
    _check_k(arguments)
    if arguments["capacity_quirk"] and arguments["capacity_factor"] is None:
        raise ArgumentError(
            "capacity_quirk", "False when capacity_factor is None (no capacity to apply it to)", "True"
        )


@op(
    inputs={
        "z": FloatArray("T", "E"),
        "expert_outputs": FloatArray("T", "E", "d"),
        "k": IntScalar(1),
        "capacity_factor": RealScalar(0, low_open=True, optional=True),
        "renormalize": Flag(),
        "capacity_quirk": Flag(),
    },
    outputs=("y",),
    differentiable=("z", "expert_outputs"),
    check=_check_routing,
)
def topk_moe_routing(z, expert_outputs, *, k, capacity_factor=None, renormalize=False, capacity_quirk=False):
    r"""Top-k softmax routing of tokens to experts, with an optional expert capacity.

    Each token's gate logits ``z_t`` (``x_t W_g``, computed upstream, plus the training noise
    ξ if any: pass ``z + ξ``) pick k experts; the token's output is the sum of those experts'
    outputs weighted by their gate probabilities. With a capacity, an expert takes at most C
    assignments per batch, first come first served in token order; an overflowed assignment
    contributes nothing and the token keeps its other experts. The expert outputs
    ``E_e(x_t)`` are an input (T, E, d); only the kept ones are read.

    Forward, per token t::

        p_t     = softmax(z_t)                                   (row max subtracted)
        S_t     = TopK(z_t, k) = TopK(p_t, k)                    (ties: LOWEST expert index)
        q_{t,e} = p_{t,e}                                        (renormalize=False, WideNet)
                = p_{t,e} / Σ_{e'∈S_t} p_{t,e'}   for e ∈ S_t   (renormalize=True)
        C       = ⌊T·cf·k/E⌋                                     (capacity_factor = cf)
        pos_{t,e} = Σ_{t' ≤ t} 1[e ∈ S_{t'}]                     (1-based, token order)
        K_{t,e} = 1[e ∈ S_t] · 1[pos_{t,e} ≤ C]                  (capacity_quirk: pos < C)
        y_t     = Σ_e K_{t,e} q_{t,e} E_e(x_t)

    Tie rule: among equal gate scores the lower expert index is selected (``tf.math.top_k``).
    Capacity rule: assignments are counted per expert in token order (t = 0, 1, ...), every
    one of a token's k choices counting alike (no first-choice priority); the (C+1)-th and
    later assignments to an expert are dropped. Renormalization divides by the mass of the
    whole selected set S_t, dropped assignments included.

    Backward. The selection S_t and the capacity mask K are piecewise constant in z (they
    change only where two scores cross): they get no gradient and the gradient flows through
    the gate values of the kept assignments. With ``ȳ`` the cotangent of y::

        Ē_e(x_t) = K_{t,e} q_{t,e} ȳ_t
        ā_{t,e}  = K_{t,e} ⟨ȳ_t, E_e(x_t)⟩                       (cotangent of q_{t,e})

    Without renormalization ``q = p = softmax(z)``, whose VJP is ``z̄ = p ⊙ (ā − ⟨p, ā⟩)``.
    With it, ``q_t`` restricted to S_t is the softmax of ``z_t`` over S_t alone (the ratio
    p_e/Σ_S p = e^{z_e}/Σ_S e^{z}), so ``z̄_{t,e} = q_{t,e}(ā_{t,e} − ⟨q_t, ā_t⟩)`` with
    ``q_{t,e} = 0`` off S_t. Both are ``z̄ = q ⊙ (ā − ⟨q, ā⟩)`` with the q of the forward
    (q = p off S_t when not renormalizing: unselected experts still get gradient through the
    softmax's denominator).

    Args:
        z: gate logits (T, E), float32 or float64.
        expert_outputs: every expert's output per token (T, E, d).
        k: experts per token, 1 ≤ k ≤ E (WideNet's scripts: 2; no default).
        capacity_factor: cf > 0, or None (default) for no capacity (nothing dropped).
            WideNet's ImageNet and CIFAR-10 scripts use 1.2.
        renormalize: divide the selected gates by their sum (default False: the official
            ``Router`` combines with the raw ``p_{t,e}``).
        capacity_quirk: keep ``pos < C`` (C − 1 usable slots), as the official Keras-Switch
            code (default False: C slots); needs a capacity_factor.

    Returns:
        y: (T, d), the combined expert outputs, in the dtype of ``z``.

    Reference: Xue, Shi, Wei, Lou, Liu, You, *Go Wider Instead of Deeper*, AAAI 2022,
    arXiv:2107.11817; official code XueFuzhao/WideNet_Code, ``widenet/model_configs.py``
    (``Router.call``: ``tf.math.top_k`` of the softmax, ``position_in_expert = cumsum(mask) ·
    mask``, kept iff ``position < expert_capacity``; raw gates combined), capacity factor 1.2
    and k = 2 in ``widenet/submit_tpu.sh`` and ``widenet/cifar10_submit_tpu.sh``.

    >>> import numpy as np, refimpl
    >>> z = np.log(np.array([[0.5, 0.3, 0.2]]))        # p = [0.5, 0.3, 0.2]
    >>> outputs = np.eye(3)[None]                        # E_e(x) = e-th unit vector
    >>> refimpl.layers.topk_moe_routing(z, outputs, k=2).round(12)
    array([[0.5, 0.3, 0. ]])
    """
    p = softmax(z)
    selected = top_k_mask(z, k)
    capacity = (
        None if capacity_factor is None else expert_capacity(z.shape[0], z.shape[1], k, capacity_factor)
    )
    kept = kept_assignments(selected, capacity, capacity_quirk)
    if renormalize:
        q = np.where(selected, p, 0) / np.where(selected, p, 0).sum(axis=-1, keepdims=True)
    else:
        q = p
    combine = np.where(kept, q, 0).astype(z.dtype)
    y = np.einsum("te,ted->td", combine, expert_outputs)
    return y.astype(z.dtype, copy=False), (expert_outputs, q, kept, combine)


@topk_moe_routing.defvjp
def topk_moe_routing_backward(residuals, g_y):
    expert_outputs, q, kept, combine = residuals
    g_expert_outputs = combine[:, :, None] * g_y[:, None, :]
    g_q = np.where(kept, np.einsum("ted,td->te", expert_outputs, g_y), 0)
    g_z = q * (g_q - (g_q * q).sum(axis=-1, keepdims=True))
    return g_z.astype(q.dtype, copy=False), g_expert_outputs.astype(q.dtype, copy=False)


known_deviation(
    "topk_moe_routing",
    name="widenet-capacity-slot-zero",
    source="XueFuzhao/WideNet_Code widenet/model_configs.py Router.call",
    official="position_in_expert = cumsum(mask)·mask is 1-based and the assignment is kept iff "
    "position < expert_capacity: only C − 1 assignments per expert survive (slot 0 of the dispatch "
    "tensor stays empty)",
    paper="an expert holds C = ⌊T·cf·k/E⌋ tokens (Switch Transformer's expert capacity)",
    example=Example(
        args=(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[[1.0], [0.0]], [[1.0], [0.0]]])),
        kwargs={"k": 1, "capacity_factor": 2.0},
        official={"y": [[0.7311], [0.0]]},
        reference={"y": [[0.7311], [0.7311]]},
        note="C = ⌊2·2·1/2⌋ = 2; both tokens pick expert 0 at positions 1 and 2: the official code keeps "
        "only position 1 < 2",
    ),
    flag={"capacity_quirk": True},
)


@op(
    inputs={
        "z": FloatArray("T", "E"),
        "k": IntScalar(1),
        "weight": RealScalar(0),
    },
    outputs=("loss",),
    differentiable=("z",),
    check=_check_k,
)
def switch_load_balancing_loss(z, *, k=1, weight=1.0):
    r"""The Switch-Transformer auxiliary load-balancing loss on gate logits.

    Pushes the router towards a uniform load: the fraction of assignments each expert gets
    (``f``, a count: no gradient) times the mean probability the router gives it (``P``,
    differentiable). At a uniform router both are 1/E and the loss is ``λ``; it grows as the
    load concentrates.

    Forward, with ``p_t = softmax(z_t)`` and ``S_t = TopK(z_t, k)`` (ties: lowest index)::

        f_e    = (1/T) Σ_t (1/k) Σ_{j<k} 1[e = S_t^{(j)}]     (k = 1: the argmax indicator)
        P_e    = (1/T) Σ_t p_{t,e}
        L_aux  = λ · E · Σ_e f_e P_e

    computed before any capacity mask (as the official code does).

    Backward. f is piecewise constant in z (a count of selections): it is held fixed. Then
    ``∂L/∂p_{t,e} = λ E f_e / T``, and through the softmax VJP (``p ⊙ (p̄ − ⟨p, p̄⟩)``)::

        z̄_t = ḡ · (λ E / T) · p_t ⊙ (f − ⟨p_t, f⟩)

    with ḡ the cotangent of the scalar loss. Each row of z̄ sums to 0 (softmax shift
    invariance).

    Args:
        z: gate logits (T, E), float32 or float64.
        k: experts per token counted in f, 1 ≤ k ≤ E (default 1, Switch Transformer's top-1;
            WideNet's Router with k > 1 counts each of the k choices with weight 1/k).
        weight: λ ≥ 0 (default 1: the caller scales; WideNet's scripts use 0.01, the
            ``--aux_loss_alpha`` CLI default is 1.0).

    Returns:
        loss: a scalar in the dtype of ``z``.

    Reference: Xue et al., *Go Wider Instead of Deeper*, arXiv:2107.11817, official code
    XueFuzhao/WideNet_Code ``widenet/model_configs.py`` ``load_balanced_loss``
    (``mean_e(density_proxy·density)·E²·alpha`` = λ·E·Σ f P); Fedus, Zoph, Shazeer, *Switch
    Transformers*, arXiv:2101.03961, eqs. (4)-(6). With λ = 1 and k = 1 it equals
    transformers' Mixtral ``load_balancing_loss_func``.

    >>> import numpy as np, refimpl
    >>> z = np.log(np.array([[0.75, 0.25], [0.75, 0.25]]))   # both tokens pick expert 0
    >>> round(float(refimpl.layers.switch_load_balancing_loss(z)), 12)   # 2·(1·0.75 + 0·0.25)
    1.5
    """
    num_tokens, num_experts = z.shape
    p = softmax(z)
    f = top_k_mask(z, k).mean(axis=0) / k  # fraction of assignments per expert (constant)
    big_p = p.mean(axis=0)
    scale = weight * num_experts
    loss = z.dtype.type(scale * float((f * big_p).sum()))
    return loss, (p, f.astype(z.dtype), scale / num_tokens)


@switch_load_balancing_loss.defvjp
def switch_load_balancing_loss_backward(residuals, g_loss):
    p, f, scale_per_token = residuals
    dtype = p.dtype
    g_p = (dtype.type(scale_per_token) * np.asarray(g_loss, dtype=dtype)) * f  # ∂L/∂p_{t,e}, same each t
    g_z = p * (g_p - (p * g_p).sum(axis=-1, keepdims=True))
    return (g_z.astype(dtype, copy=False),)

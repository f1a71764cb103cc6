"""PINTO counterfactual regularization (Faithful Language Reasoning Using Prompt-Generated Rationales)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    Example,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    RealScalar,
    known_deviation,
    log_softmax,
    op,
    reduce_rows,
    row_weights,
    softmax,
)

__all__ = ["COUNTERFACTUAL_TARGETS", "PAPER", "pinto_counterfactual_loss"]

PAPER = Paper(
    "PINTO: Faithful Language Reasoning Using Prompt-Generated Rationales",
    arxiv="2211.01562",
    year=2023,
    code="wangpf3/pinto-faithful-language-reasoning",
)

#: The target of the perturbed-rationale term: the paper's uniform distribution, or the
#: official code's label-smoothed one-hot label.
COUNTERFACTUAL_TARGETS = ("label_smoothing", "uniform")


@op(
    inputs={
        "s": FloatArray("B", "K"),
        "s_perturbed": FloatArray("B", "K"),
        "y": IntArray("B", low=0, high="K"),
        "y_perturbed": IntArray("B", low=0, high="K", optional=True),
        "counter_factor": RealScalar(0),
        "counterfactual_target": OneOf(*COUNTERFACTUAL_TARGETS),
        "smoothing": RealScalar(0, 1),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("s", "s_perturbed"),
)
def pinto_counterfactual_loss(
    s,
    s_perturbed,
    y,
    y_perturbed=None,
    *,
    counter_factor=1.0,
    counterfactual_target="label_smoothing",
    smoothing=0.1,
    reduction="mean",
):
    r"""PINTO's reasoner loss: cross-entropy with the rationale, plus a counterfactual term that
    makes the reasoner unsure when the rationale is perturbed.

    PINTO's reasoning LM answers a multiple-choice question given a (prompt-generated)
    rationale per choice; each choice's score ``s_k`` is the length-normalized log-likelihood
    of the choice's text. To make it actually *use* the rationale, the same model is run on a
    perturbed rationale (upstream of this op: with probability 0.5 every rationale token is
    masked, otherwise 30% of them are replaced by random vocabulary tokens) and is trained to
    be *less confident* there: its perturbed scores ``s̃`` are pulled towards a flat target.

    Forward, per row (K choices; ``Y`` the one-hot label, ``λ = counter_factor``)::

        CE_i  = LSE(s_i) − s_{i,y_i}
        t_i   = (1 − ε) Ỹ_i + ε/K                      (label_smoothing; ε = smoothing)
              = 1/K                                    (uniform: the paper; ε = 1 above)
        C̃E_i  = −Σ_k t_ik log softmax(s̃_i)_k = LSE(s̃_i) − (1 − ε) s̃_{i,ỹ_i} − (ε/K) Σ_k s̃_ik
        ℓ_i   = CE_i + λ·C̃E_i
        L     = mean_i ℓ_i   (reduction="mean", the official F.cross_entropy; "sum"; "none")

    ``LSE`` subtracts the row max (no overflow); ``C̃E`` uses ``Σ_k t_k = 1``. ``Ỹ`` is the
    one-hot of ``y_perturbed``: the official loop draws the counterfactual batch from its own
    sampler (``train_dataloader_dict["mask"]``), so its labels are its own; pass None (default)
    when both terms score the same questions (``ỹ = y``). With ``"uniform"`` the labels of the
    perturbed batch do not enter.

    Backward. ``∂LSE(u)/∂u = softmax(u)``, so with ``p = softmax(s)``, ``q = softmax(s̃)`` and
    ``w_i`` the row's cotangent (``ḡ/B`` for the mean)::

        ∂ℓ_i/∂s_i  = p_i − Y_i                s̄_i  = w_i (p_i − Y_i)
        ∂ℓ_i/∂s̃_i  = λ (q_i − t_i)            s̃̄_i = w_i λ (q_i − t_i)

    (``∂C̃E/∂s̃_k = q_k Σ_j t_j − t_k`` and ``Σ_j t_j = 1``). Each row of either gradient sums
    to 0: the loss is invariant to adding a constant to a row of s or of s̃.

    Defaults from the official code (wangpf3/pinto-faithful-language-reasoning): ``main.py``
    adds ``args.counter_factor * F.cross_entropy(mask_outputs, labels,
    label_smoothing=args.label_smoothing_no_inference)`` to the task loss, with
    ``counter_factor`` 1.0 (argparse default and ``run.sh``) and label smoothing 0.1
    (``run.sh``: ``label_smoothing_no_inference=0.1``). The paper describes the target as the
    uniform distribution over the choices (``counterfactual_target="uniform"``); recorded as
    the deviation ``pinto-label-smoothing-target``.

    Args:
        s: choice scores with the rationale (B, K), float32 or float64.
        s_perturbed: choice scores with the perturbed rationale s̃ (B, K), same dtype.
        y: labels (B,), integers in [0, K).
        y_perturbed: labels of the perturbed batch ỹ (B,) (default None: ỹ = y).
        counter_factor: λ ≥ 0, the weight of the counterfactual term (default 1.0, official).
        counterfactual_target: "label_smoothing" (default, the official code) or "uniform"
            (the paper; ``smoothing`` is then not used).
        smoothing: ε ∈ [0, 1] of the label-smoothed target (default 0.1, official ``run.sh``);
            ε = 1 is the uniform target.
        reduction: "mean" (default), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (B,) for reduction="none", in the dtype of ``s``.

    Reference: Wang, Chan, Ilievski, Chen, Ren, *PINTO: Faithful Language Reasoning Using
    Prompt-Generated Rationales*, ICLR 2023, arXiv:2211.01562; official code
    wangpf3/pinto-faithful-language-reasoning (``main.py``, training loop; ``run.sh``).

    >>> import numpy as np, refimpl
    >>> s, y = np.array([[0.0, 0.0]]), np.array([0])
    >>> s_perturbed = np.array([[np.log(3.0), 0.0]])  # q = [3/4, 1/4]
    >>> loss = refimpl.losses.pinto_counterfactual_loss(s, s_perturbed, y, counterfactual_target="uniform")
    >>> round(float(loss), 7)  # log 2 − ½ log(3/16)
    1.5301354
    """
    dtype = s.dtype
    batch, num_choices = s.shape
    rows = np.arange(batch)
    labels_perturbed = y if y_perturbed is None else y_perturbed
    epsilon = 1.0 if counterfactual_target == "uniform" else smoothing
    factor = dtype.type(counter_factor)
    log_p = log_softmax(s)  # max-shifted: no overflow
    log_q = log_softmax(s_perturbed)
    cross_entropy = -log_p[rows, y]
    # −Σ_k t_k log q_k with t = (1 − ε) Ỹ + ε/K
    counterfactual = -dtype.type(1 - epsilon) * log_q[rows, labels_perturbed] - dtype.type(
        epsilon / num_choices
    ) * log_q.sum(axis=-1)
    per_row = cross_entropy + factor * counterfactual
    residuals = (
        softmax(s),
        softmax(s_perturbed),
        y,
        labels_perturbed,
        epsilon,
        factor,
        reduction,
    )
    return reduce_rows(per_row, reduction, dtype), residuals


@pinto_counterfactual_loss.defvjp
def pinto_counterfactual_loss_backward(residuals, g_loss):
    p, q, y, labels_perturbed, epsilon, factor, reduction = residuals
    dtype = p.dtype
    batch, num_choices = p.shape
    rows = np.arange(batch)
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, batch)[:, None]
    g_s = p.copy()
    g_s[rows, y] -= 1  # p − Y
    target = np.full_like(q, dtype.type(epsilon / num_choices))
    target[rows, labels_perturbed] += dtype.type(1 - epsilon)  # t = (1 − ε) Ỹ + ε/K
    g_s_perturbed = factor * (q - target)
    return (w * g_s).astype(dtype, copy=False), (w * g_s_perturbed).astype(dtype, copy=False)


known_deviation(
    pinto_counterfactual_loss,
    name="pinto-label-smoothing-target",
    source="wangpf3/pinto-faithful-language-reasoning, main.py, training loop "
    "(`F.cross_entropy(mask_outputs, labels, label_smoothing=args.label_smoothing_no_inference)`, "
    "0.1 in run.sh)",
    official="pulls the perturbed-rationale scores towards the label-smoothed one-hot label "
    "t = 0.9·Y + 0.1/K: the reasoner is still pushed to prefer the gold answer without a rationale",
    paper="pulls them towards the uniform distribution over the choices (less confident predictions "
    "when the rationale is perturbed), t = 1/K",
    example=Example(
        args=(np.array([[0.0, 0.0]]), np.array([[np.log(3.0), 0.0]]), np.array([0])),
        kwargs={"counterfactual_target": "uniform"},
        official={"loss": 1.0357599},
        reference={"loss": 1.5301354},
        note="K = 2, q = [3/4, 1/4]: log 2 − 0.95 log 0.75 − 0.05 log 0.25 vs log 2 − ½ log(3/16)",
    ),
    flag={"counterfactual_target": "label_smoothing"},
)

"""MixUp and AdaMixUp (MixUp as Locally Linear Out-Of-Manifold Regularization)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    Paper,
    array_namespace,
    known_deviation,
    log_softmax,
    op,
)

__all__ = ["PAPER", "adamixup_loss", "mixup"]

PAPER = Paper(
    "MixUp as Locally Linear Out-Of-Manifold Regularization",
    arxiv="1809.02499",
    year=2019,
    code="SITE5039/AdaMixUp",
)


def _check_unit_interval(arguments, name: str) -> None:
    """Mixing coefficients must lie in [0, 1] (a convex combination of two rows)."""
    values = arguments[name]
    xp = array_namespace(values)
    bad = (values < 0) | (values > 1)
    if bool(xp.any(bad)):
        row = int(xp.argmax(bad))
        raise ArgumentError(name, "mixing coefficients in [0, 1]", f"{float(values[row])!r} in row {row}")


def _check_mixup(arguments) -> None:
    _check_unit_interval(arguments, "lam")


@op(
    inputs={
        "x": FloatArray("B", "D"),
        "Y": FloatArray("B", "K"),
        "lam": FloatArray("B"),
        "perm": IntArray("B", low=0, high="B"),
    },
    outputs=("x_mixed", "y_mixed"),
    differentiable=("x",),
    check=_check_mixup,
)
def mixup(x, Y, lam, perm):
    r"""MixUp: each row is mixed with a partner row, inputs and labels with the same weight.

    MixUp trains on convex combinations of pairs of examples and of their labels; the paper
    reads it as a regularizer that forces the model to be locally linear between training
    points (out of the data manifold). The mixing coefficients λ (drawn from Beta(a, a)
    upstream) and the partner of each row (a permutation π of the batch, also drawn upstream)
    are inputs, so the op is deterministic.

    Forward, per row i::

        x̃_i = λ_i x_i + (1 − λ_i) x_{π(i)}
        ỹ_i = λ_i Y_i + (1 − λ_i) Y_{π(i)}

    Both use the same π and λ (the label of a mixed row is the mixture of the labels of the
    rows it is made of). Written as a convex combination, λ = 1 returns x_i and λ = 0 returns
    x_{π(i)} exactly.

    Backward (only x is differentiable; λ, π and the labels are constants). x_j enters x̃_j
    with weight λ_j and every x̃_i with π(i) = j with weight (1 − λ_i), so for the cotangent
    ḡ of x̃::

        x̄_j = λ_j ḡ_j + Σ_{i: π(i) = j} (1 − λ_i) ḡ_i

    i.e. ``x̄ = λ ⊙ ḡ`` plus a scatter-add of ``(1 − λ_i) ḡ_i`` into row π(i) (for a
    permutation every row receives exactly one term). The cotangent of ỹ has no
    differentiable input to flow to.

    Args:
        x: inputs (B, D), float32 or float64 (flatten images and other feature maps to
            (B, −1); the mixing is elementwise within a row).
        Y: labels (B, K): one-hot or soft.
        lam: mixing coefficients (B,), in [0, 1]. The original MixUp draws one λ ~ Beta(a, a)
            per batch: pass ``np.full(B, λ)``.
        perm: partner of each row (B,), integers in [0, B) (a permutation of the batch in
            MixUp; any index array is accepted, the backward adds the partner terms).

    Returns:
        x_mixed: x̃ (B, D); y_mixed: ỹ (B, K), in the dtype of x.

    Reference: Guo, Mao, Zhang, *MixUp as Locally Linear Out-Of-Manifold Regularization*,
    AAAI 2019, arXiv:1809.02499, Section "MixUp" (the mixing rule, shared by the original
    MixUp of Zhang et al. 2018); official code SITE5039/AdaMixUp.

    >>> import numpy as np, refimpl
    >>> x, Y = np.array([[1.0, 0.0], [3.0, 4.0]]), np.eye(2)
    >>> x_mixed, y_mixed = refimpl.regularizers.mixup(x, Y, np.array([0.25, 1.0]), np.array([1, 0]))
    >>> x_mixed.tolist(), y_mixed.tolist()  # row 0: ¼(1, 0) + ¾(3, 4)
    ([[2.5, 3.0], [3.0, 4.0]], [[0.25, 0.75], [0.0, 1.0]])
    """
    dtype = x.dtype
    weight = lam.astype(dtype, copy=False)[:, None]
    x_mixed = mix_rows(x, weight, perm)
    y_mixed = mix_rows(Y.astype(dtype, copy=False), weight, perm)
    return (x_mixed, y_mixed), (weight, perm)


def mix_rows(x, weight, perm):
    """``weight ⊙ x + (1 − weight) ⊙ x[perm]``: each row mixed with its partner row
    (``weight`` (B, 1) for one coefficient per row, (B, D) for one per entry)."""
    return weight * x + (1 - weight) * x[perm]


def mix_rows_backward(weight, perm, g):
    """The VJP of :func:`mix_rows` in x: ``weight ⊙ ḡ`` plus ``(1 − weight_i) ⊙ ḡ_i`` added
    into row ``perm[i]`` (a scatter-add: rows may repeat)."""
    g_x = weight * g
    np.add.at(g_x, perm, (1 - weight) * g)
    return g_x


@mixup.defvjp
def mixup_backward(residuals, cotangents):
    weight, perm = residuals
    g_x_mixed, _ = cotangents  # ỹ depends on no differentiable input
    return (mix_rows_backward(weight, perm, np.asarray(g_x_mixed).astype(weight.dtype, copy=False)),)


@op(
    inputs={
        "z_mix": FloatArray("M", "K"),
        "z_orig": FloatArray("M", "K"),
        "y1": FloatArray("M", "K"),
        "y2": FloatArray("M", "K"),
        "d_pos": FloatArray("P", 2),
        "d_neg": FloatArray("M", 2),
        "alpha": FloatArray("M"),
        "delta": FloatArray("M"),
        "u": FloatArray("M"),
        "stop_label_gradient": Flag(),
    },
    outputs=("loss",),
    differentiable=("z_mix", "z_orig", "d_pos", "d_neg", "alpha", "delta"),
)
def adamixup_loss(z_mix, z_orig, y1, y2, d_pos, d_neg, alpha, delta, u, *, stop_label_gradient=False):
    r"""AdaMixUp's training loss, from the network outputs: mixed-label CE plus the intrusion discriminator.

    MixUp can mix two images into something that looks like a third class ("manifold
    intrusion"), and the mixed label is then wrong. AdaMixUp learns, per pair, where the
    mixing coefficient may lie: a policy-region generator outputs an interval [α, α + Δ] and
    λ is drawn in it; an intrusion discriminator (sharing the classifier's trunk) learns to tell
    mixed images from real ones, and since the generator is trained through the same loss, it is
    pushed toward mixes that do not look like real data of another class.

    The networks live outside the op: it takes their outputs for one step of the official
    ``build_graph`` (M = B/2 pairs from two streams of B rows; the second half of stream 1 is
    kept as unseen positives for the discriminator)::

        z_mix  (M, K)  classifier logits on x̃ = λ x¹ + (1 − λ) x²  (x¹, x² the first halves)
        z_orig (M, K)  classifier logits on x¹
        d_pos  (P, 2)  discriminator logits on the positives [x_u; x¹]  (P = 2M in the code)
        d_neg  (M, 2)  discriminator logits on x̃
        alpha, delta (M,)  the generator's softmax outputs a, b (c discarded: α + Δ ≤ 1)
        u (M,)         the reparameterization draws U(0, 1)

    Forward (CE(z, y) = Σ_k y_k (LSE(z) − z_k) = −⟨y, log softmax(z)⟩, log-softmax evaluated
    stably)::

        λ_i  = α_i + u_i Δ_i
        ỹ_i  = λ_i y1_i + (1 − λ_i) y2_i
        CE_cls  = (1/2M) [Σ_i CE(z_mix,i, ỹ_i) + Σ_i CE(z_orig,i, y1_i)]      (one mean over [x̃; x¹])
        CE_intr = (1/(P + M)) [Σ_{pos} −log softmax(d)_1 + Σ_{neg} −log softmax(d)_0]
        L = CE_cls + CE_intr

    (weights 1 and 1, ``tf.div(ce_cost1 + ce_cost2, 1)``; the official weight decay
    1e−4·Σ½‖W‖² acts on the parameters, not on these outputs, and is left out.)

    Backward, for the scalar cotangent w, with p = softmax(z), q = softmax(d) and
    ``∂CE(z, y)/∂z = (Σ_k y_k) p − y``, ``∂CE(z, y)/∂y_k = −log p_k``::

        z̄_mix,i  = (w/2M) ((Σ_k ỹ_ik) p_mix,i − ỹ_i)
        z̄_orig,i = (w/2M) ((Σ_k y1_ik) p_orig,i − y1_i)
        d̄_pos,j  = (w/(P + M)) (q_j − e_1),   d̄_neg,i = (w/(P + M)) (q_i − e_0)
        λ̄_i      = (w/2M) Σ_k (−log p_mix,ik)(y1_ik − y2_ik)          (through ỹ_i only)
        ᾱ_i = λ̄_i,  Δ̄_i = u_i λ̄_i

    The path from λ through x̃ into z_mix and d_neg runs through the networks, outside the op:
    a caller adds it by back-propagating z̄_mix and d̄_neg through them and through
    ``mixup``/the mix x̃ = λx¹ + (1 − λ)x², whose λ is the same ``alpha + u·delta``.

    ``stop_label_gradient=True`` reproduces the official TensorFlow 1 code, whose
    ``tf.nn.softmax_cross_entropy_with_logits`` passes no gradient to its labels: ᾱ = Δ̄ = 0,
    and the generator learns only through x̃ (recorded as ``adamixup-label-stop-gradient``).

    Reference-only (no Numba/CuPy module): the op is a handful of softmax cross-entropies on
    (M, K) and (P + M, 2) logits (M = 64, K = 10 in the official setting), negligible beside
    the three network passes that produce its inputs.

    Args:
        z_mix, z_orig: classifier logits (M, K) on the mixed rows and on x¹.
        y1, y2: labels (M, K) of x¹ and x² (one-hot in the official code; soft labels allowed).
        d_pos: discriminator logits (P, 2) on the positives (class 1).
        d_neg: discriminator logits (M, 2) on the mixed rows (class 0).
        alpha, delta: the policy region's start α and width Δ (M,).
        u: uniform draws (M,) placing λ in [α, α + Δ].
        stop_label_gradient: the official code's stop-gradient on the mixed labels (default
            False: the derivative of the loss as written).

    Returns:
        loss: the scalar L, in the dtype of the inputs.

    Reference: Guo, Mao, Zhang, *MixUp as Locally Linear Out-Of-Manifold Regularization*, AAAI
    2019, arXiv:1809.02499, Section "AdaMixUp"; official code SITE5039/AdaMixUp,
    ``GitHub.AdaMixup.AAAI.MNIST.Cifar.py``, ``ResNet_Cifar_AdaMixup.build_graph``.

    >>> import numpy as np, refimpl
    >>> zeros = np.zeros((1, 2))  # every softmax uniform: each CE is log 2
    >>> loss = refimpl.regularizers.adamixup_loss(zeros, zeros, np.array([[1.0, 0.0]]),
    ...     np.array([[0.0, 1.0]]), zeros, zeros, np.array([0.2]), np.array([0.5]), np.array([0.4]))
    >>> round(float(loss), 7)  # CE_cls + CE_intr = log 2 + log 2
    1.3862944
    """
    dtype = z_mix.dtype
    pairs, positives = z_mix.shape[0], d_pos.shape[0]
    lam = alpha + u * delta
    y_mixed = lam[:, None] * y1 + (1 - lam[:, None]) * y2
    log_p_mix, log_p_orig = log_softmax(z_mix), log_softmax(z_orig)
    log_q_pos, log_q_neg = log_softmax(d_pos), log_softmax(d_neg)
    ce_classifier = -((y_mixed * log_p_mix).sum(dtype=np.float64) + (y1 * log_p_orig).sum(dtype=np.float64))
    ce_classifier /= 2 * pairs
    ce_intrusion = -(log_q_pos[:, 1].sum(dtype=np.float64) + log_q_neg[:, 0].sum(dtype=np.float64))
    ce_intrusion /= positives + pairs
    loss = np.asarray(ce_classifier + ce_intrusion, dtype=dtype)
    residuals = (log_p_mix, log_p_orig, log_q_pos, log_q_neg, y_mixed, y1, y2, u, stop_label_gradient)
    return loss, residuals


@adamixup_loss.defvjp
def adamixup_loss_backward(residuals, g_loss):
    log_p_mix, log_p_orig, log_q_pos, log_q_neg, y_mixed, y1, y2, u, stop_label_gradient = residuals
    dtype = log_p_mix.dtype
    pairs, positives = log_p_mix.shape[0], log_q_pos.shape[0]
    w = float(np.asarray(g_loss))
    c_cls = dtype.type(w / (2 * pairs))
    c_intr = dtype.type(w / (positives + pairs))
    # ∂CE(z, y)/∂z = (Σ y) p − y
    g_z_mix = c_cls * (y_mixed.sum(axis=-1, keepdims=True) * np.exp(log_p_mix) - y_mixed)
    g_z_orig = c_cls * (y1.sum(axis=-1, keepdims=True) * np.exp(log_p_orig) - y1)
    g_d_pos = c_intr * (np.exp(log_q_pos) - np.array([0, 1], dtype=dtype))
    g_d_neg = c_intr * (np.exp(log_q_neg) - np.array([1, 0], dtype=dtype))
    if stop_label_gradient:
        g_lam = np.zeros(pairs, dtype=dtype)
    else:
        # ∂CE/∂ỹ_k = −log p_k and ∂ỹ/∂λ = y1 − y2
        g_lam = c_cls * (-log_p_mix * (y1 - y2)).sum(axis=-1)
    return g_z_mix, g_z_orig, g_d_pos, g_d_neg, g_lam, (u * g_lam).astype(dtype, copy=False)


known_deviation(
    adamixup_loss,
    name="adamixup-label-stop-gradient",
    source="SITE5039/AdaMixUp, GitHub.AdaMixup.AAAI.MNIST.Cifar.py, ResNet_Cifar_AdaMixup.build_graph "
    "(`tf.nn.softmax_cross_entropy_with_logits(labels=label_mix, logits=logits)`, TensorFlow 1)",
    official="the mixed labels ỹ = λy¹ + (1 − λ)y² enter a TF1 softmax_cross_entropy_with_logits, which "
    "back-propagates into the logits only: λ gets no gradient through ỹ, the generator learns only "
    "through the mixed images x̃",
    paper="the loss as written is differentiable in λ through ỹ as well (reparameterized λ = α + uΔ): "
    "ᾱ = λ̄, Δ̄ = uλ̄ with λ̄ = (1/2M)Σ_k(−log p_mix,k)(y1_k − y2_k)",
    example=Example(
        args=(
            np.array([[0.0, np.log(3.0)]]),
            np.zeros((1, 2)),
            np.array([[1.0, 0.0]]),
            np.array([[0.0, 1.0]]),
            np.zeros((1, 2)),
            np.zeros((1, 2)),
            np.array([0.2]),
            np.array([0.5]),
            np.array([0.4]),
        ),
        official={"loss": 1.40328, "cotangent of 'alpha'": [0.0], "cotangent of 'delta'": [0.0]},
        reference={"loss": 1.40328, "cotangent of 'alpha'": [0.549306], "cotangent of 'delta'": [0.219722]},
        note="p_mix = (1/4, 3/4), λ = 0.4: λ̄ = ½(log 4 − log 4/3) = ½ log 3; the loss is the same",
    ),
    flag={"stop_label_gradient": True},
)

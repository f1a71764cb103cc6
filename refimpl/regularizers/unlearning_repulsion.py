"""Adapt-then-Unlearn's repulsion regularizer: push a GAN's parameters away from negatively adapted ones."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntArray,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    op,
)

__all__ = ["PAPER", "unlearning_repulsion_regularizer"]

PAPER = Paper(
    "Adapt then Unlearn: Exploring Parameter Space Semantics for Unlearning in "
    "Generative Adversarial Networks",
    arxiv="2309.14054",
    year=2023,
    code="atriguha/Adapt_Unlearn",
)


def _check(arguments) -> None:
    theta, theta_adapted, sizes = arguments["theta"], arguments["theta_adapted"], arguments["sizes"]
    sizes = np.asarray(sizes.get() if hasattr(sizes, "get") else sizes)
    if int(sizes.sum()) != theta.shape[0]:
        raise ArgumentError(
            "sizes",
            f"tensor sizes that add up to the length of theta ({theta.shape[0]})",
            f"sizes adding up to {int(sizes.sum())}",
        )
    if arguments["form"] == "reci":
        xp = array_namespace(theta)
        if bool(xp.all(theta_adapted == theta[None, :])):
            raise ArgumentError(
                "theta",
                "parameters that differ from an adapted model's for form='reci' "
                "(R = 1/(d·f) diverges at d = 0)",
                "theta equal to every adapted model (d = 0)",
            )


def _scale(n_models: int, n_tensors: int, official_scaling: bool) -> float:
    """c: the official ``(n_models/2)·(1/T)``, or the intended ``1/(2·n_models·T)``."""
    return (n_models / 2) / n_tensors if official_scaling else 1 / (2 * n_models * n_tensors)


def _repulsion(d, gamma, form):
    """R(d) and R'(d) with f = 1/γ: −d/f, 1/(d f) or 100 e^{−d/f}."""
    if form == "l2":
        return -gamma * d, -gamma
    if form == "reci":
        return gamma / d, -gamma / (d * d)
    decay = np.exp(-gamma * d)
    return 100 * decay, -100 * gamma * decay


@op(
    inputs={
        "theta": FloatArray("P"),
        "theta_adapted": FloatArray("M", "P"),
        "sizes": IntArray("T", low=1),
        "form": OneOf("l2", "reci", "exp"),
        "gamma": RealScalar(0, low_open=True),
        "official_scaling": Flag(),
    },
    outputs=("loss",),
    differentiable=("theta",),
    check=_check,
)
def unlearning_repulsion_regularizer(theta, theta_adapted, sizes, *, form, gamma=1.0, official_scaling=True):
    r"""Adapt-then-Unlearn repulsion: a penalty that falls as θ moves away from the adapted models.

    Adapt-then-Unlearn first fine-tunes a pretrained GAN generator on the few negative
    (unwanted) samples, giving adapted parameters θ_N (one per run, N = 1..n_models): the
    direction θ_N − θ points toward the unwanted feature. It then trains the generator on its
    usual adversarial loss while a repulsion term rewards distance from the adapted models,
    so the unwanted feature is unlearned while the generator keeps producing good samples.
    The distance is the parameter-space mean squared error, matched tensor by tensor::

        d(θ) = c · Σ_p Σ_N MSE(θ_N^(p), θ^(p)),   MSE = mean over the n_p entries of θ^(p)
        f = 1/γ
        R = −d/f  (l2),   1/(d f)  (reci),   100 e^{−d/f}  (exp)

    and the training loss is ``L_adv(G) + R(d)`` (only ``R`` is this op). The scalar factor is
    the official ``c = (n_models/2)·(1/T)`` (T matched tensors): the code averages the sum
    over models by dividing by 2 and then multiplies by the number of models, probably meaning
    a division by ``2·n_models``; the two agree for one adapted model only.
    ``official_scaling=False`` uses ``c = 1/(2·n_models·T)``.

    The list of matched tensors is passed flattened: ``theta`` is the concatenation of the
    generator's raveled tensors, ``theta_adapted`` row N the same for adapted model N, and
    ``sizes`` the number of entries of each tensor (``n_p``).

    Backward. ``MSE(θ_N^(p), θ^(p)) = (1/n_p) Σ_j (θ_j − θ_N,j)²``, so for an entry j of
    tensor p::

        ∂d/∂θ_j = c · Σ_N (2/n_p)(θ_j − θ_N,j) = (2c/n_p)(M θ_j − Σ_N θ_N,j)

    and the chain rule through R: ``R'_l2 = −1/f = −γ``, ``R'_reci = −1/(f d²) = −γ/d²``,
    ``R'_exp = −(100/f) e^{−d/f} = −100 γ e^{−γ d}``; ``θ̄_j = ḡ R'(d) ∂d/∂θ_j``. The adapted
    parameters are fixed targets (not differentiated).

    Args:
        theta: the generator's parameters, raveled and concatenated (P,), float32 or float64.
        theta_adapted: the adapted models' parameters in the same layout (M, P).
        sizes: the number of entries of each matched tensor (T,), adding up to P.
        form: "l2", "reci" or "exp" (required: no default form is pinned).
        gamma: γ > 0, ``f = 1/γ`` (default 1: f = 1, the unscaled forms −d, 1/d, 100 e^{−d}).
        official_scaling: c = (n_models/2)/T as in the official code (default True, since the
            intended factor is not pinned); False: c = 1/(2·n_models·T).

    Returns:
        loss: R(d), a scalar in the dtype of ``theta``.

    Reference: Tiwary, Guha, Panda, Prathosh, *Adapt then Unlearn: Exploring Parameter
    Space Semantics for Unlearning in Generative Adversarial Networks*, arXiv:2309.14054;
    official code atriguha/Adapt_Unlearn.

    >>> import numpy as np, refimpl
    >>> theta, adapted = np.array([1.0, 2.0]), np.array([[0.0, 0.0]])  # MSE = (1 + 4)/2
    >>> float(refimpl.regularizers.unlearning_repulsion_regularizer(theta, adapted, np.array([2]), form="l2"))
    -1.25
    """
    dtype = theta.dtype
    n_models, n_tensors = theta_adapted.shape[0], sizes.shape[0]
    c = _scale(n_models, n_tensors, official_scaling)
    entry_weight = np.repeat(1.0 / sizes, sizes).astype(dtype)  # 1/n_p for each entry of tensor p
    difference = theta[None, :] - theta_adapted  # (M, P): formed before squaring
    d = dtype.type(c) * (entry_weight * (difference * difference).sum(axis=0)).sum()
    loss, slope = _repulsion(d, dtype.type(gamma), form)
    residuals = (difference, entry_weight, c, slope)
    return np.asarray(loss, dtype=dtype), residuals


@unlearning_repulsion_regularizer.defvjp
def unlearning_repulsion_regularizer_backward(residuals, g_loss):
    difference, entry_weight, c, slope = residuals
    dtype = difference.dtype
    factor = dtype.type(float(g_loss) * float(slope) * 2 * c)
    g_theta = factor * entry_weight * difference.sum(axis=0)  # (2c/n_p) Σ_N (θ − θ_N)
    return (g_theta.astype(dtype, copy=False),)

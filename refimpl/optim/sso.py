"""SSO's target-space surrogate (Target-based Surrogates for Stochastic Optimization, Lavington et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Example, FloatArray, OneOf, Paper, RealScalar, known_deviation, op

__all__ = ["PAPER", "sso_surrogate"]

PAPER = Paper(
    "Target-based Surrogates for Stochastic Optimization",
    arxiv="2302.02607",
    year=2023,
    code="WilderLavington/Target-Based-Surrogates-For-Stochastic-Optimization",
)


def _check(arguments) -> None:
    if arguments["form"] == "code" and arguments["loss_t"] is not None:
        raise ArgumentError(
            "loss_t",
            "None with form='code' (the official surrogate drops the constant ℓ(z_t))",
            f"loss_t = {arguments['loss_t']!r}",
        )


@op(
    inputs={
        "z": FloatArray("n", "k"),
        "z_t": FloatArray("n", "k"),
        "grad_t": FloatArray("n", "k"),
        "eta": RealScalar(0, low_open=True),
        "loss_t": RealScalar(optional=True),
        "form": OneOf("paper", "code"),
    },
    outputs=("surrogate",),
    differentiable=("z",),
    check=_check,
)
def sso_surrogate(z, z_t, grad_t, *, eta, loss_t=None, form="paper"):
    r"""SSO's target-space surrogate: a linearization of the loss in the outputs plus a proximal term.

    Target optimization separates the (expensive) loss ℓ from the (cheap) model z(θ) that
    produces its "targets" (the outputs, e.g. logits). At an outer step t, one gradient
    ``∇ℓ(z_t)`` in target space (n rows, k outputs per row) builds a quadratic surrogate in
    z; the parameters then take m cheap inner steps on ``θ ↦ g_t(z(θ))`` without touching ℓ
    again. Completing the square, ``g_t(z) = const + (1/(2η))‖z − (z_t − η∇ℓ(z_t))‖²``:
    minimizing it over θ projects the target-space SGD step ``z_{t+½} = z_t − η∇ℓ(z_t)``
    onto the model's range (the paper's "projected SGD in target space"). When ℓ is
    (1/η)-smooth in z, ``g_t ≥ ℓ`` with equality at ``z_t`` (majorization-minimization).

    This op is the per-step term: its value at the current outputs z and its VJP in z, which
    backpropagates to θ through the model (for a linear model ``z = XΘ``,
    ``∂g_t/∂Θ = Xᵀ[∇ℓ(z_t) + (XΘ − z_t)/η]``). The anchor z_t and the gradient ∇ℓ(z_t) are
    constants (the official code ``.detach()``-es them). The inner optimizer (Armijo line
    search in the code) and the η schedules (constant, ``η_c√t``, exponential) are outside it:
    ``eta`` is this step's value.

    Forward, ``form="paper"`` (the paper's surrogate ``g_t``; sums over all n·k entries)::

        d   = z − z_t
        g_t = ℓ(z_t) + Σ ∇ℓ(z_t)·d + (1/(2η)) Σ d²

    With ``loss_t=None`` the constant ℓ(z_t) is left out (value ``g_t − ℓ(z_t)``; gradient
    and minimizer unchanged).

    Forward, ``form="code"`` (official ``optimizers/sgd_fmdopt.py``, ``SGD_FMDOpt.step``,
    its inner ``surrogate``: ``(dlt_dft*target / eta + (target - target_t)**2).mean()``),
    where ``eta`` is the code's η_c, an INVERSE step size::

        g_code = mean_{i,j} [ ∇ℓ(z_t)_ij · z_ij / η_c + (z_ij − z_t,ij)² ]

    With ``η_c = 1/(2η)``: ``g_code = (g_t − ℓ(z_t) + ⟨∇ℓ(z_t), z_t⟩)/(η_c n k)``, a positive
    multiple of the paper surrogate plus a constant, so both have the same minimizers (a
    recorded variant, ``sso-code-inverse-step-mean``).

    Backward. Only z is differentiable. Paper form: ``∂/∂z [Σ ∇ℓ·d] = ∇ℓ(z_t)`` and
    ``∂/∂z [(1/(2η)) Σ d²] = 2d/(2η) = d/η``, so with the scalar cotangent ḡ::

        z̄ = ḡ · (∇ℓ(z_t) + (z − z_t)/η)

    (at z = z_t: ``∇g_t(z_t) = ∇ℓ(z_t)``, the first-order agreement the paper's majorization
    needs). Code form: the mean contributes ``1/(n k)`` per entry, ``∂(∇ℓ·z/η_c)/∂z =
    ∇ℓ/η_c`` and ``∂(z − z_t)²/∂z = 2(z − z_t)``::

        z̄ = ḡ/(n k) · (∇ℓ(z_t)/η_c + 2(z − z_t))

    Defaults: ``form="paper"`` (the paper's definition). Not defaulted: ``eta``. The paper's
    η is tuned per problem (grid searched in its experiments) and the code's default
    ``eta=1e3`` (``SGD_FMDOpt.__init__``) is an inverse step η_c, so one default could not mean
    the same in both forms; it is a required argument.

    Args:
        z: current model outputs z(θ) (n, k), float32 or float64 (differentiable).
        z_t: the anchor outputs z(θ_t) at the outer step (n, k), same dtype (constant).
        grad_t: ∇ℓ(z_t), the loss gradient in target space (n, k), same dtype (constant).
        eta: the step size η > 0 (``form="paper"``) or the code's inverse step η_c > 0
            (``form="code"``); required.
        loss_t: ℓ(z_t), the constant of the paper form (default None: left out); must be None
            with ``form="code"``.
        form: ``"paper"`` (default) or ``"code"``.

    Returns:
        surrogate: the scalar surrogate value, in the dtype of ``z``.

    Reference: Lavington, Vaswani, Babanezhad, Schmidt, Le Roux, *Target-based Surrogates for
    Stochastic Optimization*, ICML 2023, arXiv:2302.02607; official code
    WilderLavington/Target-Based-Surrogates-For-Stochastic-Optimization,
    ``optimizers/sgd_fmdopt.py`` (``SGD_FMDOpt.step``, ``surrogate``).

    >>> import numpy as np, refimpl
    >>> z, z_t, grad_t = np.array([[1.0, 2.0]]), np.zeros((1, 2)), np.ones((1, 2))
    >>> float(refimpl.optim.sso_surrogate(z, z_t, grad_t, eta=0.5, loss_t=1.0))  # 1 + 3 + (1 + 4)
    9.0
    >>> float(refimpl.optim.sso_surrogate(z, z_t, grad_t, eta=0.5, form="code"))  # mean(3, 8)
    5.5
    """
    dtype = z.dtype.type
    d = z - z_t
    if form == "paper":
        linear = np.sum(grad_t * d)
        proximal = np.sum(d * d) / dtype(2 * eta)
        value = linear + proximal
        if loss_t is not None:
            value = dtype(loss_t) + value
    else:  # the official surrogate: mean of ∇ℓ·z/η_c + (z − z_t)²
        value = np.mean(grad_t * z / dtype(eta) + d * d)
    return dtype(value), (grad_t, d, eta, form)


@sso_surrogate.defvjp
def sso_surrogate_backward(residuals, g_surrogate):
    grad_t, d, eta, form = residuals
    dtype = d.dtype.type
    g = dtype(g_surrogate)
    if form == "paper":
        g_z = g * (grad_t + d / dtype(eta))
    else:
        g_z = (g / dtype(d.size)) * (grad_t / dtype(eta) + dtype(2) * d)
    return (g_z.astype(d.dtype, copy=False),)


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    sso_surrogate,
    name="sso-code-inverse-step-mean",
    source="WilderLavington/Target-Based-Surrogates-For-Stochastic-Optimization, optimizers/sgd_fmdopt.py, "
    "SGD_FMDOpt.step, surrogate (`(dlt_dft*target / eta + (target - target_t.detach()).pow(2)).mean()`)",
    official="minimizes mean[∇ℓ(z_t)·z/η_c + (z − z_t)²] with `eta` an INVERSE step size η_c (default 1e3): "
    "the paper surrogate without ℓ(z_t) and ⟨∇ℓ, z_t⟩, divided by η_c·n·k, under η_c = 1/(2η)",
    paper="g_t(z) = ℓ(z_t) + ⟨∇ℓ(z_t), z − z_t⟩ + (1/(2η))‖z − z_t‖² (sums, η a step size); the same "
    "minimizers, a different value and gradient scale",
    example=Example(
        args=(np.array([[1.0, 2.0]]), np.zeros((1, 2)), np.ones((1, 2))),
        kwargs={"eta": 0.5},
        official={"surrogate": 5.5},
        reference={"surrogate": 8.0},
        note="paper: ⟨1, z⟩ + ‖z‖²/(2·0.5) = 3 + 5; code: mean(1/0.5 + 1, 2/0.5 + 4) = mean(3, 8)",
    ),
    flag={"form": "code"},
)

"""Pseudo-residuals and the output step of gradient-boosted neural networks (Sequential Training of
Neural Networks with Gradient Boosting, Emami & Martínez-Muñoz)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, OneOf, Paper, RealScalar, op, sigmoid, softmax

__all__ = ["PAPER", "boosting_pseudo_residuals", "ridge_output_fit"]

PAPER = Paper(
    "Sequential Training of Neural Networks with Gradient Boosting",
    arxiv="2106.12680",
    year=2023,
    code="GAA-UAM/GBNN",
)

LOSSES = ("squared", "log_exponential", "multi_class")


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _check_labels(arguments) -> None:
    """The label conventions of the official losses: y ∈ {−1, +1} for ``log_exponential``,
    one-hot rows for ``multi_class`` (K >= 2)."""
    y, loss = _host(arguments["y"]), arguments["loss"]
    if loss == "log_exponential":
        bad = np.abs(y) != 1
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ArgumentError(
                "y", "labels in {−1, +1} for loss='log_exponential'", f"{y[bad][0]} in row {row}"
            )
    if loss == "multi_class":
        if y.shape[1] < 2:
            raise ArgumentError(
                "y", "one-hot rows over K >= 2 classes for loss='multi_class'", f"K = {y.shape[1]}"
            )
        one_hot = np.all((y == 0) | (y == 1), axis=1) & (y.sum(axis=1) == 1)
        if not one_hot.all():
            row = int(np.argmin(one_hot))
            raise ArgumentError("y", "one-hot rows for loss='multi_class'", f"row {row} = {y[row].tolist()}")


def _check_both_classes(arguments) -> None:
    """F_0 of the log-exponential loss is finite only when every column has both labels."""
    _check_labels(arguments)
    y = _host(arguments["y"])
    if arguments["loss"] == "log_exponential":
        one_class = np.abs(y.mean(axis=0)) == 1
        if one_class.any():
            column = int(np.argmax(one_class))
            raise ArgumentError(
                "y",
                "both labels −1 and +1 in every column for loss='log_exponential' "
                "(F_0 = ½ log((1 + ȳ)/(1 − ȳ)) is ±inf otherwise)",
                f"one class only in column {column}",
            )


def _residuals(y, F, loss):  # noqa: N803 - the paper's F
    """``r = −∂L(y, F)/∂F`` for the three official losses (elementwise for the first two)."""
    if loss == "squared":
        return y - F
    if loss == "log_exponential":
        # 2y/(1 + e^{2yF}) = 2y σ(−2yF): the logistic form cannot overflow
        return 2 * y * sigmoid(-2 * y * F)
    return y - softmax(F)  # max-subtracted softmax over the K columns


def _initial(y, loss):
    """The official F_0 = argmin_c Σ_i L(y_i, c), one value per output column."""
    if loss == "squared":
        return y.mean(axis=0)
    if loss == "log_exponential":
        mean = y.mean(axis=0)
        return 0.5 * np.log((1 + mean) / (1 - mean))  # |ȳ| < 1: both classes (checked)
    return np.zeros(y.shape[1], dtype=y.dtype)


@op(
    inputs={"y": FloatArray("n", "K"), "F": FloatArray("n", "K"), "loss": OneOf(*LOSSES)},
    outputs=("residuals", "initial"),
    check=_check_both_classes,
)
def boosting_pseudo_residuals(y, F, *, loss="squared"):  # noqa: N803 - the paper's F
    r"""Pseudo-residuals of gradient boosting: ``r = −∂L(y, F)/∂F`` at the current ensemble output.

    Gradient boosting of neural networks (GBNN) grows a network block by block: each new
    block of J hidden units is fitted to the negative gradient of the loss with respect to the
    current network output F (the pseudo-residuals), then added with a step ρ (see
    ``ridge_output_fit``). The boosting starts from the best constant ``F_0``. This op gives
    both, for the three losses of the official code.

    Forward (elementwise for the first two; ``F_0`` per output column)::

        squared          L = ½(y − F)²              r = y − F
                         F_0 = mean_i y_i
        log_exponential  L = log(1 + e^{−2yF}),  y ∈ {±1}
                         r = 2y/(1 + e^{2yF}) = 2y σ(−2yF)       (the sigmoid form: no overflow)
                         F_0 = ½ log((1 + ȳ)/(1 − ȳ))            (both classes required: ±inf otherwise)
        multi_class      L = −Σ_k Y_k log softmax(F)_k,  Y one-hot (K >= 2)
                         r = Y − softmax(F)                      (max-subtracted softmax)
                         F_0 = 0

    Derivations: ``∂/∂F ½(y − F)² = −(y − F)``; ``∂/∂F log(1 + e^{−2yF}) = −2y e^{−2yF}/(1 + e^{−2yF})
    = −2y/(1 + e^{2yF})``; ``∂/∂F_k (−Σ Y log softmax(F)) = softmax(F)_k − Y_k``. F_0 of the
    log-exponential loss sets ``Σ_i r_i = 0`` at a constant c: ``n₊/(1 + e^{2c}) = n₋/(1 + e^{−2c})``,
    i.e. ``e^{2c} = n₊/n₋ = (1 + ȳ)/(1 − ȳ)``.

    Reference-only: a closed form evaluated once per boosting step (no fast backend); not
    differentiable (the residuals are targets for the next block, not a loss).

    Args:
        y: targets (n, K): real values (``squared``), labels ±1 (``log_exponential``, K = 1 for the
            official binary case; both labels in every column, else F_0 is ±inf), one-hot rows
            (``multi_class``, K >= 2).
        F: the current ensemble output (n, K), same dtype.
        loss: ``"squared"`` (default, the official ``squared_loss``), ``"log_exponential"``
            (``log_exponential_loss``) or ``"multi_class"`` (``multi_class_loss``).

    Returns:
        residuals: r (n, K), in the dtype of ``y``.
        initial: F_0 (K,), in the dtype of ``y``.

    Reference: Emami, Martínez-Muñoz, *Sequential Training of Neural Networks with Gradient
    Boosting*, IEEE Access 2023, arXiv:2106.12680, Algorithm 1; official code GAA-UAM/GBNN,
    ``gbnn/_loss.py`` (``squared_loss``, ``log_exponential_loss``, ``multi_class_loss``:
    ``model0``, ``derive``).

    >>> import numpy as np, refimpl
    >>> y, F = np.array([[1.0], [-1.0], [1.0]]), np.zeros((3, 1))
    >>> r, F0 = refimpl.solvers.boosting_pseudo_residuals(y, F, loss="log_exponential")
    >>> r.ravel(), F0.round(6)               # 2y/(1 + e⁰) = y;  F_0 = ½ log((1 + ⅓)/(1 − ⅓)) = ½ log 2
    (array([ 1., -1.,  1.]), array([0.346574]))
    """
    residuals = _residuals(y, F, loss).astype(y.dtype, copy=False)
    initial = np.asarray(_initial(y, loss), dtype=y.dtype)
    return (residuals, initial), None


@op(
    inputs={
        "H": FloatArray("n", "J"),
        "r": FloatArray("n", "K"),
        "y": FloatArray("n", "K"),
        "F": FloatArray("n", "K"),
        "lam": RealScalar(0),
        "loss": OneOf(*LOSSES),
        "step": OneOf("newton", "constant"),
        "eta": RealScalar(0, low_open=True),
    },
    outputs=("weights", "block_output", "rho", "F_new"),
    check=_check_labels,
)
def ridge_output_fit(H, r, y, F, *, lam, loss="squared", step="newton", eta=1.0):  # noqa: N803
    r"""One boosting step's output layer: ridge fit of the pseudo-residuals, line search, update.

    Given the hidden features ``H = φ(XW + b)`` (n, J) of the new block, its output weights are
    the ridge solution that best predicts the pseudo-residuals r (n, K); the block's prediction
    ``f = H v`` is added to the ensemble with a step ρ, a one-step Newton line search on the loss
    along f scaled by η (the official ``newton_step``) or the constant η.

    Forward::

        v   = argmin_v ‖H v − r‖² + λ‖v‖² = (HᵀH + λI)⁻¹ Hᵀ r
              (solved as the least-squares problem [H; √λ I] v = [r; 0], never an inverse;
               the minimum-norm solution when λ = 0 and H is rank deficient)
        f   = H v
        s   = 1                                        (squared)
            = Σ r f / Σ f² r (2y − r)                  (log_exponential)
            = −Σ f (Y − P) / Σ f² P (P − 1), P = Y − r  (multi_class; sums over all entries)
        ρ   = η s  (step="newton")   or   η  (step="constant")
        F'  = F + ρ f

    The Newton step minimizes the second-order expansion of ``L(F + s f)`` in s: ``s = −Σ L'f / Σ L''f²``
    with ``−L' = r``; for the log-exponential loss ``L'' = 4σ(2yF)σ(−2yF) = r(2y − r)`` (y² = 1),
    for softmax cross-entropy the diagonal ``L''_k = P_k(1 − P_k)``. When the denominator is 0
    (f = 0: the residuals are already 0, or the features see none of them) s is set to 0: the
    update ρ f is 0 for any s (the official code divides 0 by 0).

    Not pinned by the paper (ν and the inner solver), pinned by the official code: the official
    block fit trains hidden and output weights jointly (scikit-learn ``MLPRegressor``, L2 penalty
    α = 1e−4, ``solver="lbfgs"``), an external solver call outside this op; here the hidden
    features are given and the output layer is the ridge solve the paper describes, λ required
    (no default). η = 1.0 (official ``eta``), ``step="newton"`` (official ``newton_step``).

    Reference-only: one small least-squares solve per boosting step; not differentiable.

    Args:
        H: hidden features of the new block (n, J), float32 or float64.
        r: pseudo-residuals at F (n, K) (from ``boosting_pseudo_residuals``).
        y: targets (n, K), the conventions of ``boosting_pseudo_residuals``.
        F: the current ensemble output (n, K).
        lam: ridge λ >= 0 (required).
        loss: ``"squared"`` (default), ``"log_exponential"`` or ``"multi_class"``.
        step: ``"newton"`` (default, official: ρ = η s) or ``"constant"`` (ρ = η).
        eta: η > 0, the shrinkage (official default 1.0).

    Returns:
        weights: v (J, K). block_output: f (n, K). rho: ρ (0-d). F_new: F + ρ f (n, K).

    Reference: Emami, Martínez-Muñoz, arXiv:2106.12680, Algorithm 1; official code GAA-UAM/GBNN,
    ``gbnn/GBNN.py`` (``GNEGNE.fit``: ``rho = self.eta * loss.newton_step(y, residuals, pred)``),
    ``gbnn/_loss.py`` (``newton_step``).

    >>> import numpy as np, refimpl
    >>> H, r = np.array([[1.0], [2.0]]), np.array([[2.0], [4.0]])
    >>> v, f, rho, F_new = refimpl.solvers.ridge_output_fit(H, r, r, np.zeros((2, 1)), lam=0.0)
    >>> v, float(rho), F_new.ravel()          # r = 2H exactly: v = 2, f = r, s = 1
    (array([[2.]]), 1.0, array([2., 4.]))
    """
    dtype = H.dtype
    num_features = H.shape[1]
    # ridge as least squares on the stacked system: no normal equations (their condition is squared)
    stacked_h = np.concatenate([H, np.sqrt(lam) * np.eye(num_features, dtype=dtype)])
    stacked_r = np.concatenate([r, np.zeros((num_features, r.shape[1]), dtype=dtype)])
    weights = np.linalg.lstsq(stacked_h, stacked_r, rcond=None)[0].astype(dtype, copy=False)
    block_output = H @ weights
    if loss == "squared":
        s = 1.0
    else:
        if loss == "log_exponential":
            numerator = np.sum(r * block_output)
            denominator = np.sum(block_output**2 * r * (2 * y - r))
        else:
            probs = y - r  # P = Y − r;  −Σ f (Y − P)/Σ f² P (P − 1) = Σ f r/Σ f² P (1 − P)
            numerator = np.sum(block_output * r)
            denominator = np.sum(block_output**2 * probs * (1 - probs))
        s = float(numerator / denominator) if denominator != 0 else 0.0
    rho = eta * s if step == "newton" else eta
    rho_ = dtype.type(rho)
    outputs = (weights, block_output, np.asarray(rho_, dtype=dtype), F + rho_ * block_output)
    return outputs, None

"""CETT activation sparsity, its per-layer threshold search and the PPL-p% bisection (Sparsing
Law, Luo et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import Flag, FloatArray, Function, InputError, IntScalar, Paper, RealScalar, op

__all__ = ["PAPER", "cett", "cett_threshold_search", "contribution_norms", "ppl_target_bisection"]

PAPER = Paper(
    "Sparsing Law: Towards Large Language Models with Greater Activation Sparsity",
    arxiv="2411.02335",
    year=2024,
    code="thunlp/SparsingLaw",
)


def contribution_norms(h, w_down):
    """``n_{t,i} = |h_{t,i}|·‖w_i‖₂`` (T, F) in float64, ``w_i = W_down[:, i]``: the norm of
    neuron i's contribution ``h_{t,i} w_i`` to token t's FFN output."""
    column_norms = np.sqrt(np.einsum("di,di->i", w_down.astype(np.float64), w_down.astype(np.float64)))
    return np.abs(h.astype(np.float64)) * column_norms[None, :]


def _cett_values(h, w_down, pruned):
    """Per token ``‖Σ_{i pruned} h_i w_i‖ / ‖Σ_i h_i w_i‖`` (0 where the output is 0), float64."""
    h64, w64 = h.astype(np.float64), w_down.astype(np.float64)
    y = h64 @ w64.T  # (T, d): the dense FFN output
    partial = np.where(pruned, h64, 0.0) @ w64.T  # the part the pruned neurons contribute
    norm_y = np.sqrt(np.einsum("td,td->t", y, y))
    norm_partial = np.sqrt(np.einsum("td,td->t", partial, partial))
    safe = np.where(norm_y > 0, norm_y, 1.0)
    return np.where(norm_y > 0, norm_partial / safe, 0.0)


@op(
    inputs={
        "h": FloatArray("T", "F"),
        "w_down": FloatArray("D", "F"),
        "epsilon": RealScalar(0),
        "inclusive": Flag(),
    },
    outputs=("cett", "sparsity"),
)
def cett(h, w_down, *, epsilon, inclusive=False):
    r"""CETT: the relative norm of the FFN output carried by the neurons a threshold ε prunes.

    Activation sparsity is measured by how many FFN neurons can be skipped: neuron i of
    token t contributes ``h_{t,i} w_i`` to the output ``y_t = W_down h_t`` (``w_i`` the i-th
    column of the down projection), with norm ``n_{t,i} = |h_{t,i}|·‖w_i‖``. Pruning every
    contribution smaller than ε drops the part ``Σ_{i: n_i < ε} h_i w_i`` of the output;
    CETT (cumulative errors of tail truncation, "ReLU² wins") is that part's norm relative
    to ‖y‖, and the sparsity is the fraction of neurons pruned.

    Forward, per token t (all in float64, outputs rounded to the input dtype)::

        n_i      = |h_i|·‖w_i‖₂,                 ‖w_i‖₂ = sqrt(Σ_d W_down[d, i]²)
        P        = {i : n_i < ε}                 ({i : n_i ≤ ε} with inclusive=True)
        CETT(ε)  = ‖Σ_{i∈P} h_i w_i‖₂ / ‖Σ_i h_i w_i‖₂      (0 when ‖y‖ = 0)
        sparsity = |P| / F

    CETT(0) = 0 and CETT(ε > max n) = 1, but CETT is NOT monotone in ε: the norm of a
    partial sum can shrink as further terms join it. Not differentiable (a mask and a
    measurement): reference plus fast backends, no VJP.

    Strictness (``inclusive``). The official inference code prunes with a STRICT
    ``|h_i| < t/‖w_i‖`` (``src/model_utils.py``, per-neuron thresholds), the official
    calibration (``calc_thresholds_given_cett``) with ``n_i ≤ t``; the default is the strict
    rule, ``inclusive=True`` gives the calibration's. They differ only where n_i = ε exactly.

    Args:
        h: FFN activations (T, F), float32/float64 (the input of the down projection).
        w_down: the down-projection weight W_down (D, F) (PyTorch's ``Linear(F, D).weight``).
        epsilon: the threshold ε ≥ 0 on contribution norms (required: the paper calibrates
            it per layer, see :func:`cett_threshold_search`).
        inclusive: False (default): prune ``n_i < ε`` (inference); True: ``n_i ≤ ε``
            (calibration).

    Returns:
        cett: (T,) CETT per token, in the dtype of ``h``.
        sparsity: (T,) fraction of neurons pruned per token, in the dtype of ``h``.

    Reference: Luo et al., *Sparsing Law: Towards Large Language Models with Greater
    Activation Sparsity*, arXiv:2411.02335, §3 (CETT); Zhang et al., *ReLU² Wins*,
    arXiv:2402.03804 (the CETT definition); official code thunlp/SparsingLaw,
    ``src/model_utils.py``.

    >>> import numpy as np, refimpl
    >>> h = np.array([[1.0, 1.0, 1.0]])
    >>> w = np.array([[1.0, -1.5, 3.0], [0.0, 0.0, 0.0]])  # contributions 1, −1.5, 3 on axis 0
    >>> refimpl.quantization_sparsity.cett(h, w, epsilon=2.0)  # |1 − 1.5| / |2.5|
    (array([0.2]), array([0.66666667]))
    """
    norms = contribution_norms(h, w_down)
    pruned = norms <= epsilon if inclusive else norms < epsilon
    values = _cett_values(h, w_down, pruned)
    sparsity = pruned.mean(axis=1)
    return (values.astype(h.dtype), sparsity.astype(h.dtype)), None


@op(
    inputs={
        "h": FloatArray("T", "F"),
        "w_down": FloatArray("D", "F"),
        "target": RealScalar(0, 1),
        "n_candidates": IntScalar(2),
        "quantile": RealScalar(0, 1),
        "wrap_left_zero": Flag(),
    },
    outputs=("threshold", "mean_cett", "iterations"),
)
def cett_threshold_search(h, w_down, *, target, n_candidates=65536, quantile=0.99, wrap_left_zero=False):
    r"""One CETT threshold per layer, found by the official integer bisection over a grid.

    Calibration (reference-only: a one-off search, not differentiable). All non-padding
    tokens of a calibration batch share ONE threshold t per layer, chosen so that the mean
    CETT at t is about the target (e.g. 0.2). The grid and the search are those of the
    official ``calc_thresholds_given_cett`` (thunlp/SparsingLaw, ``src/model_utils.py``)::

        n          = |h|·‖w_i‖  (T, F)                 (contribution norms, float64)
        sub        = n.flatten()[::max(T·F // n_candidates, 1)]
        q          = quantile(sub, quantile)           (linear interpolation, torch.quantile)
        thresholds = linspace(min n, q, n_candidates)
        c(t)       = mean_t ‖Σ_{i: n_i ≤ t} h_i w_i‖ / ‖y_t‖   (calibration prunes n_i ≤ t)
        left, right = 0, n_candidates − 1
        while left < right:
            mid = (left + right) // 2
            if c(thresholds[mid]) > target:  right = mid
            else:                             left = mid + 1
        t = thresholds[left − 1]

    CETT is not monotone in t, so the bisection finds *a* grid point, not the largest one
    under the target; the rule above (compare with ``>``, keep ``left − 1``) is the tie rule.
    When ``left`` ends at 0 (the target is below c at every visited point) the official
    ``thresholds[left − 1]`` wraps to the LAST candidate in Python; that is refused with an
    InputError unless ``wrap_left_zero=True`` reproduces it. Tokens with y = 0 count as
    CETT 0 in the mean.

    Args:
        h: calibration activations (T, F) of one layer (non-padding tokens only).
        w_down: the layer's down projection (D, F).
        target: the CETT target in [0, 1] (required; the paper uses 0.2 as an example).
        n_candidates: grid size (default 65536, official ``calc_thresholds_given_cett``).
        quantile: upper end of the grid as a quantile of the subsampled norms (default 0.99,
            official).
        wrap_left_zero: reproduce the official wrap-around to the last candidate when
            ``left = 0`` (default False: InputError).

    Returns:
        threshold: the chosen t (scalar, dtype of ``h``).
        mean_cett: c(t), the mean CETT at t (dtype of ``h``).
        iterations: the number of bisection steps (int64 scalar).

    Reference: Luo et al., arXiv:2411.02335, §3; official ``src/model_utils.py``,
    ``calc_thresholds_given_cett``.

    >>> import numpy as np, refimpl
    >>> h = np.array([[1.0, 2.0, 4.0]]); w = np.eye(3)
    >>> t, c, k = refimpl.quantization_sparsity.cett_threshold_search(
    ...     h, w, target=0.3, n_candidates=4, quantile=1.0)
    >>> float(t), round(float(c), 4), int(k)   # grid 1, 2, 3, 4: c(2) = √5/√21 > 0.3 ≥ c(1)
    (1.0, 0.2182, 2)
    """
    norms = contribution_norms(h, w_down)
    flat = norms.ravel()
    stride = max(flat.size // n_candidates, 1)
    upper = np.quantile(flat[::stride], quantile)  # linear interpolation, as torch.quantile
    thresholds = np.linspace(flat.min(), upper, n_candidates)

    def mean_cett(t):
        return float(_cett_values(h, w_down, norms <= t).mean())

    left, right = 0, n_candidates - 1
    iterations = 0
    while left < right:
        mid = (left + right) // 2
        if mean_cett(thresholds[mid]) > target:
            right = mid
        else:
            left = mid + 1
        iterations += 1
    if left == 0 and not wrap_left_zero:
        raise InputError(
            f"cett_threshold_search: the target {target} is below the mean CETT at every grid point "
            "the bisection visited (left = 0): the official thresholds[left - 1] would wrap to the "
            "last candidate; pass wrap_left_zero=True to reproduce that, or raise the target"
        )
    chosen = thresholds[left - 1]  # left = 0 wraps to the last candidate (official, flagged)
    dtype = h.dtype
    return (
        np.asarray(chosen, dtype=dtype),
        np.asarray(mean_cett(chosen), dtype=dtype),
        np.asarray(iterations, dtype=np.int64),
    ), None


@op(
    inputs={
        "evaluate": Function(),
        "p": RealScalar(0, low_open=True),
        "tol": RealScalar(0, low_open=True),
        "max_iter": IntScalar(1),
    },
    outputs=("target", "sparsity", "history", "iterations", "converged"),
)
def ppl_target_bisection(evaluate, *, p=1.0, tol=1e-3, max_iter=100):
    r"""PPL-p%: the largest CETT target whose perplexity stays within p% of the dense model.

    Reference-only (a search around a model evaluation; not differentiable). The sparsity of
    a model is reported at the CETT target c whose truncated perplexity rises by p% over the
    dense one; c is found by bisection on [0, 1] (c = 0 is the dense model)::

        ppl_0 = PPL(0)                                   (dense)
        lower, upper = 0, 1
        while upper − lower > tol:
            c = (lower + upper)/2
            if PPL(c)/ppl_0 < 1 + p/100:  lower = c      (within budget: go higher)
            else:                         upper = c
        return lower and the sparsity measured at it

    ``evaluate(c) -> (ppl, sparsity)`` runs the model with every layer's threshold
    calibrated to CETT target c (:func:`cett_threshold_search`) and returns its perplexity
    and activation sparsity. It is called once at 0, once per step and once at the result.

    Args:
        evaluate: the oracle ``c -> (perplexity, sparsity)`` (finite reals, ppl > 0).
        p: the perplexity budget in percent (default 1: PPL-1%, the paper's headline metric).
        tol: bisection tolerance on c (default 1e−3, the paper's §3; the released
            ``calc_activation.py`` uses 1e−6: pass ``tol=1e-6`` for it).
        max_iter: a cap on the steps (default 100; ⌈log₂(1/tol)⌉ = 10 steps suffice for 1e−3).

    Returns:
        target: the final ``lower`` (float64 scalar).
        sparsity: the sparsity ``evaluate`` reports at it (float64 scalar).
        history: (iterations, 3) float64 rows ``(c, ppl(c)/ppl_0, lower after the step)``.
        iterations: steps taken (int64 scalar).
        converged: whether ``upper − lower ≤ tol`` at the end (bool scalar).

    Reference: Luo et al., arXiv:2411.02335, §3 (PPL-p% sparsity); official
    ``calc_activation.py`` (thunlp/SparsingLaw).

    >>> import refimpl
    >>> evaluate = lambda c: (10.0 * (1.0 + 0.03 * c), 0.9 * c)   # PPL +1% at c = 1/3
    >>> c, s, history, k, ok = refimpl.quantization_sparsity.ppl_target_bisection(evaluate)
    >>> float(c) * 1024, int(k), bool(ok)        # ⌊1024/3⌋/1024 after 10 halvings
    (341.0, 10, True)
    """

    def call(c):
        ppl, sparsity = evaluate(float(c))
        ppl, sparsity = float(ppl), float(sparsity)
        if not (np.isfinite(ppl) and ppl > 0 and np.isfinite(sparsity)):
            raise InputError(
                f"ppl_target_bisection: evaluate({c}) returned ({ppl}, {sparsity}); expected ppl > 0"
            )
        return ppl, sparsity

    dense_ppl, _ = call(0.0)
    budget = 1.0 + p / 100.0
    lower, upper = 0.0, 1.0
    history = []
    while upper - lower > tol and len(history) < max_iter:
        c = (lower + upper) / 2
        ratio = call(c)[0] / dense_ppl
        if ratio < budget:
            lower = c
        else:
            upper = c
        history.append((c, ratio, lower))
    _, sparsity = call(lower)
    return (
        np.asarray(lower, dtype=np.float64),
        np.asarray(sparsity, dtype=np.float64),
        np.asarray(history, dtype=np.float64).reshape(-1, 3),
        np.asarray(len(history), dtype=np.int64),
        np.asarray(upper - lower <= tol),
    ), None

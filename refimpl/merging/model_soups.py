"""Model soups: uniform, greedy and learned weight averages of fine-tuned models (Wortsman et al.)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import (
    Example,
    Flag,
    FloatArray,
    Function,
    InputError,
    Paper,
    StateDict,
    known_deviation,
    op,
    softmax,
    softmax_backward,
)

__all__ = ["PAPER", "greedy_order", "greedy_soup", "learned_soup", "uniform_soup"]

PAPER = Paper(
    "Model soups: averaging weights of multiple fine-tuned models improves accuracy without "
    "increasing inference time",
    arxiv="2203.05482",
    year=2022,
    code="mlfoundations/model-soups",
)


# -- the uniform soup ------------------------------------------------------------------------
@op(
    inputs={"thetas": FloatArray("...", "K")},
    outputs=("theta",),
    state_dict=StateDict({"thetas": "models"}, outputs=("theta",)),
)
def uniform_soup(thetas):
    r"""The uniform soup: the plain average of K fine-tuned models, ``θ = (1/K) Σ_k θ_k``.

    Models fine-tuned from the same pretrained initialization with different hyperparameters
    often lie in one low-loss basin; averaging their weights then gives a single model that
    is usually better than each ingredient (and never costs more at inference), though not
    always: an ingredient from another basin can ruin the average, which is why the greedy
    soup checks every addition on held-out data.

    Forward, for one parameter tensor, with the K models stacked on the last axis
    (``thetas[..., k] = θ_k``)::

        θ = (1/K) Σ_k θ_k          summed in float64, divided once, rounded once to the dtype

    so the result is the correctly rounded mean in almost every element, whatever the
    order of the models. The official code accumulates ``θ_k·(1/K)`` model by model in the
    models' dtype (``uniform_soup = θ_k * (1/K) + uniform_soup``), which can differ from the
    mean by a few float32 roundings (~1e-7 relative), and depends on the order (a recorded
    known deviation, a convention: not reproduced).

    Not differentiable (a merge rule; the learned soup is the differentiable one).

    Whole models: ``uniform_soup([model_1, ..., model_K])`` with state dicts (mappings of
    names to arrays) averages every floating-point tensor and copies integer buffers (batch
    norm's step counter) from the first model.

    Args:
        thetas: the K ingredients of one parameter tensor stacked on a trailing axis, shape
            ``θ.shape + (K,)`` (``numpy.stack(models, axis=-1)``), float32 or float64.

    Returns:
        theta: the soup, shape ``thetas.shape[:-1]``, dtype of ``thetas``.

    Reference: Wortsman et al., *Model soups: averaging weights of multiple fine-tuned
    models improves accuracy without increasing inference time*, ICML 2022, arXiv:2203.05482
    (the uniform soup); official code mlfoundations/model-soups, ``main.py``
    (step 3).

    >>> import numpy as np, refimpl
    >>> models = [np.array([1.0, 2.0]), np.array([3.0, 2.0]), np.array([2.0, 5.0])]
    >>> refimpl.merging.uniform_soup(np.stack(models, axis=-1))
    array([2., 3.])
    """
    count = thetas.shape[-1]
    mean = thetas.sum(axis=-1, dtype=np.float64) / count  # float64 accumulation, one division
    return mean.astype(thetas.dtype), None


known_deviation(
    uniform_soup,
    name="model-soups-uniform-running-sum",
    source="mlfoundations/model-soups, main.py, step 3 (uniform soup): "
    "`uniform_soup = {k: v * (1./NUM_MODELS) + uniform_soup[k] ...}`, model by model",
    official="accumulates θ_k·(1/K) model by model in the models' dtype: the result depends on the "
    "order of the models and can be a float32 rounding or two away from the mean",
    paper="θ = (1/K) Σ_k θ_k; refimpl sums in float64 and rounds once (the correctly rounded mean "
    "in almost every element, whatever the order)",
    example=Example(
        args=(np.array([[0.02, 0.81, 0.91]], dtype=np.float32),),
        official={"theta": [0.5800000429]},
        reference={"theta": [0.5799999833]},
        rtol=1e-8,
        note="the mean of the float32 inputs is 0.58000000939; float32 spacing there is 6e-8",
    ),
    convention=True,
)


# -- the greedy soup -------------------------------------------------------------------------
def _score(evaluate, candidate) -> float:
    """The oracle's held-out accuracy of a candidate soup, as a finite float."""
    value = evaluate(candidate)
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise InputError(
            f"greedy_soup: argument 'evaluate': expected a callable returning a real number (the "
            f"held-out accuracy of the soup it is given), got {type(value).__name__} {value!r:.60}"
        ) from None
    if not math.isfinite(score):
        raise InputError(
            f"greedy_soup: argument 'evaluate': expected a finite held-out accuracy, got {score} "
            "(a NaN would reject every candidate silently)"
        )
    return score


def greedy_order(accuracies: np.ndarray, official_tie_order: bool = False) -> np.ndarray:
    """The order in which the greedy soup tries the ingredients: by accuracy, descending.

    Ties keep the LOWER index first (a stable sort on ``−accuracy``); ``official_tie_order``
    puts the HIGHER index first, as the official code's ascending stable sort followed by
    ``reverse()`` does.

    >>> accuracies = np.array([0.5, 0.7, 0.5])
    >>> greedy_order(accuracies).tolist(), greedy_order(accuracies, official_tie_order=True).tolist()
    ([1, 0, 2], [1, 2, 0])
    """
    if official_tie_order:
        return np.argsort(accuracies, kind="stable")[::-1].copy()
    return np.argsort(-accuracies, kind="stable")


@op(
    inputs={
        "thetas": FloatArray("N", "K"),
        "accuracies": FloatArray("K"),
        "evaluate": Function(),
        "official_tie_order": Flag(),
    },
    outputs=("soup", "ingredients"),
    state_dict=StateDict({"thetas": "models_flat", "evaluate": "function_flat"}, outputs=("soup",)),
)
def greedy_soup(thetas, accuracies, evaluate, *, official_tie_order=False):
    r"""The greedy soup: add fine-tuned models to the average one by one, keeping each only if
    the held-out accuracy strictly improves.

    The ingredients are tried from the best individual model down. The soup starts as the
    best model, with the best accuracy so far being that model's held-out accuracy (as
    given, not re-evaluated). Each next model is averaged in tentatively; the candidate is
    kept only if ``evaluate`` scores it STRICTLY higher than the best so far (an equal
    score is rejected). The soup is therefore never worse on the held-out set than the best
    single model, and it is one model: no inference cost.

    Forward, over a whole model flattened into one vector of N parameters::

        order  = argsort(accuracies), descending, stable (ties: lower index first)
        soup   = θ_{order[0]},  n = 1,  best = accuracies[order[0]]
        for k in order[1:]:
            candidate = soup·(n/(n + 1)) + θ_k·(1/(n + 1))       (the running mean)
            if evaluate(candidate) > best:
                soup, n, best = candidate, n + 1, evaluate(candidate)

    evaluated as the official code does: the two coefficients are computed in float64 and
    rounded once to the dtype, the candidate in the models' dtype. ``evaluate`` is called
    once per candidate (K − 1 times).

    Tie order (``official_tie_order``). Among models of equal held-out accuracy the paper
    does not fix the order; this op tries the lower index first (a stable descending sort).
    The official code sorts ascending (stable) and then reverses the list, so among equal
    accuracies the HIGHER index comes first: ``official_tie_order=True`` reproduces it
    (a recorded known deviation). Only exact ties of the given accuracies are affected.

    Not differentiable (a selection rule).

    Whole models: ``greedy_soup([model_1, ..., model_K], accuracies, evaluate)`` with state
    dicts; ``evaluate`` then receives each candidate as a state dict (float tensors averaged,
    integer buffers copied from the first model) and ``soup`` comes back as a state dict.
    ``accuracies`` must have the models' float dtype (no argument is cast).

    Args:
        thetas: the K ingredients, flattened, stacked on the last axis: shape (N, K),
            float32 or float64.
        accuracies: (K,) held-out accuracy of each ingredient alone (any real score where
            higher is better), same float dtype as ``thetas``.
        evaluate: ``evaluate(candidate) -> float``, the held-out accuracy of a candidate
            soup (an (N,) vector; a state dict in whole-model calls). Must return a finite
            real number.
        official_tie_order: False (default): ties in ``accuracies`` keep the lower index
            first; True: the higher index first (the official code).

    Returns:
        soup: (N,) the greedy soup, dtype of ``thetas``.
        ingredients: int64 array of the indices of the models in the soup, in the order
            they were added (the first is the best single model).

    Reference: Wortsman et al., arXiv:2203.05482, Recipe 1 (GreedySoup); official code
    mlfoundations/model-soups, ``main.py`` (step 4: the sort, the running mean
    ``soup·(n/(n + 1.)) + new·(1./(n + 1))`` and the strict ``>``).

    >>> import numpy as np, refimpl
    >>> thetas = np.array([[0.5, 2.0, 10.0]])                  # three one-parameter models
    >>> held_out = lambda theta: 1.0 - abs(float(theta[0]) - 1.0) / 10   # best at θ = 1
    >>> accuracies = np.array([held_out(t) for t in thetas.T])  # 0.95, 0.9, 0.1
    >>> soup, ingredients = refimpl.merging.greedy_soup(thetas, accuracies, held_out)
    >>> soup, ingredients    # (0.5 + 2)/2 = 1.25 kept (0.975 > 0.95); with 10: 4.17, rejected
    (array([1.25]), array([0, 1]))
    """
    order = greedy_order(accuracies, official_tie_order)
    first = int(order[0])
    soup = thetas[:, first].copy()
    ingredients = [first]
    best = float(accuracies[first])
    dtype = thetas.dtype.type
    for k in order[1:]:
        n = len(ingredients)
        # the running mean of n + 1 models, in the official order of operations
        candidate = soup * dtype(n / (n + 1.0)) + thetas[:, k] * dtype(1.0 / (n + 1))
        score = _score(evaluate, candidate)
        if score > best:  # STRICT: an equal held-out accuracy is rejected
            soup, best = candidate, score
            ingredients.append(int(k))
    return (soup, np.array(ingredients, dtype=np.int64)), None


class _ConstantAccuracy(float):
    """An oracle that scores every candidate the same (a float, so that the record's example
    stays plain data)."""

    def __call__(self, candidate) -> float:
        return float(self)


known_deviation(
    greedy_soup,
    name="model-soups-greedy-tie-order-reversed",
    source="mlfoundations/model-soups, main.py, step 4 (greedy soup): "
    "`sorted(individual_model_val_accs.items(), key=operator.itemgetter(1))` then `.reverse()`",
    official="sorts the held-out accuracies ascending with a stable sort and reverses the list, so "
    "among models of EQUAL held-out accuracy the one listed last is tried (and, if first, starts "
    "the soup) first",
    paper="sort the ingredients by decreasing held-out accuracy; refimpl keeps ties in index order "
    "(a stable descending sort: the lower index first)",
    example=Example(
        args=(np.array([[1.0, 3.0]]), np.array([0.5, 0.5])),
        kwargs={"evaluate": _ConstantAccuracy(0.5)},
        official={"soup": [3.0], "ingredients": [1]},
        reference={"soup": [1.0], "ingredients": [0]},
        note="two equally accurate models and a held-out accuracy that never improves: the soup is "
        "whichever model is tried first",
    ),
    flag={"official_tie_order": True},
)


# -- the learned soup ------------------------------------------------------------------------
@op(
    inputs={"thetas": FloatArray("...", "K"), "alpha": FloatArray("K")},
    outputs=("theta",),
    differentiable=("alpha",),
    state_dict=StateDict({"thetas": "models", "alpha": "per_tensor"}, outputs=("theta",)),
)
def learned_soup(thetas, alpha):
    r"""The learned soup: a softmax-weighted average of K models with learned mixing logits α.

    Instead of a fixed average, the mixing weights are learned by gradient descent on
    held-out data: ``p = softmax(α)`` keeps them positive and summing to one, so the soup
    stays inside the convex hull of the ingredients. With one α for the whole model every
    tensor is mixed alike; with one α per parameter tensor ("by layer", the official
    variant) each tensor has its own mixture. The official training also learns a
    temperature β on the logits (``β·f(x; θ(α))``), outside this op.

    Forward, for one parameter tensor (models stacked on the last axis)::

        p = softmax(α)                               (max subtracted: exp cannot overflow)
        θ = Σ_k p_k θ_k                              accumulated k = 1, 2, …, K in the dtype

    in the official order (``sum(θ_k·p_k for k)``).

    Backward. θ is linear in p, so for a cotangent θ̄ (shape of θ)::

        p̄_k = ∂⟨θ̄, θ⟩/∂p_k = ⟨θ̄, θ_k⟩_F                      (Frobenius inner product)
        ᾱ   = J_softmaxᵀ p̄ = p ⊙ (p̄ − ⟨p, p̄⟩)              (softmax's VJP, J = diag(p) − ppᵀ)

    ᾱ sums to zero (softmax is invariant to a shift of α). The ingredients are frozen
    (their cotangent ``θ̄_k = p_k θ̄`` is not returned).

    Whole models: ``learned_soup([model_1, ..., model_K], alpha)`` with one (K,) α shared
    by every tensor, or a mapping ``{name: (K,) α}`` for per-layer logits. Through
    ``refimpl.vjp`` a shared α gets the SUM over tensors of the per-tensor ᾱ (the chain
    rule: every tensor uses the same α).

    Args:
        thetas: the K ingredients of one parameter tensor stacked on a trailing axis, shape
            ``θ.shape + (K,)``, float32 or float64.
        alpha: (K,) mixing logits, same dtype. The official initialization is uniform
            mixing (``alpha_raw = softmax(ones)``: all logits equal).

    Returns:
        theta: the soup, shape ``thetas.shape[:-1]``, dtype of ``thetas``.

    Reference: Wortsman et al., arXiv:2203.05482, Appendix I (learned soup); official code
    mlfoundations/model-soups, ``learned_bylayer.py`` (``AlphaWrapper``: per-layer logits,
    ``softmax(alpha_raw, dim=1)``).

    >>> import numpy as np, refimpl
    >>> thetas = np.stack([np.array([0.0, 4.0]), np.array([2.0, 0.0])], axis=-1)
    >>> refimpl.merging.learned_soup(thetas, np.log(np.array([3.0, 1.0])))  # p = (3/4, 1/4)
    array([0.5, 3. ])
    """
    p = softmax(alpha)
    theta = thetas[..., 0] * p[0]
    for k in range(1, thetas.shape[-1]):  # the official order: Σ_k θ_k p_k, k = 1, 2, …
        theta = theta + thetas[..., k] * p[k]
    return np.asarray(theta, dtype=thetas.dtype), (thetas, p)


@learned_soup.defvjp
def learned_soup_backward(residuals, g_theta):
    thetas, p = residuals
    count = thetas.shape[-1]
    g_p = g_theta.reshape(-1) @ thetas.reshape(-1, count)  # p̄_k = ⟨θ̄, θ_k⟩
    return (softmax_backward(p, g_p),)

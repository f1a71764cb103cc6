"""The binary-kl inverse and the PAC-Bayes bounds of discrete prompts (Understanding prompt
engineering may not require rethinking generalization, Akinwande et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = ["PAPER", "binary_kl", "kl_inverse", "pac_bayes_prompt_bound"]

PAPER = Paper(
    "Understanding prompt engineering may not require rethinking generalization",
    arxiv="2310.03957",
    year=2024,
)


def binary_kl(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``kl(q‖p) = q log(q/p) + (1 − q) log((1 − q)/(1 − p))`` in float64, elementwise.

    A term with a zero weight (q = 0, or 1 − q = 0) is dropped (``0 log 0 = 0``); p = 1 with
    q < 1 (or p = 0 with q > 0) gives +inf. ``log(1 − ·)`` is taken as ``log1p(−·)``, exact for
    tiny p where ``1 − p`` rounds to 1.
    """
    q = np.asarray(q, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = np.where(q > 0, q * (np.log(q) - np.log(p)), 0.0)
        # log1p: for p below the float64 eps, 1 − p rounds to 1 and log(1 − p) to 0
        negative = np.where(q < 1, (1 - q) * (np.log1p(-q) - np.log1p(-p)), 0.0)
    return positive + negative


def _check_kl_inverse(arguments) -> None:
    q, c = arguments["q"], arguments["c"]
    if bool(np.any((q < 0) | (q > 1))):
        raise ArgumentError("q", "empirical risks q in [0, 1]", f"values in [{q.min()}, {q.max()}]")
    if bool(np.any(c < 0)):
        raise ArgumentError("c", "kl budgets c >= 0", f"minimum {c.min()}")


def _kl_inverse(q, c, tol, max_iter):
    """The bisection of ``kl_inverse`` on float64 arrays: (p, iterations, converged)."""
    lo = q.copy()  # kl(q‖q) = 0 <= c: always feasible
    hi = np.ones_like(q)  # kl(q‖1) = +inf > c (q < 1): never feasible
    done = (c == 0) | (q == 1)  # the sup is q itself: no bisection
    hi[done] = q[done]
    iterations = np.zeros(q.shape, dtype=np.int64)
    converged = done.copy()
    active = ~done
    while active.any() and (max_iter is None or int(iterations.max(initial=0)) < max_iter):
        mid = lo + (hi - lo) / 2
        # tol = 0: run until the midpoint rounds onto an end (adjacent floats bracket the sup)
        adjacent = (mid == lo) | (mid == hi)
        feasible = binary_kl(q, mid) <= c
        lo = np.where(active & feasible, mid, lo)
        hi = np.where(active & ~feasible, mid, hi)
        iterations += active
        finished = active & ((hi - lo <= tol) | adjacent)
        converged |= finished
        active &= ~finished
    return hi, iterations, converged


@op(
    inputs={
        "q": FloatArray("N"),
        "c": FloatArray("N"),
        "tol": RealScalar(0),
        "max_iter": IntScalar(1, optional=True),
    },
    outputs=("p", "iterations", "converged"),
    check=_check_kl_inverse,
)
def kl_inverse(q, c, *, tol=0.0, max_iter=None):
    r"""The binary-kl inverse ``kl⁻¹(q, c)``: the largest true risk p whose Bernoulli kl from
    the empirical risk q is at most c.

    PAC-Bayes-kl (Seeger/Maurer) bounds state ``kl(R̂‖R) ≤ c`` for the empirical risk R̂ and
    the true risk R; the tightest upper bound on R they imply is the inverse of the binary kl
    in its second argument on [q, 1], where ``kl(q‖·)`` increases from 0 to +inf::

        kl(q‖p)    = q log(q/p) + (1 − q) log((1 − q)/(1 − p))      (0 log 0 = 0)
        kl⁻¹(q, c) = sup{p ∈ [q, 1] : kl(q‖p) ≤ c}

    Forward: bisection on the bracket ``[lo, hi] = [q, 1]`` (kl(q‖q) = 0 ≤ c, kl(q‖1) = +inf
    for q < 1), elementwise in float64::

        mid = lo + (hi − lo)/2;   kl(q‖mid) ≤ c  ?  lo = mid  :  hi = mid
        stop when hi − lo ≤ tol, or when mid rounds onto lo or hi (the bracket is two
        adjacent floats), or after max_iter halvings

    and returns ``hi``, the end that is never feasible, so the result is an upper bound on
    the sup (a conservative risk bound). Edge cases: c = 0 gives q, q = 1 gives 1 (both
    exact, 0 iterations); q = 0 drops the q-term (``kl(0‖p) = −log(1 − p)``, so
    ``kl⁻¹(0, c) = 1 − e^{−c}``); a huge c gives 1 − O(e^{−c}) → 1.

    Defaults: none are from the paper (which evaluates the bound numerically without naming a
    solver). ``tol = 0`` asks for the full float64 precision and is reached by the stopping
    rule on adjacent floats in at most ~1100 halvings (the exponent range of float64), so no
    iteration cap is needed (``max_iter=None``); both are arguments for a cheaper evaluation.

    Reference-only: a scalar root-finding for a bound, not a per-sample kernel. Not
    differentiable (compared on outputs).

    Args:
        q: empirical risks (N,) in [0, 1], float32 or float64.
        c: kl budgets (N,) ≥ 0, same dtype.
        tol: stop when the bracket is at most ``tol`` wide (default 0: to adjacent floats).
        max_iter: the most halvings per element (default None: no cap).

    Returns:
        p: ``kl⁻¹(q, c)`` (N,), in the dtype of ``q`` (computed in float64).
        iterations: (N,) int64, the halvings each element took.
        converged: (N,) bool, whether the stopping rule (not the cap) ended it.

    Reference: Seeger, *PAC-Bayesian generalisation error bounds for Gaussian process
    classification* (JMLR 2002) and Maurer, *A note on the PAC Bayesian theorem* (2004) for the
    kl bound; used in Akinwande, Jiang, Sam, Kolter, *Understanding prompt engineering may not
    require rethinking generalization*, ICLR 2024, arXiv:2310.03957.

    >>> import numpy as np, refimpl
    >>> p, iterations, converged = refimpl.other.kl_inverse(np.array([0.1, 0.0]), np.array([0.05, 1.0]))
    >>> p.round(7), bool(converged.all())      # kl⁻¹(0.1, 0.05) = 0.2200786; 1 − 1/e
    (array([0.2200786, 0.6321206]), True)
    """
    p, iterations, converged = _kl_inverse(
        q.astype(np.float64), c.astype(np.float64), float(tol), None if max_iter is None else int(max_iter)
    )
    return (p.astype(q.dtype), iterations, converged), None


BOUNDS = ("occam", "kl", "mcallester")


def _check_bound(arguments) -> None:
    train_error, token_log_probs = arguments["train_error"], arguments["token_log_probs"]
    if bool(np.any((train_error < 0) | (train_error > 1))):
        raise ArgumentError(
            "train_error",
            "empirical 0-1 risks in [0, 1]",
            f"values in [{train_error.min()}, {train_error.max()}]",
        )
    if bool(np.any(token_log_probs > 0)):
        raise ArgumentError(
            "token_log_probs",
            "log-probabilities <= 0 (pad shorter prompts with 0 = log 1)",
            f"maximum {token_log_probs.max()}",
        )


@op(
    inputs={
        "train_error": FloatArray("N"),
        "token_log_probs": FloatArray("N", "T"),
        "n": IntScalar(1),
        "delta": RealScalar(0, 1, low_open=True, high_open=True),
        "bound": OneOf(*BOUNDS),
        "tol": RealScalar(0),
        "max_iter": IntScalar(1, optional=True),
    },
    outputs=("risk_bound",),
    check=_check_bound,
)
def pac_bayes_prompt_bound(train_error, token_log_probs, *, n, delta, bound, tol=0.0, max_iter=None):
    r"""PAC-Bayes bound on the 0-1 risk of a prompt, with a language model as the prior.

    A prompt h is a discrete hypothesis (a fixed image encoder and the text encoder map it to
    a linear classifier). With the prior P(h) given by a language model over prompts and a
    point-mass posterior on the chosen prompt, the PAC-Bayes KL term is the prompt's code
    length ``KL = log(1/P(h)) = −Σ_t log p(token_t | tokens_<t)`` (nats), small for short,
    natural prompts, so the classical bounds are tight (a few points above the test error).

    Forward, per prompt (``R̂`` its training error on n examples, 1 − δ the confidence)::

        KL = −Σ_t token_log_probs[t]                         (summed in float64)
        "occam":      R ≤ R̂ + sqrt((KL + log(1/δ))/(2n))                      (Occam/Hoeffding)
        "kl":         R ≤ kl⁻¹(R̂, (KL + log(2√n/δ))/n)                  (Seeger/Maurer, kl_inverse)
        "mcallester": R ≤ R̂ + sqrt((KL + log(1/δ) + 2)/(2n − 1))              (McAllester 1999)

    The "occam" and "mcallester" forms are not clipped at 1 (a vacuous bound stays visible);
    "kl" lies in [R̂, 1]. ``tol`` and ``max_iter`` go to ``kl_inverse`` ("kl" only).

    Not pinned (which bound the paper reports): the paper (§3) was not found in the sources
    searched; an explainer by the first author names McAllester's bound
    with the +2 and 2n − 1 terms, printed without the square root, while the CIFAR-10 numbers
    quoted beside it fit only the square-root form. So ``bound`` is a required argument with
    no default; "mcallester" is the square-root form.

    Reference-only: a per-prompt bound evaluation. Not differentiable.

    Args:
        train_error: empirical 0-1 risks R̂ (N,) in [0, 1], float32 or float64.
        token_log_probs: (N, T) per-token log-probabilities (nats) of each prompt under the
            prior language model, ≤ 0; pad shorter prompts with 0 (= log 1).
        n: the number of training examples the errors were measured on (≥ 1).
        delta: the failure probability δ in (0, 1).
        bound: "occam", "kl" or "mcallester" (required: see above).
        tol, max_iter: the kl inverse's stopping rule (defaults: to adjacent floats, no cap).

    Returns:
        risk_bound: (N,) the bound on each prompt's true risk, in the dtype of ``train_error``.

    Reference: Akinwande, Jiang, Sam, Kolter, *Understanding prompt engineering may not
    require rethinking generalization*, ICLR 2024, arXiv:2310.03957; McAllester, *PAC-Bayesian
    model averaging* (COLT 1999); Maurer (2004).

    >>> import numpy as np, refimpl
    >>> lp = np.array([[np.log(0.5), np.log(0.5)]])          # KL = 2 log 2
    >>> b = refimpl.other.pac_bayes_prompt_bound(np.array([0.1]), lp, n=100, delta=0.05, bound="occam")
    >>> round(float(b[0]), 6)                                 # 0.1 + sqrt((2 log 2 + log 20)/200)
    0.248021
    """
    risk = train_error.astype(np.float64)
    kl_term = -token_log_probs.astype(np.float64).sum(axis=1)  # log 1/P(h), in float64
    log_inverse_delta = np.log(1 / delta)
    if bound == "occam":
        value = risk + np.sqrt((kl_term + log_inverse_delta) / (2 * n))
    elif bound == "mcallester":
        value = risk + np.sqrt((kl_term + log_inverse_delta + 2) / (2 * n - 1))
    else:
        budget = (kl_term + np.log(2 * np.sqrt(n) / delta)) / n
        value, _, _ = _kl_inverse(risk, budget, float(tol), None if max_iter is None else int(max_iter))
    return value.astype(train_error.dtype), None

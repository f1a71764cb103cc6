"""LoL on a tiny synthetic retrieval batch: the objective, its hand-chained gradient, a few steps.

LoL (Zhu et al., arXiv:2204.11545) revises each query n times with decreasing pseudo-relevance
feedback and adds a comparative term asking the revision with more feedback to have the
smaller reformulation loss. Here the revised query vectors themselves are the parameters
(the paper produces them with a BERT reformulator; that model is not part of refimpl):

    pr   = lol_passage_ranking_loss(q, C, positives)            (Q,)   one loss per revision
    J(q) = λ_pr · mean(pr) + λ_cr · LoL(pr reshaped (Q0, n))

The gradient with respect to q chains the hand-written VJPs: LoL's VJP gives a cotangent on
``pr``, to which the mean adds ``λ_pr/Q``; the passage-ranking VJP maps that to ``q̄``. A few
gradient steps on q lower J, and the revisions that see more feedback end up with the
smaller losses.
"""

from __future__ import annotations

import numpy as np

import refimpl

N_ORIGINAL, N_REVISIONS, N_PASSAGES, DIM = 4, 3, 24, 16
LAMBDA_PR, LAMBDA_CR = 1.0, 1.0  # the official run scripts' λ_cr = 1 (λ_pr defaults to 1)
STEPS, LEARNING_RATE = 12, 0.5


def make_batch(seed: int = 0):
    """Unit-norm passages, 1–2 positives per original query, revisions that get worse with MORE feedback.

    Revision k of group g starts at ``positive_centroid + noise·(n − k)``-ish: the revision
    with the most feedback (k = 0) is the noisiest, so LoL starts out violated.
    """
    rng = np.random.default_rng(seed)
    corpus = rng.standard_normal((N_PASSAGES, DIM))
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    positives = np.full((N_ORIGINAL * N_REVISIONS, 2), -1, dtype=np.int64)
    queries = np.empty((N_ORIGINAL * N_REVISIONS, DIM))
    for group in range(N_ORIGINAL):
        count = 1 + group % 2
        chosen = rng.choice(N_PASSAGES, size=count, replace=False)
        centroid = corpus[chosen].mean(axis=0)
        for revision in range(N_REVISIONS):
            row = group * N_REVISIONS + revision
            positives[row, :count] = chosen  # every revision keeps its query's positives
            noise = 0.6 * (N_REVISIONS - revision) * rng.standard_normal(DIM) / np.sqrt(DIM)
            queries[row] = 2.0 * centroid + noise
    return queries, corpus, positives


def objective_and_gradient(queries, corpus, positives, lambda_cr=LAMBDA_CR):
    """J(q) and ∂J/∂q by chaining the passage-ranking and LoL VJPs."""
    pr, pullback_pr = refimpl.vjp("lol_passage_ranking_loss", queries, corpus, positives)
    by_query = pr.reshape(N_ORIGINAL, N_REVISIONS)
    lol, pullback_lol = refimpl.vjp("lol_comparative_regularization", by_query)
    (g_by_query,) = pullback_lol(np.array(1.0))
    g_pr = LAMBDA_PR / pr.shape[0] + lambda_cr * g_by_query.reshape(-1)  # mean's VJP + LoL's VJP
    g_queries, _ = pullback_pr(g_pr)  # the corpus is fixed: its cotangent is dropped
    objective = LAMBDA_PR * pr.mean() + lambda_cr * float(lol)
    return float(objective), g_queries, pr, float(lol)


def violated_pairs(pr: np.ndarray) -> int:
    """Pairs i < j of a query's revisions where more feedback (i) has the larger loss."""
    by_query = pr.reshape(N_ORIGINAL, N_REVISIONS)
    upper = np.triu(np.ones((N_REVISIONS, N_REVISIONS), dtype=bool), k=1)
    return int(((by_query[:, :, None] > by_query[:, None, :]) & upper).sum())


def main(seed: int = 0) -> dict[str, float]:
    queries, corpus, positives = make_batch(seed)
    objectives, lols, violations = [], [], []
    for step in range(STEPS + 1):
        objective, g_queries, pr, lol = objective_and_gradient(queries, corpus, positives)
        objectives.append(objective)
        lols.append(lol)
        violations.append(violated_pairs(pr))
        print(
            f"step {step:2d}: J = {objective:.4f}  mean(pr) = {pr.mean():.4f}  LoL = {lol:.4f}"
            f"  violated pairs = {violations[-1]}/{N_ORIGINAL * N_REVISIONS * (N_REVISIONS - 1) // 2}"
        )
        if step < STEPS:
            queries = queries - LEARNING_RATE * g_queries
    return {
        "objective_first": objectives[0],
        "objective_last": objectives[-1],
        "largest_objective_increase": float(max(np.diff(objectives))),
        "lol_first": lols[0],
        "lol_last": lols[-1],
        "violated_pairs_first": violations[0],
        "violated_pairs_last": violations[-1],
    }


if __name__ == "__main__":
    main()

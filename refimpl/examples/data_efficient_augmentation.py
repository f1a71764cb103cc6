"""CRAIG coresets of augmented data: a weighted 10% subset that carries the full-data gradient.

Data-Efficient Augmentation (Liu & Mirzasoleiman, arXiv:2210.08363) trains on a small
weighted subset of the (augmented) data chosen so that its weighted gradient approximates the
full gradient (CRAIG, arXiv:1906.01827). Here, on a seeded synthetic 3-class problem with
unbalanced classes and four augmented copies (jitter and scaling) of every original point, a
softmax-regression model ``z = W x̃`` (x̃ = [x, 1]) is at a mid-training point W₀, and:

1. per-example gradient proxies ``craig_gradient_proxy(z, y, h=x̃, use_linear=True)``: for a
   linear softmax head the outer product ``(softmax(z_i) − e_{y_i}) x̃_iᵀ`` IS the gradient of
   ``ℓ_i = CE(W x̃_i, y_i)`` w.r.t. W, so their mean is the full-data gradient exactly;
2. the per-class budgets ``class_budget_split`` (the official ``equal_num=True``: the same
   budget for every class, whatever its size);
3. per class, the facility-location greedy ``facility_location_greedy`` on the proxies (the
   official submodlib kernel ``exp(−‖g_i − g_j‖/d)``);
4. the weights ``coreset_cluster_weights``: each selected point stands for its cluster, the
   points whose most similar selected point it is.

Then the weighted coreset gradient ``(1/m) Σ_{j∈S} γ_j ∇ℓ_j`` (γ normalized to sum to m) is
compared with the full gradient ``(1/n) Σ_i ∇ℓ_i``, against the same coreset with uniform
weights (biased: every class gets the same budget) and against uniform random subsets of the
same size; and a few gradient steps on the weighted coreset objective ``(1/m) Σ_j γ_j ℓ_j``
lower the full-data loss nearly as much as full-data steps do.

The logit-only proxy ``softmax(z_i) − e_{y_i}`` (the official default, without the features)
is also selected with and reported: its clusters group points by prediction error only, so
the weights are right per class but the features inside a cluster vary; it is printed for
comparison, not asserted beyond beating random subsets on average.
"""

from __future__ import annotations

import numpy as np

from refimpl.authoring import log_softmax, softmax
from refimpl.data_selection import (
    class_budget_split,
    coreset_cluster_weights,
    craig_gradient_proxy,
    facility_location_greedy,
)

CLASSES, FEATURES = 3, 4
ORIGINALS_PER_CLASS = (120, 80, 40)  # unbalanced: equal budgets need the weights
AUGMENTED_COPIES = 4  # every original appears 1 + 4 times
BUDGET_FRACTION = 0.1
RANDOM_SUBSETS = 50
STEPS, LEARNING_RATE = 10, 0.5


def make_data(seed: int = 0):
    """Originals from three overlapping Gaussian classes plus jittered, rescaled copies.

    Returns ``(x̃, y)``: features with a trailing 1 (the bias) (n, FEATURES + 1), labels (n,).
    """
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(CLASSES) / CLASSES
    means = np.zeros((CLASSES, FEATURES))
    means[:, 0], means[:, 1] = 1.5 * np.cos(angles), 1.5 * np.sin(angles)
    features, labels = [], []
    for c, count in enumerate(ORIGINALS_PER_CLASS):
        originals = means[c] + rng.standard_normal((count, FEATURES))
        copies = [originals]
        for _ in range(AUGMENTED_COPIES):  # the augmentation: scale ~U[0.85, 1.15] and jitter
            scale = rng.uniform(0.85, 1.15, size=(count, 1))
            copies.append(originals * scale + 0.15 * rng.standard_normal((count, FEATURES)))
        block = np.concatenate(copies)
        features.append(block)
        labels.append(np.full(block.shape[0], c))
    x = np.concatenate(features)
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1), np.concatenate(labels)


def initial_weights(seed: int = 0) -> np.ndarray:
    """W₀ (CLASSES, FEATURES + 1): a random model, part-way through training (not W = 0,
    where every logit proxy of a class would be the same vector)."""
    return 0.4 * np.random.default_rng(seed + 1).standard_normal((CLASSES, FEATURES + 1))


def per_example_losses(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``ℓ_i = −log softmax(W x̃_i)_{y_i}``."""
    return -log_softmax(x @ w.T)[np.arange(y.shape[0]), y]


def weighted_gradient(w: np.ndarray, x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``∂/∂W Σ_i weights_i ℓ_i = Σ_i weights_i (softmax(z_i) − e_{y_i}) x̃_iᵀ`` (hand-derived)."""
    error = softmax(x @ w.T)
    error[np.arange(y.shape[0]), y] -= 1
    return (weights[:, None] * error).T @ x


def select_coreset(w, x, y, *, use_linear: bool):
    """Proxies at W, per-class budgets, the greedy, the weights: ``(indices, γ, budgets)``."""
    z = x @ w.T
    proxies = craig_gradient_proxy(z, y, h=x if use_linear else None, use_linear=use_linear)
    counts = np.bincount(y, minlength=CLASSES)
    budget = int(round(BUDGET_FRACTION * y.shape[0]))
    budgets = class_budget_split(counts, np.arange(CLASSES), budget=budget)
    indices, _ = facility_location_greedy(proxies, y, budgets)
    weights, _ = coreset_cluster_weights(proxies, y, indices)  # normalized: Σγ = m
    return indices, weights, budgets


def relative_error(estimate: np.ndarray, full: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - full) / np.linalg.norm(full))


def subset_gradient(w, x, y, indices, weights) -> np.ndarray:
    """``(1/m) Σ_{j∈S} γ_j ∇ℓ_j``: the gradient of the (weighted) mean loss on the subset."""
    return weighted_gradient(w, x[indices], y[indices], weights / indices.shape[0])


def train(w, x, y, indices, weights, steps=STEPS):
    """Gradient descent on ``(1/m) Σ_j γ_j ℓ_j``; the full-data mean loss after every step."""
    full_losses = [float(per_example_losses(w, x, y).mean())]
    for _ in range(steps):
        w = w - LEARNING_RATE * subset_gradient(w, x, y, indices, weights)
        full_losses.append(float(per_example_losses(w, x, y).mean()))
    return full_losses


def main(seed: int = 0) -> dict[str, float]:
    x, y = make_data(seed)
    w0 = initial_weights(seed)
    n = y.shape[0]
    full = weighted_gradient(w0, x, y, np.full(n, 1.0 / n))
    proxies = craig_gradient_proxy(x @ w0.T, y, h=x, use_linear=True)

    indices, weights, budgets = select_coreset(w0, x, y, use_linear=True)
    m = indices.shape[0]
    uniform = np.ones(m)
    logit_indices, logit_weights, _ = select_coreset(w0, x, y, use_linear=False)
    rng = np.random.default_rng(seed + 2)
    random_errors = np.array(
        [
            relative_error(subset_gradient(w0, x, y, rng.choice(n, size=m, replace=False), uniform), full)
            for _ in range(RANDOM_SUBSETS)
        ]
    )
    results = {
        "n": n,
        "coreset_size": m,
        "proxy_mean_minus_full_gradient": float(np.abs(proxies.mean(axis=0) - full.reshape(-1)).max()),
        "coreset_weighted_error": relative_error(subset_gradient(w0, x, y, indices, weights), full),
        "coreset_uniform_error": relative_error(subset_gradient(w0, x, y, indices, uniform), full),
        "logit_proxy_coreset_weighted_error": relative_error(
            subset_gradient(w0, x, y, logit_indices, logit_weights), full
        ),
        "random_error_median": float(np.median(random_errors)),
        "random_error_best": float(random_errors.min()),
        "weights_sum": float(weights.sum()),
    }
    print(
        f"n = {n} points ({np.bincount(y).tolist()} per class), coreset m = {m}, budgets {budgets.tolist()}"
    )
    print("relative error of the subset gradient w.r.t. the full-data gradient at W0:")
    print(f"  CRAIG coreset, cluster weights       {results['coreset_weighted_error']:.4f}")
    print(f"  CRAIG coreset, uniform weights       {results['coreset_uniform_error']:.4f}")
    print(f"  logit-proxy coreset, cluster weights {results['logit_proxy_coreset_weighted_error']:.4f}")
    print(
        f"  random subsets of size m ({RANDOM_SUBSETS} draws)  median {results['random_error_median']:.4f}"
        f", best {results['random_error_best']:.4f}"
    )

    coreset_losses = train(w0, x, y, indices, weights)
    full_data_losses = train(w0, x, y, np.arange(n), np.ones(n))
    random_losses = train(w0, x, y, rng.choice(n, size=m, replace=False), uniform)
    results.update(
        {
            "full_loss_initial": coreset_losses[0],
            "full_loss_after_coreset_steps": coreset_losses[-1],
            "full_loss_after_full_data_steps": full_data_losses[-1],
            "full_loss_after_random_subset_steps": random_losses[-1],
            "largest_full_loss_increase_coreset": float(max(np.diff(coreset_losses))),
        }
    )
    print(f"full-data mean loss after {STEPS} steps of gradient descent (lr {LEARNING_RATE}):")
    print(f"  start                                {coreset_losses[0]:.4f}")
    print(f"  on the weighted coreset              {coreset_losses[-1]:.4f}")
    print(f"  on a random subset of size m         {random_losses[-1]:.4f}")
    print(f"  on all {n} points                  {full_data_losses[-1]:.4f}")
    return results


if __name__ == "__main__":
    main()

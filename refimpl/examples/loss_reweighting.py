"""Loss-based sample reweighting on linear regression: LinUpper against the uniform baseline.

Dynamic Loss-Based Sample Reweighting (Sow et al., arXiv:2502.06733) reweights the samples of
each mini-batch by their current loss: the easiest samples get less weight, the upper half
of the losses the most (LinUpper). The paper's toy regression shows faster convergence; this
example builds a regression problem with much redundant data — 80% of the samples vary
(almost) only along 2 of the 10 directions, so once those are fitted their losses are small
and uniform SGD spends most of each step on them — and trains it twice from the same start
with the same mini-batches:

* uniform: ``w_i = 1/B`` (the baseline);
* LinUpper: ``w = loss_based_sample_weights(ℓ, "linupper", r(t))`` with the paper's schedule
  ``r(t) = loss_reweighting_temperature(t)`` (∞ — i.e. uniform — during a warm-up, then the
  target r).

The gradient is hand-chained: ``refimpl.vjp(loss_weighted_objective, ℓ, w)`` gives
``∂J/∂ℓ = w`` (the weights are a stop-gradient), and ``ℓ_i = ½(x_iᵀθ − y_i)²`` gives
``∂ℓ_i/∂θ = (x_iᵀθ − y_i)·x_i``, so ``θ̄ = Xᵀ(w ⊙ residual)``.
"""

from __future__ import annotations

import numpy as np

import refimpl
from refimpl.reweighting import loss_based_sample_weights, loss_reweighting_temperature

DIM, N_TRAIN, N_TEST, BATCH = 10, 2000, 1000, 64
REDUNDANT_FRACTION = 0.8
STEPS, LEARNING_RATE = 200, 0.05
TARGET_R, WARMUP_STEPS = 0.4, 20  # 0.4: the official configs' target r for the larger models
REPORT_AT = (25, 50, 100, 200)


def make_problem(seed: int = 0):
    """Training data with a redundant majority, an isotropic test set, and θ*."""
    rng = np.random.default_rng(seed)
    theta_star = rng.standard_normal(DIM)
    n_redundant = int(REDUNDANT_FRACTION * N_TRAIN)
    narrow = np.r_[np.ones(2), np.full(DIM - 2, 0.05)]  # redundant samples: 2 directions only
    x_train = np.concatenate(
        [rng.standard_normal((n_redundant, DIM)) * narrow, rng.standard_normal((N_TRAIN - n_redundant, DIM))]
    )
    y_train = x_train @ theta_star + 0.1 * rng.standard_normal(N_TRAIN)
    x_test = rng.standard_normal((N_TEST, DIM))
    return x_train, y_train, x_test, x_test @ theta_star


def sample_weights(losses: np.ndarray, temperature: float, strategy: str) -> np.ndarray:
    """The weights of one batch; r = ∞ (the warm-up) is the uniform limit."""
    if strategy == "uniform" or np.isinf(temperature):
        return loss_based_sample_weights(losses, strategy="uniform", r=1.0)
    return loss_based_sample_weights(losses, strategy=strategy, r=float(temperature))


def train(strategy: str, problem, batches: np.ndarray) -> dict[str, list[float]]:
    """SGD on the weighted objective; returns the test loss after every step."""
    x_train, y_train, x_test, y_test = problem
    temperatures = loss_reweighting_temperature(
        np.arange(STEPS), target_r=TARGET_R, burnout_steps=WARMUP_STEPS
    )
    theta = np.zeros(DIM)
    test_losses, max_weights = [], []
    for step in range(STEPS):
        x, y = x_train[batches[step]], y_train[batches[step]]
        residual = x @ theta - y
        losses = 0.5 * residual**2  # ℓ_i
        weights = sample_weights(losses, temperatures[step], strategy)
        _, pullback = refimpl.vjp("loss_weighted_objective", losses, weights)
        (g_losses,) = pullback(np.array(1.0))  # ∂J/∂ℓ = w: no gradient through the weights
        g_theta = x.T @ (g_losses * residual)  # chain rule through ℓ_i = ½ r_i²
        theta = theta - LEARNING_RATE * g_theta
        test_losses.append(float(0.5 * np.mean((x_test @ theta - y_test) ** 2)))
        max_weights.append(float(weights.max()))
    return {"test_loss": test_losses, "max_weight": max_weights}


def main(seed: int = 0) -> dict[str, float]:
    problem = make_problem(seed)
    batches = np.random.default_rng(seed + 1).integers(0, N_TRAIN, size=(STEPS, BATCH))
    runs = {strategy: train(strategy, problem, batches) for strategy in ("uniform", "linupper")}
    print(f"test loss (½·MSE) after step   {'  '.join(f'{t:>8d}' for t in REPORT_AT)}")
    for strategy, run in runs.items():
        values = "  ".join(f"{run['test_loss'][t - 1]:8.4f}" for t in REPORT_AT)
        print(f"{strategy:>29s}   {values}")
    results = {}
    for strategy, run in runs.items():
        for t in REPORT_AT:
            results[f"{strategy}_test_loss_{t}"] = run["test_loss"][t - 1]
        results[f"{strategy}_test_loss_end_of_warmup"] = run["test_loss"][WARMUP_STEPS - 1]
        results[f"{strategy}_max_weight_after_warmup"] = max(run["max_weight"][WARMUP_STEPS:])
        results[f"{strategy}_max_weight_in_warmup"] = max(run["max_weight"][:WARMUP_STEPS])
    results["initial_test_loss"] = float(0.5 * np.mean(problem[3] ** 2))
    print(
        f"largest weight after the warm-up: uniform {results['uniform_max_weight_after_warmup']:.4f}"
        f" (1/B = {1 / BATCH:.4f}), linupper {results['linupper_max_weight_after_warmup']:.4f}"
    )
    return results


if __name__ == "__main__":
    main()

"""Expert Merging of two small MLP experts: learned chunk coefficients beat uniform averaging.

Expert Merging (Zhang et al., arXiv:2509.25712) merges K fine-tuned experts into one model
``θ = θ₀ + Σ_k sigmoid(a_k) ⊙ τ_k`` (per parameter tensor and chunk) and learns the raw
coefficients a on unlabeled inputs of each expert's domain, by aligning the merged model's
logits and hidden states with that expert's. Here:

* a shared base MLP ``x → h = tanh(W₁x + b₁) → z = W₂h + b₂`` (random, "pretrained") is
  fine-tuned for a few steps into two experts, on two seeded synthetic classification tasks
  with different input domains and labelling rules; ``τ_k = task_vector(θ_k, θ₀)``;
* the merge ``expert_merging`` per tensor, with two chunks for each weight matrix and one for
  each bias (Expert Merging++-style chunking), starting from the official ``α = 0.1``;
* the objective, on unlabeled inputs X_k of each domain (the official form)::

      J(a) = Σ_k [ distillation_kl(z_merged(X_k), z_k(X_k), T = 3, form="cross_entropy")
                   + λ_h · hidden_state_mse(h_merged(X_k), h_k(X_k)) ]
             + expert_merging_coefficient_regularizer(a, weight = 0.1, num_experts = 2)

  with λ_h = 0.1; the experts' logits and hidden states are constants (teachers);
* its gradient, chained by hand: ``refimpl.vjp`` pullbacks of the distillation and MSE terms
  give ``z̄`` and ``h̄``; the MLP backward (written out below) maps them to θ̄ per tensor; the
  ``expert_merging`` pullback maps θ̄ to ā; the regularizer's pullback adds its part. Plain
  gradient descent with the official gradient-norm clipping at 1.0.

The learned merge is compared with task arithmetic with equal coefficients α = 1/2 (uniform
averaging of the two experts) on each task's alignment loss, on held-out inputs of each domain.
"""

from __future__ import annotations

import numpy as np

import refimpl

IN, HIDDEN, CLASSES = 6, 16, 4
EXPERT_STEPS, EXPERT_LR = 60, 0.5
CALIBRATION, HELD_OUT = 128, 256  # unlabeled inputs per domain
TEMPERATURE, LAMBDA_H, LAMBDA_REG = 3.0, 0.1, 0.1  # official T, hidden_states_weight, sparsity_reg_weight
STEPS, LEARNING_RATE, CLIP = 300, 2.0, 1.0
NAMES = ("W1", "b1", "W2", "b2")
CHUNKS = {"W1": 2, "b1": 1, "W2": 2, "b2": 1}
LOGIT_0_1 = float(np.log(0.1 / 0.9))  # the official initialization α = 0.1


# -- the MLP, forward and hand-written backward -------------------------------------------------
def forward(theta, x):
    """``h = tanh(x W₁ᵀ + b₁)``, ``z = h W₂ᵀ + b₂``."""
    h = np.tanh(x @ theta["W1"].T + theta["b1"])
    return h, h @ theta["W2"].T + theta["b2"]


def backward(theta, x, h, g_h, g_z):
    """θ̄ from the cotangents of the hidden state (direct) and the logits.

    ``z = hW₂ᵀ + b₂``: ``W̄₂ = z̄ᵀh``, ``b̄₂ = Σ_rows z̄``, and h receives ``z̄W₂`` on top of
    its direct cotangent. ``h = tanh(u)``: ``ū = h̄ ⊙ (1 − h²)``. ``u = xW₁ᵀ + b₁``:
    ``W̄₁ = ūᵀx``, ``b̄₁ = Σ_rows ū``.
    """
    g_h_total = g_h + g_z @ theta["W2"]
    g_u = g_h_total * (1 - h * h)
    return {"W1": g_u.T @ x, "b1": g_u.sum(axis=0), "W2": g_z.T @ h, "b2": g_z.sum(axis=0)}


def cross_entropy_and_gradient(theta, x, y):
    """Mean CE on labelled data (to fine-tune the experts) and its θ-gradient."""
    h, z = forward(theta, x)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    loss = float(-np.log(p[np.arange(y.shape[0]), y]).mean())
    g_z = p
    g_z[np.arange(y.shape[0]), y] -= 1
    return loss, backward(theta, x, h, np.zeros_like(h), g_z / y.shape[0])


# -- the data and the experts ---------------------------------------------------------------------
def make_task(rng, which):
    """Domain ``which`` of two: inputs on their own half of the features (the other half 0),
    around a mean of 1; labels the argmax of a random linear map of those features.

    The two domains share no input feature, as different domains (languages, modalities)
    activate different features; the experts still interfere through the shared hidden
    units, the biases and the shared output head.
    """
    mask = np.zeros(IN)
    mask[which * (IN // 2) : (which + 1) * (IN // 2)] = 1.0
    teacher = rng.standard_normal((CLASSES, IN)) * mask

    def sample(count):
        x = (1.0 + rng.standard_normal((count, IN))) * mask
        return x, (x @ teacher.T).argmax(axis=1)

    return sample


def make_setup(seed: int = 0):
    """Base θ₀, the two experts, unlabeled calibration and held-out inputs of each domain."""
    rng = np.random.default_rng(seed)
    base = {
        "W1": rng.standard_normal((HIDDEN, IN)) / np.sqrt(IN),
        "b1": 0.1 * rng.standard_normal(HIDDEN),
        "W2": rng.standard_normal((CLASSES, HIDDEN)) / np.sqrt(HIDDEN),
        "b2": np.zeros(CLASSES),
    }
    tasks = [make_task(rng, 0), make_task(rng, 1)]
    experts, calibration, held_out = [], [], []
    for sample in tasks:
        x, y = sample(256)
        theta = {name: value.copy() for name, value in base.items()}
        for _ in range(EXPERT_STEPS):
            _, grads = cross_entropy_and_gradient(theta, x, y)
            theta = {name: theta[name] - EXPERT_LR * grads[name] for name in NAMES}
        experts.append(theta)
        calibration.append(sample(CALIBRATION)[0])  # labels dropped: unlabeled
        held_out.append(sample(HELD_OUT)[0])
    return base, experts, calibration, held_out


# -- merging, objective, hand-chained gradient ------------------------------------------------------
def stacked_task_vectors(base, experts):
    """``task_vectors[name] = stack_k(task_vector(θ_k, θ₀), axis=-1)``."""
    return {
        name: np.stack([refimpl.merging.task_vector(e[name], base[name]) for e in experts], axis=-1)
        for name in NAMES
    }


def merge(base, taus, a):
    """The merged parameters and one ``expert_merging`` pullback per tensor."""
    theta, pullbacks = {}, {}
    for name in NAMES:
        theta[name], pullbacks[name] = refimpl.vjp("expert_merging", base[name], taus[name], a[name])
    return theta, pullbacks


def flat_coefficients(a):
    """All raw coefficients (K, Σ chunks): the regularizer's ``a`` (N/K = Σ chunks)."""
    return np.concatenate([a[name] for name in NAMES], axis=1)


def alignment(theta, expert, x, form="cross_entropy"):
    """One domain's alignment loss, with the pullbacks of its two terms.

    ``form="cross_entropy"`` is the official training term; ``form="kl"`` differs from it by
    the expert's (constant) entropy, same gradient, and is 0 at perfect alignment: the one
    reported.
    """
    h, z = forward(theta, x)
    h_expert, z_expert = forward(expert, x)
    distill, pull_distill = refimpl.vjp("distillation_kl", z, z_expert, temperature=TEMPERATURE, form=form)
    mse, pull_mse = refimpl.vjp("hidden_state_mse", h, h_expert)
    return float(distill) + LAMBDA_H * float(mse), (h, pull_distill, pull_mse)


def objective_and_gradient(a, base, taus, experts, inputs):
    """J(a), ∂J/∂a (per tensor) and each domain's alignment loss."""
    theta, merge_pullbacks = merge(base, taus, a)
    g_theta = {name: np.zeros_like(theta[name]) for name in NAMES}
    per_task = []
    for expert, x in zip(experts, inputs, strict=True):
        loss, (h, pull_distill, pull_mse) = alignment(theta, expert, x)
        per_task.append(loss)
        g_z, _ = pull_distill(np.array(1.0))  # the teacher's cotangent is dropped: a constant
        g_h, _ = pull_mse(np.array(LAMBDA_H))
        for name, value in backward(theta, x, h, g_h, g_z).items():
            g_theta[name] += value
    flat = flat_coefficients(a)
    regularizer, pull_regularizer = refimpl.vjp(
        "expert_merging_coefficient_regularizer", flat, weight=LAMBDA_REG, num_experts=len(experts)
    )
    (g_flat,) = pull_regularizer(np.array(1.0))
    gradient, start = {}, 0
    for name in NAMES:
        (g_a,) = merge_pullbacks[name](g_theta[name])
        stop = start + a[name].shape[1]
        gradient[name] = g_a + g_flat[:, start:stop]
        start = stop
    return sum(per_task) + float(regularizer), gradient, per_task


def alignment_losses(a, base, taus, experts, inputs):
    """Each domain's ``T²·KL(expert ‖ merged) + λ_h·MSE(hidden)`` (0 when the merge matches)."""
    theta, _ = merge(base, taus, a)
    return [alignment(theta, expert, x, form="kl")[0] for expert, x in zip(experts, inputs, strict=True)]


def logit(alpha: float) -> float:
    """The raw coefficient of α (α = 1 is reached only in the limit: clipped to 1 − 1e-12)."""
    alpha = min(alpha, 1 - 1e-12)
    return float(np.log(alpha / (1 - alpha)))


def constant_coefficients(value: float, experts: int = 2):
    return {name: np.full((experts, CHUNKS[name]), value) for name in NAMES}


def learn(base, taus, experts, inputs, steps=STEPS):
    """Gradient descent on a from the official init α = 0.1, gradient norm clipped at 1.0."""
    a = constant_coefficients(LOGIT_0_1, len(experts))
    objectives = []
    for _ in range(steps):
        objective, gradient, _ = objective_and_gradient(a, base, taus, experts, inputs)
        objectives.append(objective)
        norm = np.sqrt(sum(float((g * g).sum()) for g in gradient.values()))
        scale = min(1.0, CLIP / norm) if norm > 0 else 1.0
        a = {name: a[name] - LEARNING_RATE * scale * gradient[name] for name in NAMES}
    objectives.append(objective_and_gradient(a, base, taus, experts, inputs)[0])
    return a, objectives


def main(seed: int = 0) -> dict[str, float]:
    base, experts, calibration, held_out = make_setup(seed)
    taus = stacked_task_vectors(base, experts)
    learned, objectives = learn(base, taus, experts, calibration)
    uniform = constant_coefficients(0.0)  # α = sigmoid(0) = 1/2: averaging the two experts
    # task arithmetic with one α for everything, tuned on the calibration inputs (a grid)
    grid = np.linspace(0.05, 1.0, 20)
    sums = [
        sum(alignment_losses(constant_coefficients(logit(v)), base, taus, experts, calibration)) for v in grid
    ]
    best_alpha = float(grid[int(np.argmin(sums))])
    results = {
        "objective_first": objectives[0],
        "objective_last": objectives[-1],
        "largest_objective_increase": float(max(np.diff(objectives))),
        "best_equal_alpha": best_alpha,
    }
    print(f"objective J(a): {objectives[0]:.4f} at α = 0.1  →  {objectives[-1]:.4f} after {STEPS} steps")
    rows = {
        "init (α = 0.1)": constant_coefficients(LOGIT_0_1),
        "uniform (α = 0.5)": uniform,
        f"tuned (α = {best_alpha:.2f} for all)": constant_coefficients(logit(best_alpha)),
        "learned": learned,
    }
    for split, inputs in (("calibration", calibration), ("held_out", held_out)):
        print(f"alignment loss on {split + ' inputs':<22s}  task A    task B")
        for label, a in rows.items():
            losses = alignment_losses(a, base, taus, experts, inputs)
            key = label.split(" ")[0]
            for task, loss in zip("AB", losses, strict=True):
                results[f"{key}_{split}_task_{task}"] = loss
            print(f"  {label:<30s} {losses[0]:8.4f}  {losses[1]:8.4f}")
    for label, value in (("A", 0), ("B", 1)):
        alphas = {name: np.round(1 / (1 + np.exp(-learned[name][value])), 3).tolist() for name in NAMES}
        print(f"learned α of expert {label}: {alphas}")
    flat = flat_coefficients(learned)
    results["learned_alpha_min"] = float((1 / (1 + np.exp(-flat))).min())
    results["learned_alpha_max"] = float((1 / (1 + np.exp(-flat))).max())
    return results


if __name__ == "__main__":
    main()

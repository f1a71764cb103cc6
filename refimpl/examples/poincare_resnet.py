"""A tiny Poincaré ResNet on a synthetic image set, trained with the hand-written VJPs only.

Poincaré ResNet (van Spengler, Berkhout and Mettes, arXiv:2303.14027) keeps every activation
of a residual network on the Poincaré ball of curvature −c. This example builds a two-block
version of the paper's network (its official code: maxvanspengler/poincare-resnet,
``models/resnets/hyperbolic.py``) and trains it for a few SGD steps on 16 images of 1×6×6
pixels, two classes (a bright horizontal bar or a bright vertical bar, in noise):

    x₀    = exp_0(½·pixel)                                  the stem's input, (B, 6, 6, 1)
    h     = relu(BN(conv(x₀)))                               stem: 3×3, 1 → 4 channels
    block: F = BN(conv(relu(BN(conv(h)))))                  the paper's block, 3×3 convs, 4 → 4
           h = poincare_residual(F, h)  = relu(F ⊕ h)       Möbius skip, F on the left
    (two blocks)
    p     = exp_0(mean over pixels of log_0(h))             tangent average pooling (AvgPool2d
                                                             on the official code's tangent
                                                             representation)
    ℓ     = log_0(poincare_fc(p, Z, r))                      (B, 2) Euclidean logits
    J     = mean_i −log softmax(ℓ_i)[y_i]                   cross-entropy

with ``conv = poincare_conv2d`` (β-concatenated 3×3 neighbourhoods, origin padding, then
``poincare_fc``), ``BN = poincare_batch_norm`` on the (B·6·6, 4) pixel points (γ under the
root, midpoint statistics of the batch — as ``PoincareBatchNorm2d`` does), ``relu =
poincare_relu`` (ReLU in the tangent space at 0). Curvature c = 0.1 (the official ResNets'
``init_c``); weights ``N(0, (2·n_in·n_out)⁻¹)`` (the library's ``PoincareBall`` FC init),
offsets 0, γ = 1, β = 0 (the official BN init).

The gradient of J with respect to every parameter is chained by hand: each layer's forward
is ``refimpl.vjp(op, …)``, and the backward pass calls the returned pullbacks in reverse
order. Only three pieces are written out here, all linear or Euclidean: the reshapes around
the batch norm, the adjoint of the average pooling (``ḡ/(H·W)`` broadcast to every pixel),
and the cross-entropy's ``softmax − onehot``. The skip connection sums two cotangents into
the block input. The parameters are Euclidean (the official code trains them with plain
SGD too), so an SGD step is ``θ ← θ − η θ̄``.
"""

from __future__ import annotations

import numpy as np

import refimpl
from refimpl.authoring import log_softmax

CURVATURE = 0.1  # the official ResNets' init_c
N_IMAGES, SIZE, CHANNELS, CLASSES, KERNEL = 16, 6, 4, 2, 3
N_BLOCKS = 2
STEPS, LEARNING_RATE = 25, 0.5


def make_images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """16 images (B, 6, 6, 1), channels-last: a bar of brightness 1.5 in N(0, 0.3²) noise.

    Class 0 has a horizontal bar at a random row, class 1 a vertical bar at a random column;
    the classes alternate.
    """
    rng = np.random.default_rng(seed)
    images = 0.3 * rng.standard_normal((N_IMAGES, SIZE, SIZE, 1))
    labels = np.arange(N_IMAGES) % CLASSES
    for i, label in enumerate(labels):
        line = rng.integers(1, SIZE - 1)
        if label == 0:
            images[i, line, :, 0] += 1.5
        else:
            images[i, :, line, 0] += 1.5
    return images, labels


def init_params(seed: int = 1) -> dict[str, np.ndarray]:
    """Weights ``N(0, (2·n_in·n_out)⁻¹)``, offsets 0, BN γ = 1 and β = 0."""
    rng = np.random.default_rng(seed)

    def weights(n_in, n_out):
        return rng.standard_normal((n_in, n_out)) / np.sqrt(2 * n_in * n_out)

    params = {
        "stem.Z": weights(KERNEL * KERNEL * 1, CHANNELS),
        "stem.r": np.zeros(CHANNELS),
        "stem.gamma": np.array(1.0),
        "stem.beta": np.zeros(CHANNELS),
    }
    for block in range(N_BLOCKS):
        for conv in (1, 2):
            name = f"block{block}.conv{conv}"
            params[f"{name}.Z"] = weights(KERNEL * KERNEL * CHANNELS, CHANNELS)
            params[f"{name}.r"] = np.zeros(CHANNELS)
            params[f"{name}.gamma"] = np.array(1.0)
            params[f"{name}.beta"] = np.zeros(CHANNELS)
    params["head.Z"] = weights(CHANNELS, CLASSES)
    params["head.r"] = np.zeros(CLASSES)
    return params


def _conv_bn(x, params, name, relu):
    """``relu?(BN(conv(x)))`` forward; returns the output and a backward closure."""
    c = CURVATURE
    y, conv_pullback = refimpl.vjp(
        "poincare_conv2d", x, params[f"{name}.Z"], params[f"{name}.r"], c=c, kernel_size=KERNEL, padding=1
    )
    shape = y.shape
    z, bn_pullback = refimpl.vjp(
        "poincare_batch_norm", y.reshape(-1, shape[-1]), params[f"{name}.gamma"], params[f"{name}.beta"], c=c
    )
    z = z.reshape(shape)
    relu_pullback = None
    if relu:
        z, relu_pullback = refimpl.vjp("poincare_relu", z, c=c)

    def backward(g, grads):
        if relu_pullback is not None:
            (g,) = relu_pullback(g)
        g_y, grads[f"{name}.gamma"], grads[f"{name}.beta"] = bn_pullback(g.reshape(-1, shape[-1]))
        g_x, grads[f"{name}.Z"], grads[f"{name}.r"] = conv_pullback(g_y.reshape(shape))
        return g_x

    return z, backward


def objective_and_gradient(params, images, labels):
    """Mean cross-entropy J, ``{name: ∂J/∂θ}`` and the accuracy, by chaining the pullbacks."""
    c = CURVATURE
    x0 = refimpl.layers.poincare_expmap0(0.5 * images, c=c)  # the input needs no cotangent
    backwards = []
    h, backward = _conv_bn(x0, params, "stem", relu=True)
    backwards.append(("layer", backward))
    for block in range(N_BLOCKS):
        f, backward1 = _conv_bn(h, params, f"block{block}.conv1", relu=True)
        f, backward2 = _conv_bn(f, params, f"block{block}.conv2", relu=False)
        h, residual_pullback = refimpl.vjp("poincare_residual", f, h, c=c)
        backwards.append(("block", (backward1, backward2, residual_pullback)))
    tangent, log_pullback = refimpl.vjp("poincare_logmap0", h, c=c)
    pooled_tangent = tangent.mean(axis=(1, 2))  # (B, C)
    pooled, exp_pullback = refimpl.vjp("poincare_expmap0", pooled_tangent, c=c)
    out, fc_pullback = refimpl.vjp("poincare_fc", pooled, params["head.Z"], params["head.r"], c=c)
    logits, logits_pullback = refimpl.vjp("poincare_logmap0", out, c=c)

    batch = len(labels)
    log_p = log_softmax(logits)
    objective = float(-log_p[np.arange(batch), labels].mean())
    accuracy = float((logits.argmax(axis=1) == labels).mean())

    # backward: cross-entropy, head, pooling, then the blocks in reverse
    grads: dict[str, np.ndarray] = {}
    g_logits = np.exp(log_p)
    g_logits[np.arange(batch), labels] -= 1
    g_logits /= batch
    (g_out,) = logits_pullback(g_logits)
    g_pooled, grads["head.Z"], grads["head.r"] = fc_pullback(g_out)
    (g_pooled_tangent,) = exp_pullback(g_pooled)
    height, width = tangent.shape[1:3]
    g_tangent = np.broadcast_to(g_pooled_tangent[:, None, None, :] / (height * width), tangent.shape)
    (g_h,) = log_pullback(np.ascontiguousarray(g_tangent))
    for kind, backward in reversed(backwards):
        if kind == "layer":
            g_h = backward(g_h, grads)
        else:
            backward1, backward2, residual_pullback = backward
            g_f, g_skip = residual_pullback(g_h)
            g_h = g_skip + backward1(backward2(g_f, grads), grads)  # the skip adds its cotangent
    return objective, grads, accuracy


def run(steps: int = STEPS, learning_rate: float = LEARNING_RATE, seed: int = 0) -> dict:
    """Train with SGD; returns the loss and accuracy histories and the largest |gradient|."""
    images, labels = make_images(seed)
    params = init_params(seed + 1)
    losses, accuracies, largest_gradient = [], [], 0.0
    for step in range(steps + 1):
        objective, grads, accuracy = objective_and_gradient(params, images, labels)
        losses.append(objective)
        accuracies.append(accuracy)
        finite = all(np.all(np.isfinite(g)) for g in grads.values())
        largest_gradient = max(largest_gradient, max(float(np.abs(g).max()) for g in grads.values()))
        if not finite:
            largest_gradient = float("inf")
        if step < steps:
            params = {name: value - learning_rate * grads[name] for name, value in params.items()}
    return {
        "losses": losses,
        "accuracies": accuracies,
        "largest_gradient": largest_gradient,
        "gammas": [float(params[name]) for name in params if name.endswith(".gamma")],
    }


def main(seed: int = 0) -> dict:
    result = run(seed=seed)
    for step, (loss, accuracy) in enumerate(zip(result["losses"], result["accuracies"], strict=True)):
        if step % 5 == 0 or step == len(result["losses"]) - 1:
            print(f"step {step:2d}: cross-entropy = {loss:.4f}  train accuracy = {accuracy:.2f}")
    print(f"largest |gradient| over the run: {result['largest_gradient']:.3g}")
    return result


if __name__ == "__main__":
    main()

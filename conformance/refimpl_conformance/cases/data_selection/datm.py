"""Conformance cases for `trajectory_matching_loss` and `unrolled_sgd_softmax_linear`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "STUDENT_AT_TARGET": "θ̂ = θ*_{t+M}: loss 0 and gradient 0",
    "STUDENT_AT_START": "θ̂ = θ*_t (no progress): loss exactly 1",
    "MATRIX_PARAMS": "parameters given as a (…, P) array: the sums run over every entry",
    "LARGE": "parameters ~1e20: squares overflow float32, not the float64 sums",
    "REPEATED_INDEX": "an image drawn twice in one step (or in several): its cotangents add up",
    "SOFT_LABELS": "labels that do not sum to 1 (DATM's logit labels): the gradient is sP − Y",
    "ONE_STEP": "N = 1: one SGD step, the HVP path enters only through X̄",
    "ZERO_LR": "α = 0: θ_N = θ_0 and X̄ = Ȳ = 0, but ᾱ = −Σ_k ⟨G_k, θ̄⟩ ≠ 0",
}


def _random_loss(rng, P):  # noqa: N803
    shape = [(P,), (2, P), (P,)][int(rng.integers(0, 3))]
    scale = float(rng.choice([1e-3, 1.0, 50.0]))
    start = rng.standard_normal(shape) * scale
    target = start + rng.standard_normal(shape) * scale
    student = start + float(rng.uniform(0, 1.2)) * (target - start) + 0.3 * scale * rng.standard_normal(shape)
    return Sample("random", (student, target, start))


def _loss_edges():
    rng = np.random.default_rng(117)
    start, target = rng.standard_normal(6), rng.standard_normal(6)
    return [
        Sample("student at the target", (target.copy(), target, start), flags=("STUDENT_AT_TARGET",)),
        Sample("student at the start", (start.copy(), target, start), flags=("STUDENT_AT_START",)),
        Sample(
            "parameters as a (3, 2, 4) array",
            (rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))),
            flags=("MATRIX_PARAMS",),
        ),
        Sample("one parameter", (np.array([0.5]), np.array([1.0]), np.array([-1.0]))),
        Sample(
            "parameters ~1e20",
            (1e20 * rng.standard_normal(4), 1e20 * rng.standard_normal(4), 1e20 * rng.standard_normal(4)),
            flags=("LARGE",),
            fd=False,
            comment="a difference step of 1e-6 is lost beside 1e20",
        ),
    ]


def _loss_errors():
    start = np.array([1.0, 2.0])
    return [ErrorCase("start = target", (np.zeros(2), start, start.copy()), match=r"'theta_start'.*equals")]


def _loss_known():
    return [
        Known(
            "the expert moved by (2, 0), the student is at (1, 1)",
            (np.array([1.0, 1.0]), np.array([2.0, 0.0]), np.array([0.0, 0.0])),
            values={"loss": 0.5, "cotangent of 'theta_student'": [-0.5, 0.5]},
            source="by hand: (1 + 1)/4; 2(θ̂ − θ*)/4",
            rtol=1e-12,
        ),
    ]


def _loss_torch(torch, args, kwargs, cotangent):
    """DATM.py: mse_loss(student, target, 'sum')/P over mse_loss(start, target, 'sum')/P."""
    student = torch.from_numpy(args[0]).requires_grad_()
    target, start = torch.from_numpy(args[1]), torch.from_numpy(args[2])
    g = torch.tensor(float(np.asarray(cotangent)), dtype=student.dtype)
    num_params = student.numel()

    def step():
        student.grad = None
        param_loss = torch.nn.functional.mse_loss(student, target, reduction="sum") / num_params
        param_dist = torch.nn.functional.mse_loss(start, target, reduction="sum") / num_params
        loss = param_loss / param_dist
        loss.backward(g)
        return loss

    return step


def _loss_bench(rng, rows, cols):
    shape = (rows * cols,)  # one flattened parameter vector
    start = rng.standard_normal(shape)
    target = start + rng.standard_normal(shape)
    return Sample("bench", (start + 0.8 * (target - start) + 0.1 * rng.standard_normal(shape), target, start))


register(
    OpCases(
        "trajectory_matching_loss",
        dims={"P": (1, 9)},
        random=_random_loss,
        edges=_loss_edges,
        errors=_loss_errors,
        known=_loss_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_loss_bench,
            torch=_loss_torch,
            torch_label="DATM.py: mse_loss(θ̂, θ*, 'sum')/P over mse_loss(θ*_t, θ*, 'sum')/P; autograd",
        ),
    )
)


# -- unrolled SGD of a softmax-linear student ---------------------------------------------
def _random_unrolled(rng, N, b, n, D, K):  # noqa: N803
    theta = rng.standard_normal((D, K)) * 0.5
    x = rng.standard_normal((n, D))
    if rng.integers(0, 2):
        y = rng.dirichlet(np.ones(K), size=n)  # probability labels
    else:
        y = rng.standard_normal((n, K))  # DATM-style logit labels (any sum)
    lr = np.array(float(rng.choice([0.01, 0.1, 0.5])))
    batch_indices = rng.integers(0, n, size=(N, b))
    return Sample("random", (theta, x, y, lr, batch_indices))


def _unrolled_edges():
    rng = np.random.default_rng(86)
    theta, x = rng.standard_normal((3, 4)) * 0.3, rng.standard_normal((5, 3))
    y = np.eye(4)[[0, 1, 2, 3, 0]]
    return [
        Sample(
            "an image drawn twice in a step and again later",
            (theta, x, y, np.array(0.2), np.array([[1, 1, 3], [1, 0, 4]])),
            flags=("REPEATED_INDEX",),
        ),
        Sample(
            "soft labels summing to 3",
            (
                theta,
                x,
                3.0 * rng.dirichlet(np.ones(4), size=5),
                np.array(0.1),
                np.array([[0, 1], [2, 3], [4, 0]]),
            ),
            flags=("SOFT_LABELS",),
        ),
        Sample(
            "one step, full batch", (theta, x, y, np.array(0.3), np.arange(5)[None, :]), flags=("ONE_STEP",)
        ),
        Sample("α = 0", (theta, x, y, np.array(0.0), np.array([[0, 2], [1, 4]])), flags=("ZERO_LR",)),
        Sample(
            "ten steps, permutation chunks (DATM's minibatching)",
            (
                theta,
                x,
                y,
                np.array(0.1),
                np.concatenate([rng.permutation(5) for _ in range(4)])[:20].reshape(10, 2),
            ),
        ),
    ]


def _unrolled_known():
    return [
        Known(
            "one step from θ = 0: P = (½, ½)",
            (np.zeros((1, 2)), np.array([[2.0]]), np.array([[1.0, 0.0]]), np.array(0.5), np.array([[0]])),
            values={
                "theta": [[0.5, -0.5]],  # θ − α x(P − Y) = 0 − 0.5·2·(−½, ½)
                # θ̄ = (1, 0): ᾱ = −⟨G, θ̄⟩ = −(−1) = 1; Ȳ: V = −½(1, 0), R̄ = xV = (−1, 0),
                # Ȳ = ⟨R̄, P⟩ − R̄ = −½ − (−1, 0) = (½, −½); X̄ = R Vᵀ + Z̄ θᵀ = (−½)(−½) + 0 = ¼
                "cotangent of 'lr'": 1.0,
                "cotangent of 'y_syn'": [[0.5, -0.5]],
                "cotangent of 'x_syn'": [[0.25]],
            },
            cotangent=np.array([[1.0, 0.0]]),
            source="by hand (the derivation in the docstring)",
            rtol=1e-12,
        ),
    ]


register(
    OpCases(
        "unrolled_sgd_softmax_linear",
        dims={"N": (1, 3), "b": (1, 3), "n": (1, 4), "D": (1, 3), "K": (2, 4)},
        random=_random_unrolled,
        edges=_unrolled_edges,
        known=_unrolled_known,
        notes=NOTES,
        defaults={},
    )
)
